//! A build step's container: started, its output followed as it is written, waited for.
//! The caller creates it (docker's create request) and, after, commits and removes it.
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;

use super::logs;
use super::service::{ContainerService, Error, WaitCondition};

/// How often the step's log is read while it runs.
const POLL: Duration = Duration::from_millis(50);

impl ContainerService {
    /// Starts the created container `id` and runs it to its end, sending each piece of
    /// output it writes to `output`; returns its exit code. The stopped container stays.
    pub async fn run_step(
        self: &std::sync::Arc<Self>,
        id: &str,
        output: mpsc::UnboundedSender<String>,
    ) -> Result<i32, Error> {
        let log = PathBuf::from(self.inspect(id).await?.log_path);
        let exited = self.wait(id, WaitCondition::NextExit).await?;
        self.start(id).await?;
        let mut reader = logs::Reader::at(log.clone(), 0);
        let send = |reader: &mut logs::Reader| {
            for entry in reader.read_new().unwrap_or_default() {
                let _ = output.send(entry.log);
            }
        };
        tokio::pin!(exited);
        let code = loop {
            tokio::select! {
                code = &mut exited => break code,
                _ = tokio::time::sleep(POLL) => send(&mut reader),
            }
        };
        // The logging binary writes the last lines after the exit: read until it lets go
        // of the log (bounded, should it never).
        for _ in 0..100 {
            if logs::writer_done(&log) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        send(&mut reader);
        Ok(code)
    }
}
