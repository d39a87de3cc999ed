//! The process runtime: a container is a child process of the worker's user running the app's
//! binary in its own process group, with the environment it is given and nothing else. No
//! walls: it enforces no limit, and refuses a function that asks for one.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::{ContainerRuntime, Ended, Handle, Launch, Prepared};
use crate::task_env as cenv;

/// Variables passed through from the worker's environment (besides `LC_*`); everything else is
/// cleared so that a container sees only what its function asked for.
const PASS_THROUGH: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "RUST_BACKTRACE",
    "RUST_LOG",
    "LD_LIBRARY_PATH",
    "XDG_CACHE_HOME",
    "CUDA_DEVICE_ORDER",
];

/// See the module docs.
pub(crate) struct Process;

struct Group;

impl ContainerRuntime for Process {
    fn describe(&self) -> String {
        "process".into()
    }

    fn journal_path(&self, task_id: &str) -> Result<PathBuf, String> {
        static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
        let dir = DIR.get_or_init(|| super::private_dir("journals"));
        Ok(dir.join(format!("{task_id}.journal")))
    }

    fn prepare(&self, launch: Launch) -> Result<Prepared, String> {
        let asked = launch.limits.asked();
        let mut cannot = Vec::new();
        if !asked.is_empty() {
            cannot.push(format!("enforce {}", asked.join(", ")));
        }
        if !launch.volumes.is_empty() {
            let paths: Vec<&str> = launch.volumes.iter().map(|v| v.path.as_str()).collect();
            cannot.push(format!("mount `volumes` (at {})", paths.join(", ")));
        }
        if let Some(image) = &launch.image {
            cannot.push(format!("run an `image` ({})", image.image_id));
        }
        if !cannot.is_empty() {
            return Err(format!(
                "this worker runs the process runtime, which cannot {}: run the worker with the oci runtime (`modal worker --runtime oci`, or MODAL_RUNTIME=oci; it needs `crun`)",
                cannot.join(" or ")
            ));
        }
        let payloads = launch.payload_dirs(None);
        let mut command = tokio::process::Command::new(&launch.exe);
        command
            .env_clear()
            .envs(super::passed_through(PASS_THROUGH))
            .envs(launch.env)
            .env(cenv::SERVER_URL, &launch.server_url)
            .env(cenv::JOURNAL, &launch.journal)
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(p) = payloads {
            command
                .env(crate::payloads::STORE_ENV, p.store_id)
                .env(crate::payloads::OBJECTS_ENV, p.objects)
                .env(crate::payloads::OUTBOX_ENV, p.outbox);
        }
        Ok(Prepared {
            command,
            handle: Box::new(Group),
        })
    }
}

impl Handle for Group {
    fn kill(&self, leader: Option<Pid>) {
        if let Some(pgid) = leader {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }

    fn finish(self: Box<Self>, _status: Option<ExitStatus>) -> Ended {
        Ended::default()
    }
}
