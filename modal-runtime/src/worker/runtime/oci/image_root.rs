//! A container's root file system in its image: the image's layers read-only below a writable
//! upper directory of its own (overlayfs), on a tmpfs the size of its `ephemeral_disk`. The
//! image's files belong to the host's root, which a container's root is not; its root owns
//! `/` and the working directory (their copies in the upper directory), so it can make files
//! there, while the image's own files stay read-only to it.

use std::path::{Path, PathBuf};

use crate::images::overlay::Overlay;
use crate::model::image::ImageRef;

/// A container's root, mounted while this lives.
pub(super) struct ImageRoot {
    overlay: Option<Overlay>,
    tmpfs: PathBuf,
    pub(super) merged: PathBuf,
    /// The working directory of its processes.
    pub(super) cwd: String,
    pub(super) env: Vec<(String, String)>,
}

/// Where a container's root goes in its share directory.
fn root_dir(share: &Path) -> PathBuf {
    share.join("root")
}

impl ImageRoot {
    /// Mounts the image's layers for a container whose root is host user `ids`.
    pub(super) fn mount(
        image: &ImageRef,
        share: &Path,
        (uid, gid): (u32, u32),
        size_mb: u32,
    ) -> Result<ImageRoot, String> {
        let store = Path::new(&image.store);
        let mut lowers = Vec::new();
        for digest in image.layers.iter().rev() {
            let layer = crate::images::store::layer_dir(store, digest);
            if !layer.is_dir() {
                return Err(format!(
                    "image {} is not on this worker's machine (its layer {digest} is not in {}): images are built on the control plane's machine, and only workers there run them yet; if it was removed there (`modal image rm`), run or deploy the app again to rebuild it",
                    image.image_id,
                    store.display()
                ));
            }
            lowers.push(layer);
        }
        let tmpfs = root_dir(share);
        std::fs::create_dir_all(&tmpfs)
            .map_err(|e| format!("cannot make {}: {e}", tmpfs.display()))?;
        nix::mount::mount(
            Some("tmpfs"),
            &tmpfs,
            Some("tmpfs"),
            nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
            Some(format!("size={size_mb}m,mode=0711").as_str()),
        )
        .map_err(|e| format!("cannot mount the container's writable layer: {e}"))?;
        let mut root = ImageRoot {
            overlay: None,
            merged: tmpfs.join("merged"),
            tmpfs,
            cwd: if image.workdir.is_empty() {
                "/".into()
            } else {
                image.workdir.clone()
            },
            env: image.env.clone(),
        };
        let overlay = Overlay::mount(&lowers, &root.tmpfs.join("upper"), &root.tmpfs)?;
        root.overlay = Some(overlay);
        // Its root owns `/` and the working directory: copied up with that owner (never
        // through a link of the image's, which would lead onto the host).
        for dir in ["/", root.cwd.as_str()] {
            let path = crate::paths::make_dir_inside(&root.merged, dir)?;
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid))
                .map_err(|e| format!("cannot give {dir} to the container: {e}"))?;
        }
        Ok(root)
    }
}

impl Drop for ImageRoot {
    fn drop(&mut self) {
        drop(self.overlay.take());
        let _ = nix::mount::umount2(&self.tmpfs, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Unmounts what a container of a dead worker may have left mounted in its share directory.
pub(super) fn unmount_leftovers(share: &Path) {
    let root = root_dir(share);
    for path in [root.join("merged"), root] {
        if path.exists() {
            let _ = nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}
