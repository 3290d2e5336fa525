//! How `berth build` shows the classic builder's stream: as it comes (docker's text) when
//! stdout is a file or a pipe; on a terminal, a live view of the steps: the running step
//! on a line of its own with a spinner and its time so far, its output printed above it,
//! and each finished step kept as one line with its time (`CACHED` when the cache had it).
use std::io::Write;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where the builder's `stream` text goes.
pub enum BuildView {
    /// The text unchanged.
    Plain(std::io::Stdout),
    Live(Live),
}

impl BuildView {
    pub fn new(terminal: bool) -> Self {
        if terminal {
            BuildView::Live(Live::new())
        } else {
            BuildView::Plain(std::io::stdout())
        }
    }

    /// A piece of the builder's text (lines may come in several pieces).
    pub fn text(&mut self, text: &str) -> std::io::Result<()> {
        match self {
            BuildView::Plain(out) => {
                out.write_all(text.as_bytes())?;
                out.flush()
            }
            BuildView::Live(live) => {
                live.text(text);
                Ok(())
            }
        }
    }

    /// The build failed: the running step is marked so.
    pub fn failed(&mut self) {
        if let BuildView::Live(live) = self {
            live.end_step("ERROR");
        }
    }

    /// The stream ended well.
    pub fn finish(&mut self) {
        if let BuildView::Live(live) = self {
            live.finish();
        }
    }
}

/// The terminal view.
pub struct Live {
    multi: MultiProgress,
    started: Instant,
    /// Text after the last newline.
    partial: String,
    step: Option<Step>,
    steps_done: usize,
    steps: usize,
}

/// The step running.
struct Step {
    /// `[2/5] RUN make`.
    title: String,
    bar: ProgressBar,
    started: Instant,
    cached: bool,
}

impl Live {
    fn new() -> Self {
        Live {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
            started: Instant::now(),
            partial: String::new(),
            step: None,
            steps_done: 0,
            steps: 0,
        }
    }

    fn text(&mut self, text: &str) {
        self.partial.push_str(text);
        while let Some(end) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=end).collect();
            self.line(line.trim_end_matches(['\n', '\r']));
        }
    }

    fn line(&mut self, line: &str) {
        if let Some((n, of, instruction)) = step_header(line) {
            self.end_step(&seconds(self.step_time()));
            self.steps = of;
            self.begin_step(format!("[{n}/{of}] {instruction}"));
        } else if line == " ---> Using cache" {
            if let Some(step) = &mut self.step {
                step.cached = true;
            }
        } else if line.starts_with(" ---> ") || line.starts_with("Removing intermediate container")
        {
            // The builder's bookkeeping: what the view shows already.
        } else if line.starts_with("Successfully built ")
            || line.starts_with("Successfully tagged ")
        {
            self.end_step(&seconds(self.step_time()));
            self.print(line.to_string());
        } else {
            // The step's own output, under its title.
            self.print(format!("    {line}"));
        }
    }

    fn step_time(&self) -> Duration {
        self.step
            .as_ref()
            .map_or(Duration::ZERO, |s| s.started.elapsed())
    }

    fn begin_step(&mut self, title: String) {
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {wide_msg} {elapsed:>4}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(title.clone());
        bar.enable_steady_tick(Duration::from_millis(100));
        self.step = Some(Step {
            title,
            bar,
            started: Instant::now(),
            cached: false,
        });
    }

    /// Ends the running step, if any, as one line: its title and `how` (a time, `ERROR`),
    /// or `CACHED`.
    fn end_step(&mut self, how: &str) {
        let Some(step) = self.step.take() else {
            return;
        };
        step.bar.finish_and_clear();
        self.multi.remove(&step.bar);
        let (mark, how) = match (how, step.cached) {
            ("ERROR", _) => ("✗", "ERROR"),
            (_, true) => ("✔", "CACHED"),
            (how, false) => ("✔", how),
        };
        self.print(format!("{mark} {}  {how}", step.title));
        self.steps_done += 1;
    }

    fn print(&self, line: String) {
        // Hidden only when stdout is no terminal, which a live view is not made for.
        let _ = self.multi.println(line);
    }

    fn finish(&mut self) {
        if !self.partial.is_empty() {
            let rest = std::mem::take(&mut self.partial);
            self.line(&rest);
        }
        self.end_step(&seconds(self.step_time()));
        self.print(format!(
            "Built in {} ({}/{} steps)",
            seconds(self.started.elapsed()),
            self.steps_done,
            self.steps
        ));
    }
}

/// `Step 2/5 : RUN make` → (2, 5, "RUN make").
fn step_header(line: &str) -> Option<(usize, usize, &str)> {
    let rest = line.strip_prefix("Step ")?;
    let (count, instruction) = rest.split_once(" : ")?;
    let (n, of) = count.split_once('/')?;
    Some((n.parse().ok()?, of.parse().ok()?, instruction))
}

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_headers_are_read_as_the_builder_writes_them() {
        assert_eq!(
            step_header("Step 2/5 : RUN echo a : b"),
            Some((2, 5, "RUN echo a : b"))
        );
        assert_eq!(step_header("Step x/5 : RUN"), None);
        assert_eq!(step_header("Stepping 1/2 : RUN"), None);
        assert_eq!(step_header("hello"), None);
    }
}
