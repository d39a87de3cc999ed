//! The container's journal: a file its worker gave it (`MODAL_JOURNAL`) where it notes each
//! attempt of an input it starts, before the input's code runs, and each that returned, with its
//! result when that is small, before the result leaves the container. The file is mapped into
//! the container's memory (shared with the kernel's page cache): a note is a copy into memory,
//! no system call, and it survives the process, so the worker reads the journal even after a
//! crash (an `std::process::exit` in user code, a SIGKILL). The control plane then knows which
//! inputs the container had started, and keeps the results of those that returned although
//! their results never left the container.
//!
//! The format is `task_env`'s (the contract with the worker): a header line, then `start KEY`
//! and `end KEY [RESULT]` lines, KEY naming an input's attempt; after the last line, zeros. The
//! file has a fixed size ([`CAPACITY`], its room reserved when it is made, so that no page of the
//! map can lack room on the disk, but not written: a page of the map is the container's memory
//! only once a note touched it); when a note does not fit (or, past [`SOFT_CAPACITY`], when
//! what a rewrite keeps is small, so that the map touches few pages), the journal is rewritten
//! in place with the running inputs and the inputs that ended most recently (a result may still
//! be on its way to the control plane). A journal that cannot be made is not kept: without its header the
//! worker does not rely on it.

use std::collections::{HashSet, VecDeque};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use memmap2::MmapMut;

use crate::model::CallResult;
use crate::{task_env, wire};

/// The journal file's size.
const CAPACITY: usize = 2 << 20;
/// Past this point a note rewrites the journal early when what a rewrite keeps is at most half
/// of it: the pages the map touches (the container's memory) stay few.
const SOFT_CAPACITY: usize = 512 << 10;
/// Results up to this size (encoded) are kept in the journal; a larger one lost in a crash
/// counts as a failed attempt.
pub(crate) const KEEP_RESULTS_UP_TO: usize = 64 << 10;
/// The recently ended inputs a rotation keeps: at most this many, and this many bytes.
const KEEP_ENDED: usize = 1024;
const KEEP_ENDED_BYTES: usize = 512 << 10;

struct Journal {
    map: MmapMut,
    /// Where the next note goes.
    at: usize,
    running: HashSet<String>,
    /// `start` and `end` lines of the inputs that ended last, newest at the back.
    recent: VecDeque<String>,
    recent_bytes: usize,
}

static JOURNAL: OnceLock<Option<Mutex<Journal>>> = OnceLock::new();

fn journal() -> Option<&'static Mutex<Journal>> {
    JOURNAL
        .get_or_init(|| {
            let path = PathBuf::from(std::env::var_os(task_env::JOURNAL)?);
            match Journal::create(&path, task_env::JOURNAL_HEADER) {
                Ok(j) => Some(Mutex::new(j)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "cannot keep the container's journal: {e}");
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

/// Makes a new file at `path` of [`CAPACITY`] bytes (its room reserved, zeros to a reader),
/// writes `header` at its start, and maps it.
fn map_new(path: &Path, header: &str) -> std::io::Result<MmapMut> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    // Written out, the zeros would be pages of the page cache, all mapped (and counted in the
    // container's memory) at the first note.
    nix::fcntl::posix_fallocate(&file, 0, CAPACITY as libc::off_t).map_err(std::io::Error::from)?;
    file.write_all(header.as_bytes())?;
    #[allow(unsafe_code)]
    // SAFETY: the file is this container's own (its worker made it for this container alone,
    // mode 0600) and nobody changes its size while it is mapped: the worker reads it, then
    // removes it, only after this process is gone. Writes go through the map alone.
    unsafe {
        MmapMut::map_mut(&file)
    }
}

impl Journal {
    /// The journal at `path`, made afresh with `header`.
    fn create(path: &Path, header: &str) -> std::io::Result<Journal> {
        let map = map_new(path, header)?;
        Ok(Journal {
            map,
            at: header.len(),
            running: HashSet::new(),
            recent: VecDeque::new(),
            recent_bytes: 0,
        })
    }

    /// Copies `text` into the map after the last note, first rewriting the journal when it does
    /// not fit.
    fn put(&mut self, text: &str) {
        let end = self.at + text.len();
        let due = end > CAPACITY || (end > SOFT_CAPACITY && self.kept_bytes() <= SOFT_CAPACITY / 2);
        if due && !self.rotate() {
            return;
        }
        if let Some(dst) = self.map.get_mut(self.at..self.at + text.len()) {
            dst.copy_from_slice(text.as_bytes());
            self.at += text.len();
        }
    }

    fn note_started(&mut self, keys: &[&str]) {
        let mut text = String::with_capacity(keys.len() * 48);
        for k in keys {
            text.push_str("start ");
            text.push_str(k);
            text.push('\n');
            self.running.insert((*k).to_owned());
        }
        self.put(&text);
    }

    /// `text`: the `end` line, with its newline.
    fn note_ended(&mut self, key: &str, text: &str) {
        self.running.remove(key);
        self.put(text);
        self.remember_ended(format!("start {key}\n{text}"));
    }

    /// About what a rotation writes: the header, the recently ended inputs and the running ones.
    fn kept_bytes(&self) -> usize {
        let running: usize = self.running.iter().map(|k| k.len() + 7).sum();
        task_env::JOURNAL_HEADER.len() + self.recent_bytes + running
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

    /// Rewrites the journal in place with the header, the recently ended inputs and the
    /// running ones (in place: in a container the file is a mount point, which cannot be
    /// replaced). The header goes first and comes back last, so that a crash in the middle
    /// leaves a journal the worker does not rely on rather than one that misleads it. False when
    /// that does not fit: the journal is then emptied (no header) and no longer kept.
    fn rotate(&mut self) -> bool {
        let mut text = String::from(task_env::JOURNAL_HEADER);
        for lines in &self.recent {
            text.push_str(lines);
        }
        for key in &self.running {
            text.push_str(&format!("start {key}\n"));
        }
        let header = task_env::JOURNAL_HEADER.len();
        let old_end = self.at.min(CAPACITY);
        if text.len() > CAPACITY {
            // A journal with a gap would make a started input look as if it never ran.
            tracing::warn!("the container's journal cannot hold its running inputs; giving it up");
            self.map.fill(0);
            self.at = CAPACITY;
            return false;
        }
        let bytes = text.as_bytes();
        if let Some(h) = self.map.get_mut(..header) {
            h.fill(0);
        }
        if let (Some(dst), Some(src)) = (self.map.get_mut(header..bytes.len()), bytes.get(header..))
        {
            dst.copy_from_slice(src);
        }
        if let Some(rest) = self.map.get_mut(bytes.len()..old_end.max(bytes.len())) {
            rest.fill(0);
        }
        if let (Some(h), Some(src)) = (self.map.get_mut(..header), bytes.get(..header)) {
            h.copy_from_slice(src);
        }
        self.at = bytes.len();
        true
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

/// Notes that an input (its journal key) returned `result`: call it before the result is sent.
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

    /// A new journal in a directory of its own: `(directory, file, journal)`.
    fn temp_journal(name: &str) -> (std::path::PathBuf, std::path::PathBuf, Journal) {
        let dir = std::env::temp_dir().join(format!("modal-journal-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.journal");
        let j = Journal::create(&path, task_env::JOURNAL_HEADER).unwrap();
        (dir, path, j)
    }

    #[test]
    fn a_rotation_keeps_what_runs_and_what_ended_last() {
        let (dir, path, mut j) = temp_journal("rotation");
        let ok = CallResult::success(Payload::new(vec![1]));
        // Far more than a rotation's worth of inputs, and one that keeps running.
        j.note_started(&["long/0"]);
        for i in 0..80_000 {
            let key = format!("in-{i}/0");
            j.note_started(&[&key]);
            j.note_ended(&key, &end_line(&key, &ok));
        }
        // What the worker reads after the container is gone: the file, not the map.
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), CAPACITY);
        let r = task_env::read_journal(&text).expect("the header survives rotations");
        assert!(
            r.started.contains(&"long/0".to_owned()),
            "a running input stays"
        );
        let last = "in-79999/0".to_owned();
        assert!(r.started.contains(&last) && r.results.iter().any(|(k, _)| *k == last));
        assert!(!r.started.contains(&"in-0/0".to_owned()), "old ones go");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn small_notes_stay_in_the_first_pages() {
        let (dir, path, mut j) = temp_journal("soft");
        let ok = CallResult::success(Payload::new(vec![1]));
        let mut furthest = 0;
        for i in 0..20_000 {
            let key = format!("in-{i}/0");
            j.note_started(&[&key]);
            j.note_ended(&key, &end_line(&key, &ok));
            furthest = furthest.max(j.at);
        }
        // A rewrite keeps the last 1024 ended inputs (about 100 KiB here): well under half of
        // the soft limit, so the journal is rewritten there, not at its capacity.
        assert!(furthest <= SOFT_CAPACITY, "notes reached {furthest}");
        let text = std::fs::read_to_string(&path).unwrap();
        let r = task_env::read_journal(&text).expect("a journal");
        assert!(r.results.iter().any(|(k, _)| k == "in-19999/0"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
