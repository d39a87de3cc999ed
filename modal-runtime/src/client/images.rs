//! The images of an app, before it starts: local files hashed and uploaded (once per digest),
//! each distinct image built by the control plane with its output streamed to the terminal,
//! and each definition given its built image. A failed build stops the start with the step,
//! its message and its last output.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Instant;

use futures::StreamExt;

use super::Client;
use super::output::Output;
use crate::app::objects::{Image, ImageStep};
use crate::app::{App, FunctionSpec};
use crate::error::{Error, Result};
use crate::model::FunctionDef;
use crate::model::image::{ImageRef, ImageSpec, Step};
use crate::registry::FunctionRegistration;
use crate::wire::{self, pb};

/// The Debian suite of `Image::debian_slim()`.
const DEBIAN_SUITE: &str = "bookworm";

/// The image a function runs in: its own, else the app's.
fn image_of<'a>(app: &'a App, spec: &'a FunctionSpec) -> Option<&'a Image> {
    spec.image.as_ref().or(app.image.as_ref())
}

/// Builds the images of the app's functions and gives each definition its image.
pub(crate) async fn build_images(
    client: &Client,
    app: &App,
    definitions: &mut [(&'static FunctionRegistration, FunctionDef)],
    output: &Output,
) -> Result<()> {
    let mut built: Vec<(Image, ImageRef)> = Vec::new();
    for (reg, def) in definitions.iter_mut() {
        let spec = (reg.spec)();
        let Some(image) = image_of(app, &spec) else {
            continue;
        };
        if let Some((_, r)) = built.iter().find(|(i, _)| i == image) {
            def.image = Some(r.clone());
            continue;
        }
        let r = build(client, image, output).await.map_err(|e| match e {
            Error::Invalid(m) => Error::Invalid(format!("function `{}`: {m}", def.tag)),
            other => other,
        })?;
        def.image = Some(r.clone());
        built.push((image.clone(), r));
    }
    Ok(())
}

/// A local file's digest and permission bits, uploaded unless the control plane has it.
async fn upload(client: &Client, path: &Path) -> Result<(String, u32)> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::Invalid(format!("image file {}: {e}", path.display())))?;
    let owned = path.to_path_buf();
    let hash = tokio::task::spawn_blocking(move || crate::binhash::file_hash(&owned))
        .await
        .map_err(|e| Error::Other(e.to_string()))?
        .map_err(Error::Invalid)?;
    let mut api = client.api.clone();
    let missing = api
        .image_file_check(pb::VolumeBlobCheckRequest {
            hashes: vec![hash.clone()],
        })
        .await?
        .into_inner()
        .missing;
    if !missing.is_empty() {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| Error::Invalid(format!("image file {}: {e}", path.display())))?;
        let (chunks, read_error) = wire::upload_chunks(file, hash.clone());
        let sent = api.image_file_upload(chunks).await;
        if let Some(e) = wire::take_read_error(&read_error) {
            return Err(Error::Invalid(format!(
                "image file {}: {e}",
                path.display()
            )));
        }
        sent?;
    }
    Ok((hash, meta.permissions().mode() & 0o7777))
}

/// The files below `dir`, by path relative to it.
fn files_below(dir: &Path) -> Result<Vec<(String, std::path::PathBuf)>> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((d, prefix)) = stack.pop() {
        let entries = std::fs::read_dir(&d)
            .map_err(|e| Error::Invalid(format!("image directory {}: {e}", d.display())))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let path = e.path();
            if path.is_dir() {
                stack.push((path, rel));
            } else if path.is_file() {
                out.push((rel, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The definition the control plane builds: local files by digest (uploaded), the glibc this
/// program needs.
async fn spec_of(client: &Client, image: &Image) -> Result<ImageSpec> {
    let mut steps = Vec::new();
    for step in image.declared() {
        let next = match step {
            ImageStep::DebianSlim => Step::DebianSlim {
                suite: DEBIAN_SUITE.into(),
            },
            ImageStep::FromRegistry(r) => Step::FromRegistry(r.clone()),
            ImageStep::FromOciArchive(path) => {
                let owned = path.clone();
                let archive =
                    tokio::task::spawn_blocking(move || crate::images::oci_archive::open(&owned))
                        .await
                        .map_err(|e| Error::Other(e.to_string()))?
                        .map_err(|e| {
                            Error::Invalid(format!("image archive {}: {e}", path.display()))
                        })?;
                for layer in &archive.layers {
                    let (hash, _) = upload(client, layer).await?;
                    steps.push(Step::OciLayer { hash });
                }
                if !archive.env.is_empty() {
                    steps.push(Step::Env(archive.env.clone()));
                }
                if archive.workdir.is_empty() {
                    continue;
                }
                Step::Workdir(archive.workdir.clone())
            }
            ImageStep::AptInstall(p) => Step::AptInstall(p.clone()),
            ImageStep::Run(c) => Step::Run(c.clone()),
            ImageStep::Env(v) => Step::Env(v.clone()),
            ImageStep::Workdir(d) => Step::Workdir(absolute(d)?),
            ImageStep::LocalFile { local, remote } => {
                let (hash, mode) = upload(client, local).await?;
                Step::AddFile {
                    remote: absolute(remote)?,
                    hash,
                    mode,
                }
            }
            ImageStep::LocalDir { local, remote } => {
                let mut files = Vec::new();
                for (rel, path) in files_below(local)? {
                    let (hash, mode) = upload(client, &path).await?;
                    files.push((rel, hash, mode));
                }
                Step::AddDir {
                    remote: absolute(remote)?,
                    files,
                }
            }
        };
        steps.push(next);
    }
    let exe = std::env::current_exe()
        .map_err(|e| Error::Invalid(format!("cannot find this program's executable: {e}")))?;
    Ok(ImageSpec {
        steps,
        glibc_needed: crate::images::glibc::needed_by(&exe).map_err(Error::Invalid)?,
    })
}

/// A path in an image: absolute, without `..`.
fn absolute(path: &str) -> Result<String> {
    if !path.starts_with('/') || path.split('/').any(|c| c == "..") {
        return Err(Error::Invalid(format!(
            "`{path}` is not an absolute path in the image (like `/app/config.toml`)"
        )));
    }
    Ok(path.to_owned())
}

/// Builds one image, streaming its output.
async fn build(client: &Client, image: &Image, output: &Output) -> Result<ImageRef> {
    let spec = spec_of(client, image).await?;
    let started = Instant::now();
    let force = std::env::var("MODAL_FORCE_BUILD").is_ok_and(|v| v == "1" || v == "true");
    let mut events = client
        .api
        .clone()
        .image_build(pb::ImageBuildRequest {
            image: Some((&spec).into()),
            force_build: force,
        })
        .await?
        .into_inner();
    let mut printed = false;
    while let Some(event) = events.next().await {
        match event?.event {
            Some(pb::image_build_event::Event::Line(line)) => {
                printed = true;
                output.image_line(&line);
            }
            Some(pb::image_build_event::Event::Built(r)) => {
                let r = ImageRef::from(r);
                if printed {
                    output.image_built(&r.image_id, started.elapsed());
                }
                return Ok(r);
            }
            Some(pb::image_build_event::Event::Failed(f)) => {
                let mut message = format!("image step `{}` failed: {}", f.step, f.message);
                if !f.output.is_empty() {
                    message.push_str(&format!(
                        "\n    its last output:\n      {}",
                        f.output.join("\n      ")
                    ));
                }
                return Err(Error::Invalid(message));
            }
            None => {}
        }
    }
    Err(Error::ControlPlane(
        "the image build ended without a result".into(),
    ))
}
