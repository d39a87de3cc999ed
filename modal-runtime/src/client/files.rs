//! Files sent to the control plane by content digest: hashed here, asked about in batches, and
//! sent only when it lacks them (volume files and the files images copy in).

use std::path::PathBuf;

use super::Api;
use crate::error::{Error, Result};
use crate::wire::{self, pb};

/// Which of the control plane's file stores.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Store {
    /// Volume files (the `modal volume` commands).
    #[cfg_attr(not(feature = "cli"), allow(dead_code))]
    Volume,
    /// Files images copy in.
    Image,
}

/// Hashes `paths`, sends the files the control plane lacks to `store`: their digests, in order.
pub(crate) async fn upload(api: &Api, store: Store, paths: &[PathBuf]) -> Result<Vec<String>> {
    let mut hashes = Vec::with_capacity(paths.len());
    for path in paths.iter().cloned() {
        let hash = crate::binhash::content_hash_off_thread(path)
            .await
            .map_err(Error::Invalid)?;
        hashes.push(hash);
    }
    let mut by_hash: std::collections::HashMap<String, PathBuf> = std::collections::HashMap::new();
    for (hash, path) in hashes.iter().zip(paths) {
        by_hash.entry(hash.clone()).or_insert_with(|| path.clone());
    }
    let distinct: Vec<String> = by_hash.keys().cloned().collect();
    let mut api = api.clone();
    for batch in distinct.chunks(wire::DIGEST_CHECK_BATCH) {
        let request = pb::VolumeBlobCheckRequest {
            hashes: batch.to_vec(),
        };
        let missing = match store {
            Store::Volume => api.volume_blob_check(request).await?,
            Store::Image => api.image_file_check(request).await?,
        }
        .into_inner()
        .missing;
        for hash in missing {
            let Some(path) = by_hash.get(&hash) else {
                continue;
            };
            let (chunks, check) = wire::open_upload(path, &hash).await?;
            check.result(match store {
                Store::Volume => api.volume_blob_upload(chunks).await,
                Store::Image => api.image_file_upload(chunks).await,
            })?;
        }
    }
    Ok(hashes)
}
