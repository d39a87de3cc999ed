//! The images of an app, before it starts: local files hashed and uploaded (once per digest),
//! each distinct image built by the control plane with its output streamed to the terminal,
//! and each definition given its built image. A failed build stops the start with the step,
//! its message and its last output.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
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
use crate::wire::pb;

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
    // What this program needs of an image's glibc: read from the executable once, if needed.
    let mut glibc: Option<String> = None;
    for (reg, def) in definitions.iter_mut() {
        let spec = (reg.spec)();
        let Some(image) = image_of(app, &spec) else {
            continue;
        };
        if let Some((_, r)) = built.iter().find(|(i, _)| i == image) {
            def.image = Some(r.clone());
            continue;
        }
        let glibc = match &glibc {
            Some(g) => g.clone(),
            None => {
                let exe = std::env::current_exe().map_err(|e| {
                    Error::Invalid(format!("cannot find this program's executable: {e}"))
                })?;
                let g = crate::images::glibc::needed_by(&exe).map_err(Error::Invalid)?;
                glibc.insert(g).clone()
            }
        };
        let r = build(client, image, glibc, output)
            .await
            .map_err(|e| match e {
                Error::Invalid(m) => Error::Invalid(format!("function `{}`: {m}", def.tag)),
                other => other,
            })?;
        def.image = Some(r.clone());
        built.push((image.clone(), r));
    }
    Ok(())
}

/// Local files sent to the control plane's image file store: each one's digest and permission
/// bits.
async fn upload(client: &Client, paths: &[PathBuf]) -> Result<Vec<(String, u32)>> {
    let hashes = super::files::upload(&client.api, super::files::Store::Image, paths).await?;
    paths
        .iter()
        .zip(hashes)
        .map(|(path, hash)| {
            let meta = std::fs::metadata(path)
                .map_err(|e| Error::Invalid(format!("image file {}: {e}", path.display())))?;
            Ok((hash, meta.permissions().mode() & 0o7777))
        })
        .collect()
}

/// The definition the control plane builds: local files by digest (uploaded), the glibc this
/// program needs.
async fn spec_of(client: &Client, image: &Image, glibc_needed: String) -> Result<ImageSpec> {
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
                for (hash, _) in upload(client, &archive.layers).await? {
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
                let uploaded = upload(client, std::slice::from_ref(local)).await?;
                let Some((hash, mode)) = uploaded.into_iter().next() else {
                    continue;
                };
                Step::AddFile {
                    remote: absolute(remote)?,
                    hash,
                    mode,
                }
            }
            ImageStep::LocalDir { local, remote } => {
                let below = crate::paths::files_below(local).map_err(|e| {
                    Error::Invalid(format!("image directory {}: {e}", local.display()))
                })?;
                let paths: Vec<PathBuf> = below.iter().map(|(_, p)| p.clone()).collect();
                let uploaded = upload(client, &paths).await?;
                let files = below
                    .into_iter()
                    .zip(uploaded)
                    .map(|((rel, _), (hash, mode))| (rel, hash, mode))
                    .collect();
                Step::AddDir {
                    remote: absolute(remote)?,
                    files,
                }
            }
        };
        steps.push(next);
    }
    Ok(ImageSpec {
        steps,
        glibc_needed,
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
async fn build(
    client: &Client,
    image: &Image,
    glibc_needed: String,
    output: &Output,
) -> Result<ImageRef> {
    let spec = spec_of(client, image, glibc_needed).await?;
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
                let failure = crate::images::build::BuildFailure {
                    step: f.step,
                    message: f.message,
                    output: f.output,
                };
                return Err(Error::Invalid(failure.to_string()));
            }
            None => {}
        }
    }
    Err(Error::ControlPlane(
        "the image build ended without a result".into(),
    ))
}
