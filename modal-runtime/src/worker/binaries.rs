//! Which executable a container runs: the registered path when it still holds the registered
//! content, else a cached copy by hash, else one downloaded from the control plane.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use super::WorkerClient;
use crate::model::FunctionDef;
use crate::wire::pb;

pub(crate) struct Resolver {
    /// Always run this executable (`MODAL_WORKER_CONTAINER_EXE`).
    exe_override: Option<PathBuf>,
    cache: PathBuf,
    client: WorkerClient,
    /// One download at a time (many containers of a new deploy start together).
    downloading: Mutex<()>,
}

/// An executable a container runs.
pub(crate) struct Resolved {
    pub(crate) path: PathBuf,
    /// Its digest, when known without reading it again.
    pub(crate) hash: Option<String>,
}

impl Resolver {
    pub(crate) fn new(exe_override: Option<PathBuf>, cache: PathBuf, client: WorkerClient) -> Self {
        Resolver {
            exe_override,
            cache,
            client,
            downloading: Mutex::new(()),
        }
    }

    /// The executable for `def`'s containers, with its digest when this knows it (it checked
    /// or downloaded the file by it; an override is not checked).
    pub(crate) async fn resolve(&self, def: &FunctionDef) -> Result<Resolved, String> {
        if let Some(exe) = &self.exe_override {
            return Ok(Resolved {
                path: exe.clone(),
                hash: None,
            });
        }
        let known = |path: PathBuf| Resolved {
            path,
            hash: Some(def.binary_hash.clone()),
        };
        let registered = PathBuf::from(&def.binary_path);
        if registered.is_file()
            && crate::binhash::file_hash(&registered).is_ok_and(|h| h == def.binary_hash)
        {
            return Ok(known(registered));
        }
        let hash = &def.binary_hash;
        if !crate::binhash::is_digest(hash) {
            return Err(format!("`{hash}` is not a binary hash"));
        }
        let cached = self.cache.join(hash);
        if cached.is_file() {
            return Ok(known(cached));
        }
        let _one = self.downloading.lock().await;
        if cached.is_file() {
            return Ok(known(cached));
        }
        self.download(hash, &cached).await?;
        Ok(known(cached))
    }

    async fn download(&self, hash: &str, to: &std::path::Path) -> Result<(), String> {
        tokio::fs::create_dir_all(&self.cache)
            .await
            .map_err(|e| format!("cannot create {}: {e}", self.cache.display()))?;
        let mut client = self.client.clone();
        let mut chunks = client
            .binary_download(pb::BinaryDownloadRequest {
                hash: hash.to_owned(),
            })
            .await
            .map_err(|s| format!("cannot download binary {hash}: {}", s.message()))?
            .into_inner();
        let tmp = to.with_extension(format!("part{}", std::process::id()));
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
        let mut hasher = blake3::Hasher::new();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|s| format!("downloading binary {hash}: {}", s.message()))?;
            hasher.update(&chunk.data);
            file.write_all(&chunk.data)
                .await
                .map_err(|e| format!("{}: {e}", tmp.display()))?;
        }
        file.sync_all()
            .await
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
        drop(file);
        if hasher.finalize().to_hex().as_str() != hash {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(format!("the downloaded binary does not hash to {hash}"));
        }
        tokio::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
            .await
            .and(tokio::fs::rename(&tmp, to).await)
            .map_err(|e| format!("{}: {e}", to.display()))?;
        tracing::info!(%hash, "binary downloaded");
        Ok(())
    }
}
