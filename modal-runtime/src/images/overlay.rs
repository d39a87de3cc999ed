//! An overlay file system over image layers: the layers read-only below, one writable upper
//! directory above; unmounted when dropped.

use std::path::{Path, PathBuf};

/// A mounted overlay.
pub(crate) struct Overlay {
    merged: PathBuf,
}

impl Overlay {
    /// Mounts `lowers` (topmost first) under `upper` at `<scratch>/merged`, with its work
    /// directory in `<scratch>/work` (same file system as `upper`).
    pub(crate) fn mount(lowers: &[PathBuf], upper: &Path, scratch: &Path) -> Result<Self, String> {
        if lowers.is_empty() {
            return Err("an overlay needs at least one layer below".into());
        }
        let work = scratch.join("work");
        let merged = scratch.join("merged");
        for dir in [upper, &work, &merged] {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
        }
        let lower: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            upper.display(),
            work.display()
        );
        nix::mount::mount(
            Some("overlay"),
            &merged,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(options.as_str()),
        )
        .map_err(|e| {
            format!(
                "cannot mount the image's layers (overlayfs) at {}: {e}{}",
                merged.display(),
                if nix::unistd::geteuid().is_root() {
                    ""
                } else {
                    " (mounting needs root)"
                }
            )
        })?;
        Ok(Overlay { merged })
    }

    pub(crate) fn merged(&self) -> &Path {
        &self.merged
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        if let Err(e) = nix::mount::umount2(&self.merged, nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!("cannot unmount {}: {e}", self.merged.display());
        }
    }
}
