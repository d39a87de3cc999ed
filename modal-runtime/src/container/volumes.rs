//! Volumes inside a container: each mounted directory is filled from the volume's latest
//! version before the first input, sent back as changes on `Volume::commit` (and at a clean
//! exit), and brought up to date on `Volume::reload`. What the directory held at the last
//! exchange is remembered per path, so that a commit sends only what changed here and a reload
//! never overwrites a change not committed yet.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tokio::sync::Mutex;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::error::{Error, Result};
use crate::model::volume::{Change, Entry, EntryKind, VolumeMount};
use crate::wire::{self, AuthHeaders, pb};

/// The client API as the container calls it for its volumes (over the container's channel).
type Api = pb::client_api_client::ClientApiClient<InterceptedService<Channel, AuthHeaders>>;

inventory::submit! {
    crate::app::objects::VolumeHooks { commit, reload }
}

/// What a path held locally when it was last exchanged with the volume. A file rewritten in
/// place changes its change time (which no program can set back) or, replaced, its inode.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Local {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
    mode: u32,
    is_dir: bool,
}

impl Local {
    /// Whether the path still holds what it held: for a directory, its kind and mode (its
    /// times move with what it holds).
    fn same(&self, other: &Local) -> bool {
        if self.is_dir || other.is_dir {
            self.is_dir == other.is_dir && self.mode == other.mode
        } else {
            self == other
        }
    }
}

#[derive(Debug, Clone)]
struct Known {
    entry: Entry,
    local: Local,
    /// When it was recorded: a file whose times are this recent is hashed again at the next
    /// commit, as a write within the clock's granularity leaves them as they were.
    seen_at_ns: i128,
}

/// The time now, in nanoseconds since the epoch.
fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// How recent a file's change may be for its times alone to be trusted.
const TRUST_AFTER_NS: i128 = 2_000_000_000;

struct Mounted {
    mount: VolumeMount,
    known: BTreeMap<String, Known>,
}

/// One mounted volume: its name (how `Volume::commit` finds it) and its state behind a lock
/// (a commit and a reload of one volume never run at once).
struct Slot {
    name: String,
    state: Mutex<Mounted>,
}

/// The container's mounts, set once they are filled, and the stub that reaches their volumes.
static MOUNTS: OnceLock<(Vec<Slot>, Api)> = OnceLock::new();

fn volume_ref(m: &VolumeMount) -> pb::VolumeRef {
    pb::VolumeRef {
        name: m.name.clone(),
        environment_name: String::new(),
        volume_id: m.volume_id.clone(),
    }
}

fn local_of(meta: &std::fs::Metadata) -> Local {
    Local {
        size: if meta.is_file() { meta.len() } else { 0 },
        mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        ino: meta.ino(),
        mode: meta.permissions().mode() & 0o7777,
        is_dir: meta.is_dir(),
    }
}

/// The mounts the worker gave this container (none when it gave none).
pub(crate) fn mounts_from_env() -> Result<Vec<VolumeMount>, String> {
    let var = crate::task_env::VOLUME_MOUNTS;
    match std::env::var(var) {
        Ok(json) if !json.is_empty() => {
            serde_json::from_str(&json).map_err(|e| format!("{var} is malformed: {e}"))
        }
        _ => Ok(Vec::new()),
    }
}

/// Fills every mounted directory from its volume's latest version; run once, before the first
/// input, with the container's channel (it lives on the container's long-lived runtime, so
/// commits from user code on other threads can use it).
pub(crate) async fn populate(
    mounts: Vec<VolumeMount>,
    channel: Channel,
    auth: AuthHeaders,
) -> Result<(), String> {
    if mounts.is_empty() {
        return Ok(());
    }
    let client = pb::client_api_client::ClientApiClient::with_interceptor(channel, auth)
        .max_decoding_message_size(wire::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(wire::MAX_MESSAGE_BYTES);
    let mut all = Vec::new();
    for mount in mounts {
        let mut m = Mounted {
            mount,
            known: BTreeMap::new(),
        };
        reload_one(&client, &mut m).await.map_err(|e| {
            format!(
                "cannot fill volume `{}` at {}: {e}",
                m.mount.name, m.mount.path
            )
        })?;
        all.push(Slot {
            name: m.mount.name.clone(),
            state: Mutex::new(m),
        });
    }
    let _ = MOUNTS.set((all, client));
    Ok(())
}

/// The mount of the volume called `name` in this container.
fn find(name: &str) -> Result<(&'static Mutex<Mounted>, Api)> {
    let Some((mounts, api)) = MOUNTS.get() else {
        return Err(Error::Invalid(format!(
            "volume `{name}` is not mounted here: commit() and reload() work inside a container of a function that mounts the volume (`volumes = {{\"/path\": VOLUME}}`)"
        )));
    };
    mounts
        .iter()
        .find(|m| m.name == name)
        .map(|m| (&m.state, api.clone()))
        .ok_or_else(|| {
            Error::Invalid(format!(
                "volume `{name}` is not mounted in this container (its function mounts: {})",
                mounts
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// Runs `f` on a thread of its own with a runtime of its own: usable from synchronous user
/// code and from async user code alike (it blocks the calling thread until done).
fn block_on<T: Send + 'static>(
    f: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::Other(format!("cannot start a runtime for the volume: {e}")))?
                .block_on(f)
        })
        .join()
        .unwrap_or_else(|_| Err(Error::Other("the volume operation panicked".into())))
    })
}

/// Sends this container's changes to the volume called `name` as a new version, then brings
/// the directory up to date with what others committed.
fn commit(name: &str) -> Result<()> {
    let (mount, api) = find(name)?;
    block_on(async move {
        let mut m = mount.lock().await;
        let version = commit_one(&api, &mut m).await?;
        reload_one(&api, &mut m).await.map_err(|e| {
            Error::Other(format!(
                "the changes were committed{}, but bringing the mount up to date failed: {e}",
                version
                    .map(|v| format!(" (version {v})"))
                    .unwrap_or_default()
            ))
        })
    })
}

/// Brings the directory of the volume called `name` up to date with its latest version.
fn reload(name: &str) -> Result<()> {
    let (mount, api) = find(name)?;
    block_on(async move {
        let mut m = mount.lock().await;
        reload_one(&api, &mut m).await
    })
}

/// Commits every mounted volume (a clean exit): failures are logged, not raised.
pub(crate) async fn commit_all() {
    let Some((mounts, api)) = MOUNTS.get() else {
        return;
    };
    for mount in mounts {
        let mut m = mount.state.lock().await;
        if let Err(e) = commit_one(api, &mut m).await {
            tracing::error!(
                "volume `{}`: the changes at {} could not be committed at exit: {e}",
                m.mount.name,
                m.mount.path
            );
        }
    }
}

/// What the directory holds now, by volume path.
fn scan(root: &Path) -> std::io::Result<BTreeMap<String, (std::fs::Metadata, PathBuf)>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        for item in std::fs::read_dir(&dir)? {
            let item = item?;
            let name = item.file_name();
            let Some(name) = name.to_str() else {
                tracing::warn!(
                    "volume file {} has a name that is not UTF-8; it is not committed",
                    item.path().display()
                );
                continue;
            };
            let path = if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}/{name}")
            };
            let meta = std::fs::symlink_metadata(item.path())?;
            if meta.is_dir() {
                stack.push((item.path(), path.clone()));
            }
            out.insert(path, (meta, item.path()));
        }
    }
    Ok(out)
}

/// Sends what changed in the directory since the last exchange: blobs first, then one commit.
async fn commit_one(api: &Api, m: &mut Mounted) -> Result<Option<u64>> {
    let root = PathBuf::from(&m.mount.path);
    let scan_root = root.clone();
    let scanned_at = now_ns();
    let now = tokio::task::spawn_blocking(move || scan(&scan_root))
        .await
        .map_err(|e| Error::Other(e.to_string()))?
        .map_err(|e| Error::Other(format!("cannot read {}: {e}", root.display())))?;
    let mut changes = Vec::new();
    let mut uploads: Vec<(String, PathBuf)> = Vec::new();
    let mut seen: HashMap<String, Local> = HashMap::new();
    for (path, (meta, full)) in &now {
        let local = local_of(meta);
        seen.insert(path.clone(), local.clone());
        let known = m.known.get(path);
        // Unchanged by its metadata, unless it changed too recently for the clock to tell.
        if known.is_some_and(|k| {
            k.local.same(&local)
                && (local.is_dir
                    || k.local.ctime_ns.max(k.local.mtime_ns) + TRUST_AFTER_NS < k.seen_at_ns)
        }) {
            continue;
        }
        let entry = if meta.is_dir() {
            Entry::of(path.clone(), EntryKind::Directory, meta)
        } else if meta.file_type().is_symlink() {
            let target = std::fs::read_link(full)
                .map_err(|e| Error::Other(format!("cannot read link {}: {e}", full.display())))?;
            Entry {
                target: target.to_string_lossy().into_owned(),
                ..Entry::of(path.clone(), EntryKind::Symlink, meta)
            }
        } else if meta.is_file() {
            // Never the digest cache's: a rewrite may keep the times it is keyed by.
            let hash = crate::binhash::content_hash_off_thread(full.clone())
                .await
                .map_err(Error::Other)?;
            Entry {
                hash,
                size: meta.len(),
                ..Entry::of(path.clone(), EntryKind::File, meta)
            }
        } else {
            tracing::warn!(
                "volume path {} is neither a file, a directory nor a link; it is not committed",
                full.display()
            );
            continue;
        };
        // Touched but equal (same content, kind and mode): only the local state moves.
        if let Some(k) = known {
            let same = k.entry.kind == entry.kind
                && k.entry.hash == entry.hash
                && k.entry.target == entry.target
                && k.entry.mode == entry.mode;
            if same {
                continue;
            }
        }
        if entry.kind == EntryKind::File {
            uploads.push((entry.hash.clone(), full.clone()));
        }
        changes.push(Change::Put(entry));
    }
    for path in m.known.keys() {
        if !now.contains_key(path) {
            // The topmost removed path covers what is under it.
            let parent_removed = path
                .rsplit_once('/')
                .is_some_and(|(up, _)| m.known.contains_key(up) && !now.contains_key(up));
            if !parent_removed {
                changes.push(Change::Remove(path.clone()));
            }
        }
    }
    if changes.is_empty() {
        // Refresh the local state of touched-but-equal paths.
        refresh_known(m, &seen, scanned_at);
        return Ok(None);
    }
    upload_missing(api, &uploads).await?;
    let mut api = api.clone();
    let pb_changes: Vec<pb::VolumeChange> = changes.iter().cloned().map(Into::into).collect();
    let version = api
        .volume_commit(pb::VolumeCommitRequest {
            volume: Some(volume_ref(&m.mount)),
            changes: pb_changes,
        })
        .await?
        .into_inner()
        .version;
    for change in changes {
        match change {
            Change::Put(entry) => {
                if let Some(local) = seen.get(&entry.path) {
                    m.known.insert(
                        entry.path.clone(),
                        Known {
                            entry,
                            local: local.clone(),
                            seen_at_ns: scanned_at,
                        },
                    );
                }
            }
            Change::Remove(path) => {
                let prefix = format!("{path}/");
                m.known.retain(|p, _| *p != path && !p.starts_with(&prefix));
            }
        }
    }
    refresh_known(m, &seen, scanned_at);
    tracing::info!(
        volume = %m.mount.name,
        version,
        "volume committed"
    );
    Ok(Some(version))
}

fn refresh_known(m: &mut Mounted, seen: &HashMap<String, Local>, scanned_at: i128) {
    for (path, k) in m.known.iter_mut() {
        if let Some(local) = seen.get(path) {
            k.local = local.clone();
            k.seen_at_ns = scanned_at;
        }
    }
}

/// Uploads the files whose digests the control plane lacks.
async fn upload_missing(api: &Api, files: &[(String, PathBuf)]) -> Result<()> {
    if files.is_empty() {
        return Ok(());
    }
    let mut api = api.clone();
    // One file per digest, asked about in batches that stay well under a request's limit.
    let by_hash: HashMap<&str, &Path> = files
        .iter()
        .map(|(h, p)| (h.as_str(), p.as_path()))
        .collect();
    let hashes: Vec<&str> = by_hash.keys().copied().collect();
    for batch in hashes.chunks(wire::DIGEST_CHECK_BATCH) {
        let missing = api
            .volume_blob_check(pb::VolumeBlobCheckRequest {
                hashes: batch.iter().map(|h| (*h).to_owned()).collect(),
            })
            .await?
            .into_inner()
            .missing;
        for hash in missing {
            if let Some(path) = by_hash.get(hash.as_str()) {
                let (chunks, check) = wire::open_upload(path, &hash).await?;
                check.result(api.volume_blob_upload(chunks).await)?;
            }
        }
    }
    Ok(())
}

/// Downloads blob `hash` of the mounted volume into `to`, checking its digest.
async fn download_blob(api: &Api, volume: pb::VolumeRef, hash: &str, to: &Path) -> Result<()> {
    let stream = api
        .clone()
        .volume_blob_download(pb::VolumeBlobDownloadRequest {
            volume: Some(volume),
            hash: hash.to_owned(),
        })
        .await?
        .into_inner();
    wire::receive_to_file(stream, hash, to)
        .await
        .map_err(Error::Other)
}

/// Whether the path below `root` holds what was last exchanged (a directory: with everything
/// under it).
fn unchanged_here(root: &Path, path: &str, known: &BTreeMap<String, Known>) -> bool {
    let Ok(full) = crate::paths::inside(root, path) else {
        return false;
    };
    let same = |p: &str, meta: &std::fs::Metadata| {
        known.get(p).is_some_and(|k| k.local.same(&local_of(meta)))
    };
    match std::fs::symlink_metadata(&full) {
        Err(_) => !known.contains_key(path),
        Ok(meta) if meta.is_dir() => {
            same(path, &meta)
                && scan(&full).is_ok_and(|below| {
                    below
                        .iter()
                        .all(|(rel, (meta, _))| same(&format!("{path}/{rel}"), meta))
                })
        }
        Ok(meta) => same(path, &meta),
    }
}

/// Brings the directory up to date with the volume's latest version, keeping the paths changed
/// here since the last exchange (they are this container's until it commits, and then win, being
/// the last commit). A path that cannot be brought up to date is kept as it is and named in the
/// error, after everything else was.
async fn reload_one(api: &Api, m: &mut Mounted) -> Result<()> {
    let manifest = api
        .clone()
        .volume_manifest(pb::VolumeManifestRequest {
            volume: Some(volume_ref(&m.mount)),
        })
        .await?
        .into_inner();
    let root = PathBuf::from(&m.mount.path);
    // An entry that does not decode stops the reload: taken for a removal, it would delete the
    // mount's copy.
    let head: BTreeMap<String, Entry> = manifest
        .entries
        .into_iter()
        .map(|e| Entry::try_from(e).map(|e| (e.path.clone(), e)))
        .collect::<Result<_, String>>()
        .map_err(|e| Error::ControlPlane(format!("volume `{}`: {e}", m.mount.name)))?;
    let mut failed: Vec<String> = Vec::new();
    // Paths gone from the volume, deepest first: removed here unless changed here (a
    // directory goes once empty: what stays in it is this container's).
    let gone: Vec<String> = m
        .known
        .keys()
        .filter(|p| !head.contains_key(*p))
        .cloned()
        .collect();
    for path in gone.iter().rev() {
        if let Ok(full) = crate::paths::inside(&root, path) {
            match std::fs::symlink_metadata(&full) {
                Ok(meta) if meta.is_dir() => {
                    let _ = std::fs::remove_dir(&full);
                }
                Ok(_) if unchanged_here(&root, path, &m.known) => {
                    let _ = std::fs::remove_file(&full);
                }
                _ => {}
            }
        }
        m.known.remove(path);
    }
    let mut kept: Vec<String> = Vec::new();
    for (path, entry) in head {
        if m.known.get(&path).is_some_and(|k| k.entry == entry) {
            continue;
        }
        // Below a path kept as this container has it: left alone too.
        if kept.iter().any(|k| {
            path.strip_prefix(k.as_str())
                .is_some_and(|r| r.starts_with('/'))
        }) {
            continue;
        }
        let full = match crate::paths::inside(&root, &path) {
            Ok(full) => full,
            Err(e) => {
                failed.push(e);
                continue;
            }
        };
        let exists = std::fs::symlink_metadata(&full).ok();
        let is_dir = exists.as_ref().is_some_and(std::fs::Metadata::is_dir);
        let replaces = exists.is_some() && (entry.kind == EntryKind::Directory) != is_dir;
        if exists.is_some()
            && (replaces || entry.kind != EntryKind::Directory)
            && !unchanged_here(&root, &path, &m.known)
        {
            kept.push(path);
            continue;
        }
        match write_entry(api, &m.mount, &entry, &full, replaces).await {
            Ok(local) => {
                m.known.insert(
                    path,
                    Known {
                        entry,
                        local,
                        seen_at_ns: now_ns(),
                    },
                );
            }
            Err(e) => {
                failed.push(e.to_string());
                kept.push(path);
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Other(format!(
            "volume `{}` at {}: {} path(s) could not be brought up to date and were left as they are: {}",
            m.mount.name,
            m.mount.path,
            failed.len(),
            failed.join("; ")
        )))
    }
}

/// Writes one entry of the volume at `full` (replacing what is there when `replaces`); what
/// the path then holds.
async fn write_entry(
    api: &Api,
    mount: &VolumeMount,
    entry: &Entry,
    full: &Path,
    replaces: bool,
) -> Result<Local> {
    let io = |e: std::io::Error| Error::Other(format!("cannot write {}: {e}", full.display()));
    if replaces {
        match std::fs::symlink_metadata(full) {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(full).map_err(io)?,
            Ok(_) => std::fs::remove_file(full).map_err(io)?,
            Err(_) => {}
        }
    }
    match entry.kind {
        EntryKind::Directory => {
            std::fs::create_dir_all(full).map_err(io)?;
            std::fs::set_permissions(full, std::fs::Permissions::from_mode(entry.mode))
                .map_err(io)?;
        }
        EntryKind::File => {
            download_blob(api, volume_ref(mount), &entry.hash, full).await?;
            std::fs::set_permissions(full, std::fs::Permissions::from_mode(entry.mode))
                .map_err(io)?;
            set_mtime(full, entry.mtime_ms);
        }
        EntryKind::Symlink => {
            if std::fs::symlink_metadata(full).is_ok() {
                std::fs::remove_file(full).map_err(io)?;
            }
            std::os::unix::fs::symlink(&entry.target, full).map_err(io)?;
        }
    }
    let meta = std::fs::symlink_metadata(full).map_err(io)?;
    Ok(local_of(&meta))
}

fn set_mtime(path: &Path, mtime_ms: i64) {
    let at = std::time::UNIX_EPOCH
        + std::time::Duration::from_millis(u64::try_from(mtime_ms).unwrap_or(0));
    if let Ok(f) = std::fs::File::options().write(true).open(path) {
        let _ = f.set_modified(at);
    }
}
