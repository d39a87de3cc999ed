//! The protocol's generated code: `cargo xtask proto` compiles `modal-proto/proto` with protox
//! (no system `protoc`) into `modal-proto/generated/`, and tidy checks that the checked-in file
//! is exactly what the `.proto` generates.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The `.proto` files, relative to `modal-proto/proto`.
const FILES: &[&str] = &["modal/v1/api.proto"];
/// The generated file, relative to the repository root.
pub(crate) const GENERATED: &str = "modal-proto/generated/modal.v1.rs";

/// Generates the code into `out` and returns the path of the generated file.
fn generate(root: &Path, out: &Path) -> Result<PathBuf> {
    let include = root.join("modal-proto/proto");
    let files: Vec<PathBuf> = FILES.iter().map(|f| include.join(f)).collect();
    let descriptors = protox::compile(&files, [&include]).context("compiling the .proto files")?;
    tonic_prost_build::configure()
        .bytes(".")
        .out_dir(out)
        .compile_fds(descriptors)
        .context("generating the Rust code")?;
    Ok(out.join("modal.v1.rs"))
}

/// `cargo xtask proto`: regenerates the checked-in code.
pub(crate) fn write(root: &Path) -> Result<()> {
    let tmp = scratch()?;
    let written = generate(root, &tmp).and_then(|made| {
        std::fs::copy(&made, root.join(GENERATED)).with_context(|| format!("writing {GENERATED}"))
    });
    let _ = std::fs::remove_dir_all(&tmp);
    written.map(drop)
}

/// A problem when the checked-in code is not what the `.proto` files generate.
pub(crate) fn check(root: &Path) -> Result<Option<String>> {
    let tmp = scratch()?;
    let made = generate(root, &tmp).and_then(|f| Ok(std::fs::read_to_string(f)?));
    let _ = std::fs::remove_dir_all(&tmp);
    let made = made?;
    let kept = std::fs::read_to_string(root.join(GENERATED)).unwrap_or_default();
    Ok((made != kept).then(|| {
        format!("{GENERATED} is not what modal-proto/proto generates: run `cargo xtask proto`")
    }))
}

fn scratch() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("modal-proto-gen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
