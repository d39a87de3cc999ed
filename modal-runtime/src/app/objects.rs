//! Objects a function can depend on: images, secrets and volumes, as declarations.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A container image: a base and the build steps on top of it. Each step is a layer, built
/// once and cached by (the layer below, the step, the content of its files): changing a step
/// rebuilds it and the steps after it only.
///
/// The image is built by the control plane's machine when the app starts (the build's output
/// streams to the terminal; a failing step stops the app before anything runs), and a
/// function's containers run in it with the oci runtime (crun). The program's executable runs
/// inside: its glibc must be no newer than the image's, which the build checks. A function
/// without an `image` runs on the host's own system directories, read-only, with nothing to
/// build.
///
/// Building needs root, `mmdebstrap` (`apt-get install mmdebstrap`) and a Debian apt source on
/// the building machine; `apt_install` and `run_commands` run as root in the image being built,
/// in namespaces of their own, with the host's network. Images from a registry cannot be pulled
/// (no registry is reachable here): [`Image::from_registry`] fails the build, saying so; an
/// image saved elsewhere can be used with [`Image::from_oci_archive`].
///
/// ```
/// let image = modal::Image::debian_slim()
///     .apt_install(["jq"])
///     .env([("MODE", "fast")])
///     .workdir("/work");
/// assert_eq!(image.steps().len(), 4);
/// assert_eq!(image.steps()[1], "RUN apt-get install -y jq");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    steps: Vec<ImageStep>,
}

/// One step of an [`Image`], as declared (local files by path, read when the app starts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ImageStep {
    DebianSlim,
    FromRegistry(String),
    AptInstall(Vec<String>),
    Run(String),
    Env(Vec<(String, String)>),
    Workdir(String),
    LocalFile { local: PathBuf, remote: String },
    LocalDir { local: PathBuf, remote: String },
    FromOciArchive(PathBuf),
}

impl Image {
    /// A minimal Debian (bookworm, variant minbase), made from Debian's packages.
    pub fn debian_slim() -> Self {
        Image {
            steps: vec![ImageStep::DebianSlim],
        }
    }

    /// An image from a registry, by reference. No registry is reachable from this system: an
    /// app whose image starts here fails when it builds, saying so.
    pub fn from_registry(reference: impl Into<String>) -> Self {
        Image {
            steps: vec![ImageStep::FromRegistry(reference.into())],
        }
    }

    /// An image made elsewhere, from its archive: a `docker save` tarball, or an OCI image
    /// layout (a directory, or a tarball of one); gzip-compressed or not. Its layers become
    /// layers of this image, and its configured environment and working directory apply.
    /// Read when the app starts, on the machine that starts it.
    pub fn from_oci_archive(path: impl Into<PathBuf>) -> Self {
        Image {
            steps: vec![ImageStep::FromOciArchive(path.into())],
        }
    }

    fn with(mut self, step: ImageStep) -> Self {
        self.steps.push(step);
        self
    }

    /// Installs Debian packages (`apt-get install -y`), one layer.
    pub fn apt_install<S: Into<String>>(self, packages: impl IntoIterator<Item = S>) -> Self {
        self.with(ImageStep::AptInstall(
            packages.into_iter().map(Into::into).collect(),
        ))
    }

    /// Runs shell commands (`/bin/sh -c`) as root in the image, one layer each.
    pub fn run_commands<S: Into<String>>(mut self, commands: impl IntoIterator<Item = S>) -> Self {
        self.steps
            .extend(commands.into_iter().map(|c| ImageStep::Run(c.into())));
        self
    }

    /// Sets environment variables of the image (its containers, and the steps after this one).
    pub fn env<K: Into<String>, V: Into<String>>(
        self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.with(ImageStep::Env(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        ))
    }

    /// The working directory of the steps after this one and of the image's containers (made
    /// if missing; a container's own user may write in it).
    pub fn workdir(self, path: impl Into<String>) -> Self {
        self.with(ImageStep::Workdir(path.into()))
    }

    /// Copies a local file (read when the app starts) to `remote` in the image.
    pub fn add_local_file(self, local: impl Into<PathBuf>, remote: impl Into<String>) -> Self {
        self.with(ImageStep::LocalFile {
            local: local.into(),
            remote: remote.into(),
        })
    }

    /// Copies a local directory and everything in it (read when the app starts) to `remote`
    /// in the image.
    pub fn add_local_dir(self, local: impl Into<PathBuf>, remote: impl Into<String>) -> Self {
        self.with(ImageStep::LocalDir {
            local: local.into(),
            remote: remote.into(),
        })
    }

    /// The build steps, Dockerfile-style.
    pub fn steps(&self) -> Vec<String> {
        self.steps
            .iter()
            .map(|s| match s {
                ImageStep::DebianSlim => "FROM debian:bookworm-slim".to_owned(),
                ImageStep::FromRegistry(r) => format!("FROM {r}"),
                ImageStep::FromOciArchive(p) => format!("FROM oci-archive:{}", p.display()),
                ImageStep::AptInstall(p) => format!("RUN apt-get install -y {}", p.join(" ")),
                ImageStep::Run(c) => format!("RUN {c}"),
                ImageStep::Env(vars) => {
                    let kv: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    format!("ENV {}", kv.join(" "))
                }
                ImageStep::Workdir(d) => format!("WORKDIR {d}"),
                ImageStep::LocalFile { local, remote } | ImageStep::LocalDir { local, remote } => {
                    format!("COPY {} {remote}", local.display())
                }
            })
            .collect()
    }

    /// The steps as declared.
    pub(crate) fn declared(&self) -> &[ImageStep] {
        &self.steps
    }
}

/// A volume: files that outlive containers, mounted in the containers of the functions that
/// name it (`volumes = {"/path": VOLUME}`).
///
/// Writes inside a container are its own until it calls [`commit`](Volume::commit) (or exits
/// cleanly, which commits); other containers see them once they [`reload`](Volume::reload) or
/// start. When two containers commit the same file, the last commit wins, file by file; nothing
/// is merged inside a file. Volumes are kept by the control plane: a `modal server` keeps them
/// in its data directory across restarts; the embedded control plane of a program with no
/// server configured keeps them only while the program runs. Volumes need the `oci` container
/// runtime (crun), which mounts them; the `process` runtime refuses functions that mount one.
///
/// ```
/// let v = modal::Volume::from_name("weights").create_if_missing(true);
/// assert_eq!(v.name(), "weights");
/// // Outside a container of a function that mounts it, there is nothing to commit:
/// assert!(v.commit().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    name: String,
    create_if_missing: bool,
    ephemeral: bool,
}

/// How [`Volume::commit`] and [`Volume::reload`] reach the mounts of the container they run in:
/// the container layer submits the one implementation.
pub(crate) struct VolumeHooks {
    pub(crate) commit: fn(&str) -> Result<()>,
    pub(crate) reload: fn(&str) -> Result<()>,
}

inventory::collect!(VolumeHooks);

fn hooks() -> Result<&'static VolumeHooks> {
    inventory::iter::<VolumeHooks>()
        .next()
        .ok_or_else(|| Error::Invalid("this build cannot run containers".into()))
}

impl Volume {
    /// The volume called `name` (in the app's environment). It must exist when the app starts,
    /// unless [`create_if_missing`](Volume::create_if_missing) is set.
    pub fn from_name(name: impl Into<String>) -> Self {
        Volume {
            name: name.into(),
            create_if_missing: false,
            ephemeral: false,
        }
    }

    /// A volume of one app run: created when the app starts, deleted when it stops. `label`
    /// tells it apart from the run's other ephemeral volumes (and is what
    /// [`commit`](Volume::commit) finds it by); a deployed app cannot have one.
    ///
    /// ```
    /// let scratch = modal::Volume::ephemeral("scratch");
    /// assert!(scratch.is_ephemeral());
    /// ```
    pub fn ephemeral(label: impl Into<String>) -> Self {
        Volume {
            name: label.into(),
            create_if_missing: true,
            ephemeral: true,
        }
    }

    /// Creates the volume when it does not exist yet.
    pub fn create_if_missing(mut self, create: bool) -> Self {
        self.create_if_missing = create;
        self
    }

    /// The volume's name (an ephemeral volume's label).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the volume lasts one app run.
    pub fn is_ephemeral(&self) -> bool {
        self.ephemeral
    }

    /// Whether the app may create it.
    pub(crate) fn creates_if_missing(&self) -> bool {
        self.create_if_missing
    }

    /// Inside a container that mounts the volume: sends what this container changed under the
    /// mount as a new version of the volume, then brings the mount up to date with what other
    /// containers committed. Blocks until the control plane has the new version (call it from
    /// async code too; it runs on a thread of its own).
    ///
    /// Fails outside such a container, and when the control plane cannot be reached.
    pub fn commit(&self) -> Result<()> {
        (hooks()?.commit)(&self.name)
    }

    /// Inside a container that mounts the volume: brings the mount up to date with the latest
    /// committed version. Files this container changed and has not committed are kept.
    pub fn reload(&self) -> Result<()> {
        (hooks()?.reload)(&self.name)
    }
}

/// Environment variables injected into the containers of the functions that ask for them.
///
/// ```
/// let s = modal::Secret::from_dict([("API_KEY", Some("abc")), ("UNUSED", None)]);
/// assert_eq!(s.resolve().unwrap(), vec![("API_KEY".to_string(), "abc".to_string())]);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    source: SecretSource,
}

#[derive(Clone, PartialEq, Eq)]
enum SecretSource {
    Dict(Vec<(String, String)>),
    Named {
        name: String,
        environment_name: Option<String>,
        required_keys: Vec<String>,
    },
    LocalEnviron(Vec<String>),
    Dotenv {
        path: Option<PathBuf>,
        filename: String,
    },
}

impl std::fmt::Debug for Secret {
    // Never prints values: only where the secret comes from and its key names.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            SecretSource::Dict(kv) => f
                .debug_struct("Secret::from_dict")
                .field("keys", &kv.iter().map(|(k, _)| k).collect::<Vec<_>>())
                .finish(),
            SecretSource::Named { name, .. } => f
                .debug_struct("Secret::from_name")
                .field("name", name)
                .finish(),
            SecretSource::LocalEnviron(keys) => f
                .debug_struct("Secret::from_local_environ")
                .field("keys", keys)
                .finish(),
            SecretSource::Dotenv { filename, .. } => f
                .debug_struct("Secret::from_dotenv")
                .field("filename", filename)
                .finish(),
        }
    }
}

/// A value accepted by [`Secret::from_dict`]: a string, or an `Option` whose `None` is dropped.
pub trait SecretValue {
    /// The value, or `None` to leave the key out.
    fn into_secret_value(self) -> Option<String>;
}

impl SecretValue for &str {
    fn into_secret_value(self) -> Option<String> {
        Some(self.to_owned())
    }
}

impl SecretValue for String {
    fn into_secret_value(self) -> Option<String> {
        Some(self)
    }
}

impl<T: SecretValue> SecretValue for Option<T> {
    fn into_secret_value(self) -> Option<String> {
        self.and_then(SecretValue::into_secret_value)
    }
}

impl Secret {
    /// A secret from literal values; `None` values are dropped.
    pub fn from_dict<K: Into<String>, V: SecretValue>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let kv = pairs
            .into_iter()
            .filter_map(|(k, v)| v.into_secret_value().map(|v| (k.into(), v)))
            .collect();
        Secret {
            source: SecretSource::Dict(kv),
        }
    }

    /// A secret stored on the control plane under `name`.
    pub fn from_name(name: impl Into<String>) -> Self {
        Secret {
            source: SecretSource::Named {
                name: name.into(),
                environment_name: None,
                required_keys: Vec::new(),
            },
        }
    }

    /// For a named secret: the environment to look it up in.
    pub fn environment_name(mut self, env: impl Into<String>) -> Self {
        if let SecretSource::Named {
            environment_name, ..
        } = &mut self.source
        {
            *environment_name = Some(env.into());
        }
        self
    }

    /// For a named secret: keys it must contain.
    pub fn required_keys<S: Into<String>>(mut self, keys: impl IntoIterator<Item = S>) -> Self {
        if let SecretSource::Named { required_keys, .. } = &mut self.source {
            required_keys.extend(keys.into_iter().map(Into::into));
        }
        self
    }

    /// The named variables of the local environment, read when the app starts.
    pub fn from_local_environ<S: Into<String>>(keys: impl IntoIterator<Item = S>) -> Self {
        Secret {
            source: SecretSource::LocalEnviron(keys.into_iter().map(Into::into).collect()),
        }
    }

    /// The variables of a `.env` file, searched upward from `path` (or the working directory).
    pub fn from_dotenv(path: Option<&Path>) -> Self {
        Secret {
            source: SecretSource::Dotenv {
                path: path.map(Path::to_path_buf),
                filename: ".env".into(),
            },
        }
    }

    /// A named secret's name, environment and required keys.
    pub(crate) fn named(&self) -> Option<(&str, Option<&str>, &[String])> {
        match &self.source {
            SecretSource::Named {
                name,
                environment_name,
                required_keys,
            } => Some((name, environment_name.as_deref(), required_keys)),
            _ => None,
        }
    }

    /// The name of a named secret.
    pub fn name(&self) -> Option<&str> {
        match &self.source {
            SecretSource::Named { name, .. } => Some(name),
            _ => None,
        }
    }

    /// The secret's variables, resolved on the calling machine.
    ///
    /// Named secrets live on the control plane and cannot be resolved locally.
    pub fn resolve(&self) -> Result<Vec<(String, String)>, String> {
        match &self.source {
            SecretSource::Dict(kv) => Ok(kv.clone()),
            SecretSource::LocalEnviron(keys) => keys
                .iter()
                .map(|k| {
                    std::env::var(k).map(|v| (k.clone(), v)).map_err(|_| {
                        format!(
                            "Secret::from_local_environ: `{k}` is not set in the local environment"
                        )
                    })
                })
                .collect(),
            SecretSource::Dotenv { path, filename } => {
                let start = match path {
                    Some(p) => p.clone(),
                    None => std::env::current_dir().map_err(|e| e.to_string())?,
                };
                let file = find_upward(&start, filename).ok_or_else(|| {
                    format!(
                        "Secret::from_dotenv: no `{filename}` in {} or above",
                        start.display()
                    )
                })?;
                let iter = dotenvy::from_path_iter(&file)
                    .map_err(|e| format!("Secret::from_dotenv: {}: {e}", file.display()))?;
                iter.map(|item| {
                    item.map_err(|e| format!("Secret::from_dotenv: {}: {e}", file.display()))
                })
                .collect()
            }
            // Resolved by the control plane when a container starts.
            SecretSource::Named { .. } => Ok(Vec::new()),
        }
    }
}

fn find_upward(start: &Path, filename: &str) -> Option<PathBuf> {
    let mut dir = Some(start);
    while let Some(d) = dir {
        let candidate = d.join(filename);
        if candidate.is_file() {
            return Some(candidate);
        }
        dir = d.parent();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_values() {
        let s = Secret::from_dict([("TOKEN", "hunter2")]);
        let shown = format!("{s:?}");
        assert!(shown.contains("TOKEN"));
        assert!(!shown.contains("hunter2"));
    }

    #[test]
    fn dotenv_is_found_upward() {
        let dir = std::env::temp_dir().join(format!("modal-dotenv-{}", std::process::id()));
        let nested = dir.join("a/b");
        std::fs::create_dir_all(&nested).unwrap();
        std::fs::write(dir.join(".env"), "A=1\nB=two\n").unwrap();
        let got = Secret::from_dotenv(Some(&nested)).resolve().unwrap();
        assert_eq!(
            got,
            vec![("A".into(), "1".into()), ("B".into(), "two".into())]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_local_environ_key_is_an_error() {
        let err = Secret::from_local_environ(["MODAL_TEST_SURELY_UNSET_VAR"])
            .resolve()
            .unwrap_err();
        assert!(err.contains("MODAL_TEST_SURELY_UNSET_VAR"));
    }
}
