//! Objects a function can depend on: images, secrets and volumes, as declarations.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A container image definition: a base and the build steps on top of it.
///
/// The local process runtime runs containers from the host's filesystem, so an app or function
/// that names an image fails to start with an error that says so (rather than ignoring it).
///
/// ```
/// let image = modal::Image::debian_slim().apt_install(["curl"]).env([("MODE", "fast")]);
/// assert_eq!(image.steps().len(), 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    steps: Vec<String>,
}

impl Image {
    /// A slim Debian base.
    pub fn debian_slim() -> Self {
        Image {
            steps: vec!["FROM debian:bookworm-slim".into()],
        }
    }

    /// Any image from a registry, by reference.
    pub fn from_registry(reference: impl Into<String>) -> Self {
        Image {
            steps: vec![format!("FROM {}", reference.into())],
        }
    }

    /// Installs Debian packages.
    pub fn apt_install<S: Into<String>>(mut self, packages: impl IntoIterator<Item = S>) -> Self {
        let pkgs: Vec<String> = packages.into_iter().map(Into::into).collect();
        self.steps.push(format!(
            "RUN apt-get update && apt-get install -y {}",
            pkgs.join(" ")
        ));
        self
    }

    /// Runs shell commands, one layer each.
    pub fn run_commands<S: Into<String>>(mut self, commands: impl IntoIterator<Item = S>) -> Self {
        self.steps
            .extend(commands.into_iter().map(|c| format!("RUN {}", c.into())));
        self
    }

    /// Sets environment variables in the image.
    pub fn env<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        for (k, v) in vars {
            self.steps.push(format!("ENV {}={}", k.into(), v.into()));
        }
        self
    }

    /// The build steps, Dockerfile-style.
    pub fn steps(&self) -> &[String] {
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
