//! A container's OCI bundle: its `config.json` (made with `oci-spec`): namespaces, the id
//! mapping, the mounts (the host's system directories read-only, a private `/tmp`, the binary,
//! the journal, the socket), the environment and the cgroup limits.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxBuilder, LinuxCpuBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType,
    LinuxIdMappingBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder,
    LinuxResourcesBuilder, Mount, MountBuilder, PosixRlimitBuilder, PosixRlimitType,
    ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};

use super::super::{Launch, PayloadDirs};
use super::host::Staged;
use crate::task_env as cenv;

/// Where a container finds what the worker gives it.
const MODAL_DIR: &str = "/__modal";
const BINARY: &str = "/__modal/bin";
const JOURNAL: &str = "/__modal/journal";
const SOCKET: &str = "/__modal/modal.sock";
/// The payload store's payloads (read-only) and the container's outbox (see `crate::payloads`).
const PAYLOADS: &str = "/__modal/payloads";
const OUTBOX: &str = "/__modal/outbox";
/// The most processes and threads one container may have.
const PIDS_LIMIT: i64 = 4096;
/// The size of `/tmp` when a function does not give `ephemeral_disk`.
const DEFAULT_TMP_MB: u32 = 1024;
/// The `PATH` inside a container.
pub(super) const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Variables passed through from the worker's environment (besides `LC_*`).
const PASS_THROUGH: &[&str] = &["LANG", "LANGUAGE", "TZ", "RUST_BACKTRACE", "RUST_LOG"];

fn mount(destination: &str, typ: &str, source: &Path, options: &[&str]) -> Result<Mount, String> {
    MountBuilder::default()
        .destination(destination)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| (*o).to_owned()).collect::<Vec<_>>())
        .build()
        .map_err(|e| e.to_string())
}

/// The container's environment: what the worker gives it, a fixed `PATH`, `HOME=/tmp`, its
/// image's variables, and only the locale, time zone and Rust logging variables of the
/// worker's own.
fn environment(
    launch: &Launch,
    exe: &Staged,
    root: &Root<'_>,
    payloads: Option<&PayloadDirs>,
) -> Vec<String> {
    let mut env: Vec<(OsString, OsString)> = super::super::passed_through(PASS_THROUGH).collect();
    env.push(("PATH".into(), PATH.into()));
    env.push(("HOME".into(), "/tmp".into()));
    if let Root::Image(image) = root {
        env.extend(image.env.iter().map(|(k, v)| (k.into(), v.into())));
    }
    env.extend(launch.env.iter().cloned());
    // Without a network of its own the container reaches the control plane through the
    // worker's bridge; otherwise it shares the host's network. Over TLS it keeps the `https://`
    // URL (the name the certificate is checked against) and dials the socket.
    let server_url = if !launch.limits.block_network {
        launch.server_url.clone()
    } else if launch.server_url.starts_with("https://") {
        env.push((cenv::SERVER_SOCKET.into(), SOCKET.into()));
        launch.server_url.clone()
    } else {
        format!("unix://{SOCKET}")
    };
    env.push((cenv::SERVER_URL.into(), server_url.into()));
    env.push((cenv::JOURNAL.into(), JOURNAL.into()));
    env.push((cenv::WORKER_PIPE.into(), "3".into()));
    env.push((cenv::EXE_HASH.into(), exe.hash.clone().into()));
    if let Some(p) = payloads {
        env.push((crate::payloads::STORE_ENV.into(), p.store_id.clone().into()));
        env.push((crate::payloads::OBJECTS_ENV.into(), PAYLOADS.into()));
        env.push((crate::payloads::OUTBOX_ENV.into(), OUTBOX.into()));
    }
    // One value a name, the last given (as with the process runtime): the worker's variables
    // above win over the function's, the function's over `PATH` and `HOME`.
    let mut seen = std::collections::HashSet::new();
    let mut unique: Vec<String> = env
        .into_iter()
        .rev()
        .filter(|(k, _)| seen.insert(k.clone()))
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_str()?, v.to_str()?)))
        .collect();
    unique.reverse();
    unique
}

/// Host directories bound into a container: one per volume (`(path in the container, directory)`)
/// and the payload store's.
pub(super) struct Binds<'a> {
    pub(super) volumes: &'a [(String, PathBuf)],
    pub(super) payloads: Option<&'a PayloadDirs>,
}

/// A container's root: the shared read-only root with the host's system directories, or its
/// own in its image.
pub(super) enum Root<'a> {
    /// The shared root, and the host directories mounted read-only over it.
    Host {
        rootfs: &'a Path,
        host_dirs: &'a [PathBuf],
    },
    Image(&'a super::image_root::ImageRoot),
}

/// The size of a container's `/tmp` (and of its writable layer in an image), in MiB.
pub(super) fn tmp_mb(limits: &super::super::Limits) -> u32 {
    if limits.ephemeral_disk_mb > 0 {
        limits.ephemeral_disk_mb
    } else {
        DEFAULT_TMP_MB
    }
}

/// The container's `config.json`. `root`: where its root comes from; `ids`: the host user and
/// group its root is, and how many ids are mapped; `share`: the container's own directory (its
/// journal and socket); `exe`: the staged executable; `cgroups_path`: where limits apply (none
/// without cgroups); `binds`: the directories bound in for volumes and payloads.
pub(super) fn spec(
    root: Root<'_>,
    ids: (u32, u32, u32),
    launch: &Launch,
    share: &Path,
    exe: &Staged,
    cgroups_path: Option<&Path>,
    binds: &Binds<'_>,
) -> Result<Spec, String> {
    let limits = &launch.limits;
    let e = |e: oci_spec::OciSpecError| e.to_string();
    let tmp_mb = tmp_mb(limits);
    let tmp_size = format!("size={tmp_mb}m");
    let none = Path::new("none");
    let mut mounts = vec![
        mount(
            "/proc",
            "proc",
            Path::new("proc"),
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/dev",
            "tmpfs",
            Path::new("tmpfs"),
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            Path::new("devpts"),
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            Path::new("shm"),
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            Path::new("mqueue"),
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys",
            "bind",
            Path::new("/sys"),
            &["rbind", "nosuid", "noexec", "nodev", "ro"],
        )?,
        // Over the host's cgroups (writable below the bind): the container's own, read-only,
        // so that it sees its CPU and memory limits (Rust's `available_parallelism` reads them).
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            Path::new("cgroup"),
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        )?,
        mount(
            "/tmp",
            "tmpfs",
            Path::new("tmpfs"),
            &["nosuid", "nodev", "mode=1777", &tmp_size],
        )?,
        // Every file the worker gives sits on this tmpfs, so that no mount point is ever
        // made on the host.
        mount(
            MODAL_DIR,
            "tmpfs",
            none,
            &["nosuid", "nodev", "mode=755", "size=64k"],
        )?,
        mount(
            BINARY,
            "bind",
            &exe.path,
            &["bind", "ro", "nosuid", "nodev"],
        )?,
        mount(
            JOURNAL,
            "bind",
            &share.join("journal"),
            &["bind", "rw", "nosuid", "nodev", "noexec"],
        )?,
    ];
    if limits.block_network {
        mounts.push(mount(
            SOCKET,
            "bind",
            &share.join("modal.sock"),
            &["bind", "rw", "nosuid", "nodev", "noexec"],
        )?);
    }
    if let Root::Host { host_dirs, .. } = &root {
        for dir in host_dirs.iter() {
            mounts.push(mount(
                &dir.to_string_lossy(),
                "bind",
                dir,
                &["rbind", "ro", "nosuid", "nodev"],
            )?);
        }
    }
    let on_host = matches!(root, Root::Host { .. });
    for (at, dir) in binds.volumes {
        mounts.push(mount(at, "bind", dir, &["bind", "rw", "nosuid", "nodev"])?);
    }
    if let Some(p) = binds.payloads {
        let options = ["bind", "nosuid", "nodev", "noexec"];
        mounts.push(mount(
            PAYLOADS,
            "bind",
            &p.objects,
            &[&options[..], &["ro"]].concat(),
        )?);
        mounts.push(mount(
            OUTBOX,
            "bind",
            &p.outbox,
            &[&options[..], &["rw"]].concat(),
        )?);
    }
    for device in &launch.devices {
        let at = device.to_string_lossy();
        mounts.push(mount(&at, "bind", device, &["bind", "rw", "nosuid"])?);
    }
    let mut namespaces = vec![
        LinuxNamespaceType::User,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
    ];
    if limits.block_network {
        namespaces.push(LinuxNamespaceType::Network);
    }
    let namespaces = namespaces
        .into_iter()
        .map(|typ| LinuxNamespaceBuilder::default().typ(typ).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(e)?;
    let (uid, gid, count) = ids;
    let map = |host: u32| {
        LinuxIdMappingBuilder::default()
            .host_id(host)
            .container_id(0u32)
            .size(count)
            .build()
    };
    let mut linux = LinuxBuilder::default()
        .seccomp(super::seccomp::filter().map_err(e)?)
        .namespaces(namespaces)
        .uid_mappings(vec![map(uid).map_err(e)?])
        .gid_mappings(vec![map(gid).map_err(e)?])
        .masked_paths(
            [
                "/proc/acpi",
                "/proc/kcore",
                "/proc/keys",
                "/proc/latency_stats",
                "/proc/timer_list",
                "/proc/sched_debug",
                "/proc/scsi",
                "/proc/asound",
                "/sys/firmware",
                "/sys/devices/virtual/powercap",
            ]
            .map(String::from)
            .to_vec(),
        )
        .readonly_paths(
            [
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/sysrq-trigger",
            ]
            .map(String::from)
            .to_vec(),
        );
    if let Some(path) = cgroups_path {
        let mut resources = LinuxResourcesBuilder::default().pids(
            LinuxPidsBuilder::default()
                .limit(PIDS_LIMIT)
                .build()
                .map_err(e)?,
        );
        if limits.milli_cpu > 0 {
            const PERIOD: u64 = 100_000;
            let quota = i64::from(limits.milli_cpu) * 100;
            resources = resources.cpu(
                LinuxCpuBuilder::default()
                    .period(PERIOD)
                    .quota(quota)
                    .build()
                    .map_err(e)?,
            );
        }
        // The GPUs it was given (the runtime's device rules allow the standard devices only).
        let gpus = launch
            .devices
            .iter()
            .map(|d| device_rule(d))
            .collect::<Result<Vec<_>, String>>()?;
        if !gpus.is_empty() {
            resources = resources.devices(gpus);
        }
        linux = linux
            .cgroups_path(path.to_owned())
            .resources(resources.build().map_err(e)?);
    }
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(
            UserBuilder::default()
                .uid(0u32)
                .gid(0u32)
                .build()
                .map_err(e)?,
        )
        .args(vec![BINARY.to_owned()])
        .env(environment(launch, exe, &root, binds.payloads))
        .cwd(match &root {
            Root::Host { .. } => "/tmp".to_owned(),
            Root::Image(image) => image.cwd.clone(),
        })
        .no_new_privileges(true)
        .build()
        .map_err(e)?;
    let mut spec = SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(match &root {
                    Root::Host { rootfs, .. } => rootfs.to_path_buf(),
                    Root::Image(image) => image.merged.clone(),
                })
                .readonly(on_host)
                .build()
                .map_err(e)?,
        )
        .hostname("modal")
        .mounts(mounts)
        .process(process)
        .linux(linux.build().map_err(e)?)
        .build()
        .map_err(e)?;
    // Rlimits are the worker's own (the default would lower the open files limit), but no
    // file may grow past the size of `/tmp` (its journal, on the worker's disk, neither; that
    // is 2 MiB, hence the floor; a large result, a file of its payload outbox, neither), and no
    // core file is written.
    let fsize = u64::from(tmp_mb.max(4)) << 20;
    let limit = |typ: PosixRlimitType, value: u64| {
        PosixRlimitBuilder::default()
            .typ(typ)
            .hard(value)
            .soft(value)
            .build()
    };
    let rlimits = vec![
        limit(PosixRlimitType::RlimitFsize, fsize).map_err(e)?,
        limit(PosixRlimitType::RlimitCore, 0).map_err(e)?,
    ];
    if let Some(p) = spec.process_mut().as_mut() {
        p.set_rlimits(Some(rlimits));
    }
    Ok(spec)
}

/// A device rule that lets the container read, write and make device file `path`.
fn device_rule(path: &Path) -> Result<LinuxDeviceCgroup, String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let typ = if meta.file_type().is_block_device() {
        LinuxDeviceType::B
    } else {
        LinuxDeviceType::C
    };
    let rdev = meta.rdev();
    LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .typ(typ)
        .major(i64::try_from(nix::sys::stat::major(rdev)).map_err(|e| e.to_string())?)
        .minor(i64::try_from(nix::sys::stat::minor(rdev)).map_err(|e| e.to_string())?)
        .access("rwm")
        .build()
        .map_err(|e| e.to_string())
}
