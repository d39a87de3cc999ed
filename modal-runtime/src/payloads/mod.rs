//! The payload store: arguments and results larger than [`inline_max`] kept as files on the
//! control plane's machine (in `/dev/shm` for the embedded control plane), so that only a handle
//! travels through the control plane; how a container and a client in the same process as the
//! control plane reach those files.
//!
//! Layout under the store's root:
//! - `objects/<name>`: payloads, written whole by a trusted party (the control plane or a client
//!   in its process) and never changed; the directory is `0711` (a name is needed to read a file:
//!   names are 128 random bits), files `0644`. Who removes one: the control plane when the input
//!   it holds is done or the result it holds is forgotten undelivered; the client that took a
//!   delivered result.
//! - `outbox/<task id>/`: one directory per container, the only place a container writes; the
//!   control plane moves a file from there into `objects/` when the container names it in an
//!   output, after checking it. A control plane serving other programs reads such a file
//!   (`Store::read`: its writer may still hold it open); only the program that hosts the store,
//!   whose containers run its own binary, maps it (`Store::map`, `Store::take`).
//! - `free/`: in a store of this process's own, a few files kept as spares that new payloads
//!   overwrite (`Store::new_file`, `Store::give_spare`): only files nothing maps any more: a
//!   result whose one reader, this program, dropped every byte it took ([`Store::take`]), or an
//!   input that every container it was sent to said it let go of ([`Store::recycle`]). A file
//!   that a container or a caller may still map (an input kept by user code, a result read by
//!   every `get`) is only ever removed, so that a mapped `Bytes` never changes.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, Weak};

mod encode;

use bytes::Bytes;
use chacha20poly1305::aead::OsRng;
use chacha20poly1305::aead::rand_core::RngCore;

pub(crate) use encode::{Encoded, encode};

/// The variable a worker sets for a container that can reach the store: the store's id.
pub(crate) const STORE_ENV: &str = "MODAL_PAYLOAD_STORE";
/// The container's view of `objects/` (read-only).
pub(crate) const OBJECTS_ENV: &str = "MODAL_PAYLOAD_OBJECTS";
/// The container's outbox (writable).
pub(crate) const OUTBOX_ENV: &str = "MODAL_PAYLOAD_OUTBOX";

/// A payload in a store: its name (from a container, the name of a file in its outbox), and its
/// size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) handle: String,
    pub(crate) size: u64,
}

/// The size above which a payload goes through the store when both ends can reach it:
/// `MODAL_PAYLOAD_INLINE_MAX` bytes, 1 MiB by default.
pub(crate) fn inline_max() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| {
        std::env::var("MODAL_PAYLOAD_INLINE_MAX")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1 << 20)
    })
}

/// A payload store on this machine.
#[derive(Debug)]
pub(crate) struct Store {
    root: PathBuf,
    id: String,
    /// The store lasts as long as this process (see [`discard_hosted`]).
    of_this_process: bool,
}

fn random_name() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn is_name(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A task id as a directory name: letters, digits, `-` and `_`.
fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A handle, checked: it names a file of the directory it is looked up in and nothing else.
fn checked(handle: &str) -> std::io::Result<&str> {
    if is_name(handle) {
        Ok(handle)
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("`{handle}` is not a payload handle"),
        ))
    }
}

fn make_dir(path: &Path, mode: u32) -> std::io::Result<()> {
    match std::fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removed payload files a store of this process's own keeps for new payloads, at most.
const SPARES: usize = 4;
/// The largest file kept as a spare.
const SPARE_MAX_BYTES: u64 = 64 << 20;
/// How the name of a spare given to a container's outbox starts.
const SPARE: &str = "spare-";

/// A new file `path` (`mode`), failing if it exists.
fn create_new(path: &Path, mode: u32) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
}

/// Writes `bytes` to a new file `path` (`mode`), failing if it exists.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    create_new(path, mode)?.write_all(bytes)
}

/// Moves a spare file of `dir` (one whose name `is_spare`) to `to` and opens it for writing;
/// `None` when there is none (or another writer took each one first).
fn take_spare(dir: &Path, to: &Path, is_spare: impl Fn(&str) -> bool) -> Option<std::fs::File> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        if !is_spare(&entry.file_name().to_string_lossy()) {
            continue;
        }
        if std::fs::rename(entry.path(), to).is_ok() {
            return std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(to)
                .ok();
        }
    }
    None
}

impl Store {
    /// Opens (or makes) the store at `root`, keeping its id when it has one.
    pub(crate) fn open(root: &Path) -> std::io::Result<Store> {
        std::fs::create_dir_all(root)?;
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o711))?;
        make_dir(&root.join("objects"), 0o711)?;
        make_dir(&root.join("outbox"), 0o711)?;
        make_dir(&root.join("free"), 0o700)?;
        let id_file = root.join("id");
        let id = match std::fs::read_to_string(&id_file) {
            Ok(id) if is_name(id.trim()) => id.trim().to_owned(),
            _ => {
                let id = random_name();
                std::fs::write(&id_file, &id)?;
                id
            }
        };
        Ok(Store {
            root: root.to_owned(),
            id,
            of_this_process: false,
        })
    }

    /// A store of this process's own in `/dev/shm` (the temporary directory where there is no
    /// `/dev/shm`), first removing those of processes that are gone.
    pub(crate) fn for_this_process() -> std::io::Result<Store> {
        let shm = Path::new("/dev/shm");
        let base =
            if shm.is_dir() && nix::unistd::access(shm, nix::unistd::AccessFlags::W_OK).is_ok() {
                shm.to_owned()
            } else {
                std::env::temp_dir()
            };
        let root = crate::paths::of_this_process(&base, "payloads", &random_name()[..8]);
        Ok(Store {
            of_this_process: true,
            ..Store::open(&root)?
        })
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// The directory a container reads payloads from (mounted read-only in one of its own).
    pub(crate) fn objects(&self) -> PathBuf {
        self.root.join("objects")
    }

    fn path_of(&self, handle: &str) -> std::io::Result<PathBuf> {
        Ok(self.objects().join(checked(handle)?))
    }

    /// Whether the store holds payload `handle`.
    pub(crate) fn has(&self, handle: &str) -> bool {
        self.path_of(handle).is_ok_and(|p| p.is_file())
    }

    /// A payload's file, opened for reading (to send it to a reader elsewhere).
    pub(crate) fn open_payload(&self, handle: &str) -> std::io::Result<std::fs::File> {
        std::fs::File::open(self.path_of(handle)?)
    }

    /// Keeps `bytes` as a payload.
    pub(crate) fn put(&self, bytes: &[u8]) -> std::io::Result<Stored> {
        let handle = random_name();
        write_new(&self.path_of(&handle)?, bytes, 0o644)?;
        Ok(Stored {
            handle,
            size: bytes.len() as u64,
        })
    }

    /// A payload's bytes, read (not mapped: safe whoever wrote the file).
    pub(crate) fn read(&self, stored: &Stored) -> std::io::Result<Bytes> {
        let bytes = std::fs::read(self.path_of(&stored.handle)?)?;
        if bytes.len() as u64 != stored.size {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "payload {} holds {} bytes, {} were announced",
                    stored.handle,
                    bytes.len(),
                    stored.size
                ),
            ));
        }
        Ok(Bytes::from(bytes))
    }

    /// A payload's bytes, mapped read-only. Only a program that hosts the store maps its files:
    /// they come from the program itself or from its containers, which run its own binary (a
    /// control plane serving other programs reads them, [`Store::read`]).
    pub(crate) fn map(&self, stored: &Stored) -> std::io::Result<Bytes> {
        let map = map_file(&self.path_of(&stored.handle)?, stored)?;
        Ok(map.map_or_else(Bytes::new, Bytes::from_owner))
    }

    /// A payload's bytes for its only reader, mapped read-only like [`Store::map`]; the file
    /// goes (or becomes a spare) once the bytes are dropped, not before.
    pub(crate) fn take(self: &Arc<Self>, stored: &Stored) -> std::io::Result<Bytes> {
        let path = self.path_of(&stored.handle)?;
        let Some(map) = map_file(&path, stored)? else {
            self.remove(std::slice::from_ref(&stored.handle));
            return Ok(Bytes::new());
        };
        Ok(Bytes::from_owner(Taken {
            map: Some(map),
            store: Arc::clone(self),
            path,
        }))
    }

    /// Removes payloads (a missing one is not an error: it is gone either way). They never
    /// become spares: whoever mapped one keeps its bytes, unchanged, while they live.
    pub(crate) fn remove(&self, handles: &[String]) {
        self.let_go(handles, |path| std::fs::remove_file(path));
    }

    /// Removes payloads that no container maps any more (each said so), keeping them as spares
    /// where this store keeps spares.
    pub(crate) fn recycle(&self, handles: &[String]) {
        self.let_go(handles, |path| self.discard(path));
    }

    /// Applies `how` (removal, or removal that may keep a spare) to each payload's file.
    fn let_go(&self, handles: &[String], how: impl Fn(&Path) -> std::io::Result<()>) {
        for h in handles {
            if let Ok(path) = self.path_of(h)
                && let Err(e) = how(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!("cannot remove payload {}: {e}", path.display());
            }
        }
    }

    /// Removes a payload file that nothing maps any more, or, in a store of this process's own,
    /// keeps it as a spare (see [`Store::new_file`]) while there are few.
    fn discard(&self, path: &Path) -> std::io::Result<()> {
        let free = self.root.join("free");
        let worth_keeping = self.of_this_process
            && std::fs::symlink_metadata(path).is_ok_and(|m| m.len() <= SPARE_MAX_BYTES)
            && std::fs::read_dir(&free).is_ok_and(|d| d.count() < SPARES);
        if worth_keeping {
            std::fs::rename(path, free.join(random_name()))
        } else {
            std::fs::remove_file(path)
        }
    }

    /// A new file of `objects/` for a payload: a spare when there is one (its memory is already
    /// there: writing over it costs no page allocation), else a fresh one.
    pub(crate) fn new_file(&self) -> std::io::Result<(std::fs::File, PathBuf)> {
        let path = self.objects().join(random_name());
        if let Some(file) = take_spare(&self.root.join("free"), &path, |_| true) {
            file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
            return Ok((file, path));
        }
        Ok((create_new(&path, 0o644)?, path))
    }

    /// After a container sent a result through its outbox: a spare for its next one, when
    /// this store keeps spares (given to the outbox's owner, the container's user).
    pub(crate) fn give_spare(&self, task_id: &str) {
        let Ok(outbox) = self.outbox(task_id) else {
            return;
        };
        let has_one = std::fs::read_dir(&outbox).is_ok_and(|mut d| {
            d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with(SPARE)))
        });
        if !self.of_this_process || has_one {
            return;
        }
        let to = outbox.join(format!("{SPARE}{}", random_name()));
        if let Some(file) = take_spare(&self.root.join("free"), &to, |_| true) {
            use std::os::unix::fs::MetadataExt;
            let given = std::fs::metadata(&outbox).and_then(|owner| {
                std::os::unix::fs::fchown(&file, Some(owner.uid()), Some(owner.gid()))?;
                file.set_permissions(std::fs::Permissions::from_mode(0o600))
            });
            if given.is_err() {
                let _ = std::fs::remove_file(&to);
            }
        }
    }

    /// After a restart of the control plane whose state names `live`: removes every other
    /// payload (what was handed to a caller that never took it, what an input left) and every
    /// outbox (no container of the previous run sends any more). Returns how many files went.
    pub(crate) fn keep_only(&self, live: &std::collections::HashSet<String>) -> usize {
        let mut removed = 0;
        for entry in std::fs::read_dir(self.objects())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name();
            if !live.contains(name.to_string_lossy().as_ref())
                && std::fs::remove_file(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
        for entry in std::fs::read_dir(self.root.join("outbox"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
        removed
    }

    /// The outbox of a container (see the module docs).
    pub(crate) fn outbox(&self, task_id: &str) -> std::io::Result<PathBuf> {
        if !is_id(task_id) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("`{task_id}` is not a task id"),
            ));
        }
        Ok(self.root.join("outbox").join(task_id))
    }

    /// Makes a container's outbox, owned by `owner` (the container's user) when given.
    pub(crate) fn make_outbox(
        &self,
        task_id: &str,
        owner: Option<(u32, u32)>,
    ) -> std::io::Result<PathBuf> {
        let dir = self.outbox(task_id)?;
        make_dir(&dir, 0o700)?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::lchown(&dir, Some(uid), Some(gid))?;
        }
        Ok(dir)
    }

    /// Removes a container's outbox and whatever it left there.
    pub(crate) fn remove_outbox(&self, task_id: &str) {
        if let Ok(dir) = self.outbox(task_id) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// Moves the file `name` of a container's outbox into the store, checking that it is a
    /// plain file of the announced size.
    pub(crate) fn adopt(&self, task_id: &str, name: &str, size: u64) -> std::io::Result<Stored> {
        let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
        let from = self.outbox(task_id)?.join(checked(name)?);
        let handle = random_name();
        let to = self.path_of(&handle)?;
        std::fs::rename(&from, &to)?;
        let meta = std::fs::symlink_metadata(&to)?;
        if !meta.file_type().is_file() || meta.len() != size {
            let _ = std::fs::remove_file(&to);
            return Err(invalid(format!(
                "the container's payload file is not a plain file of {size} bytes"
            )));
        }
        Ok(Stored { handle, size })
    }
}

/// A mapped payload whose holders can be counted (see [`Mounted::map`]).
struct Watched {
    map: memmap2::Mmap,
    _alive: Arc<()>,
}

impl AsRef<[u8]> for Watched {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

/// A taken payload's mapping: unmapped, then its file removed (or kept as a spare), when
/// dropped.
struct Taken {
    map: Option<memmap2::Mmap>,
    store: Arc<Store>,
    path: PathBuf,
}

impl AsRef<[u8]> for Taken {
    fn as_ref(&self) -> &[u8] {
        self.map.as_deref().unwrap_or_default()
    }
}

impl Drop for Taken {
    fn drop(&mut self) {
        // A spare is written over: nothing may map it any more.
        drop(self.map.take());
        let _ = self.store.discard(&self.path);
    }
}

/// The bytes of payload file `path`, mapped read-only, once its size is checked (`None`: it
/// is empty, and nothing can be mapped).
fn map_file(path: &Path, stored: &Stored) -> std::io::Result<Option<memmap2::Mmap>> {
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    if len != stored.size {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "payload {} holds {len} bytes, {} were announced",
                stored.handle, stored.size
            ),
        ));
    }
    if len == 0 {
        return Ok(None);
    }
    #[allow(unsafe_code)]
    // SAFETY: a file of a store's `objects/` is written whole before its handle is sent and is
    // not changed while it is named: the store's own files by their trusted writer; one taken
    // from a container's outbox is mapped only by the program whose containers run its own
    // binary (see `Store::map`). Once no input or result names it, it is removed (a removed
    // file's mapping keeps its bytes), or, only once nothing maps it (its one reader dropped
    // every byte, `Store::take`; its containers let go of it, `Store::recycle`), becomes a
    // spare that a new payload overwrites.
    let map = unsafe { memmap2::Mmap::map(&file)? };
    Ok(Some(map))
}

/// Marks a request of the client in the control plane's own process (an extension only that
/// client's in-process transport adds: no request from elsewhere carries it): it may send and
/// receive stored payloads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InProcess;

static HOSTED: OnceLock<Arc<Store>> = OnceLock::new();

/// Makes `store` the one this process hosts (its control plane's); the first call wins.
pub(crate) fn host(store: Store) -> Arc<Store> {
    Arc::clone(HOSTED.get_or_init(|| Arc::new(store)))
}

/// The store this process hosts, if any: a client in this process reads and writes it directly.
pub(crate) fn hosted() -> Option<&'static Arc<Store>> {
    HOSTED.get()
}

/// Removes the store this process hosts when it lasts only as long as the process (the
/// program's `main` returned): its payloads are nobody's any more. One left by a process that
/// did not return is removed by the next one ([`Store::for_this_process`]).
pub(crate) fn discard_hosted() {
    if let Some(store) = hosted().filter(|s| s.of_this_process) {
        let _ = std::fs::remove_dir_all(&store.root);
    }
}

/// The store as this container sees it (the variables its worker set), if it was given one.
pub(crate) fn mounted() -> Option<&'static Mounted> {
    static MOUNTED: OnceLock<Option<Mounted>> = OnceLock::new();
    MOUNTED.get_or_init(Mounted::from_env).as_ref()
}

/// The store as a container sees it.
#[derive(Debug)]
pub(crate) struct Mounted {
    pub(crate) store_id: String,
    objects: PathBuf,
    outbox: PathBuf,
}

impl Mounted {
    fn from_env() -> Option<Mounted> {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        Some(Mounted {
            store_id: var(STORE_ENV)?.into_string().ok()?,
            objects: var(OBJECTS_ENV)?.into(),
            outbox: var(OUTBOX_ENV)?.into(),
        })
    }

    /// A payload's bytes, mapped read-only (files in `objects/` are never changed once named),
    /// and what tells whether any of them is still held: once the `Weak` is dead, nothing maps
    /// the file here any more.
    pub(crate) fn map(&self, stored: &Stored) -> std::io::Result<(Bytes, Weak<()>)> {
        let Some(map) = map_file(&self.objects.join(checked(&stored.handle)?), stored)? else {
            return Ok((Bytes::new(), Weak::new()));
        };
        let alive = Arc::new(());
        let watch = Arc::downgrade(&alive);
        Ok((Bytes::from_owner(Watched { map, _alive: alive }), watch))
    }

    /// A new file of the outbox for a result: the spare the control plane gave when there is
    /// one, else a fresh one.
    pub(crate) fn new_file(&self) -> std::io::Result<(std::fs::File, PathBuf)> {
        let path = self.outbox.join(random_name());
        if let Some(file) = take_spare(&self.outbox, &path, |n| n.starts_with(SPARE)) {
            return Ok((file, path));
        }
        Ok((create_new(&path, 0o600)?, path))
    }
}

#[cfg(test)]
mod tests;
