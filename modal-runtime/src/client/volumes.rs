//! Volumes from outside a container (the `modal volume` commands): create, list, delete, and
//! files put into and got from a volume through the control plane, content-addressed (a file
//! the control plane has already is not sent again).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{Api, Client};
use crate::error::{Error, Result};
use crate::model::volume::{self, Change, Entry, EntryKind};
use crate::wire::{self, pb};

/// The volumes of one environment of a control plane.
pub(crate) struct Volumes {
    api: Api,
    environment: String,
}

/// What a put or a get moved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Moved {
    pub(crate) files: u64,
    pub(crate) bytes: u64,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Invalid(format!("{}: {e}", path.display()))
}

impl Volumes {
    pub(crate) fn new(client: &Client, environment: &str) -> Self {
        Volumes {
            api: client.api.clone(),
            environment: environment.to_owned(),
        }
    }

    fn by_name(&self, name: &str) -> pb::VolumeRef {
        pb::VolumeRef {
            name: name.to_owned(),
            environment_name: self.environment.clone(),
            volume_id: String::new(),
        }
    }

    /// Creates a volume; `false` when it existed already.
    pub(crate) async fn create(&self, name: &str) -> Result<bool> {
        let resp = self
            .api
            .clone()
            .volume_get_or_create(pb::VolumeGetOrCreateRequest {
                volume: Some(self.by_name(name)),
                create_if_missing: true,
                ephemeral_app_id: String::new(),
            })
            .await?
            .into_inner();
        Ok(resp.created)
    }

    pub(crate) async fn list(&self) -> Result<Vec<pb::VolumeSummary>> {
        Ok(self
            .api
            .clone()
            .volume_list(pb::VolumeListRequest {
                environment_name: self.environment.clone(),
            })
            .await?
            .into_inner()
            .volumes)
    }

    pub(crate) async fn delete(&self, name: &str) -> Result<()> {
        self.api
            .clone()
            .volume_delete(pb::VolumeDeleteRequest {
                volume: Some(self.by_name(name)),
            })
            .await?;
        Ok(())
    }

    /// The entries of the volume's latest version: `(volume id, version, entries)`.
    pub(crate) async fn entries(&self, name: &str) -> Result<(String, u64, Vec<Entry>)> {
        let resp = self
            .api
            .clone()
            .volume_manifest(pb::VolumeManifestRequest {
                volume: Some(self.by_name(name)),
            })
            .await?
            .into_inner();
        let entries = resp
            .entries
            .into_iter()
            .map(Entry::try_from)
            .collect::<Result<Vec<_>, String>>()
            .map_err(Error::ControlPlane)?;
        Ok((resp.volume_id, resp.version, entries))
    }

    /// Puts a local file or directory at `remote` (a path in the volume) as one new version.
    /// An existing file is replaced only with `force`.
    pub(crate) async fn put(
        &self,
        name: &str,
        local: &Path,
        remote: &str,
        force: bool,
    ) -> Result<Moved> {
        let remote = volume::normalize(remote).map_err(Error::Invalid)?;
        let meta = std::fs::metadata(local).map_err(io(local))?;
        let files: Vec<(String, PathBuf)> = if meta.is_dir() {
            crate::paths::files_below(local)
                .map_err(Error::Invalid)?
                .into_iter()
                .map(|(rel, path)| {
                    let inside = if remote.is_empty() {
                        rel
                    } else {
                        format!("{remote}/{rel}")
                    };
                    (inside, path)
                })
                .collect()
        } else {
            vec![(remote.clone(), local.to_path_buf())]
        };
        if remote.is_empty() && !meta.is_dir() {
            return Err(Error::Invalid(format!(
                "give a path in the volume for file {}",
                local.display()
            )));
        }
        let (_, _, existing) = self.entries(name).await?;
        // Without --force nothing is replaced: no entry at a path put, no file where a
        // directory above one must be.
        let above = |e: &Entry, p: &str| {
            e.kind != EntryKind::Directory
                && p.strip_prefix(e.path.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        };
        if !force
            && let Some(e) = existing.iter().find(|e| {
                files
                    .iter()
                    .any(|(p, _)| *p == e.path && e.kind != EntryKind::Directory || above(e, p))
            })
        {
            return Err(Error::Invalid(format!(
                "`/{}` exists in volume `{name}`; use --force to replace it",
                e.path
            )));
        }
        if let Some(e) = existing
            .iter()
            .find(|e| e.kind == EntryKind::Directory && files.iter().any(|(p, _)| *p == e.path))
        {
            return Err(Error::Invalid(format!(
                "`/{}` is a directory in volume `{name}`; remove it first (`modal volume rm {name} /{} --recursive`) to put a file there",
                e.path, e.path
            )));
        }
        let mut moved = Moved::default();
        let mut changes = Vec::new();
        let locals: Vec<PathBuf> = files.iter().map(|(_, file)| file.clone()).collect();
        let hashes = super::files::upload(&self.api, super::files::Store::Volume, &locals).await?;
        for ((path, file), hash) in files.into_iter().zip(hashes) {
            let meta = std::fs::metadata(&file).map_err(io(&file))?;
            moved.files += 1;
            moved.bytes += meta.len();
            changes.push(Change::Put(Entry {
                hash,
                size: meta.len(),
                ..Entry::of(path, EntryKind::File, &meta)
            }));
        }
        self.commit(name, changes).await?;
        Ok(moved)
    }

    async fn commit(&self, name: &str, changes: Vec<Change>) -> Result<u64> {
        Ok(self
            .api
            .clone()
            .volume_commit(pb::VolumeCommitRequest {
                volume: Some(self.by_name(name)),
                changes: changes.into_iter().map(Into::into).collect(),
            })
            .await?
            .into_inner()
            .version)
    }

    /// Removes a path of the volume (a directory only with `recursive`).
    pub(crate) async fn remove(&self, name: &str, path: &str, recursive: bool) -> Result<()> {
        let path = volume::normalize(path).map_err(Error::Invalid)?;
        let (_, _, entries) = self.entries(name).await?;
        let Some(entry) = entries.iter().find(|e| e.path == path) else {
            return Err(Error::Invalid(format!("no `/{path}` in volume `{name}`")));
        };
        if entry.kind == EntryKind::Directory && !recursive {
            return Err(Error::Invalid(format!(
                "`/{path}` is a directory; use --recursive to remove it and what it holds"
            )));
        }
        self.commit(name, vec![Change::Remove(path)]).await?;
        Ok(())
    }

    /// Gets a file (to `local`, or into it when it is a directory) or a directory (into
    /// `local`) of the volume; `-` writes a file to standard output.
    pub(crate) async fn get(&self, name: &str, remote: &str, local: &Path) -> Result<Moved> {
        let remote = volume::normalize(remote).map_err(Error::Invalid)?;
        let (volume_id, _, entries) = self.entries(name).await?;
        let wanted: Vec<&Entry> = entries
            .iter()
            .filter(|e| {
                remote.is_empty() || e.path == remote || e.path.starts_with(&format!("{remote}/"))
            })
            .collect();
        if wanted.is_empty() && !remote.is_empty() {
            return Err(Error::Invalid(format!("no `/{remote}` in volume `{name}`")));
        }
        let file = wanted
            .iter()
            .find(|e| e.path == remote && e.kind == EntryKind::File)
            .copied();
        let by_id = pb::VolumeRef {
            name: name.to_owned(),
            environment_name: self.environment.clone(),
            volume_id,
        };
        let mut moved = Moved::default();
        if let Some(top) = file {
            if local == Path::new("-") {
                let tmp =
                    std::env::temp_dir().join(format!("modal-get-{}", crate::ids::new_id("")));
                self.download(&by_id, top, &tmp).await?;
                let copied = std::fs::File::open(&tmp)
                    .and_then(|mut f| std::io::copy(&mut f, &mut std::io::stdout().lock()));
                let _ = std::fs::remove_file(&tmp);
                copied.map_err(|e| Error::Other(format!("cannot write the file out: {e}")))?;
            } else {
                let to = if local.is_dir() {
                    local.join(top.path.rsplit('/').next().unwrap_or(&top.path))
                } else {
                    local.to_path_buf()
                };
                self.download(&by_id, top, &to).await?;
            }
            return Ok(Moved {
                files: 1,
                bytes: top.size,
            });
        }
        if local == Path::new("-") {
            return Err(Error::Invalid(format!(
                "`/{remote}` is a directory: give a local directory, not `-`"
            )));
        }
        let base = if remote.is_empty() {
            local.to_path_buf()
        } else {
            local.join(remote.rsplit('/').next().unwrap_or(&remote))
        };
        std::fs::create_dir_all(&base).map_err(io(&base))?;
        for e in wanted {
            let rel = e
                .path
                .strip_prefix(&remote)
                .unwrap_or(&e.path)
                .trim_start_matches('/');
            let to = crate::paths::inside(&base, rel).map_err(Error::Invalid)?;
            match e.kind {
                EntryKind::Directory => std::fs::create_dir_all(&to).map_err(io(&to))?,
                EntryKind::Symlink => {
                    let _ = std::fs::remove_file(&to);
                    std::os::unix::fs::symlink(&e.target, &to).map_err(io(&to))?;
                }
                EntryKind::File => {
                    if let Some(parent) = to.parent() {
                        std::fs::create_dir_all(parent).map_err(io(parent))?;
                    }
                    self.download(&by_id, e, &to).await?;
                    moved.files += 1;
                    moved.bytes += e.size;
                }
            }
        }
        Ok(moved)
    }

    async fn download(&self, volume: &pb::VolumeRef, e: &Entry, to: &Path) -> Result<()> {
        let stream = self
            .api
            .clone()
            .volume_blob_download(pb::VolumeBlobDownloadRequest {
                volume: Some(volume.clone()),
                hash: e.hash.clone(),
            })
            .await?
            .into_inner();
        wire::receive_to_file(stream, &e.hash, to)
            .await
            .map_err(Error::Other)?;
        let _ = std::fs::set_permissions(to, std::fs::Permissions::from_mode(e.mode & 0o777));
        Ok(())
    }
}
