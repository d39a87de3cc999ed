//! Content digests (blake3): the executable's, cached by file metadata so that starting an app
//! or a container does not re-read a large binary every time; and any file's, uncached (volume
//! and image files, whose rewrites may keep their metadata).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The running executable's digest, once this process knows it.
static EXE_HASH: OnceLock<Result<String, String>> = OnceLock::new();

/// Digest of the running executable, computed once per process.
pub(crate) fn current_exe_hash() -> Result<&'static str, String> {
    EXE_HASH
        .get_or_init(|| {
            let exe =
                std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
            file_hash(&exe)
        })
        .as_deref()
        .map_err(Clone::clone)
}

/// The running executable's digest when it is known without reading the file (computed by
/// this process already, or cached by an earlier one).
pub(crate) fn known_exe_hash() -> Option<String> {
    if let Some(Ok(h)) = EXE_HASH.get() {
        return Some(h.clone());
    }
    let exe = std::env::current_exe().ok()?;
    cached(&cache_file_of(&exe).ok()??)
}

/// Where the digest of `path` is cached, keyed by its identity and mtime (`None`: no cache
/// directory).
fn cache_file_of(path: &Path) -> Result<Option<PathBuf>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let key = format!(
        "{}:{}:{}:{}:{}",
        path.display(),
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime_nsec() + meta.mtime() * 1_000_000_000
    );
    Ok(cache_home()
        .map(|d| d.join("modal-rs").join("binhash"))
        .map(|d| d.join(blake3::hash(key.as_bytes()).to_hex().as_str())))
}

fn cached(cache_file: &Path) -> Option<String> {
    std::fs::read_to_string(cache_file)
        .ok()
        .filter(|c| is_digest(c))
}

/// Digest of `path`, from the cache when the file's identity and mtime are unchanged.
pub(crate) fn file_hash(path: &Path) -> Result<String, String> {
    let cache_file = cache_file_of(path)?;
    if let Some(hit) = cache_file.as_deref().and_then(cached) {
        return Ok(hit);
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
