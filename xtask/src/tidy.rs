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
/// The places that may name protobuf messages (`pb::`), and why: the wire edge and the code
/// that speaks gRPC. Everything else uses the runtime's own types (`model/`).
const PB_EDGES: &[(&str, &str)] = &[
    ("modal-runtime/src/wire/", "the conversions themselves"),
    (
        "modal-runtime/src/server/api/",
        "the control plane's gRPC handlers",
    ),
    (
        "modal-runtime/src/server/mod.rs",
        "builds the gRPC services",
    ),
    (
        "modal-runtime/src/server/binaries.rs",
        "streams executables in chunks",
    ),
    (
        "modal-runtime/src/container/mod.rs",
        "the container's stream",
    ),
    (
        "modal-runtime/src/container/payloads.rs",
        "uploads and downloads a container's payloads",
    ),
    ("modal-runtime/src/worker/mod.rs", "the worker's stream"),
    (
        "modal-runtime/src/worker/binaries.rs",
        "downloads executables",
    ),
    (
        "modal-runtime/src/client/",
        "the client is a gRPC stub: its requests and responses",
    ),
    (
        "modal-runtime/src/cli/command/admin.rs",
        "prints the admin responses",
    ),
    (
        "modal-runtime/src/cli/command/volume.rs",
        "prints the volume responses",
    ),
    (
        "modal-runtime/src/cli/command/image.rs",
        "prints the image responses",
    ),
    (
        "modal-runtime/src/cli/command/workers.rs",
        "prints the worker listing",
    ),
    (
        "modal-runtime/src/cli/command/function.rs",
        "prints a function's stats",
    ),
    (
        "modal-runtime/src/container/volumes.rs",
        "syncs the container's volumes through the client API",
    ),
];
/// The control plane's state transitions: they read the clock the event loop gives them
/// (`State::clock`), never the system's, so that table tests drive time.
const CLOCK_FREE: &[&str] = &[
    "modal-runtime/src/server/apps.rs",
    "modal-runtime/src/server/calls.rs",
    "modal-runtime/src/server/containers.rs",
    "modal-runtime/src/server/dashboard/data.rs",
    "modal-runtime/src/server/deploy.rs",
    "modal-runtime/src/server/dispatch.rs",
    "modal-runtime/src/server/objects.rs",
    "modal-runtime/src/server/pilots/view.rs",
    "modal-runtime/src/server/restore.rs",
    "modal-runtime/src/server/retry.rs",
    "modal-runtime/src/server/scheduler.rs",
    "modal-runtime/src/server/schedules.rs",
    "modal-runtime/src/server/variants.rs",
    "modal-runtime/src/server/volumes.rs",
    "modal-runtime/src/server/tuning.rs",
    "modal-runtime/src/server/workers.rs",
];
const CLOCK_READS: &[&str] = &["Instant::now(", "Utc::now(", "SystemTime::now("];

/// The lines of `text` that are code (comment lines dropped).
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .map(|(i, l)| (i + 1, l))
}

/// Problems with where a runtime file names protobuf messages or reads the clock.
fn edge_problems(rel: &str, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    if rel.starts_with("modal-runtime/src")
        && !PB_EDGES.iter().any(|(p, _)| rel.starts_with(p))
        && let Some((n, _)) = code_lines(text).find(|(_, l)| l.contains("pb::"))
    {
        out.push(format!(
            "{rel}:{n}: names a protobuf message (`pb::`) outside the edges; use the runtime's own types (model/) and convert in wire/"
        ));
    }
    if CLOCK_FREE.contains(&rel) {
        for (n, l) in code_lines(text) {
            if let Some(read) = CLOCK_READS.iter().find(|c| l.contains(*c)) {
                out.push(format!(
                    "{rel}:{n}: reads the system clock (`{read}`) in a state transition; use `self.clock`"
                ));
            }
        }
    }
    out
}

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
        problems.extend(edge_problems(&rel, &text));
        let lines = text.lines().count();
        if lines > LONG_FILE {
            eprintln!("tidy: note: {rel} has {lines} lines (over {LONG_FILE})");
        }
    }
    if files.is_empty() {
        bail!("tidy found no source files under {}", root.display());
    }
    problems.extend(crate::proto::check(root)?);
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
    use super::edge_problems;

    #[test]
    fn protobuf_outside_the_edges_and_clock_reads_in_transitions_are_named() {
        let p = edge_problems(
            "modal-runtime/src/server/calls.rs",
            "use crate::wire::pb;\nfn f() { let x = pb::CallResult::default(); let t = Instant::now(); }",
        );
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].contains("calls.rs:2: names a protobuf message"),
            "{p:?}"
        );
        assert!(
            p[1].contains("reads the system clock (`Instant::now(`)"),
            "{p:?}"
        );
        let edge = edge_problems(
            "modal-runtime/src/server/api/client.rs",
            "fn f() -> pb::Empty {}",
        );
        assert!(edge.is_empty(), "{edge:?}");
        let comment = edge_problems(
            "modal-runtime/src/model/call.rs",
            "/// like `pb::CallResult`",
        );
        assert!(comment.is_empty(), "{comment:?}");
    }

    #[test]
    fn the_repository_is_tidy() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf();
        super::check(&root).unwrap();
    }
}
