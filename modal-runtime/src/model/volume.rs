//! Volumes as the roles exchange them: the entries of a version (a manifest), the changes a
//! commit applies, the mounts of a function, and listings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What an entry of a volume is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum EntryKind {
    File,
    Directory,
    Symlink,
}

/// One entry of a volume version. `path` is relative to the volume's root, `/`-separated,
/// without `.` or `..` components.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) path: String,
    pub(crate) kind: EntryKind,
    /// A file: the blake3 digest of its content (hex) and its size.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) hash: String,
    #[serde(default)]
    pub(crate) size: u64,
    /// Permission bits.
    pub(crate) mode: u32,
    pub(crate) mtime_ms: i64,
    /// A symbolic link: its target.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) target: String,
}

impl Entry {
    /// An entry of `kind` at `path` with the mode and modification time of `meta` (a file's
    /// digest, its size and a link's target are the caller's to set).
    pub(crate) fn of(path: String, kind: EntryKind, meta: &std::fs::Metadata) -> Entry {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        Entry {
            path,
            kind,
            hash: String::new(),
            size: 0,
            mode: meta.permissions().mode() & 0o7777,
            mtime_ms: meta.mtime() * 1000 + meta.mtime_nsec() / 1_000_000,
            target: String::new(),
        }
    }

    /// A directory made for an entry below it.
    fn directory(path: String, mtime_ms: i64) -> Entry {
        Entry {
            path,
            kind: EntryKind::Directory,
            hash: String::new(),
            size: 0,
            mode: 0o755,
            mtime_ms,
            target: String::new(),
        }
    }
}

/// One change of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// Puts the entry at its path, replacing what was there.
    Put(Entry),
    /// Removes the path and everything under it.
    Remove(String),
}

/// A volume's entries by path.
pub(crate) type Manifest = BTreeMap<String, Entry>;

/// Applies `changes` to `manifest`, in order: per path, the last change wins. Putting an entry
/// also puts the directories above it that are missing.
pub(crate) fn apply(manifest: &mut Manifest, changes: Vec<Change>, mtime_ms: i64) {
    for change in changes {
        match change {
            Change::Put(entry) => {
                let mut parent = entry.path.as_str();
                while let Some((up, _)) = parent.rsplit_once('/') {
                    parent = up;
                    let dir = manifest
                        .entry(up.to_owned())
                        .or_insert_with(|| Entry::directory(up.to_owned(), mtime_ms));
                    if dir.kind != EntryKind::Directory {
                        // A file where a directory must be: the directory replaces it.
                        *dir = Entry::directory(up.to_owned(), dir.mtime_ms);
                    }
                }
                if entry.kind != EntryKind::Directory {
                    // A file or link replaces a directory and everything under it.
                    remove_under(manifest, &entry.path);
                }
                manifest.insert(entry.path.clone(), entry);
            }
            Change::Remove(path) => {
                manifest.remove(&path);
                remove_under(manifest, &path);
            }
        }
    }
}

/// Removes every entry below `dir` (not `dir` itself).
fn remove_under(manifest: &mut Manifest, dir: &str) {
    if dir.is_empty() {
        manifest.clear();
        return;
    }
    let prefix = format!("{dir}/");
    let below: Vec<String> = manifest
        .range(prefix.clone()..)
        .take_while(|(p, _)| p.starts_with(&prefix))
        .map(|(p, _)| p.clone())
        .collect();
    for p in below {
        manifest.remove(&p);
    }
}

/// Checks a path inside a volume: relative, `/`-separated, no empty, `.` or `..` component.
/// The empty path is the root.
pub(crate) fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Ok(());
    }
    if path.starts_with('/')
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(format!(
            "`{path}` is not a path inside a volume (relative, `/`-separated, without `.` or `..`)"
        ));
    }
    Ok(())
}

/// A path as a user gives it (`/a/b/`, `a/b`, `/`): the volume path it names.
#[cfg_attr(not(feature = "cli"), allow(dead_code))]
pub(crate) fn normalize(path: &str) -> Result<String, String> {
    let trimmed = path.trim_matches('/');
    check_path(trimmed)?;
    Ok(trimmed.to_owned())
}

/// A volume mounted in a function's containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct VolumeMount {
    /// Absolute path in the container.
    pub(crate) path: String,
    pub(crate) volume_id: String,
    pub(crate) name: String,
}

/// A volume in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VolumeSummary {
    pub(crate) volume_id: String,
    pub(crate) name: String,
    pub(crate) environment: String,
    pub(crate) created_at_ms: i64,
    pub(crate) version: u64,
    pub(crate) committed_at_ms: i64,
    pub(crate) files: u64,
    pub(crate) bytes: u64,
    /// For an ephemeral volume: the app it belongs to.
    pub(crate) app_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, hash: &str) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File,
            hash: hash.into(),
            size: 1,
            mode: 0o644,
            mtime_ms: 0,
            target: String::new(),
        }
    }

    #[test]
    fn puts_make_parents_and_the_last_change_wins() {
        let mut m = Manifest::new();
        apply(
            &mut m,
            vec![
                Change::Put(file("a/b/c.txt", "1")),
                Change::Put(file("a/b/c.txt", "2")),
            ],
            5,
        );
        let paths: Vec<&str> = m.keys().map(String::as_str).collect();
        assert_eq!(paths, ["a", "a/b", "a/b/c.txt"]);
        assert_eq!(m["a/b/c.txt"].hash, "2");
        assert_eq!(m["a"].kind, EntryKind::Directory);
    }

    #[test]
    fn remove_takes_a_directory_and_everything_under_it() {
        let mut m = Manifest::new();
        apply(
            &mut m,
            vec![
                Change::Put(file("d/x", "1")),
                Change::Put(file("d/y/z", "2")),
                Change::Put(file("dd", "3")),
            ],
            0,
        );
        apply(&mut m, vec![Change::Remove("d".into())], 0);
        let paths: Vec<&str> = m.keys().map(String::as_str).collect();
        assert_eq!(paths, ["dd"], "a sibling sharing the prefix stays");
    }

    #[test]
    fn a_file_replaces_a_directory_and_a_directory_a_file() {
        let mut m = Manifest::new();
        apply(&mut m, vec![Change::Put(file("d/x", "1"))], 0);
        apply(&mut m, vec![Change::Put(file("d", "2"))], 0);
        assert_eq!(m.len(), 1);
        assert_eq!(m["d"].kind, EntryKind::File);
        apply(&mut m, vec![Change::Put(file("d/y", "3"))], 0);
        assert_eq!(m["d"].kind, EntryKind::Directory);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn paths_are_checked_and_normalized() {
        assert!(check_path("a/b").is_ok());
        for bad in ["/a", "a//b", "a/../b", "./a", "a/"] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
        assert_eq!(normalize("/a/b/").unwrap(), "a/b");
        assert_eq!(normalize("/").unwrap(), "");
        assert!(normalize("/a/../etc").is_err());
    }
}
