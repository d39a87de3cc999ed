//! The contract between a worker and the containers it starts: the environment variables it
//! sets, whether this process is a container, and the journal a container keeps of the inputs
//! it started (written by `container::journal`, read here for the worker).

pub(crate) const TASK_ID: &str = "MODAL_TASK_ID";
pub(crate) const SERVER_URL: &str = "MODAL_SERVER_URL";
/// A unix socket that carries the container's connections to the control plane at its
/// `https://` URL (a container without a network, behind its worker's bridge; a plain control
/// plane's bridged containers get a `unix://` URL instead).
pub(crate) const SERVER_SOCKET: &str = "MODAL_SERVER_SOCKET";
pub(crate) const APP_ID: &str = "MODAL_APP_ID";
pub(crate) const APP_NAME: &str = "MODAL_APP_NAME";
/// The app that declares the function in the executable (the name in the code, which a deploy
/// under another name does not change).
pub(crate) const APP_IN_CODE: &str = "MODAL_APP_IN_CODE";
pub(crate) const FUNCTION_ID: &str = "MODAL_FUNCTION_ID";
pub(crate) const FUNCTION_TAG: &str = "MODAL_FUNCTION_TAG";
pub(crate) const BINARY_HASH: &str = "MODAL_BINARY_HASH";
/// The digest of the executable the worker mounted into the container (which has no cache of
/// digests of its own and would otherwise read the whole file at every start).
pub(crate) const EXE_HASH: &str = "MODAL_EXE_HASH";
pub(crate) const MAX_INPUTS: &str = "MODAL_MAX_INPUTS";
pub(crate) const SINGLE_USE: &str = "MODAL_SINGLE_USE";
pub(crate) const IS_REMOTE: &str = "MODAL_IS_REMOTE";
/// The file where the container notes the inputs it starts and those that returned.
pub(crate) const JOURNAL: &str = "MODAL_JOURNAL";
/// A file descriptor the container inherits: the read end of a pipe whose write end only its
/// worker holds, so that it reads the end of the file when the worker is gone.
pub(crate) const WORKER_PIPE: &str = "MODAL_WORKER_PIPE";
/// The volumes a container mounts (JSON: path, volume id and name of each), set by the worker.
pub(crate) const VOLUME_MOUNTS: &str = "MODAL_VOLUME_MOUNTS";
/// A class's encoded parameters, in hex.
pub(crate) const CLASS_PARAMS: &str = "MODAL_CLASS_PARAMS";

/// Whether this process is a container.
pub(crate) fn is_container() -> bool {
    std::env::var_os(TASK_ID).is_some()
}

/// The first line of a journal the container writes itself: a journal without it (the
/// container could not keep one) says nothing.
pub(crate) const JOURNAL_HEADER: &str = "modal-journal v1\n";

/// How a journal names an input's attempt: a crash is settled for the attempt that ran, not
/// for an earlier one in the same container.
pub(crate) fn journal_key(input_id: &str, attempt: u32) -> String {
    format!("{input_id}/{attempt}")
}

/// What a journal says: the attempts started, those that returned, and the results it kept
/// (all by [`journal_key`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Journal {
    pub(crate) started: Vec<String>,
    pub(crate) ended: Vec<String>,
    /// Results of inputs that returned, in their wire encoding.
    pub(crate) results: Vec<(String, Vec<u8>)>,
}

/// Parses a journal's text (up to its first zero byte; a torn last line is ignored); `None`
/// without its header.
pub(crate) fn read_journal(text: &str) -> Option<Journal> {
    let text = text.split('\0').next().unwrap_or("");
    let body = text.strip_prefix(JOURNAL_HEADER)?;
    let mut out = Journal::default();
    for line in body.lines() {
        let mut words = line.split(' ');
        match (words.next(), words.next(), words.next()) {
            (Some("start"), Some(id), None) if !id.is_empty() => out.started.push(id.to_owned()),
            (Some("end"), Some(id), result) if !id.is_empty() => {
                out.ended.push(id.to_owned());
                if let Some(bytes) = result.and_then(|h| hex::decode(h).ok()) {
                    out.results.push((id.to_owned(), bytes));
                }
            }
            _ => {}
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_reads_back_what_started_and_what_ended() {
        let text = format!(
            "{JOURNAL_HEADER}start in-a/0\nstart in-b/0\nend in-a/0 0a0b\nstart in-c/1\nend in-b/0\nend in-c/1 0"
        );
        let r = read_journal(&text).unwrap();
        assert_eq!(r.started, ["in-a/0", "in-b/0", "in-c/1"]);
        assert_eq!(r.ended, ["in-a/0", "in-b/0", "in-c/1"]);
        assert_eq!(
            r.results,
            [("in-a/0".to_owned(), vec![10, 11])],
            "a torn result is dropped"
        );
        assert_eq!(
            read_journal(&format!("{JOURNAL_HEADER}sta")),
            Some(Journal::default())
        );
        assert_eq!(read_journal(""), None, "no header: no journal");
        let mapped = format!("{JOURNAL_HEADER}start in-a/0\n\0\0\0");
        assert_eq!(read_journal(&mapped).unwrap().started, ["in-a/0"]);
        assert_eq!(read_journal("start in-a/0\n"), None);
        assert_eq!(journal_key("in-a", 2), "in-a/2");
    }
}
