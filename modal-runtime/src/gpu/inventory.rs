//! Which GPUs a worker offers: discovered through the CUDA driver, or declared in
//! `MODAL_WORKER_GPUS` (fake devices for machines without any, marked as declared everywhere).

use std::fmt::Write as _;

#[cfg(feature = "gpu")]
use cudarc::driver::{result, sys};

use super::GpuError;

/// The variable that declares a worker's GPUs instead of discovering them:
/// `NAME:MEMORY_MIB` entries separated by commas, or `none` for no GPU at all.
pub(crate) const DECLARED_ENV: &str = "MODAL_WORKER_GPUS";

/// One device a worker can hand to a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Device {
    /// The worker's ordinal for it (what the scheduler reserves).
    pub(crate) index: u32,
    /// The driver's name, e.g. `NVIDIA H100 80GB HBM3`.
    pub(crate) name: String,
    /// Total device memory in MiB.
    pub(crate) memory_mb: u64,
    /// `GPU-…` as the driver reports it; none for declared devices.
    pub(crate) uuid: Option<String>,
    /// What a container's `CUDA_VISIBLE_DEVICES` must hold to see this device: the worker's own
    /// `CUDA_VISIBLE_DEVICES` entry when the worker itself was restricted (e.g. by Slurm), else
    /// the index.
    pub(crate) visible_id: String,
    /// Declared in configuration, not discovered: there is no real device behind it.
    pub(crate) declared: bool,
}

/// Where a worker's GPU list comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// `MODAL_WORKER_GPUS` when set, else the driver.
    DeclaredOrDiscovered,
    /// `MODAL_WORKER_GPUS` when set, else none (the embedded worker of an app without GPU
    /// functions skips the driver's start-up cost).
    DeclaredOnly,
}

/// The worker's GPUs. A malformed declaration is an error; a machine without a usable driver has
/// none.
pub(crate) fn load(source: Source) -> Result<Vec<Device>, GpuError> {
    if let Some(declared) = std::env::var_os(DECLARED_ENV) {
        let declared = declared
            .into_string()
            .map_err(|_| GpuError::Declaration(format!("{DECLARED_ENV} is not valid UTF-8")))?;
        let parent = std::env::var("CUDA_VISIBLE_DEVICES").ok();
        let in_slurm_job = std::env::var_os("SLURM_JOB_ID").is_some();
        return Ok(restrict_declared(
            parse_declared(&declared)?,
            parent.as_deref(),
            in_slurm_job,
        ));
    }
    match source {
        Source::DeclaredOnly => Ok(Vec::new()),
        #[cfg(not(feature = "gpu"))]
        Source::DeclaredOrDiscovered => {
            tracing::debug!("built without the `gpu` feature; no GPU discovered");
            Ok(Vec::new())
        }
        #[cfg(feature = "gpu")]
        Source::DeclaredOrDiscovered => match discover() {
            Ok(devices) => Ok(devices),
            Err(e) => {
                tracing::warn!(error = %e, "GPU discovery failed; this worker offers no GPU");
                Ok(Vec::new())
            }
        },
    }
}

/// Parses `NAME:MEMORY_MIB[,NAME:MEMORY_MIB…]`; `none` or an empty value declares no GPU.
pub(crate) fn parse_declared(value: &str) -> Result<Vec<Device>, GpuError> {
    let value = value.trim();
    if value.is_empty() || value.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    let mut devices = Vec::new();
    for (i, entry) in value.split(',').enumerate() {
        let entry = entry.trim();
        let bad = |why: &str| {
            GpuError::Declaration(format!(
                "{DECLARED_ENV} entry {} `{entry}`: {why}; expected `NAME:MEMORY_MIB`, e.g. `NVIDIA H100 80GB HBM3:81559`",
                i + 1
            ))
        };
        let (name, memory) = entry
            .rsplit_once(':')
            .ok_or_else(|| bad("no `:MEMORY_MIB`"))?;
        let name = name.trim();
        if name.is_empty() {
            return Err(bad("the name is empty"));
        }
        let memory_mb: u64 = memory
            .trim()
            .parse()
            .map_err(|_| bad("the memory is not a whole number of MiB"))?;
        let index = u32::try_from(i).map_err(|_| bad("too many devices"))?;
        devices.push(Device {
            index,
            name: name.to_owned(),
            memory_mb,
            uuid: None,
            visible_id: index.to_string(),
            declared: true,
        });
    }
    Ok(devices)
}

/// The declared devices (the machine's) that this worker may hand out: with its own
/// `CUDA_VISIBLE_DEVICES` (a Slurm job's allocation, say), those it names by ordinal, renumbered
/// and seen by containers under the same ids; in a Slurm job without one, none (the job was
/// given no GPU); otherwise all.
pub(crate) fn restrict_declared(
    devices: Vec<Device>,
    parent: Option<&str>,
    in_slurm_job: bool,
) -> Vec<Device> {
    let Some(parent) = parent else {
        return if in_slurm_job { Vec::new() } else { devices };
    };
    let mut kept = Vec::new();
    for id in parent.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some(d) = id
            .parse::<u32>()
            .ok()
            .and_then(|ordinal| devices.iter().find(|d| d.index == ordinal))
        else {
            tracing::warn!(
                "CUDA_VISIBLE_DEVICES names `{id}`, which is not one of the {} devices declared in {DECLARED_ENV}",
                devices.len()
            );
            continue;
        };
        kept.push(Device {
            index: u32::try_from(kept.len()).unwrap_or(u32::MAX),
            visible_id: id.to_owned(),
            ..d.clone()
        });
    }
    kept
}

/// The ids a container uses for the worker's ordinals `0..count`: the entries of the worker's
/// own `CUDA_VISIBLE_DEVICES` when it has one, else the ordinals.
#[cfg_attr(not(feature = "gpu"), allow(dead_code))] // Used by discovery (and its tests).
pub(crate) fn visible_ids(parent: Option<&str>, count: usize) -> Vec<String> {
    let listed: Vec<String> = parent
        .map(|p| {
            p.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    (0..count)
        .map(|i| listed.get(i).cloned().unwrap_or_else(|| i.to_string()))
        .collect()
}

/// Lists the devices the CUDA driver shows this process. Without the driver library there are
/// none (cudarc would panic, so the library is checked first).
#[cfg(feature = "gpu")]
pub(crate) fn discover() -> Result<Vec<Device>, GpuError> {
    if !super::driver_present() {
        tracing::debug!("no CUDA driver library; no GPU discovered");
        return Ok(Vec::new());
    }
    match result::init() {
        Ok(()) => {}
        Err(e) if e.0 == sys::CUresult::CUDA_ERROR_NO_DEVICE => return Ok(Vec::new()),
        Err(source) => return Err(super::init_error(source)),
    }
    let count = result::device::get_count().map_err(GpuError::driver("counting devices"))?;
    let count = usize::try_from(count).unwrap_or(0);
    let parent = std::env::var("CUDA_VISIBLE_DEVICES").ok();
    let ids = visible_ids(parent.as_deref(), count);
    let mut devices = Vec::with_capacity(count);
    for (ordinal, visible_id) in ids.into_iter().enumerate() {
        let dev = result::device::get(i32::try_from(ordinal).unwrap_or(i32::MAX))
            .map_err(GpuError::driver("opening a device"))?;
        let name =
            result::device::get_name(dev).map_err(GpuError::driver("reading a device name"))?;
        // SAFETY: `dev` was returned by `cuDeviceGet` after a successful `cuInit`.
        #[allow(unsafe_code)]
        let bytes = unsafe { result::device::total_mem(dev) }
            .map_err(GpuError::driver("reading device memory"))?;
        let uuid = result::device::get_uuid(dev)
            .ok()
            .map(|u| format_uuid(&u.bytes));
        devices.push(Device {
            index: u32::try_from(ordinal).unwrap_or(u32::MAX),
            name,
            memory_mb: u64::try_from(bytes).unwrap_or(u64::MAX) / (1024 * 1024),
            uuid,
            visible_id,
            declared: false,
        });
    }
    tracing::info!(count = devices.len(), "GPUs discovered");
    Ok(devices)
}

/// `GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, as `nvidia-smi -L` prints it.
#[cfg_attr(not(feature = "gpu"), allow(dead_code))] // Used by discovery (and its tests).
fn format_uuid(bytes: &[std::ffi::c_char; 16]) -> String {
    let mut out = String::from("GPU-");
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        // `c_char` is `i8` or `u8` by platform; the byte is what matters.
        #[allow(clippy::cast_sign_loss, clippy::cast_possible_wrap)]
        let _ = write!(out, "{:02x}", *b as u8);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restricted_worker_offers_only_its_declared_devices_under_their_ids() {
        let four = parse_declared("Fake:1024,Fake:1024,Fake:1024,Fake:1024").unwrap();
        let two = restrict_declared(four.clone(), Some("1,3"), true);
        assert_eq!(two.len(), 2);
        assert_eq!((two[0].index, two[0].visible_id.as_str()), (0, "1"));
        assert_eq!((two[1].index, two[1].visible_id.as_str()), (1, "3"));
        assert!(restrict_declared(four.clone(), None, true).is_empty());
        assert!(restrict_declared(four.clone(), Some(""), false).is_empty());
        assert_eq!(restrict_declared(four.clone(), None, false), four);
        assert_eq!(restrict_declared(four, Some("7"), true), Vec::new());
    }

    #[test]
    fn declared_lists() {
        let two = parse_declared("NVIDIA H100 80GB HBM3:81559, NVIDIA L4:22491").unwrap();
        assert_eq!(two.len(), 2);
        assert_eq!(two[0].name, "NVIDIA H100 80GB HBM3");
        assert_eq!(two[0].memory_mb, 81_559);
        assert_eq!(two[1].index, 1);
        assert_eq!(two[1].visible_id, "1");
        assert!(two.iter().all(|d| d.declared && d.uuid.is_none()));
        assert!(parse_declared("none").unwrap().is_empty());
        assert!(parse_declared("  ").unwrap().is_empty());
        for bad in ["H100", "H100:lots", ":80000", "A:1,,B:2"] {
            let e = parse_declared(bad).unwrap_err().to_string();
            assert!(
                e.contains(DECLARED_ENV) && e.contains("NAME:MEMORY_MIB"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn visible_ids_follow_the_workers_own_restriction() {
        assert_eq!(visible_ids(None, 2), ["0", "1"]);
        assert_eq!(visible_ids(Some("2,3"), 2), ["2", "3"]);
        assert_eq!(visible_ids(Some("GPU-ab, GPU-cd"), 2), ["GPU-ab", "GPU-cd"]);
        assert_eq!(visible_ids(Some("5"), 2), ["5", "1"]);
    }

    #[test]
    fn uuids_print_like_nvidia_smi() {
        let mut bytes = [0 as std::ffi::c_char; 16];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = i as std::ffi::c_char;
        }
        assert_eq!(
            format_uuid(&bytes),
            "GPU-00010203-0405-0607-0809-0a0b0c0d0e0f"
        );
    }
}
