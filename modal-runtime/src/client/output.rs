//! Terminal output of a run, in the manner of `modal run`: status lines on stderr, the
//! containers' output prefixed by function, and map progress. The one library module that prints.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::wire::pb;

/// Whether the current run prints (set by the run; read by maps started during it).
static ENABLED: AtomicBool = AtomicBool::new(false);
/// The progress bar on screen, so log lines can be printed above it.
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Writes `text` and a newline in one write, so that a line is never split by other output
/// (the program's own `println!`, another container's line).
fn write_line(mut stream: impl Write, text: &str) {
    let mut line = String::with_capacity(text.len() + 1);
    line.push_str(text);
    line.push('\n');
    let _ = stream.write_all(line.as_bytes());
    let _ = stream.flush();
}

fn above_bar(print: impl FnOnce()) {
    let bar = BAR.lock().ok().and_then(|b| b.clone());
    match bar {
        Some(bar) => bar.suspend(print),
        None => print(),
    }
}

/// A run's terminal output.
#[derive(Clone)]
pub(crate) struct Output {
    enabled: bool,
}

impl Output {
    pub(crate) fn new(enabled: bool) -> Self {
        ENABLED.store(enabled, Ordering::SeqCst);
        Output { enabled }
    }

    fn status(&self, line: &str) {
        if self.enabled {
            above_bar(|| write_line(std::io::stderr().lock(), line));
        }
    }

    pub(crate) fn initialized(&self, name: &str, app_id: &str, dashboard_url: &str) {
        if dashboard_url.is_empty() {
            self.status(&format!("✓ Initialized. App `{name}` is {app_id}."));
        } else {
            self.status(&format!("✓ Initialized. View run at {dashboard_url}"));
        }
    }

    pub(crate) fn created(&self, functions: &[&str]) {
        if !self.enabled {
            return;
        }
        let mut text = String::from("✓ Created objects.");
        for (i, f) in functions.iter().enumerate() {
            let branch = if i + 1 == functions.len() {
                "└──"
            } else {
                "├──"
            };
            text.push_str(&format!("\n{branch} 🔨 Created function {f}."));
        }
        self.status(&text);
    }

    /// One line of a container's output (stdout to stdout, the rest to stderr).
    pub(crate) fn log(&self, entry: &pb::LogEntry) {
        if !self.enabled {
            return;
        }
        let source = pb::LogSource::try_from(entry.source).unwrap_or(pb::LogSource::Stdout);
        let line = format!("[{}] {}", entry.function_tag, entry.data);
        above_bar(|| match source {
            pb::LogSource::Stdout => write_line(std::io::stdout().lock(), &line),
            _ => write_line(std::io::stderr().lock(), &line),
        });
    }

    /// A line of an image build (the build's own lines are indented under its status lines).
    pub(crate) fn image_line(&self, line: &str) {
        if line.starts_with("Building image ") || line.starts_with("=> ") {
            self.status(line);
        } else {
            self.status(&format!("    {line}"));
        }
    }

    pub(crate) fn image_built(&self, image_id: &str, elapsed: Duration) {
        self.status(&format!(
            "✓ Created image {image_id} in {:.1}s",
            elapsed.as_secs_f64()
        ));
    }

    pub(crate) fn completed(&self, elapsed: Duration) {
        self.status(&format!("✓ App completed. ({:.2}s)", elapsed.as_secs_f64()));
    }

    pub(crate) fn aborted(&self) {
        self.status("App aborted.");
    }

    pub(crate) fn detached(&self, app_id: &str) {
        self.status(&format!(
            "✓ App {app_id} keeps running detached.\n  Logs: modal app logs {app_id} -f\n  Stop: modal app stop {app_id}"
        ));
    }

    pub(crate) fn disconnecting(&self) {
        self.status(
            "Disconnecting from the control plane - this will terminate the app's containers.",
        );
    }
}

/// Progress of one map: a bar on a terminal, a plain line at the end otherwise.
pub(crate) struct Progress {
    tag: String,
    started: Instant,
    bar: Option<ProgressBar>,
    enabled: bool,
    done: std::cell::Cell<usize>,
}

impl Progress {
    pub(crate) fn start(tag: &str) -> Self {
        let enabled = ENABLED.load(Ordering::SeqCst);
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(0);
            if let Ok(style) =
                ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({per_sec}, {elapsed})")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(format!("{tag}.map"));
            if let Ok(mut slot) = BAR.lock() {
                *slot = Some(bar.clone());
            }
            bar
        });
        Progress {
            tag: tag.to_owned(),
            started: Instant::now(),
            bar,
            enabled,
            done: std::cell::Cell::new(0),
        }
    }

    pub(crate) fn set_total(&self, n: usize) {
        if let Some(bar) = &self.bar {
            bar.set_length(n as u64);
        }
    }

    pub(crate) fn advance(&self, n: usize) {
        self.done.set(self.done.get() + n);
        if let Some(bar) = &self.bar {
            bar.inc(n as u64);
        }
    }

    pub(crate) fn finish(self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if self.enabled {
            let secs = self.started.elapsed().as_secs_f64();
            let line = format!(
                "✓ {}.map: {} inputs in {secs:.2}s",
                self.tag,
                self.done.get()
            );
            write_line(std::io::stderr().lock(), &line);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
            if let Ok(mut slot) = BAR.lock() {
                *slot = None;
            }
        }
    }
}
