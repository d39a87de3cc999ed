//! Content digests (blake3): the executable's, cached by file metadata so that starting an app
//! or a container does not re-read a large binary every time; and any file's, uncached (volume
//! and image files, whose rewrites may keep their metadata).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Digest of the running executable, computed once per process.
pub(crate) fn current_exe_hash() -> Result<&'static str, String> {
    static HASH: OnceLock<Result<String, String>> = OnceLock::new();
    HASH.get_or_init(|| {
        let exe =
            std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
        file_hash(&exe)
    })
    .as_deref()
    .map_err(Clone::clone)
}

/// Digest of `path`, from the cache when the file's identity and mtime are unchanged.
pub(crate) fn file_hash(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let key = format!(
        "{}:{}:{}:{}:{}",
        path.display(),
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime_nsec() + meta.mtime() * 1_000_000_000
    );
    let cache_file = cache_home()
        .map(|d| d.join("modal-rs").join("binhash"))
        .map(|d| d.join(blake3::hash(key.as_bytes()).to_hex().as_str()));
    if let Some(f) = &cache_file
        && let Ok(cached) = std::fs::read_to_string(f)
        && cached.len() == 64
    {
        return Ok(cached);
    }
    let hex = content_hash(path)?;
    if let Some(f) = cache_file {
        // A cache that cannot be written only costs time on the next start.
        let _ = f.parent().map(std::fs::create_dir_all);
        let tmp = f.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, &hex).is_ok() {
            let _ = std::fs::rename(&tmp, &f);
        }
    }
    Ok(hex)
}

/// Digest of the content of `path`, read now (never from the cache).
pub(crate) fn content_hash(path: &Path) -> Result<String, String> {
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_mmap(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// [`content_hash`] on a blocking thread (for async callers).
pub(crate) async fn content_hash_off_thread(path: PathBuf) -> Result<String, String> {
    tokio::task::spawn_blocking(move || content_hash(&path))
        .await
        .map_err(|e| format!("hashing stopped: {e}"))?
}

/// Whether `s` is a digest as this module writes them (64 hex digits).
pub(crate) fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The user's cache directory (`XDG_CACHE_HOME`, else `~/.cache`).
pub(crate) fn cache_home() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_changes_with_content() {
        let dir = std::env::temp_dir().join(format!("modal-binhash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("bin");
        std::fs::write(&f, b"one").unwrap();
        let a = file_hash(&f).unwrap();
        assert_eq!(a, blake3::hash(b"one").to_hex().to_string());
        assert_eq!(file_hash(&f).unwrap(), a);
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(&f, b"two!").unwrap();
        assert_ne!(file_hash(&f).unwrap(), a);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
