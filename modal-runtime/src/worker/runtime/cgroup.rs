//! The worker's own cgroups for its containers (`modal-rs/<task>`, v1 or v2): the OCI runtime
//! puts each container in a group below its task's (where it applies the CPU and process
//! limits, and which it removes when the container ends); the memory limit is set on the
//! task's group by the worker, so that the worker can still tell an out-of-memory kill once the
//! runtime has removed the container's group.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::sys::eventfd::{EfdFlags, EventFd};

const ROOT: &str = "/sys/fs/cgroup";
const OURS: &str = "modal-rs";

/// The cgroup layout of this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cgroups {
    /// One hierarchy per controller (`/sys/fs/cgroup/memory`, …).
    V1,
    /// The unified hierarchy.
    V2,
}

/// A task's memory limit, and how its out-of-memory kills are seen.
pub(crate) struct MemoryLimit {
    dir: PathBuf,
    limit_mb: u32,
    /// v1: an eventfd the kernel signals when the group runs out of memory (with the
    /// `memory.oom_control` file it is registered on, kept open).
    /// (None on v2, where `memory.events` counts them.)
    oom_event: Option<(EventFd, File)>,
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value)
        .map_err(|e| format!("cannot write {value} to {}: {e}", path.display()))
}

impl Cgroups {
    /// The layout here, or why limits cannot be enforced.
    pub(crate) fn detect() -> Result<Cgroups, String> {
        let root = Path::new(ROOT);
        if root.join("memory/memory.limit_in_bytes").exists() {
            Ok(Cgroups::V1)
        } else if root.join("cgroup.controllers").exists() {
            let controllers =
                std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
            if controllers.split_whitespace().any(|c| c == "memory") {
                Ok(Cgroups::V2)
            } else {
                Err("the cgroup v2 hierarchy has no memory controller".into())
            }
        } else {
            Err(format!("no cgroup file system is mounted at {ROOT}"))
        }
    }

    /// The container's group, as the OCI runtime's `cgroupsPath`.
    pub(crate) fn container_path(&self, task_id: &str) -> PathBuf {
        Path::new("/").join(OURS).join(task_id).join("c")
    }

    fn task_dir(&self, controller: &str, task_id: &str) -> PathBuf {
        match self {
            Cgroups::V1 => Path::new(ROOT).join(controller).join(OURS).join(task_id),
            Cgroups::V2 => Path::new(ROOT).join(OURS).join(task_id),
        }
    }

    /// Makes the task's group with a memory limit of `limit_mb` MiB (swap included).
    pub(crate) fn limit_memory(&self, task_id: &str, limit_mb: u32) -> Result<MemoryLimit, String> {
        let dir = self.task_dir("memory", task_id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot make the cgroup {}: {e}", dir.display()))?;
        let bytes = (u64::from(limit_mb) << 20).to_string();
        let oom_event = match self {
            Cgroups::V1 => {
                write(&dir.join("memory.limit_in_bytes"), &bytes)?;
                // Without swap accounting there is no swap limit to set.
                let memsw = dir.join("memory.memsw.limit_in_bytes");
                if memsw.exists() {
                    write(&memsw, &bytes)?;
                }
                Some(register_oom_event(&dir)?)
            }
            Cgroups::V2 => {
                for parent in [Path::new(ROOT).to_owned(), Path::new(ROOT).join(OURS)] {
                    let _ =
                        std::fs::write(parent.join("cgroup.subtree_control"), "+memory +cpu +pids");
                }
                write(&dir.join("memory.max"), &bytes)?;
                let _ = std::fs::write(dir.join("memory.swap.max"), "0");
                None
            }
        };
        Ok(MemoryLimit {
            dir,
            limit_mb,
            oom_event,
        })
    }

    /// Removes the task's groups that are left (the runtime removed the container's).
    pub(crate) fn remove(&self, task_id: &str) {
        match self {
            Cgroups::V1 => {
                let Ok(hierarchies) = std::fs::read_dir(ROOT) else {
                    return;
                };
                for h in hierarchies.flatten() {
                    let dir = h.path().join(OURS).join(task_id);
                    let _ = std::fs::remove_dir(dir.join("c"));
                    let _ = std::fs::remove_dir(&dir);
                }
            }
            Cgroups::V2 => {
                let dir = self.task_dir("", task_id);
                let _ = std::fs::remove_dir(dir.join("c"));
                let _ = std::fs::remove_dir(&dir);
            }
        }
    }
}

/// cgroup v1: asks the kernel to signal an eventfd when the group runs out of memory.
fn register_oom_event(dir: &Path) -> Result<(EventFd, File), String> {
    let control = File::open(dir.join("memory.oom_control"))
        .map_err(|e| format!("cannot open {}/memory.oom_control: {e}", dir.display()))?;
    let event = EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
        .map_err(|e| format!("cannot make an eventfd: {e}"))?;
    write(
        &dir.join("cgroup.event_control"),
        &format!("{} {}", event.as_raw_fd(), control.as_raw_fd()),
    )?;
    Ok((event, control))
}

impl MemoryLimit {
    pub(crate) fn limit_mb(&self) -> u32 {
        self.limit_mb
    }

    /// Whether the kernel killed a process of the group for want of memory.
    pub(crate) fn out_of_memory(&self) -> bool {
        if let Some((event, _)) = &self.oom_event {
            return event.read().is_ok_and(|n| n > 0);
        }
        let mut text = String::new();
        let read = File::open(self.dir.join("memory.events"))
            .and_then(|mut f| f.read_to_string(&mut text));
        read.is_ok()
            && text.lines().any(|l| {
                l.strip_prefix("oom_kill ")
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .is_some_and(|n| n > 0)
            })
    }
}
