//! Shows docker's JSON message stream: one indicatif bar per layer on a terminal, plain
//! `id: status` lines otherwise (byte-progress messages skipped, like docker).
use std::collections::HashMap;
use std::io::{BufRead, Write};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::images::progress::Message;

/// Errors showing a stream.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The daemon's error line, shown as docker shows it: the bare message.
    #[error("{0}")]
    Remote(String),
    #[error("reading the daemon's answer: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads the stream to its end and shows it. `quiet` shows only `stream` text and errors.
pub fn display(body: &mut dyn BufRead, terminal: bool, quiet: bool) -> Result<(), Error> {
    let mut view: Box<dyn View> = match (terminal, quiet) {
        (_, true) => Box::new(Quiet),
        (true, false) => Box::new(Bars::new()),
        (false, false) => Box::new(Plain),
    };
    let mut line = String::new();
    loop {
        line.clear();
        if body.read_line(&mut line)? == 0 {
            break;
        }
        let Ok(message) = serde_json::from_str::<Message>(line.trim()) else {
            continue;
        };
        if let Some(error) = message
            .error_detail
            .as_ref()
            .map(|d| d.message.clone())
            .or(message.error.clone())
        {
            view.finish();
            return Err(Error::Remote(error));
        }
        view.show(&message);
    }
    view.finish();
    Ok(())
}

trait View {
    fn show(&mut self, message: &Message);
    fn finish(&mut self) {}
}

fn has_bytes(m: &Message) -> bool {
    m.progress_detail
        .is_some_and(|d| d.total.is_some() || d.current.is_some())
}

fn plain_line(m: &Message) -> Option<String> {
    if let Some(stream) = &m.stream {
        return Some(stream.trim_end_matches('\n').to_string());
    }
    if m.status.is_empty() {
        return None;
    }
    Some(match &m.id {
        Some(id) => format!("{id}: {}", m.status),
        None => m.status.clone(),
    })
}

struct Quiet;

impl View for Quiet {
    fn show(&mut self, m: &Message) {
        if let Some(stream) = &m.stream {
            print!("{stream}");
        }
    }
}

struct Plain;

impl View for Plain {
    fn show(&mut self, m: &Message) {
        if has_bytes(m) {
            return;
        }
        if let Some(line) = plain_line(m) {
            println!("{line}");
        }
        let _ = std::io::stdout().flush();
    }
}

/// Per-layer bars: `a1b2c3d4e5f6: Downloading [=====>     ]  1.2MB/3.4MB`.
struct Bars {
    multi: MultiProgress,
    bars: HashMap<String, ProgressBar>,
}

impl Bars {
    fn new() -> Self {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
            bars: HashMap::new(),
        }
    }

    fn bar(&mut self, id: &str) -> &ProgressBar {
        let multi = &self.multi;
        self.bars.entry(id.to_string()).or_insert_with(|| {
            let bar = ProgressBar::new(0)
                .with_style(status_style())
                .with_prefix(id.to_string());
            multi.add(bar)
        })
    }
}

fn status_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix}: {msg}").unwrap_or_else(|_| ProgressStyle::default_bar())
}

fn bytes_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix}: {msg} [{bar:50}] {decimal_bytes:>8}/{decimal_total_bytes}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl View for Bars {
    fn show(&mut self, m: &Message) {
        let Some(id) = m.id.clone() else {
            if let Some(line) = plain_line(m) {
                let _ = self.multi.println(line);
            }
            return;
        };
        let status = m.status.clone();
        let detail = m.progress_detail;
        let bar = self.bar(&id);
        bar.set_message(status);
        match detail {
            Some(d) if d.total.is_some_and(|t| t > 0) => {
                bar.set_style(bytes_style());
                bar.set_length(d.total.unwrap_or(0));
                bar.set_position(d.current.unwrap_or(0));
            }
            _ => bar.set_style(status_style()),
        }
    }

    fn finish(&mut self) {
        for bar in self.bars.values() {
            bar.abandon();
        }
    }
}
