//! Content-addressed files: one file per blake3 hash in a directory. Uploaded executables (so a
//! deployment keeps working after the local build directory changes) and the files of volumes.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use futures::{Stream, StreamExt};
use tonic::Status;

use crate::wire::{self, pb};

#[derive(Clone)]
pub(crate) struct Binaries {
    dir: PathBuf,
    /// Permission bits of the stored files.
    mode: u32,
    /// What the files are, for messages.
    what: &'static str,
}

fn valid_hash(hash: &str) -> Result<(), Status> {
    if crate::binhash::is_digest(hash) {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "`{hash}` is not a blake3 hash"
        )))
    }
}

impl Binaries {
    /// The executables in `dir`.
    #[cfg(feature = "server")]
    pub(crate) fn new(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Binaries {
            dir,
            mode: 0o755,
            what: "binary",
        })
    }

    /// Data files (`what`: volume files, image files) in `dir`, readable by the control plane's
    /// user alone.
    pub(crate) fn private_files(dir: PathBuf, what: &'static str) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        Ok(Binaries {
            dir,
            mode: 0o600,
            what,
        })
    }

    pub(crate) fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    pub(crate) fn path(&self, hash: &str) -> Result<PathBuf, Status> {
        valid_hash(hash)?;
        Ok(self.dir.join(hash))
    }

    pub(crate) fn has(&self, hash: &str) -> bool {
        self.path(hash).is_ok_and(|p| p.is_file())
    }

    /// Of `hashes`, those not stored; those stored are marked used now (a file about to be
    /// named by a commit is not collected meanwhile).
    pub(crate) fn missing(&self, hashes: Vec<String>) -> Result<Vec<String>, Status> {
        let mut missing = Vec::new();
        for hash in hashes {
            self.path(&hash)?;
            if !self.has_and_touch(&hash) {
                missing.push(hash);
            }
        }
        Ok(missing)
    }

    /// Whether the file is stored, marking it used now (collection spares recent files).
    pub(crate) fn has_and_touch(&self, hash: &str) -> bool {
        let Ok(path) = self.path(hash) else {
            return false;
        };
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()))
            .is_ok()
    }

    /// Stores an upload; its content must hash to the hash announced in the first chunk.
    pub(crate) async fn receive(
        &self,
        mut chunks: impl Stream<Item = Result<pb::BinaryChunk, Status>> + Unpin,
    ) -> Result<(String, u64), Status> {
        let first = chunks
            .next()
            .await
            .ok_or_else(|| Status::invalid_argument("empty upload"))??;
        let hash = first.hash.clone();
        let target = self.path(&hash)?;
        let tmp = self.dir.join(format!(".upload-{}", crate::ids::new_id("")));
        let mut file = std::fs::File::create(&tmp)
            .map_err(|e| Status::internal(format!("cannot store the upload: {e}")))?;
        let mut hasher = blake3::Hasher::new();
        let mut size = 0u64;
        let mut write = |data: &[u8]| -> Result<(), Status> {
            hasher.update(data);
            size += data.len() as u64;
            file.write_all(data)
                .map_err(|e| Status::internal(format!("cannot store the upload: {e}")))
        };
        write(&first.data)?;
        while let Some(chunk) = chunks.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e);
                }
            };
            if let Err(e) = write(&chunk.data) {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        }
        let got = hasher.finalize().to_hex().to_string();
        if got != hash {
            let _ = std::fs::remove_file(&tmp);
            return Err(Status::invalid_argument(format!(
                "the upload hashes to {got}, not {hash}"
            )));
        }
        let finish = file
            .sync_all()
            .and_then(|()| {
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(self.mode))
            })
            .and_then(|()| std::fs::rename(&tmp, &target));
        if let Err(e) = finish {
            let _ = std::fs::remove_file(&tmp);
            return Err(Status::internal(format!("cannot store the upload: {e}")));
        }
        Ok((hash, size))
    }

    /// The file with `hash`, in chunks.
    pub(crate) async fn send(
        &self,
        hash: &str,
    ) -> Result<impl Stream<Item = Result<pb::BinaryChunk, Status>> + Send + use<>, Status> {
        let path = self.path(hash)?;
        let what = self.what;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|_| Status::not_found(format!("no {what} {hash} on this control plane")))?;
        Ok(wire::file_chunks(file, hash.to_owned())
            .map(move |c| c.map_err(|e| Status::internal(format!("cannot read the {what}: {e}")))))
    }
}
