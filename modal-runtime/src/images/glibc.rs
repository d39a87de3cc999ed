//! Whether a program can run in an image: the newest glibc symbol version the program needs
//! (the `GLIBC_2.x` names in its executable) against the one the image's `libc.so.6` defines.

use std::path::Path;

use super::store::Store;

/// The newest `GLIBC_x.y[.z]` version named in `bytes`.
fn newest(bytes: &[u8]) -> Option<String> {
    const TAG: &[u8] = b"GLIBC_";
    let mut best: Option<(Vec<u32>, String)> = None;
    let mut i = 0;
    while let Some(at) = bytes[i..].windows(TAG.len()).position(|w| w == TAG) {
        let start = i + at + TAG.len();
        let end = bytes[start..]
            .iter()
            .position(|b| !(b.is_ascii_digit() || *b == b'.'))
            .map_or(bytes.len(), |n| start + n);
        let text = String::from_utf8_lossy(&bytes[start..end])
            .trim_end_matches('.')
            .to_owned();
        let parts: Vec<u32> = text.split('.').filter_map(|p| p.parse().ok()).collect();
        if parts.len() >= 2 && best.as_ref().is_none_or(|(b, _)| parts > *b) {
            best = Some((parts, text));
        }
        i = end.max(start);
    }
    best.map(|(_, t)| t)
}

/// The newest glibc version this program needs (empty when it names none, as a static one).
pub(crate) fn needed_by(exe: &Path) -> Result<String, String> {
    let bytes = std::fs::read(exe).map_err(|e| format!("cannot read {}: {e}", exe.display()))?;
    Ok(newest(&bytes).unwrap_or_default())
}

/// The glibc version of an image (its layers bottom first).
pub(crate) fn image_version(store: &Store, layers: &[String]) -> Result<String, String> {
    const PLACES: [&str; 4] = [
        "usr/lib/x86_64-linux-gnu/libc.so.6",
        "lib/x86_64-linux-gnu/libc.so.6",
        "usr/lib/aarch64-linux-gnu/libc.so.6",
        "lib/aarch64-linux-gnu/libc.so.6",
    ];
    for digest in layers.iter().rev() {
        for place in PLACES {
            let Ok(mut path) = crate::paths::inside(&store.layer(digest), place) else {
                continue;
            };
            // Before glibc 2.34, `libc.so.6` is a link to `libc-2.NN.so` beside it.
            if let Ok(target) = std::fs::read_link(&path)
                && target.components().count() == 1
            {
                path.set_file_name(target);
            }
            if path.symlink_metadata().is_ok_and(|m| m.is_file()) {
                let bytes = std::fs::read(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                return newest(&bytes)
                    .ok_or_else(|| format!("{} names no glibc version", path.display()));
            }
        }
    }
    Err("the image has no glibc (libc.so.6); a program built against glibc cannot run in it".into())
}

/// Whether glibc `have` provides what a program needing `needed` uses.
pub(crate) fn satisfies(have: &str, needed: &str) -> bool {
    let parse = |v: &str| -> Vec<u32> { v.split('.').filter_map(|p| p.parse().ok()).collect() };
    parse(have) >= parse(needed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_version_named_wins() {
        let bytes = b"\0GLIBC_2.2.5\0GLIBC_2.34\0GLIBC_PRIVATE\0GLIBC_2.3\0GLIBC_2.9";
        assert_eq!(newest(bytes).as_deref(), Some("2.34"));
        assert_eq!(newest(b"nothing here"), None);
        assert!(satisfies("2.36", "2.34"));
        assert!(!satisfies("2.31", "2.34"));
        assert!(satisfies("2.34", "2.34"));
        assert!(satisfies("2.4", "2.3.4"));
    }
}
