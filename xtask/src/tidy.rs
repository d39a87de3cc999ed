//! Repository rules checked in CI: module docs, where the protocol types may be named, and
//! file sizes.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// Source trees whose `.rs` files must open with a `//!` line.
const SOURCE_DIRS: &[&str] = &[
    "modal-runtime/src",
    "modal-macros/src",
    "modal-proto/src",
    "xtask/src",
    "examples",
    "tests/src",
];
/// Files longer than this need a reason: they are listed so that a reviewer sees them.
const LONG_FILE: usize = 600;
/// The only module that names the generated protocol crate.
const PROTO_GATE: &str = "modal-runtime/src/wire/mod.rs";

pub(crate) fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

pub(crate) fn check(root: &Path) -> Result<()> {
    let mut problems = Vec::new();
    let mut files = Vec::new();
    for d in SOURCE_DIRS {
        rust_files(&root.join(d), &mut files);
    }
    for f in &files {
        let rel = f
            .strip_prefix(root)
            .unwrap_or(f)
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(f)?;
        if !text.trim_start().starts_with("//!") {
            problems.push(format!(
                "{rel}: does not open with a `//!` line saying what it owns"
            ));
        }
        if rel.starts_with("modal-runtime/src") && rel != PROTO_GATE && text.contains("modal_proto")
        {
            problems.push(format!(
                "{rel}: names `modal_proto`; use `crate::wire::pb` (only {PROTO_GATE} imports it)"
            ));
        }
        let lines = text.lines().count();
        if lines > LONG_FILE {
            eprintln!("tidy: note: {rel} has {lines} lines (over {LONG_FILE})");
        }
    }
    if files.is_empty() {
        bail!("tidy found no source files under {}", root.display());
    }
    let runtime = crate::layers::read_sources(&root.join("modal-runtime/src"))?;
    problems.extend(
        crate::layers::problems(&runtime)?
            .into_iter()
            .map(|p| format!("modal-runtime/src/{p}")),
    );
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("tidy:\n  {}", problems.join("\n  "))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_repository_is_tidy() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf();
        super::check(&root).unwrap();
    }
}
