//! The host side of the oci runtime: whether it can run here (its executable, user namespaces,
//! crun's cgroup layout), the root every container shares, the executables containers run, and
//! the files of containers whose workers died.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// How old a container's files without runtime state must be before a worker removes them.
pub(super) const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(60);
/// The host directories a container sees, read-only (where they are directories; a symbolic
/// link such as `/bin -> usr/bin` is made the same way in the container's root).
pub(super) const SYSTEM_DIRS: &[&str] =
    &["/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64"];

/// Whether a directory entry was last changed more than [`STALE_AFTER`] ago.
pub(super) fn is_old(entry: &std::fs::DirEntry) -> bool {
    entry
        .metadata()
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > STALE_AFTER))
}

pub(super) fn make_dir(dir: &Path, mode: u32) -> Result<(), String> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)))
        .map_err(|e| format!("cannot make {}: {e}", dir.display()))
}

/// An executable where containers can reach it.
pub(super) struct Staged {
    pub(super) path: PathBuf,
    /// Its digest, which the container is told (it has no cache of digests).
    pub(super) hash: String,
}

/// The executable at `exe` (whose digest is `hash` when known) where containers can reach it:
/// a hard link (or, across file systems, a copy) in `bin/`, named by its digest, made once.
pub(super) fn stage_binary(bin: &Path, exe: &Path, hash: Option<&str>) -> Result<Staged, String> {
    let hash = match hash {
        Some(h) => h.to_owned(),
        None => crate::binhash::file_hash(exe)?,
    };
    let path = bin.join(&hash);
    if !path.exists() {
        stage_file(exe, &path)?;
    }
    Ok(Staged { path, hash })
}

fn stage_file(exe: &Path, staged: &Path) -> Result<(), String> {
    let bin = staged.parent().unwrap_or(Path::new("."));
    let meta = std::fs::metadata(exe).map_err(|e| format!("{}: {e}", exe.display()))?;
    let tmp = bin.join(format!("{}.tmp", crate::ids::new_id("")));
    // Anyone must be able to run it (containers' users are not the worker's): a link when the
    // file already allows that, else a copy made so (a link would change the user's file).
    let runnable = meta.permissions().mode() & 0o555 == 0o555;
    let linked = runnable && std::fs::hard_link(exe, &tmp).is_ok();
    let made = if linked {
        Ok(())
    } else {
        std::fs::copy(exe, &tmp).and_then(|_| {
            let mode = std::fs::metadata(&tmp)?.permissions().mode();
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode | 0o555))
        })
    }
    .and_then(|()| std::fs::rename(&tmp, staged));
    if let Err(e) = made {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!(
            "cannot place {} where containers can run it: {e}",
            exe.display()
        ));
    }
    Ok(())
}

/// Removes staged executables nothing else names any more (their file was rebuilt or removed,
/// so the staged link alone keeps them on the disk), and copies, once they were staged more
/// than [`STALE_AFTER`] ago (linking or copying sets the time of the change). A worker that
/// needs one again stages it again.
pub(super) fn remove_stale_binaries(bin: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(bin) else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for entry in entries.flatten() {
        let stale = entry.metadata().is_ok_and(|m| {
            let changed = u64::try_from(m.ctime()).unwrap_or(u64::MAX);
            m.nlink() <= 1 && now.saturating_sub(changed) > STALE_AFTER.as_secs()
        });
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

pub(super) fn find_runtime(given: Option<&Path>) -> Result<PathBuf, String> {
    let name = given.unwrap_or(Path::new("crun"));
    if name.components().count() > 1 {
        return if name.is_file() {
            Ok(name.to_owned())
        } else {
            Err(format!("the OCI runtime {} does not exist", name.display()))
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "the oci runtime needs `{}`, which is not on PATH (Debian/Ubuntu: `apt-get install crun`; another OCI runtime: --oci-runtime PATH or MODAL_OCI_RUNTIME)",
                name.display()
            )
        })
}

pub(super) fn check_user_namespaces() -> Result<(), String> {
    let max = std::fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap_or_default();
    if max.trim() == "0" {
        return Err(
            "user namespaces are turned off on this machine (user.max_user_namespaces = 0): `sysctl -w user.max_user_namespaces=15000` as root".into(),
        );
    }
    Ok(())
}

/// crun refuses to run on a hybrid cgroup layout whose v2 hierarchy holds controllers.
pub(super) fn check_crun_cgroups() -> Result<(), String> {
    let held =
        std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers").unwrap_or_default();
    let held = held.trim();
    if held.is_empty() {
        return Ok(());
    }
    let fix: Vec<String> = held
        .split_whitespace()
        .map(|c| {
            format!(
                "mkdir -p /sys/fs/cgroup/{c} && mount -t cgroup -o {c} cgroup /sys/fs/cgroup/{c}"
            )
        })
        .collect();
    Err(format!(
        "crun refuses this machine's hybrid cgroups while the v2 hierarchy holds controllers ({held}); as root, move them to v1 (lasts until reboot): `{}`",
        fix.join(" && ")
    ))
}

/// The directory `/etc/resolv.conf` links into when it lies outside the system directories (as
/// systemd-resolved's `/run/systemd/resolve`): mounted read-only too, so that names resolve.
fn linked_config_dir() -> Option<PathBuf> {
    std::fs::symlink_metadata("/etc/resolv.conf")
        .ok()
        .filter(|m| m.file_type().is_symlink())?;
    let target = std::fs::canonicalize("/etc/resolv.conf").ok()?;
    let dir = target.parent()?.to_owned();
    let inside_system = SYSTEM_DIRS.iter().any(|d| dir.starts_with(d));
    (!inside_system && dir != Path::new("/")).then_some(dir)
}

/// The root every container shares: empty mount points, and the host's symbolic links among
/// the system directories. Returns the host directories to mount read-only over it (the system
/// directories that are directories, and the one `/etc/resolv.conf` links into).
pub(super) fn make_rootfs(rootfs: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut host_dirs: Vec<PathBuf> = SYSTEM_DIRS
        .iter()
        .filter(|d| std::fs::symlink_metadata(d).is_ok_and(|m| m.is_dir()))
        .map(PathBuf::from)
        .collect();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(rootfs)?;
    for dir in ["proc", "dev", "sys", "tmp", "__modal"] {
        let _ = std::fs::create_dir(rootfs.join(dir));
    }
    if let Some(dir) = linked_config_dir()
        && let Ok(relative) = dir.strip_prefix("/")
    {
        let _ = std::fs::create_dir_all(rootfs.join(relative));
        host_dirs.push(dir);
    }
    for host in SYSTEM_DIRS {
        let inside = rootfs.join(host.trim_start_matches('/'));
        match std::fs::symlink_metadata(host) {
            Ok(m) if m.file_type().is_symlink() && std::fs::symlink_metadata(&inside).is_err() => {
                // Another worker may make it at the same moment.
                match std::os::unix::fs::symlink(std::fs::read_link(host)?, &inside) {
                    Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
                    _ => {}
                }
            }
            Ok(m) if m.file_type().is_symlink() => {}
            Ok(m) if m.is_dir() => {
                let _ = std::fs::create_dir(&inside);
            }
            _ => {}
        }
    }
    std::fs::set_permissions(rootfs, std::fs::Permissions::from_mode(0o755))?;
    Ok(host_dirs)
}
