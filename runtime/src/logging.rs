//! Logs as containerd's runc shim reads them: `--log FILE --log-format json` gives one JSON
//! object per line, `{"level":"error","msg":"…","time":"…"}`; `text` gives logfmt-like lines.
use std::fmt::Write as _;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// The descriptor log records go to: processes that close every other fd keep this one.
static LOG_FD: OnceLock<RawFd> = OnceLock::new();

/// Set once the log's descriptor no longer reaches the log (see [`release`]).
static RELEASED: AtomicBool = AtomicBool::new(false);

/// The log's descriptor, once `init` has opened it.
pub fn fd() -> Option<RawFd> {
    LOG_FD.get().copied()
}

/// For a container's init about to wait for `start`: from now on it holds nothing of the host,
/// so the log's descriptor (a host file a neighbour with CAP_SYS_PTRACE could write through
/// `/proc/<init>/fd/N`) becomes the container's `/dev/null` — the number stays valid, so no
/// later open reuses it — and later records are dropped.
pub fn release() {
    RELEASED.store(true, Ordering::SeqCst);
    let Some(fd) = fd() else {
        return;
    };
    let null = std::fs::OpenOptions::new().write(true).open("/dev/null");
    // SAFETY: dup3/close of a descriptor this process owns; RELEASED keeps the layer off it.
    match null {
        Ok(null) => unsafe { libc::dup3(null.as_raw_fd(), fd, libc::O_CLOEXEC) },
        Err(_) => unsafe { libc::close(fd) },
    };
}

struct FileLayer {
    file: Mutex<std::fs::File>,
    format: Format,
    max: Level,
    /// On stderr errors are left out: `main` prints them itself.
    skip_errors: bool,
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for FileLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        let released = RELEASED.load(Ordering::Relaxed);
        if released || level > self.max || (self.skip_errors && level == Level::ERROR) {
            return;
        }
        let mut msg = Message(String::new());
        event.record(&mut msg);
        let line = line(self.format, *event.metadata().level(), &msg.0);
        if let Ok(mut f) = self.file.lock() {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

fn line(format: Format, level: Level, msg: &str) -> String {
    // logrus's names, as runc writes them (containerd parses both).
    let level = match level {
        Level::WARN => "warning".to_string(),
        other => other.as_str().to_ascii_lowercase(),
    };
    let time = crate::state::now_rfc3339();
    match format {
        Format::Json => {
            let v = serde_json::json!({"level": level, "msg": msg, "time": time});
            format!("{v}\n")
        }
        Format::Text => format!("time={time:?} level={level} msg={msg:?}\n"),
    }
}

/// Send logs to `path` (if given) at info level, or debug with `debug`. Without a path,
/// warnings (and debug records with `debug`) go to stderr as text, as runc's do.
/// True when the records, errors among them, go to the file.
pub fn init(path: Option<&Path>, format: Format, debug: bool) -> bool {
    let max = if debug { Level::DEBUG } else { Level::INFO };
    let Some(path) = path else {
        let Ok(stderr) = std::io::stderr().as_fd().try_clone_to_owned() else {
            return false;
        };
        let _ = LOG_FD.set(stderr.as_raw_fd());
        let layer = FileLayer {
            file: Mutex::new(stderr.into()),
            format: Format::Text,
            max: if debug { Level::DEBUG } else { Level::WARN },
            skip_errors: true,
        };
        let _ = tracing_subscriber::registry().with(layer).try_init();
        return false;
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path);
    let Ok(file) = file else {
        eprintln!(
            "berth-runtime: open log {}: {}",
            path.display(),
            file.unwrap_err()
        );
        return false;
    };
    let _ = LOG_FD.set(file.as_raw_fd());
    let layer = FileLayer {
        file: Mutex::new(file),
        format,
        max,
        skip_errors: false,
    };
    tracing_subscriber::registry()
        .with(layer)
        .try_init()
        .is_ok()
}
