//! The volume requests of the client API: lookups and listings, manifests, blob uploads and
//! downloads (content-addressed files beside the store), and commits. A user may use every
//! volume; a container only the volumes its function mounts (restricted or not: its volumes
//! are its own inputs' data).

use tonic::{Request, Response, Status, Streaming};

use super::{Api, BoxStream, guard};
use crate::model::volume::{Change, EntryKind};
use crate::server::binaries::Binaries;
use crate::server::volumes::{GetOrCreate, VolumeRef};
use crate::wire::pb;

fn volume_ref(r: Option<pb::VolumeRef>) -> Result<VolumeRef, Status> {
    let r = r.ok_or_else(|| Status::invalid_argument("missing volume"))?;
    if r.name.is_empty() && r.volume_id.is_empty() {
        return Err(Status::invalid_argument("a volume needs a name or an id"));
    }
    Ok(VolumeRef {
        name: r.name,
        environment: r.environment_name,
        volume_id: r.volume_id,
    })
}

impl Api {
    fn volume_files(&self) -> Result<&Binaries, Status> {
        self.volume_files.as_ref().ok_or_else(|| {
            Status::failed_precondition(
                "this control plane has no directory for volume files (see its log)",
            )
        })
    }

    pub(super) async fn volume_get_or_create(
        &self,
        req: Request<pb::VolumeGetOrCreateRequest>,
    ) -> Result<Response<pb::VolumeGetOrCreateResponse>, Status> {
        self.user(&req)?;
        let req = req.into_inner();
        let ask = GetOrCreate {
            volume: volume_ref(req.volume)?,
            create_if_missing: req.create_if_missing,
            ephemeral_app_id: req.ephemeral_app_id,
        };
        let (volume_id, version, created) = self.ask(move |s| s.volume_get_or_create(ask)).await?;
        Ok(Response::new(pb::VolumeGetOrCreateResponse {
            volume_id,
            version,
            created,
        }))
    }

    pub(super) async fn volume_list(
        &self,
        req: Request<pb::VolumeListRequest>,
    ) -> Result<Response<pb::VolumeListResponse>, Status> {
        self.user(&req)?;
        let env = req.into_inner().environment_name;
        let volumes = self.ask(move |s| Ok(s.volume_list(&env))).await?;
        Ok(Response::new(pb::VolumeListResponse {
            volumes: volumes.into_iter().map(Into::into).collect(),
        }))
    }

    pub(super) async fn volume_delete(
        &self,
        req: Request<pb::VolumeDeleteRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.user(&req)?;
        let r = volume_ref(req.into_inner().volume)?;
        self.ask(move |s| s.volume_delete(&r)).await?;
        Ok(Response::new(pb::Empty {}))
    }

    pub(super) async fn volume_manifest(
        &self,
        req: Request<pb::VolumeManifestRequest>,
    ) -> Result<Response<pb::VolumeManifestResponse>, Status> {
        let principal = guard::principal_of(&req)?;
        let r = volume_ref(req.into_inner().volume)?;
        let (volume_id, version, manifest) =
            self.ask(move |s| s.volume_manifest(&r, &principal)).await?;
        Ok(Response::new(pb::VolumeManifestResponse {
            volume_id,
            version,
            entries: manifest.into_values().map(Into::into).collect(),
        }))
    }

    pub(super) async fn volume_blob_check(
        &self,
        req: Request<pb::VolumeBlobCheckRequest>,
    ) -> Result<Response<pb::VolumeBlobCheckResponse>, Status> {
        let principal = guard::principal_of(&req)?;
        self.ask(move |s| s.check_blob_uploader(&principal)).await?;
        let missing = self.volume_files()?.missing(req.into_inner().hashes)?;
        Ok(Response::new(pb::VolumeBlobCheckResponse { missing }))
    }

    pub(super) async fn volume_blob_upload(
        &self,
        req: Request<Streaming<pb::BinaryChunk>>,
    ) -> Result<Response<pb::Empty>, Status> {
        let principal = guard::principal_of(&req)?;
        self.ask(move |s| s.check_blob_uploader(&principal)).await?;
        let (hash, size) = self.volume_files()?.receive(req.into_inner()).await?;
        tracing::debug!(%hash, size, "volume file stored");
        Ok(Response::new(pb::Empty {}))
    }

    pub(super) async fn volume_blob_download(
        &self,
        req: Request<pb::VolumeBlobDownloadRequest>,
    ) -> Result<Response<BoxStream<pb::BinaryChunk>>, Status> {
        let principal = guard::principal_of(&req)?;
        let req = req.into_inner();
        let r = volume_ref(req.volume)?;
        let hash = req.hash.clone();
        self.ask(move |s| s.volume_blob_readable(&r, &hash, &principal))
            .await?;
        let stream = self.volume_files()?.send(&req.hash).await?;
        Ok(Response::new(Box::pin(stream)))
    }

    pub(super) async fn volume_commit(
        &self,
        req: Request<pb::VolumeCommitRequest>,
    ) -> Result<Response<pb::VolumeCommitResponse>, Status> {
        let principal = guard::principal_of(&req)?;
        let req = req.into_inner();
        let r = volume_ref(req.volume)?;
        let changes: Vec<Change> = req
            .changes
            .into_iter()
            .map(|c| Change::try_from(c).map_err(Status::invalid_argument))
            .collect::<Result<_, _>>()?;
        // Every file a commit puts is stored already: a version never names a missing file.
        let files = self.volume_files()?;
        for c in &changes {
            if let Change::Put(e) = c
                && e.kind == EntryKind::File
                && !files.has_and_touch(&e.hash)
            {
                return Err(Status::failed_precondition(format!(
                    "the content of `{}` ({}) was not uploaded; upload it, then commit",
                    e.path, e.hash
                )));
            }
        }
        let version = self
            .ask(move |s| s.volume_commit(&r, changes, &principal))
            .await?;
        Ok(Response::new(pb::VolumeCommitResponse { version }))
    }
}

/// How often unused volume files are looked for.
const COLLECT_EVERY: std::time::Duration = std::time::Duration::from_secs(600);
/// How old an unused volume file must be to go: younger ones may wait for their commit.
const UNUSED_FOR: std::time::Duration = std::time::Duration::from_secs(3600);

impl Api {
    /// Removes, every few minutes, the volume files that no volume's latest version uses and
    /// that are older than an hour (a deleted volume's, a replaced file's). Ends with the
    /// control plane.
    pub(crate) async fn collect_volume_files(self) {
        let Some(files) = self.volume_files.clone() else {
            return;
        };
        loop {
            tokio::time::sleep(COLLECT_EVERY).await;
            let Ok(in_use) = self.ask(|s| Ok(s.volume_blobs_in_use())).await else {
                return;
            };
            let dir = files.dir().to_path_buf();
            let removed = tokio::task::spawn_blocking(move || {
                let mut removed = 0usize;
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    return removed;
                };
                for e in entries.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let old = e
                        .metadata()
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > UNUSED_FOR);
                    if old && !in_use.contains(&name) && std::fs::remove_file(e.path()).is_ok() {
                        removed += 1;
                    }
                }
                removed
            })
            .await
            .unwrap_or(0);
            if removed > 0 {
                tracing::info!(removed, "unused volume files removed");
            }
        }
    }
}
