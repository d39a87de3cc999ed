//! The container's journal: a file its worker gave it (`MODAL_JOURNAL`) where it notes each
//! attempt of an input it starts, before the input's code runs, and each that returned, with its
//! result when that is small. Each note reaches the kernel before the code that follows it runs,
//! so the worker reads the journal even after a crash (an `std::process::exit` in user code, a
//! SIGKILL): the control plane then knows which inputs the container had started, and keeps the
//! results of those that returned although their results never left the container.
//!
//! The format is `task_env`'s (the contract with the worker): a header line, then `start KEY`
//! and `end KEY [RESULT]` lines, KEY naming an input's attempt. The file is rewritten once it
//! grows past [`ROTATE_AT`], with the running inputs and the inputs that ended most recently (a
//! result may still be on its way to the control plane). A journal that cannot be written is
//! emptied and abandoned: without its header the worker does not rely on it.

use std::collections::{HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::model::CallResult;
use crate::{task_env, wire};

/// The size past which the journal is rewritten with only what still matters.
const ROTATE_AT: u64 = 1 << 20;
/// Results up to this size (encoded) are kept in the journal; a larger one lost in a crash
/// counts as a failed attempt.
pub(crate) const KEEP_RESULTS_UP_TO: usize = 64 << 10;
/// The recently ended inputs a rotation keeps: at most this many, and this many bytes.
const KEEP_ENDED: usize = 1024;
const KEEP_ENDED_BYTES: usize = 4 << 20;

struct Journal {
    path: PathBuf,
    file: File,
    running: HashSet<String>,
    /// `start` and `end` lines of the inputs that ended last, newest at the back.
    recent: VecDeque<String>,
    recent_bytes: usize,
    written: u64,
    broken: bool,
}

static JOURNAL: OnceLock<Option<Mutex<Journal>>> = OnceLock::new();

fn journal() -> Option<&'static Mutex<Journal>> {
    JOURNAL
        .get_or_init(|| {
            let path = PathBuf::from(std::env::var_os(task_env::JOURNAL)?);
            match Journal::open_at(path.clone()) {
                Ok(j) => Some(Mutex::new(j)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "cannot open the container's journal: {e}");
                    None
                }
            }
        })
        .as_ref()
}

/// Opens the journal (and writes its header) before the container takes its first input.
pub(crate) fn open() {
    let _ = journal();
}

impl Journal {
    /// The journal at `path`, its header written.
    fn open_at(path: PathBuf) -> std::io::Result<Journal> {
        let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
        file.write_all(task_env::JOURNAL_HEADER.as_bytes())?;
        Ok(Journal {
            path,
            file,
            running: HashSet::new(),
            recent: VecDeque::new(),
            recent_bytes: 0,
            written: task_env::JOURNAL_HEADER.len() as u64,
            broken: false,
        })
    }

    fn note_started(&mut self, keys: &[&str]) {
        if self.written > ROTATE_AT && !self.broken {
            self.rotate();
        }
        let text: String = keys.iter().map(|k| format!("start {k}\n")).collect();
        self.running.extend(keys.iter().map(|k| (*k).to_owned()));
        self.write(&text);
    }

    /// `text`: the `end` line, with its newline.
    fn note_ended(&mut self, key: &str, text: &str) {
        self.running.remove(key);
        self.write(text);
        self.remember_ended(format!("start {key}\n{text}"));
    }

    fn write(&mut self, text: &str) {
        if self.broken {
            return;
        }
        if let Err(e) = self.file.write_all(text.as_bytes()) {
            // A journal with a gap would make a started input look as if it never ran: it is
            // emptied, and the worker then counts every running input as attempted.
            tracing::warn!("cannot write the container's journal, giving it up: {e}");
            let _ = self.file.set_len(0);
            self.broken = true;
        }
        self.written += text.len() as u64;
    }

    fn remember_ended(&mut self, lines: String) {
        self.recent_bytes += lines.len();
        self.recent.push_back(lines);
        while self.recent.len() > KEEP_ENDED || self.recent_bytes > KEEP_ENDED_BYTES {
            match self.recent.pop_front() {
                Some(old) => self.recent_bytes -= old.len(),
                None => break,
            }
        }
    }

    /// Rewrites the file with the header, the recently ended inputs and the running ones (a
    /// rename: a crash keeps one whole file).
    fn rotate(&mut self) {
        let mut text = String::from(task_env::JOURNAL_HEADER);
        for lines in &self.recent {
            text.push_str(lines);
        }
        for key in &self.running {
            text.push_str(&format!("start {key}\n"));
        }
        let tmp = self.path.with_extension("rotating");
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

/// Notes that the inputs (their journal keys) are about to start: call it before their code
/// runs.
pub(crate) fn started(keys: &[&str]) {
    let Some(j) = journal() else { return };
    j.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .note_started(keys);
}

/// Notes that an input (its journal key) returned `result`, before the result is sent.
pub(crate) fn ended(key: &str, result: &CallResult) {
    let Some(j) = journal() else { return };
    let text = end_line(key, result);
    j.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .note_ended(key, &text);
}

/// `end KEY [RESULT]`, with its newline.
fn end_line(key: &str, result: &CallResult) -> String {
    let mut text = format!("end {key}");
    // A large result is not copied just to find out that it is too large.
    let payload = result.data.as_ref().map_or(0, |p| p.data.len());
    let texts = result.message.len() + result.backtrace.len() + result.location.len();
    if payload + texts <= KEEP_RESULTS_UP_TO {
        text.push(' ');
        text.push_str(&hex::encode(wire::encode_result(result)));
    }
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Payload;

    #[test]
    fn a_rotation_keeps_what_runs_and_what_ended_last() {
        let dir = std::env::temp_dir().join(format!("modal-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.journal");
        let mut j = Journal::open_at(path.clone()).unwrap();
        let ok = CallResult::success(Payload::new(vec![1]));
        // Far more than a rotation's worth of inputs, and one that keeps running.
        j.note_started(&["long/0"]);
        for i in 0..40_000 {
            let key = format!("in-{i}/0");
            j.note_started(&[&key]);
            j.note_ended(&key, &end_line(&key, &ok));
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.len() < 3 << 20, "rotated: {} bytes", text.len());
        let r = task_env::read_journal(&text).expect("the header survives rotations");
        assert!(
            r.started.contains(&"long/0".to_owned()),
            "a running input stays"
        );
        let last = "in-39999/0".to_owned();
        assert!(r.started.contains(&last) && r.results.iter().any(|(k, _)| *k == last));
        assert!(!r.started.contains(&"in-0/0".to_owned()), "old ones go");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
