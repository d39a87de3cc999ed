//! Volumes on the control plane: each one a version log of manifests (path → entry) whose file
//! contents are content-addressed blobs in the data directory. A commit applies a container's
//! changes to the latest version (per file, the last commit wins) and becomes durable in one
//! store write; a crash before it leaves the previous version whole.

use std::collections::{BTreeMap, HashSet};

use tonic::Status;

use super::auth::Principal;
use super::state::{State, VolumeRec, environment};
use super::store::{Op, VolumeRow, VolumeVersionRow};
use crate::model::volume::{self, Change, EntryKind, Manifest, VolumeMount, VolumeSummary};

/// How many versions of a volume the store keeps (the latest is the one that counts; older ones
/// are history for recovery by hand).
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub(crate) const VERSIONS_KEPT: i64 = 8;

/// How a request names a volume.
#[derive(Debug, Clone, Default)]
pub(crate) struct VolumeRef {
    pub(crate) name: String,
    pub(crate) environment: String,
    pub(crate) volume_id: String,
}

/// What `VolumeGetOrCreate` asks.
#[derive(Debug, Clone)]
pub(crate) struct GetOrCreate {
    pub(crate) volume: VolumeRef,
    pub(crate) create_if_missing: bool,
    /// Set for an ephemeral volume: the app it belongs to.
    pub(crate) ephemeral_app_id: String,
}

fn check_name(name: &str) -> Result<(), Status> {
    crate::app::rules::check_app_name(name)
        .map_err(|e| Status::invalid_argument(e.replace("app name", "volume name")))
}

impl VolumeRec {
    fn summary(&self, id: &str) -> VolumeSummary {
        let files = self.manifest.values().filter(|e| e.kind == EntryKind::File);
        VolumeSummary {
            volume_id: id.to_owned(),
            name: self.name.clone(),
            environment: self.environment.clone(),
            created_at_ms: self.created_at_ms,
            version: self.version,
            committed_at_ms: self.committed_at_ms,
            files: files.clone().count() as u64,
            bytes: files.map(|e| e.size).sum(),
            app_id: self.app_id.clone().unwrap_or_default(),
        }
    }
}

impl State {
    /// The id of the volume `r` names: by id, else by name (a named volume of its environment).
    fn volume_id_of(&self, r: &VolumeRef) -> Result<String, Status> {
        if !r.volume_id.is_empty() {
            return if self.volumes.contains_key(&r.volume_id) {
                Ok(r.volume_id.clone())
            } else {
                Err(Status::not_found(format!(
                    "no volume with id `{}` (it was deleted, or its app stopped)",
                    r.volume_id
                )))
            };
        }
        let env = environment(&r.environment);
        self.volumes
            .iter()
            .find(|(_, v)| v.app_id.is_none() && v.name == r.name && v.environment == env)
            .map(|(id, _)| id.clone())
            .ok_or_else(|| no_volume_named(&r.name, &env))
    }

    /// The volumes `principal` may reach: `None` for every one (a user), the mounts of its
    /// function for a container.
    fn reachable_volumes(&self, principal: &Principal) -> Result<Option<&[VolumeMount]>, Status> {
        match principal {
            Principal::User { .. } | Principal::Local => Ok(None),
            Principal::Container { task_id, .. } => Ok(Some(
                self.tasks
                    .get(task_id)
                    .and_then(|t| self.functions.get(&t.function_id))
                    .map_or(&[][..], |f| f.def.volumes.as_slice()),
            )),
            Principal::Bootstrap => Err(Status::permission_denied(
                "the bootstrap secret only creates tokens",
            )),
            Principal::Worker { .. } => Err(Status::permission_denied(
                "a worker token may only register a worker and serve its containers",
            )),
        }
    }

    /// Whether `principal` may read and write volume `id`: a user may; a container only the
    /// volumes its function mounts.
    fn check_volume_access(&self, principal: &Principal, id: &str) -> Result<(), Status> {
        match self.reachable_volumes(principal)? {
            Some(mounts) if !mounts.iter().any(|m| m.volume_id == id) => Err(
                Status::permission_denied(format!("this container does not mount volume {id}")),
            ),
            _ => Ok(()),
        }
    }

    /// The volume `r` names, checked for `principal`.
    fn volume_for(&self, r: &VolumeRef, principal: &Principal) -> Result<String, Status> {
        let id = self.volume_id_of(r)?;
        self.check_volume_access(principal, &id)?;
        Ok(id)
    }

    /// Looks a volume up, creating it when asked: `(id, version, created)`.
    pub(crate) fn volume_get_or_create(
        &mut self,
        req: GetOrCreate,
    ) -> Result<(String, u64, bool), Status> {
        check_name(&req.volume.name)?;
        let env = environment(&req.volume.environment);
        let app_id = (!req.ephemeral_app_id.is_empty()).then(|| req.ephemeral_app_id.clone());
        if let Some(app) = &app_id
            && !self.apps.get(app).is_some_and(|a| a.is_live())
        {
            return Err(Status::failed_precondition(format!(
                "app {app} is not running: an ephemeral volume belongs to a running app"
            )));
        }
        let found = self
            .volumes
            .iter()
            .find(|(_, v)| v.name == req.volume.name && v.environment == env && v.app_id == app_id);
        if let Some((id, v)) = found {
            return Ok((id.clone(), v.version, false));
        }
        if !req.create_if_missing && app_id.is_none() {
            return Err(no_volume_named(&req.volume.name, &env));
        }
        let id = crate::ids::new_id("vo-");
        let now = self.clock.unix_ms;
        let rec = VolumeRec {
            name: req.volume.name,
            environment: env,
            app_id,
            created_at_ms: now,
            version: 0,
            committed_at_ms: now,
            manifest: Manifest::new(),
        };
        self.record(Op::UpsertVolume(VolumeRow {
            id: id.clone(),
            environment: rec.environment.clone(),
            name: rec.name.clone(),
            app_id: rec.app_id.clone().unwrap_or_default(),
            created_at: now,
        }));
        tracing::info!(volume = %rec.name, %id, "volume created");
        self.volumes.insert(id.clone(), rec);
        Ok((id, 0, true))
    }

    /// Named volumes of an environment (every one for `""`), and the ephemeral ones of running
    /// apps.
    pub(crate) fn volume_list(&self, environment_name: &str) -> Vec<VolumeSummary> {
        let mut out: Vec<VolumeSummary> = self
            .volumes
            .iter()
            .filter(|(_, v)| environment_name.is_empty() || v.environment == environment_name)
            .map(|(id, v)| v.summary(id))
            .collect();
        out.sort_by(|a, b| {
            (&a.environment, &a.name, &a.app_id).cmp(&(&b.environment, &b.name, &b.app_id))
        });
        out
    }

    pub(crate) fn volume_delete(&mut self, r: &VolumeRef) -> Result<(), Status> {
        let id = self.volume_id_of(r)?;
        self.remove_volume(&id);
        Ok(())
    }

    fn remove_volume(&mut self, id: &str) {
        if let Some(v) = self.volumes.remove(id) {
            tracing::info!(volume = %v.name, %id, "volume deleted");
            self.record(Op::DeleteVolume { id: id.to_owned() });
        }
    }

    /// Deletes the ephemeral volumes of an app that stopped.
    pub(crate) fn drop_ephemeral_volumes(&mut self, app_id: &str) {
        let ids: Vec<String> = self
            .volumes
            .iter()
            .filter(|(_, v)| v.app_id.as_deref() == Some(app_id))
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            self.remove_volume(&id);
        }
    }

    /// The latest version of a volume: `(id, version, manifest)`.
    pub(crate) fn volume_manifest(
        &self,
        r: &VolumeRef,
        principal: &Principal,
    ) -> Result<(String, u64, Manifest), Status> {
        let id = self.volume_for(r, principal)?;
        let v = &self.volumes[&id];
        Ok((id, v.version, v.manifest.clone()))
    }

    /// Whether `principal` may read blob `hash` of volume `r`: the volume's latest version
    /// holds it.
    pub(crate) fn volume_blob_readable(
        &self,
        r: &VolumeRef,
        hash: &str,
        principal: &Principal,
    ) -> Result<(), Status> {
        let id = self.volume_for(r, principal)?;
        let holds = self.volumes[&id]
            .manifest
            .values()
            .any(|e| e.kind == EntryKind::File && e.hash == hash);
        if holds {
            Ok(())
        } else {
            Err(Status::not_found(format!(
                "volume {id} holds no file with digest {hash} (it changed since it was listed: list it again)"
            )))
        }
    }

    /// Whether `principal` may upload blobs: a user, or a container that mounts a volume.
    pub(crate) fn check_blob_uploader(&self, principal: &Principal) -> Result<(), Status> {
        match self.reachable_volumes(principal)? {
            Some([]) => Err(Status::permission_denied("this container mounts no volume")),
            _ => Ok(()),
        }
    }

    /// Applies `changes` to the latest version of a volume: the new version's number. Every
    /// file put must name a blob already stored (the API checks before).
    pub(crate) fn volume_commit(
        &mut self,
        r: &VolumeRef,
        changes: Vec<Change>,
        principal: &Principal,
    ) -> Result<u64, Status> {
        let id = self.volume_for(r, principal)?;
        for c in &changes {
            let path = match c {
                Change::Put(e) => {
                    if e.path.is_empty() {
                        return Err(Status::invalid_argument("an entry needs a path"));
                    }
                    if e.kind == EntryKind::File && e.hash.is_empty() {
                        return Err(Status::invalid_argument(format!(
                            "file `{}` has no digest",
                            e.path
                        )));
                    }
                    &e.path
                }
                Change::Remove(p) => p,
            };
            volume::check_path(path).map_err(Status::invalid_argument)?;
        }
        let now = self.clock.unix_ms;
        let Some(v) = self.volumes.get_mut(&id) else {
            return Err(Status::not_found(format!("no volume with id `{id}`")));
        };
        volume::apply(&mut v.manifest, changes, now);
        v.version += 1;
        v.committed_at_ms = now;
        let version = v.version;
        let manifest: Vec<&volume::Entry> = v.manifest.values().collect();
        let manifest_json = serde_json::to_string(&manifest)
            .map_err(|e| Status::internal(format!("cannot encode the volume's files: {e}")))?;
        self.record(Op::InsertVolumeVersion(VolumeVersionRow {
            volume_id: id,
            version: version as i64,
            manifest_json,
            committed_at: now,
        }));
        Ok(version)
    }

    /// The digests every volume's latest version uses (blobs outside it may be collected).
    pub(crate) fn volume_blobs_in_use(&self) -> HashSet<String> {
        self.volumes
            .values()
            .flat_map(|v| v.manifest.values())
            .filter(|e| e.kind == EntryKind::File)
            .map(|e| e.hash.clone())
            .collect()
    }

    /// The mounts of a function, checked: each volume exists, none is mounted twice (their
    /// paths are checked with the definition, `FunctionDef::problems`).
    pub(crate) fn check_volume_mounts(&self, mounts: &[VolumeMount]) -> Result<(), Status> {
        let mut seen_ids = HashSet::new();
        for m in mounts {
            if !self.volumes.contains_key(&m.volume_id) {
                return Err(Status::not_found(format!(
                    "volume `{}` ({}) mounted at {} does not exist (deleted?)",
                    m.name, m.volume_id, m.path
                )));
            }
            if !seen_ids.insert(&m.volume_id) {
                return Err(Status::invalid_argument(format!(
                    "volume `{}` is mounted twice; mount a volume at one path",
                    m.name
                )));
            }
        }
        Ok(())
    }

    /// Loads the volumes of a snapshot: each with its latest version.
    pub(crate) fn restore_volumes(&mut self, rows: Vec<VolumeRow>, heads: Vec<VolumeVersionRow>) {
        let mut heads: BTreeMap<String, VolumeVersionRow> = heads
            .into_iter()
            .map(|h| (h.volume_id.clone(), h))
            .collect();
        for row in rows {
            let (version, committed_at_ms, manifest) = match heads.remove(&row.id) {
                Some(h) => {
                    let entries: Vec<volume::Entry> = serde_json::from_str(&h.manifest_json)
                        .unwrap_or_else(|e| {
                            tracing::error!(volume = %row.name, "the stored version {} of the volume is unreadable ({e}); it is loaded empty", h.version);
                            Vec::new()
                        });
                    let manifest = entries.into_iter().map(|e| (e.path.clone(), e)).collect();
                    (h.version.max(0) as u64, h.committed_at, manifest)
                }
                None => (0, row.created_at, Manifest::new()),
            };
            self.volumes.insert(
                row.id,
                VolumeRec {
                    name: row.name,
                    environment: row.environment,
                    app_id: (!row.app_id.is_empty()).then_some(row.app_id),
                    created_at_ms: row.created_at,
                    version,
                    committed_at_ms,
                    manifest,
                },
            );
        }
    }
}

fn no_volume_named(name: &str, environment: &str) -> Status {
    Status::not_found(format!(
        "no volume named `{name}` in environment `{environment}` (create it with `modal volume create {name}`, or use `Volume::from_name(..).create_if_missing(true)`)"
    ))
}
