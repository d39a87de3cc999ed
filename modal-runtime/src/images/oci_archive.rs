//! Reading an image archive made elsewhere: a `docker save` tarball or an OCI image layout (a
//! directory, or a tarball of one), possibly gzip-compressed. What comes out is the image's
//! layers (tar files, each maybe gzip-compressed, bottom first) and its configured environment
//! and working directory; the archive's own layer digests are not trusted (files are named by
//! their blake3 digests when uploaded).

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// An archive's image, read.
#[derive(Debug)]
pub(crate) struct Archive {
    /// Layer files, bottom first.
    pub(crate) layers: Vec<PathBuf>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) workdir: String,
    /// Where a tarball was unpacked (removed with this value).
    unpacked: Option<PathBuf>,
}

impl Drop for Archive {
    fn drop(&mut self) {
        if let Some(dir) = self.unpacked.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[derive(Deserialize)]
struct DockerManifest {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
}

#[derive(Deserialize)]
struct OciIndex {
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct OciManifest {
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Deserialize, Default)]
struct ImageConfig {
    #[serde(default)]
    config: Option<RunConfig>,
}

#[derive(Deserialize, Default)]
struct RunConfig {
    #[serde(rename = "Env", default)]
    env: Option<Vec<String>>,
    #[serde(rename = "WorkingDir", default)]
    working_dir: Option<String>,
}

/// Whether a file starts with gzip's magic bytes.
pub(crate) fn is_gzip(path: &Path) -> bool {
    let mut magic = [0u8; 2];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == [0x1f, 0x8b]
}

/// A reader of the file, decompressed when it is gzip.
pub(crate) fn open_maybe_gzip(path: &Path) -> Result<Box<dyn Read>, String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(if is_gzip(path) {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    })
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{} is malformed: {e}", path.display()))
}

/// The blob of an OCI layout named by `digest` (`sha256:…`).
fn blob(dir: &Path, digest: &str) -> Result<PathBuf, String> {
    let (algorithm, hex) = digest
        .split_once(':')
        .ok_or_else(|| format!("`{digest}` is not a digest"))?;
    if !hex.chars().all(|c| c.is_ascii_hexdigit()) || algorithm.contains('/') {
        return Err(format!("`{digest}` is not a digest"));
    }
    Ok(dir.join("blobs").join(algorithm).join(hex))
}

/// Opens the archive at `path` (a tarball or an OCI layout directory).
pub(crate) fn open(path: &Path) -> Result<Archive, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("image archive {}: {e}", path.display()))?;
    if meta.is_dir() {
        return read_dir(path, None);
    }
    let dir = std::env::temp_dir().join(format!("modal-archive-{}", crate::ids::new_id("")));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    let unpacked = open_maybe_gzip(path).and_then(|r| {
        tar::Archive::new(r)
            .unpack(&dir)
            .map_err(|e| format!("{} is not a tar archive: {e}", path.display()))
    });
    if let Err(e) = unpacked {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e);
    }
    read_dir(&dir, Some(dir.clone()))
}

fn read_dir(dir: &Path, unpacked: Option<PathBuf>) -> Result<Archive, String> {
    let mut archive = Archive {
        layers: Vec::new(),
        env: Vec::new(),
        workdir: String::new(),
        unpacked,
    };
    let config_path;
    if dir.join("manifest.json").is_file() {
        // `docker save`: the first image of the archive.
        let manifests: Vec<DockerManifest> = read_json(&dir.join("manifest.json"))?;
        let m = manifests
            .into_iter()
            .next()
            .ok_or("manifest.json names no image")?;
        for layer in &m.layers {
            archive.layers.push(inside(dir, layer)?);
        }
        config_path = inside(dir, &m.config)?;
    } else if dir.join("index.json").is_file() {
        // An OCI image layout: the first manifest (through a nested index if there is one).
        let mut index: OciIndex = read_json(&dir.join("index.json"))?;
        let manifest = loop {
            let first = index
                .manifests
                .into_iter()
                .next()
                .ok_or("index.json names no manifest")?;
            if first.media_type.contains("index") {
                index = read_json(&blob(dir, &first.digest)?)?;
                continue;
            }
            break read_json::<OciManifest>(&blob(dir, &first.digest)?)?;
        };
        for layer in &manifest.layers {
            if layer.media_type.contains("zstd") {
                return Err(format!(
                    "layer {} is zstd-compressed; only tar and gzip layers can be read",
                    layer.digest
                ));
            }
            archive.layers.push(blob(dir, &layer.digest)?);
        }
        config_path = blob(dir, &manifest.config.digest)?;
    } else {
        return Err(
            "not an image archive: it has neither manifest.json (docker save) nor index.json (OCI layout)"
                .into(),
        );
    }
    let config: ImageConfig = read_json(&config_path)?;
    if let Some(run) = config.config {
        for kv in run.env.unwrap_or_default() {
            if let Some((k, v)) = kv.split_once('=') {
                archive.env.push((k.to_owned(), v.to_owned()));
            }
        }
        archive.workdir = run.working_dir.unwrap_or_default();
    }
    if archive.layers.is_empty() {
        return Err("the image has no layers".into());
    }
    Ok(archive)
}

/// A path the archive names, inside its directory (through no link of the unpacked archive).
fn inside(dir: &Path, name: &str) -> Result<PathBuf, String> {
    crate::paths::inside(dir, name).map_err(|e| format!("the archive names `{name}`: {e}"))
}

/// Unpacks a layer (a tar, maybe gzip-compressed) into `to` as an overlayfs layer: an OCI
/// whiteout `.wh.NAME` becomes overlayfs' whiteout for NAME (a 0/0 character device), and
/// `.wh..wh..opq` marks its directory opaque.
pub(crate) fn unpack_layer(layer: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("cannot make {}: {e}", to.display()))?;
    let mut archive = tar::Archive::new(open_maybe_gzip(layer)?);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_unpack_xattrs(false);
    let entries = archive
        .entries()
        .map_err(|e| format!("layer {}: {e}", layer.display()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("layer {}: {e}", layer.display()))?;
        let path = entry
            .path()
            .map_err(|e| format!("layer {}: {e}", layer.display()))?
            .into_owned();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(hidden) = name.strip_prefix(".wh.") {
            // Its directory, inside the layer whatever the entry says (`..`, an absolute path,
            // a link made by an earlier entry).
            let within = path
                .parent()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            let parent = crate::paths::make_dir_inside(to, &within)
                .map_err(|e| format!("layer {}: {e}", layer.display()))?;
            if hidden == ".wh..opq" {
                xattr::set(&parent, "trusted.overlay.opaque", b"y")
                    .map_err(|e| format!("cannot mark {} opaque: {e}", parent.display()))?;
            } else {
                if hidden.is_empty() || hidden == ".." || hidden == "." {
                    return Err(format!(
                        "layer {} has a malformed whiteout `{}`",
                        layer.display(),
                        path.display()
                    ));
                }
                let target = parent.join(hidden);
                if std::fs::symlink_metadata(&target).is_ok() {
                    return Err(format!(
                        "layer {} has both `{}` and its whiteout",
                        layer.display(),
                        target.display()
                    ));
                }
                nix::sys::stat::mknod(
                    &target,
                    nix::sys::stat::SFlag::S_IFCHR,
                    nix::sys::stat::Mode::empty(),
                    0,
                )
                .map_err(|e| format!("cannot make the whiteout {}: {e}", target.display()))?;
            }
            continue;
        }
        entry.unpack_in(to).map_err(|e| {
            format!(
                "layer {}: {}: {}",
                layer.display(),
                path.display(),
                crate::error::with_causes(&e)
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-layer OCI layout with a gzip-compressed layer holding `hello.txt`.
    fn layout(dir: &Path) {
        let mut tar_bytes = Vec::new();
        {
            let mut b = tar::Builder::new(&mut tar_bytes);
            let mut h = tar::Header::new_gnu();
            h.set_size(3);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_cksum();
            b.append_data(&mut h, "hello.txt", &b"hi\n"[..]).unwrap();
            b.finish().unwrap();
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar_bytes).unwrap();
        let layer = gz.finish().unwrap();
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        std::fs::write(blobs.join("aa11"), layer).unwrap();
        std::fs::write(
            blobs.join("cc33"),
            r#"{"config": {"Env": ["A=1", "B=x=y"], "WorkingDir": "/app"}}"#,
        )
        .unwrap();
        std::fs::write(
            blobs.join("bb22"),
            r#"{"config": {"digest": "sha256:cc33"}, "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:aa11"}]}"#,
        )
        .unwrap();
        std::fs::write(
            dir.join("index.json"),
            r#"{"manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:bb22"}]}"#,
        )
        .unwrap();
    }

    #[test]
    fn an_oci_layout_gives_its_layers_environment_and_workdir() {
        let dir = std::env::temp_dir().join(format!("modal-oci-test-{}", crate::ids::new_id("")));
        layout(&dir);
        let archive = open(&dir).unwrap();
        assert_eq!(archive.layers, [dir.join("blobs/sha256/aa11")]);
        assert!(is_gzip(&archive.layers[0]));
        assert_eq!(
            archive.env,
            [("A".into(), "1".into()), ("B".into(), "x=y".into())]
        );
        assert_eq!(archive.workdir, "/app");
        let out = dir.join("unpacked");
        unpack_layer(&archive.layers[0], &out).unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join("hello.txt")).unwrap(),
            "hi\n"
        );
        drop(archive);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn what_is_not_an_image_archive_says_so() {
        let dir = std::env::temp_dir().join(format!("modal-oci-test-{}", crate::ids::new_id("")));
        std::fs::create_dir_all(&dir).unwrap();
        let err = open(&dir).unwrap_err();
        assert!(err.contains("neither manifest.json"), "{err}");
        assert!(
            open(&dir.join("missing.tar"))
                .unwrap_err()
                .contains("missing.tar")
        );
        std::fs::write(
            dir.join("index.json"),
            r#"{"manifests": [{"digest": "sha256:../../etc"}]}"#,
        )
        .unwrap();
        assert!(open(&dir).unwrap_err().contains("is not a digest"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
