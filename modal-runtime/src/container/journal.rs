//! The container's journal: a file its worker gave it (`MODAL_JOURNAL`) where it notes each
//! input it starts, before the input's code runs, and each that returned, with its result when
//! that is small. Each note reaches the kernel before the code that follows it runs, so the
//! worker reads the journal even after a crash (an `std::process::exit` in user code, a
//! SIGKILL): the control plane then knows which inputs the container had started, and keeps the
//! results of those that returned although their results never left the container.
//!
//! Lines are `start ID` and `end ID [RESULT]` (RESULT: the call result's wire encoding in hex,
//! for results up to [`KEEP_RESULTS_UP_TO`] bytes); `task_env::read_journal` reads them. The
//! file is rewritten with only the running inputs once it grows past [`ROTATE_AT`].

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::model::CallResult;
use crate::{task_env, wire};

/// The size past which the journal is rewritten with only what still runs.
const ROTATE_AT: u64 = 1 << 20;
/// Results up to this size (encoded) are kept in the journal; a larger one lost in a crash
/// counts as a failed attempt.
pub(crate) const KEEP_RESULTS_UP_TO: usize = 64 << 10;

struct Journal {
    path: PathBuf,
    file: File,
    running: HashSet<String>,
    written: u64,
}

static JOURNAL: OnceLock<Option<Mutex<Journal>>> = OnceLock::new();

fn journal() -> Option<&'static Mutex<Journal>> {
    JOURNAL
        .get_or_init(|| {
            let path = PathBuf::from(std::env::var_os(task_env::JOURNAL)?);
            match OpenOptions::new().create(true).append(true).open(&path) {
                Ok(file) => Some(Mutex::new(Journal {
                    path,
                    file,
                    running: HashSet::new(),
                    written: 0,
                })),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "cannot open the container's journal: {e}");
                    None
                }
            }
        })
        .as_ref()
}

impl Journal {
    fn write(&mut self, text: &str) {
        if let Err(e) = self.file.write_all(text.as_bytes()) {
            tracing::warn!("cannot write the container's journal: {e}");
        }
        self.written += text.len() as u64;
    }

    /// Rewrites the file with only the running inputs (a rename: a crash keeps one whole file).
    fn rotate(&mut self) {
        let tmp = self.path.with_extension("rotating");
        let text: String = self
            .running
            .iter()
            .map(|id| format!("start {id}\n"))
            .collect();
        let rotated = std::fs::write(&tmp, &text)
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .and_then(|()| OpenOptions::new().append(true).open(&self.path));
        match rotated {
            Ok(file) => {
                self.file = file;
                self.written = text.len() as u64;
            }
            Err(e) => tracing::warn!("cannot rotate the container's journal: {e}"),
        }
    }
}

/// Notes that the inputs are about to start (call it before their code runs).
pub(crate) fn started(ids: &[&str]) {
    let Some(j) = journal() else { return };
    let mut j = j.lock().unwrap_or_else(PoisonError::into_inner);
    if j.written > ROTATE_AT {
        j.rotate();
    }
    let text: String = ids.iter().map(|id| format!("start {id}\n")).collect();
    j.running.extend(ids.iter().map(|id| (*id).to_owned()));
    j.write(&text);
}

/// Notes that an input returned `result` (before the result is sent).
pub(crate) fn ended(id: &str, result: &CallResult) {
    let Some(j) = journal() else { return };
    let mut text = format!("end {id}");
    // A large result is not copied just to find out that it is too large.
    let payload = result.data.as_ref().map_or(0, |p| p.data.len());
    let texts = result.message.len() + result.backtrace.len() + result.location.len();
    if payload + texts <= KEEP_RESULTS_UP_TO {
        text.push(' ');
        text.push_str(&hex::encode(wire::encode_result(result)));
    }
    text.push('\n');
    let mut j = j.lock().unwrap_or_else(PoisonError::into_inner);
    j.running.remove(id);
    j.write(&text);
}
