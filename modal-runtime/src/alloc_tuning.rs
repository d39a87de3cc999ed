//! Allocator tuning for the processes that move payloads (containers and an embedded control
//! plane): keep freed large buffers for reuse instead of returning them to the kernel, so that a
//! 16 MiB payload does not fault in fresh zeroed pages at every copy.

/// Buffers up to this size come from the heap rather than a fresh `mmap`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 64 << 20;
/// Free memory at the top of the heap is returned to the kernel only above this size.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 256 << 20;

/// Applies the tuning once per process (glibc only; elsewhere a no-op by construction).
pub(crate) fn tune_for_payloads() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        #[allow(unsafe_code)]
        // SAFETY: `mallopt` only sets glibc malloc parameters; it takes the arena lock itself and
        // has no memory-safety preconditions.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        }
    });
}
