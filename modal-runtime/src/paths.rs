//! Paths below a directory that no symbolic link leads out of: where files received from
//! elsewhere (a volume, an image layer, an image's working directory) may be written or made;
//! and directories that last as long as the process that made them.

use std::path::{Component, Path, PathBuf};

/// A path `base/modal-<kind>-<pid>-<suffix>` for a directory of this process, after removing
/// those of its kind that processes now gone left in `base` (a killed program's go when the
/// next one starts). The directory is not made.
pub(crate) fn of_this_process(base: &Path, kind: &str, suffix: &str) -> PathBuf {
    let prefix = format!("modal-{kind}-");
    for entry in std::fs::read_dir(base).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|n| n.split('-').next());
        if pid.is_some_and(|pid| !Path::new("/proc").join(pid).exists()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    base.join(format!("{prefix}{}-{suffix}", std::process::id()))
}

/// `base` joined with the relative path `rel`, checked: no `..`, and no existing component
/// below `base` (but the last) is a symbolic link or anything but a directory. Leading `/` of
/// `rel` are ignored.
pub(crate) fn inside(base: &Path, rel: &str) -> Result<PathBuf, String> {
    let rel = Path::new(rel.trim_start_matches('/'));
    let mut path = base.to_path_buf();
    let parts: Vec<Component<'_>> = rel.components().collect();
    for (i, part) in parts.iter().enumerate() {
        match part {
            Component::Normal(name) => path.push(name),
            Component::CurDir => continue,
            _ => {
                return Err(format!(
                    "`{}` leaves the directory it must stay in",
                    rel.display()
                ));
            }
        }
        let last = i + 1 == parts.len();
        if !last
            && let Ok(meta) = std::fs::symlink_metadata(&path)
            && !meta.is_dir()
        {
            return Err(format!(
                "`{}` goes through {}, which is {}",
                rel.display(),
                path.display(),
                if meta.file_type().is_symlink() {
                    "a symbolic link"
                } else {
                    "not a directory"
                }
            ));
        }
    }
    Ok(path)
}

/// Makes the directory `rel` below `base` (and those above it), refusing to go through a
/// symbolic link: its path.
pub(crate) fn make_dir_inside(base: &Path, rel: &str) -> Result<PathBuf, String> {
    let path = inside(base, rel)?;
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(format!("{} is a symbolic link", path.display()));
    }
    std::fs::create_dir_all(&path).map_err(|e| format!("cannot make {}: {e}", path.display()))?;
    Ok(path)
}

/// The regular files below `dir` (links followed), each with its path relative to `dir`
/// (`/`-separated), sorted.
pub(crate) fn files_below(dir: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let unreadable = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((d, prefix)) = stack.pop() {
        for item in std::fs::read_dir(&d).map_err(|e| unreadable(&d, e))? {
            let item = item.map_err(|e| unreadable(&d, e))?;
            let path = item.path();
            let name = item.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let meta = std::fs::metadata(&path).map_err(|e| unreadable(&path, e))?;
            if meta.is_dir() {
                stack.push((path, rel));
            } else if meta.is_file() {
                out.push((rel, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_parents_do_not_lead_out() {
        let base = std::env::temp_dir().join(format!("modal-paths-{}", crate::ids::new_id("")));
        std::fs::create_dir_all(base.join("d")).unwrap();
        std::os::unix::fs::symlink("/etc", base.join("link")).unwrap();
        std::fs::write(base.join("file"), b"x").unwrap();
        assert_eq!(inside(&base, "d/x").unwrap(), base.join("d/x"));
        assert_eq!(inside(&base, "/d/x").unwrap(), base.join("d/x"));
        assert!(
            inside(&base, "link/passwd")
                .unwrap_err()
                .contains("symbolic link")
        );
        assert!(
            inside(&base, "file/x")
                .unwrap_err()
                .contains("not a directory")
        );
        assert!(inside(&base, "d/../../x").unwrap_err().contains("leaves"));
        // The last component may be a link (it is replaced, not followed).
        assert_eq!(inside(&base, "link").unwrap(), base.join("link"));
        assert!(make_dir_inside(&base, "link").is_err());
        assert!(make_dir_inside(&base, "new/deeper").unwrap().is_dir());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
