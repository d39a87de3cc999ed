//! The system calls a container may not make (a seccomp filter the OCI runtime installs before
//! the container's code starts): new user namespaces (which would give it every capability in
//! a namespace of its own, and with them kernel code no container needs), kernel keyrings, BPF,
//! performance counters, modules, and the like. Everything else is allowed.

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompBuilder,
    LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};

/// Refused with `EPERM`.
const DENIED: &[&str] = &[
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "open_by_handle_at",
    "name_to_handle_at",
    "swapon",
    "swapoff",
    "reboot",
    "syslog",
    "acct",
    "quotactl",
    "iopl",
    "ioperm",
    "lookup_dcookie",
];

const CLONE_NEWUSER: u64 = 0x1000_0000;
const EPERM: u32 = 1;
const ENOSYS: u32 = 38;
const EOPNOTSUPP: u32 = 95;

/// The container's filter.
pub(super) fn filter() -> Result<LinuxSeccomp, oci_spec::OciSpecError> {
    let deny = |names: &[&str], errno: u32| -> Result<LinuxSyscall, oci_spec::OciSpecError> {
        LinuxSyscallBuilder::default()
            .names(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .action(LinuxSeccompAction::ScmpActErrno)
            .errno_ret(errno)
            .build()
    };
    // `clone` with CLONE_NEWUSER in its flags (its first argument).
    let new_user = LinuxSyscallBuilder::default()
        .names(vec!["clone".to_owned()])
        .action(LinuxSeccompAction::ScmpActErrno)
        .errno_ret(EPERM)
        .args(vec![
            LinuxSeccompArgBuilder::default()
                .index(0usize)
                .value(CLONE_NEWUSER)
                .value_two(CLONE_NEWUSER)
                .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                .build()?,
        ])
        .build()?;
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .syscalls(vec![
            deny(DENIED, EPERM)?,
            new_user,
            // clone3's flags are in memory a filter cannot read: without it the C library falls
            // back to clone, whose flags it can.
            deny(&["clone3"], ENOSYS)?,
            // fallocate can take disk blocks past the file size limit; the C library's
            // posix_fallocate falls back to writes, which the limit bounds.
            deny(&["fallocate"], EOPNOTSUPP)?,
        ])
        .build()
}
