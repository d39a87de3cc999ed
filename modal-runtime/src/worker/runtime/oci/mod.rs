//! The oci runtime: each container is an OCI bundle (a `config.json` made with `oci-spec`) run
//! by an OCI runtime (`crun` unless told otherwise) in its own user, mount, PID, IPC and UTS
//! namespaces (and network namespace with `block_network`), on a read-only root of the host's
//! system directories, with a private `/tmp` and the app's binary mounted read-only as its
//! entrypoint. It shares the host's network, or, with `block_network`, has a loopback of its
//! own and reaches the control plane through a unix socket the worker bridges. Its memory limit
//! is on a cgroup of the worker's (`cgroup.rs`); the runtime applies CPU and process limits.

mod bundle;
mod host;
mod image_root;
mod seccomp;

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::bridge::Bridge;
use super::cgroup::{Cgroups, MemoryLimit};
use super::{ContainerRuntime, Ended, Handle, Launch, Limits, Prepared};
use bundle::PATH;
use host::{
    check_crun_cgroups, check_user_namespaces, find_runtime, is_old, make_dir, make_rootfs,
    remove_stale_binaries, stage_binary,
};

/// When the worker runs as root, each container's ids are a range of [`HOST_ID_COUNT`] host ids
/// of its own, chosen by its task id among [`HOST_ID_RANGES`] ranges from [`HOST_ID_BASE`]
/// (far above the ids of users and of their rootless containers): two containers share a range
/// only by chance (1 in 32,768), so a container that got out of its namespaces would still not
/// own another's files.
const HOST_ID_BASE: u32 = 1_000_000_000;
const HOST_ID_COUNT: u32 = 65_536;
const HOST_ID_RANGES: u32 = 32_768;

/// See the module docs.
///
/// Its files, in a directory of the worker's user that others may only search (0711): the
/// runtime's state (`state/`), the bundles with their `config.json` (`bundles/`, 0700: they hold
/// the containers' secrets), the root every container shares (`rootfs/`), the executables
/// containers run (`bin/`), and per container a directory its user owns (`share/<task>/`, 0700)
/// with its journal and socket. A container's user must reach what is mounted into it.
#[derive(Clone)]
pub(crate) struct Oci {
    /// The OCI runtime's executable.
    runtime: PathBuf,
    /// This worker as the owner of its containers (`owner_mark`).
    owner: String,
    state: PathBuf,
    rootfs: PathBuf,
    /// The host directories mounted read-only over it (found once, when the runtime opens).
    host_dirs: Vec<PathBuf>,
    /// Whether the worker runs as root (then containers' users are unprivileged host ids).
    as_root: bool,
    /// Where limits are enforced; the reason when they cannot be here.
    cgroups: Result<Cgroups, String>,
}

impl Oci {
    /// The oci runtime with `runtime` (default `crun` on `PATH`), keeping its files in the
    /// worker's user's `modal-oci-UID` directory; an error saying why it cannot run containers
    /// here, and what to do.
    pub(crate) fn open(runtime: Option<&Path>) -> Result<Oci, String> {
        let runtime = find_runtime(runtime)?;
        check_user_namespaces()?;
        if runtime.file_name().is_some_and(|n| n == "crun") {
            check_crun_cgroups()?;
        }
        let as_root = nix::unistd::geteuid().is_root();
        // Containers' users must reach these files: not in a runtime directory of root's own
        // (`XDG_RUNTIME_DIR` is 0700) when the worker is root.
        let state = if as_root {
            super::owned_dir_in(&std::env::temp_dir(), "oci", 0o711)
        } else {
            super::owned_dir("oci", 0o711)
        };
        for (dir, mode) in [("bundles", 0o700), ("share", 0o711), ("bin", 0o711)] {
            make_dir(&state.join(dir), mode)?;
        }
        let rootfs = state.join("rootfs");
        let host_dirs = make_rootfs(&rootfs).map_err(|e| {
            format!(
                "cannot make the containers' root directory {}: {e}",
                rootfs.display()
            )
        })?;
        let cgroups = if as_root {
            Cgroups::detect()
        } else {
            Err(
                "limits need a worker running as root (cgroups are not delegated to this user)"
                    .into(),
            )
        };
        let owner =
            owner_mark().ok_or("cannot read this worker's start time in /proc/self/stat")?;
        let oci = Oci {
            runtime,
            owner,
            state,
            rootfs,
            host_dirs,
            as_root,
            cgroups,
        };
        // Housekeeping of what earlier workers left, off the start of this one.
        let old = oci.clone();
        std::thread::spawn(move || {
            remove_stale_binaries(&old.state.join("bin"));
            old.remove_dead();
        });
        Ok(oci)
    }

    /// Removes what containers of workers that died left behind: a container whose worker is
    /// gone is killed (its code may have closed the pipe it should watch), and a container that
    /// ended loses its runtime state, bundle, directory and cgroups. Only entries older than
    /// [`host::STALE_AFTER`] are looked at: other workers share these directories.
    fn remove_dead(&self) {
        let Ok(entries) = std::fs::read_dir(self.state.join("state")) else {
            return;
        };
        for entry in entries.flatten() {
            let Some(id) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            // Its worker runs: it is that worker's to finish.
            let bundle = self.state.join("bundles").join(&id);
            if !is_old(&entry) || owner_alive(&bundle) {
                continue;
            }
            let running = self
                .container_pid(&id)
                .is_some_and(|pid| std::fs::metadata(format!("/proc/{pid}")).is_ok());
            // No owner noted (a bundle of an older worker): a running container is left alone.
            if running && !bundle.join("owner").exists() {
                continue;
            }
            if running {
                tracing::warn!(container = %id, "stopping a container whose worker is gone");
                let _ = quiet(&self.runtime, &self.state, &["kill", "--all", &id, "KILL"]);
            }
            let _ = quiet(&self.runtime, &self.state, &["delete", "--force", &id]);
            let _ = std::fs::remove_dir_all(entry.path());
            self.remove_files_of(&id);
        }
        // A bundle with no state: its container ended while its worker was going away (or has
        // not started yet, hence the wait).
        for kind in ["bundles", "share"] {
            let Ok(entries) = std::fs::read_dir(self.state.join(kind)) else {
                continue;
            };
            for entry in entries.flatten() {
                let id = entry.file_name();
                let bundle = self.state.join("bundles").join(&id);
                if is_old(&entry)
                    && !self.state.join("state").join(&id).exists()
                    && !owner_alive(&bundle)
                {
                    self.remove_files_of(&id.to_string_lossy());
                }
            }
        }
    }

    /// The pid of container `id`, as the OCI runtime reports it (`state`, a command every OCI
    /// runtime has); `None` when it knows none or the container stopped.
    fn container_pid(&self, id: &str) -> Option<i64> {
        let out = self
            .runtime_command()
            .args(["state", id])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let state: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        if state.get("status")?.as_str()? == "stopped" {
            return None;
        }
        state.get("pid")?.as_i64().filter(|pid| *pid > 0)
    }

    fn remove_files_of(&self, id: &str) {
        let _ = std::fs::remove_dir_all(self.state.join("bundles").join(id));
        let share = self.state.join("share").join(id);
        image_root::unmount_leftovers(&share);
        let _ = std::fs::remove_dir_all(&share);
        if let Ok(c) = &self.cgroups {
            c.remove(id);
        }
    }

    /// A writable directory of the container's own for each volume it mounts (in its share
    /// directory, owned by its root), with the mount point made in the shared root: `(path in
    /// the container, directory)`.
    fn volume_dirs(
        &self,
        launch: &Launch,
        share: &std::path::Path,
        (uid, gid): (u32, u32),
    ) -> Result<Vec<(String, PathBuf)>, String> {
        let mut dirs = Vec::new();
        for (i, volume) in launch.volumes.iter().enumerate() {
            crate::app::rules::check_volume_path(&volume.path)?;
            let dir = share.join("volumes").join(i.to_string());
            make_dir(&dir, 0o700)?;
            if self.as_root {
                std::os::unix::fs::lchown(&dir, Some(uid), Some(gid))
                    .map_err(|e| format!("cannot give {} to the container: {e}", dir.display()))?;
            }
            make_dir(
                &self.rootfs.join(volume.path.trim_start_matches('/')),
                0o755,
            )?;
            dirs.push((volume.path.clone(), dir));
        }
        Ok(dirs)
    }

    /// The host user and group container `task_id`'s root is, and how many ids it has.
    fn id_mappings(&self, task_id: &str) -> (u32, u32, u32) {
        if self.as_root {
            let digest = blake3::hash(task_id.as_bytes());
            let mut first = [0u8; 4];
            first.copy_from_slice(&digest.as_bytes()[..4]);
            let range = u32::from_le_bytes(first) % HOST_ID_RANGES;
            let base = HOST_ID_BASE + range * HOST_ID_COUNT;
            (base, base, HOST_ID_COUNT)
        } else {
            (
                nix::unistd::geteuid().as_raw(),
                nix::unistd::getegid().as_raw(),
                1,
            )
        }
    }

    fn runtime_command(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.runtime);
        cmd.arg("--root").arg(self.state.join("state"));
        cmd
    }
}

/// A running container of the oci runtime.
struct Container {
    id: String,
    /// The OCI runtime, and the directory of the runtime's files (its state in `state/`).
    runtime: PathBuf,
    state: PathBuf,
    bundle: PathBuf,
    share: PathBuf,
    memory: Option<MemoryLimit>,
    cgroups: Option<Cgroups>,
    /// Its root in its image, when it has one (unmounted when finished).
    root: Option<image_root::ImageRoot>,
    /// Ends its connections when the container is finished (dropped).
    _bridge: Option<Bridge>,
    /// The pipe the container watches (closed with this handle, or when the worker dies).
    _watch: OwnedFd,
    _alive: OwnedFd,
}

impl ContainerRuntime for Oci {
    fn describe(&self) -> String {
        format!("oci ({})", self.runtime.display())
    }

    /// In the container's own directory, which the worker keeps (0711): the container reaches
    /// the file, nobody can swap it.
    fn journal_path(&self, task_id: &str) -> Result<PathBuf, String> {
        let share = self.state.join("share").join(task_id);
        make_dir(&share, 0o711)?;
        Ok(share.join("journal"))
    }

    fn prepare(&self, launch: Launch) -> Result<Prepared, String> {
        let prepared = self.make(&launch);
        if prepared.is_err() {
            self.remove_files_of(&launch.task_id);
        }
        prepared
    }
}

impl Oci {
    /// [`prepare`](ContainerRuntime::prepare), leaving its files behind when it fails.
    fn make(&self, launch: &Launch) -> Result<Prepared, String> {
        let limits: &Limits = &launch.limits;
        let needs_cgroups = limits.memory_mb > 0 || limits.milli_cpu > 0;
        if needs_cgroups && let Err(why) = &self.cgroups {
            return Err(format!(
                "the oci runtime cannot enforce {} on this worker: {why}",
                limits.asked().join(", ")
            ));
        }
        let bundle = self.state.join("bundles").join(&launch.task_id);
        // Made with the journal (`journal_path`): the worker's own, that others may only pass
        // through, so nothing in it can be swapped for a link before the files are handed over.
        let share = self.state.join("share").join(&launch.task_id);
        make_dir(&bundle, 0o700)?;
        std::fs::write(bundle.join("owner"), &self.owner)
            .map_err(|e| format!("cannot write the container's owner: {e}"))?;
        let exe = stage_binary(
            &self.state.join("bin"),
            &launch.exe,
            launch.exe_hash.as_deref(),
        )?;
        let journal = launch.journal.clone();
        let ids = self.id_mappings(&launch.task_id);
        let (uid, gid, _) = ids;
        let bridge = if limits.block_network {
            Some(Bridge::open(&share.join("modal.sock"), &launch.server_url)?)
        } else {
            None
        };
        if self.as_root {
            for path in [journal, share.join("modal.sock")] {
                if path.exists() {
                    std::os::unix::fs::lchown(&path, Some(uid), Some(gid)).map_err(|e| {
                        format!("cannot give {} to the container: {e}", path.display())
                    })?;
                }
            }
        }
        let volumes = self.volume_dirs(launch, &share, (uid, gid))?;
        let payloads = launch.payload_dirs(self.as_root.then_some((uid, gid)));
        let image_root = match &launch.image {
            Some(image) => Some(image_root::ImageRoot::mount(
                image,
                &share,
                (uid, gid),
                bundle::tmp_mb(limits),
            )?),
            None => None,
        };
        let cgroups = self.cgroups.as_ref().ok().cloned();
        let memory = match (&cgroups, limits.memory_mb) {
            (Some(c), mb) if mb > 0 => Some(c.limit_memory(&launch.task_id, mb)?),
            _ => None,
        };
        let cgroups_path = cgroups.as_ref().map(|c| c.container_path(&launch.task_id));
        let root = match &image_root {
            Some(image) => bundle::Root::Image(image),
            None => bundle::Root::Host {
                rootfs: &self.rootfs,
                host_dirs: &self.host_dirs,
            },
        };
        let spec = bundle::spec(
            root,
            ids,
            launch,
            &share,
            &exe,
            cgroups_path.as_deref(),
            &bundle::Binds {
                volumes: &volumes,
                payloads: payloads.as_ref(),
            },
        )?;
        spec.save(bundle.join("config.json"))
            .map_err(|e| format!("cannot write the container's config.json: {e}"))?;
        // The container holds the read end of a pipe (as fd 3) and watches it: when the worker
        // is gone, however it ended, its end closes and the container exits.
        let (watch, alive) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| format!("cannot make the container's pipe: {e}"))?;
        let mut command = tokio::process::Command::from(self.runtime_command());
        let watch_fd = watch.as_raw_fd();
        #[allow(unsafe_code)]
        // SAFETY: between fork and exec the closure only calls dup2 and fcntl, which are
        // async-signal-safe; `watch` outlives the spawn (it is held by the handle).
        unsafe {
            command.pre_exec(move || {
                // dup2 onto itself would keep the close-on-exec flag: clear it instead.
                let done = if watch_fd == 3 {
                    libc::fcntl(3, libc::F_SETFD, 0)
                } else {
                    libc::dup2(watch_fd, 3)
                };
                if done < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        command
            .arg("run")
            .arg("--preserve-fds")
            .arg("1")
            .arg("--bundle")
            .arg(&bundle)
            .arg(&launch.task_id)
            .env_clear()
            .env("PATH", PATH)
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        Ok(Prepared {
            command,
            handle: Box::new(Container {
                id: launch.task_id.clone(),
                runtime: self.runtime.clone(),
                state: self.state.clone(),
                bundle,
                share,
                memory,
                cgroups,
                root: image_root,
                _bridge: bridge,
                _watch: watch,
                _alive: alive,
            }),
        })
    }
}

impl Container {
    /// Whether the runtime still knows the container (it forgets one that ended by itself).
    fn known(&self) -> bool {
        self.state.join("state").join(&self.id).exists()
    }

    /// Runs the OCI runtime with `args` on this container, its output dropped.
    fn runtime(&self, args: &[&str]) {
        let _ = quiet(&self.runtime, &self.state, args);
    }
}

/// Runs the OCI runtime `runtime` (state under `state/state`) with `args`, its output dropped.
fn quiet(runtime: &Path, state: &Path, args: &[&str]) -> std::io::Result<std::process::ExitStatus> {
    std::process::Command::new(runtime)
        .arg("--root")
        .arg(state.join("state"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
}

impl Handle for Container {
    fn kill(&self, leader: Option<Pid>) {
        // A container the runtime does not know yet (still being created) goes with the
        // runtime's own process group.
        if self.known() {
            self.runtime(&["kill", "--all", &self.id, "KILL"]);
        }
        if let Some(pgid) = leader {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }

    fn finish(mut self: Box<Self>, status: Option<ExitStatus>) -> Ended {
        // The runtime removes a container that ended; one whose runtime was killed stays.
        if self.known() {
            self.runtime(&["delete", "--force", &self.id]);
        }
        // The runtime exits with 128 + the signal that killed the container.
        let signal = status
            .and_then(|s| s.code())
            .filter(|c| (129..=128 + 64).contains(c))
            .map(|c| c - 128);
        // Killed by the kernel (SIGKILL) while its group ran out of memory: an OOM kill, not
        // another process of the container killed for it, nor a stop.
        let killed = signal == Some(libc::SIGKILL);
        let out_of_memory = self.memory.as_ref().filter(|_| killed).and_then(|m| {
            m.out_of_memory().then(|| {
                format!(
                    "container {} was killed: out of memory (limit {} MiB)",
                    self.id,
                    m.limit_mb()
                )
            })
        });
        // Its groups are empty now: the memory limit's watch closes, then they go.
        drop(self.memory.take());
        if let Some(c) = &self.cgroups {
            c.remove(&self.id);
        }
        drop(self.root.take());
        let _ = std::fs::remove_dir_all(&self.bundle);
        let _ = std::fs::remove_dir_all(&self.share);
        Ended {
            out_of_memory,
            signal,
        }
    }
}

/// This process as the owner of a container: its pid and its start time (so that a pid used
/// again by another process is not taken for it).
fn owner_mark() -> Option<String> {
    Some(format!("{} {}", std::process::id(), start_time("self")?))
}

/// The start time of process `pid` (`self` for this one), from `/proc/PID/stat`.
fn start_time(pid: &str) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    // Field 22 of the line; the 20th after the command's closing parenthesis.
    after.split_whitespace().nth(19).map(str::to_owned)
}

/// Whether the worker that wrote `bundle/owner` still runs.
fn owner_alive(bundle: &Path) -> bool {
    let Ok(mark) = std::fs::read_to_string(bundle.join("owner")) else {
        return false;
    };
    let Some((pid, started)) = mark.trim().split_once(' ') else {
        return false;
    };
    start_time(pid).is_some_and(|s| s == started)
}
