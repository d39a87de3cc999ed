//! How a worker runs a container: the [`ContainerRuntime`] trait and its two implementations,
//! `oci` (an OCI runtime such as crun, with namespaces and cgroup limits) and `process` (a child
//! process of the worker's user, for machines without one), and which one a worker uses.

mod bridge;
mod cgroup;
mod oci;
mod process;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use nix::unistd::Pid;

pub(crate) use oci::Oci;
pub(crate) use process::Process;

/// What a function asks of its container's walls (from its definition).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Limits {
    /// The most memory, in MiB (0: none).
    pub(crate) memory_mb: u32,
    /// The most CPU, in thousandths of a core (0: none).
    pub(crate) milli_cpu: u32,
    /// The size of the writable space (`/tmp`), in MiB (0: the runtime's default).
    pub(crate) ephemeral_disk_mb: u32,
    /// No network but a loopback of its own.
    pub(crate) block_network: bool,
}

impl Limits {
    /// The limits `def` asks for.
    pub(crate) fn of(def: &crate::model::FunctionDef) -> Limits {
        Limits {
            memory_mb: def.resources.memory_mb_max,
            milli_cpu: def.resources.milli_cpu_max,
            ephemeral_disk_mb: def.resources.ephemeral_disk_mb,
            block_network: def.block_network,
        }
    }

    /// The parameters among these that need walls, as the user wrote them.
    fn asked(&self) -> Vec<String> {
        let mut asked = Vec::new();
        if self.memory_mb > 0 {
            asked.push(format!("a `memory` limit ({} MiB)", self.memory_mb));
        }
        if self.milli_cpu > 0 {
            asked.push(format!(
                "a `cpu` limit ({} cores)",
                f64::from(self.milli_cpu) / 1000.0
            ));
        }
        if self.ephemeral_disk_mb > 0 {
            asked.push(format!("`ephemeral_disk` ({} MiB)", self.ephemeral_disk_mb));
        }
        if self.block_network {
            asked.push("`block_network`".into());
        }
        asked
    }
}

/// One container to start: the executable, what the function gives it, and what it may use.
#[derive(Debug)]
pub(crate) struct Launch {
    pub(crate) task_id: String,
    pub(crate) exe: PathBuf,
    /// The executable's digest, when the worker knows it already.
    pub(crate) exe_hash: Option<String>,
    /// What the function gives it (the runtime adds its own variables, the control plane's
    /// address and the journal's path).
    pub(crate) env: Vec<(OsString, OsString)>,
    /// The journal file the container writes (see `container::journal`).
    pub(crate) journal: PathBuf,
    /// The control plane's URL as the worker reaches it.
    pub(crate) server_url: String,
    pub(crate) limits: Limits,
    /// Device files the container may use (its GPUs).
    pub(crate) devices: Vec<PathBuf>,
    /// Volumes to mount: a writable directory of the container's own at each path, which the
    /// container fills from the volume.
    pub(crate) volumes: Vec<crate::model::volume::VolumeMount>,
    /// The image to run in (none: the host's system directories).
    pub(crate) image: Option<crate::model::image::ImageRef>,
    /// The payload store of the control plane's machine, when this worker runs beside it.
    pub(crate) payloads: Option<std::sync::Arc<crate::payloads::Store>>,
}

/// The payload store as one container reaches it: the store's id, its payloads (read-only) and
/// the container's outbox (see `crate::payloads`).
pub(crate) struct PayloadDirs {
    pub(crate) store_id: String,
    pub(crate) objects: PathBuf,
    pub(crate) outbox: PathBuf,
}

impl Launch {
    /// Makes the container's outbox (owned by `owner`, its user, when given); `None` when there
    /// is no store or the outbox cannot be made (said in the log: payloads then travel inline).
    pub(crate) fn payload_dirs(&self, owner: Option<(u32, u32)>) -> Option<PayloadDirs> {
        let store = self.payloads.as_ref()?;
        match store.make_outbox(&self.task_id, owner) {
            Ok(outbox) => Some(PayloadDirs {
                store_id: store.id().to_owned(),
                objects: store.objects(),
                outbox,
            }),
            Err(e) => {
                tracing::warn!(task_id = %self.task_id, "no payload outbox, payloads travel inline: {e}");
                None
            }
        }
    }
}

/// A container made ready to start by a runtime.
pub(crate) struct Prepared {
    /// Runs the container in the foreground: its stdout and stderr are the container's; it
    /// exits when the container does.
    pub(crate) command: tokio::process::Command,
    pub(crate) handle: Box<dyn Handle>,
}

/// What a runtime does for a running container.
pub(crate) trait Handle: Send {
    /// Kills everything the container runs (`leader`: the command's process group).
    fn kill(&self, leader: Option<Pid>);

    /// After the command exited: why the container ended when the runtime knows better than
    /// the exit status (an out-of-memory kill), and everything made for it removed.
    fn finish(self: Box<Self>, status: Option<ExitStatus>) -> Ended;
}

/// What a runtime knows of a container's end beyond its exit status.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Ended {
    /// Set when the kernel killed it for using more memory than its limit: the message.
    pub(crate) out_of_memory: Option<String>,
    /// The signal that ended the container, when the command's own status does not say it
    /// (an OCI runtime exits with 128 + the signal).
    pub(crate) signal: Option<i32>,
}

/// Runs containers.
pub(crate) trait ContainerRuntime: Send + Sync {
    /// `oci` or `process`, with what it runs (for messages and `modal worker list`).
    fn describe(&self) -> String;

    /// Where container `task_id` keeps its journal: a file the worker makes (0600) before
    /// [`prepare`](ContainerRuntime::prepare), in a place the runtime makes reachable from
    /// inside, and reads after the container exited.
    fn journal_path(&self, task_id: &str) -> Result<PathBuf, String>;

    /// Prepares one container, or says why it cannot run it (e.g. a limit it cannot enforce).
    fn prepare(&self, launch: Launch) -> Result<Prepared, String>;
}

/// Which runtime a worker uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Choice {
    /// `oci` where it works, else `process` with a notice (the embedded default only).
    OciOrProcess,
    /// `oci`, with this OCI runtime (a path or a name on `PATH`); an error where it cannot run.
    Oci(Option<PathBuf>),
    Process,
}

/// The environment variable that picks the runtime: `oci` or `process`.
pub(crate) const RUNTIME_ENV: &str = "MODAL_RUNTIME";
/// The environment variable naming the OCI runtime (default `crun`).
pub(crate) const OCI_RUNTIME_ENV: &str = "MODAL_OCI_RUNTIME";

impl Choice {
    /// From `--runtime`/`MODAL_RUNTIME` (`oci`, `process`, or none) and
    /// `--oci-runtime`/`MODAL_OCI_RUNTIME`; `fallback`: whether `process` may stand in for an
    /// `oci` that does not work here.
    pub(crate) fn parse(
        runtime: Option<&str>,
        oci_runtime: Option<PathBuf>,
        fallback: bool,
    ) -> Result<Choice, String> {
        match runtime.map(str::trim) {
            None | Some("") if fallback && oci_runtime.is_none() => Ok(Choice::OciOrProcess),
            None | Some("") | Some("oci") => Ok(Choice::Oci(oci_runtime)),
            Some("process") if oci_runtime.is_some() => Err(
                "--oci-runtime (MODAL_OCI_RUNTIME) names an OCI runtime, but the process runtime was chosen"
                    .into(),
            ),
            Some("process") => Ok(Choice::Process),
            Some(other) => Err(format!(
                "unknown container runtime `{other}` ({RUNTIME_ENV} or --runtime): expected `oci` or `process`"
            )),
        }
    }

    /// The choice the flags make, or where a flag is not given, the environment
    /// (`MODAL_RUNTIME`, `MODAL_OCI_RUNTIME`).
    pub(crate) fn from_flags_or_env(
        runtime: Option<String>,
        oci_runtime: Option<PathBuf>,
        fallback: bool,
    ) -> Result<Choice, String> {
        let runtime = runtime.or_else(|| std::env::var(RUNTIME_ENV).ok());
        let oci = oci_runtime.or_else(|| {
            std::env::var_os(OCI_RUNTIME_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        Choice::parse(runtime.as_deref(), oci, fallback)
    }

    /// The runtime itself: the OCI runtime's checks run here, so an unusable one is an error
    /// (or, with [`Choice::OciOrProcess`], the process runtime and a one-line notice).
    pub(crate) fn open(&self) -> Result<Box<dyn ContainerRuntime>, String> {
        match self {
            Choice::Process => Ok(Box::new(Process)),
            Choice::Oci(path) => Ok(Box::new(Oci::open(path.as_deref())?)),
            Choice::OciOrProcess => match Oci::open(None) {
                Ok(oci) => Ok(Box::new(oci)),
                Err(why) => {
                    tracing::warn!(
                        "containers run as plain processes (no isolation; cpu/memory limits, ephemeral_disk and block_network are refused): {why}"
                    );
                    Ok(Box::new(Process))
                }
            },
        }
    }
}

/// The worker's own variables among `names` (and every `LC_*`), which a container also gets.
fn passed_through(names: &[&str]) -> impl Iterator<Item = (OsString, OsString)> {
    std::env::vars_os().filter(|(k, _)| {
        k.to_str()
            .is_some_and(|k| names.contains(&k) || k.starts_with("LC_"))
    })
}

/// A directory of the worker's user for `kind` (journals, container files), in
/// `XDG_RUNTIME_DIR` or the temporary directory: mode 0700 (others may not even look inside;
/// journals hold results).
pub(crate) fn private_dir(kind: &str) -> PathBuf {
    owned_dir(kind, 0o700)
}

/// Like [`private_dir`], with `mode` (which gives others at most search permission).
pub(crate) fn owned_dir(kind: &str, mode: u32) -> PathBuf {
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    owned_dir_in(&base, kind, mode)
}

/// A directory of the worker's user for `kind` in `base`, with `mode`: `base/modal-KIND-UID`, or
/// one of this process's own when someone else made that name.
pub(crate) fn owned_dir_in(base: &Path, kind: &str, mode: u32) -> PathBuf {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let uid = nix::unistd::getuid().as_raw();
    let mine = |dir: &Path| {
        let _ = std::fs::DirBuilder::new().mode(mode).create(dir);
        std::fs::symlink_metadata(dir)
            .is_ok_and(|m| m.is_dir() && m.uid() == uid && m.mode() & 0o777 & !mode == 0)
    };
    let shared = base.join(format!("modal-{kind}-{uid}"));
    if mine(&shared) {
        return shared;
    }
    // Someone else made that name: a directory of this process's own.
    let own = base.join(format!(
        "modal-{kind}-{uid}-{}-{}",
        std::process::id(),
        crate::ids::new_id("")
    ));
    if !mine(&own) {
        tracing::warn!(dir = %own.display(), "cannot make a private directory");
    }
    own
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_choice_follows_the_flags() {
        assert_eq!(Choice::parse(None, None, true), Ok(Choice::OciOrProcess));
        assert_eq!(Choice::parse(None, None, false), Ok(Choice::Oci(None)));
        assert_eq!(
            Choice::parse(Some("oci"), None, true),
            Ok(Choice::Oci(None))
        );
        assert_eq!(
            Choice::parse(None, Some("/usr/bin/runc".into()), true),
            Ok(Choice::Oci(Some("/usr/bin/runc".into())))
        );
        assert_eq!(
            Choice::parse(Some("process"), None, false),
            Ok(Choice::Process)
        );
        let e = Choice::parse(Some("docker"), None, true).unwrap_err();
        assert!(
            e.contains("`docker`") && e.contains("`oci` or `process`"),
            "{e}"
        );
        let e = Choice::parse(Some("process"), Some("runc".into()), true).unwrap_err();
        assert!(e.contains("--oci-runtime"), "{e}");
    }

    #[test]
    fn limits_name_what_was_asked() {
        let l = Limits {
            memory_mb: 256,
            milli_cpu: 500,
            ephemeral_disk_mb: 0,
            block_network: true,
        };
        assert_eq!(
            l.asked(),
            vec![
                "a `memory` limit (256 MiB)".to_owned(),
                "a `cpu` limit (0.5 cores)".to_owned(),
                "`block_network`".to_owned()
            ]
        );
        assert!(Limits::default().asked().is_empty());
    }
}
