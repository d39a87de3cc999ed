//! The layers of built images on disk: `layers/<digest>/` (the layer's files, as overlayfs'
//! upper directory left them) and `layers/<digest>.json` (what made it), written last, so a
//! layer exists exactly when its description does; builds of one digest take a file lock, so
//! two programs asking for the same image build it once.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What a layer's description says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LayerMeta {
    /// The step that made it, as a user reads it.
    pub(crate) step: String,
    pub(crate) created_ms: i64,
    pub(crate) bytes: u64,
}

/// How old a build's scratch directory must be to be taken for a crashed build's.
const STALE_SCRATCH: std::time::Duration = std::time::Duration::from_secs(3600);

/// The layer store of a machine.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    root: PathBuf,
}

/// Held while a layer is looked at or built (an exclusive lock on its lock file).
pub(crate) struct LayerLock {
    _file: nix::fcntl::Flock<std::fs::File>,
}

impl Store {
    /// The store at `root`, made if missing; scratch directories of builds that ended more than
    /// an hour ago without cleaning up (a crash) are removed.
    pub(crate) fn open(root: &Path) -> Result<Store, String> {
        for dir in ["layers", "tmp", "locks", "images"] {
            std::fs::create_dir_all(root.join(dir))
                .map_err(|e| format!("cannot make {}: {e}", root.join(dir).display()))?;
        }
        let store = Store {
            root: root.to_path_buf(),
        };
        store.remove_stale_scratch();
        Ok(store)
    }

    fn remove_stale_scratch(&self) {
        let Ok(entries) = std::fs::read_dir(self.root.join("tmp")) else {
            return;
        };
        for e in entries.flatten() {
            let stale = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_SCRATCH);
            // A build still running holds its layer's lock.
            let name = e.file_name().to_string_lossy().into_owned();
            let digest = name.split('-').next().unwrap_or_default();
            let running = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(self.root.join("locks").join(digest))
                .map(|f| {
                    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).is_err()
                })
                .unwrap_or(true);
            if stale && !running {
                // A build that crashed may have left its overlay mounted.
                let _ =
                    nix::mount::umount2(&e.path().join("merged"), nix::mount::MntFlags::MNT_DETACH);
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of a layer.
    pub(crate) fn layer(&self, digest: &str) -> PathBuf {
        layer_dir(&self.root, digest)
    }

    fn meta_path(&self, digest: &str) -> PathBuf {
        self.root.join("layers").join(format!("{digest}.json"))
    }

    /// Whether the layer is built.
    pub(crate) fn has(&self, digest: &str) -> bool {
        self.meta_path(digest).is_file() && self.layer(digest).is_dir()
    }

    /// Waits for, then holds, the layer's lock (a build in another program waits here).
    pub(crate) fn lock(&self, digest: &str) -> Result<LayerLock, String> {
        let path = self.root.join("locks").join(digest);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot open the layer's lock {}: {e}", path.display()))?;
        let locked = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| format!("cannot lock {}: {e}", path.display()))?;
        Ok(LayerLock { _file: locked })
    }

    /// A new scratch directory for building the layer.
    pub(crate) fn scratch(&self, digest: &str) -> Result<PathBuf, String> {
        let dir = self
            .root
            .join("tmp")
            .join(format!("{digest}-{}", crate::ids::new_id("")));
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
        Ok(dir)
    }

    /// Moves a built layer into place, then writes its description.
    pub(crate) fn commit(&self, digest: &str, dir: &Path, meta: &LayerMeta) -> Result<(), String> {
        let to = self.layer(digest);
        let _ = std::fs::remove_file(self.meta_path(digest));
        if to.exists() {
            std::fs::remove_dir_all(&to)
                .map_err(|e| format!("cannot replace {}: {e}", to.display()))?;
        }
        if !dir.exists() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
        }
        std::fs::rename(dir, &to).map_err(|e| format!("cannot store the layer: {e}"))?;
        let json = serde_json::to_vec(meta).map_err(|e| e.to_string())?;
        let tmp = self.meta_path(&format!("{digest}.part"));
        std::fs::write(&tmp, json)
            .and_then(|()| std::fs::rename(&tmp, self.meta_path(digest)))
            .map_err(|e| format!("cannot describe the layer: {e}"))
    }

    /// Removes a scratch directory (a failed or finished build's).
    pub(crate) fn discard(&self, scratch: &Path) {
        let _ = std::fs::remove_dir_all(scratch);
    }

    /// The layers built, with their descriptions.
    pub(crate) fn list(&self) -> Vec<(String, LayerMeta)> {
        let mut out: Vec<(String, LayerMeta)> = std::fs::read_dir(self.root.join("layers"))
            .map(|d| {
                d.flatten()
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        let digest = name.strip_suffix(".json")?.to_owned();
                        let meta = serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()?;
                        Some((digest, meta))
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by_key(|(_, meta)| meta.created_ms);
        out
    }

    /// Removes a layer (its description first: a half-removed layer is not used).
    pub(crate) fn remove(&self, digest: &str) -> Result<(), String> {
        let _lock = self.lock(digest)?;
        let _ = std::fs::remove_file(self.meta_path(digest));
        match std::fs::remove_dir_all(self.layer(digest)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("cannot remove layer {digest}: {e}")),
        }
    }
}

/// A built image, as the store keeps it (what `modal image list` shows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ImageRecord {
    pub(crate) image: crate::model::image::ImageRef,
    pub(crate) created_ms: i64,
    pub(crate) last_step: String,
}

/// What removing images freed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Removed {
    pub(crate) images: u32,
    pub(crate) layers: u32,
    pub(crate) bytes: u64,
}

impl Store {
    fn record_path(&self, image_id: &str) -> PathBuf {
        self.root.join("images").join(format!("{image_id}.json"))
    }

    /// Keeps the record of a built image (replacing an older one of the same id, whose
    /// creation time it keeps: a build that found every layer made nothing new).
    pub(crate) fn record(&self, record: &ImageRecord) -> Result<(), String> {
        let path = self.record_path(&record.image.image_id);
        let created_ms = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<ImageRecord>(&b).ok())
            .map_or(record.created_ms, |old| old.created_ms);
        let record = ImageRecord {
            created_ms,
            ..record.clone()
        };
        let json = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
        let tmp = path.with_extension("part");
        std::fs::write(&tmp, json)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| format!("cannot record the image: {e}"))
    }

    /// The images built here, oldest first.
    pub(crate) fn images(&self) -> Vec<ImageRecord> {
        let mut out: Vec<ImageRecord> = std::fs::read_dir(self.root.join("images"))
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                    .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by_key(|r: &ImageRecord| r.created_ms);
        out
    }

    /// Forgets the images `ids` (every image when empty), then removes the layers that no
    /// image left uses.
    pub(crate) fn remove_images(&self, ids: &[String]) -> Result<Removed, String> {
        let mut removed = Removed::default();
        let known = self.images();
        if let Some(unknown) = ids
            .iter()
            .find(|id| !known.iter().any(|r| r.image.image_id == **id))
        {
            return Err(format!("no image {unknown} here (see `modal image list`)"));
        }
        let mut used = std::collections::HashSet::new();
        for record in known {
            if ids.is_empty() || ids.contains(&record.image.image_id) {
                std::fs::remove_file(self.record_path(&record.image.image_id))
                    .map_err(|e| format!("cannot remove image {}: {e}", record.image.image_id))?;
                removed.images += 1;
            } else {
                used.extend(record.image.layers);
            }
        }
        for (digest, meta) in self.list() {
            if !used.contains(&digest) {
                self.remove(&digest)?;
                removed.layers += 1;
                removed.bytes += meta.bytes;
            }
        }
        Ok(removed)
    }
}

/// The directory of layer `digest` in the store at `root` (a worker reads it there).
pub(crate) fn layer_dir(root: &Path, digest: &str) -> PathBuf {
    root.join("layers").join(digest)
}

/// The bytes of the files under `dir` (hard links counted once).
pub(crate) fn size_of(dir: &Path) -> u64 {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(e.path());
            } else if seen.insert((meta.dev(), meta.ino())) {
                total += meta.len();
            }
        }
    }
    total
}
