//! Validation rules for app, function and class parameters, as Modal applies them.
//!
//! This file is pure `std` and is compiled twice: into `modal` (checks on values built at run
//! time) and, through `#[path]`, into `modal-macros` (checks on literals at compile time), so a
//! rule and its message exist once. Every error names what is allowed.

#![allow(dead_code)]

/// Longest app name, deployment name and tag Modal accepts.
pub(crate) const MAX_NAME_LEN: usize = 64;
/// Longest app tag key or value.
pub(crate) const MAX_TAG_LEN: usize = 63;
/// Scale-down window bounds in seconds.
pub(crate) const SCALEDOWN_WINDOW_SECS: (u64, u64) = (2, 3600);
/// Timeout bounds in seconds (1 s to 24 h).
pub(crate) const TIMEOUT_SECS: (u64, u64) = (1, 86_400);
/// Default per-attempt timeout in seconds.
pub(crate) const DEFAULT_TIMEOUT_SECS: u64 = 300;
/// Default scale-down window in seconds.
pub(crate) const DEFAULT_SCALEDOWN_WINDOW_SECS: u64 = 60;
/// GPU types Modal documents, in their canonical spelling.
pub(crate) const GPU_TYPES: &[&str] = &[
    "T4",
    "L4",
    "A10",
    "L40S",
    "A100",
    "A100-40GB",
    "A100-80GB",
    "RTX-PRO-6000",
    "H100",
    "H100!",
    "H200",
    "B200",
    "B200+",
    "ANY",
];
/// Cloud providers Modal accepts for `cloud = …`.
pub(crate) const CLOUDS: &[&str] = &["aws", "gcp", "oci", "auto"];
/// Largest batch size for `#[modal::batched]`.
pub(crate) const MAX_BATCH_SIZE: u64 = 1000;
/// Longest batch linger for `#[modal::batched]`, in milliseconds.
pub(crate) const MAX_BATCH_WAIT_MS: u64 = 600_000;

/// A parsed `gpu = "TYPE[:N]"` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GpuRule {
    /// Canonical upper-case type, one of [`GPU_TYPES`].
    pub(crate) kind: String,
    /// Number of devices, 1–8 (1–4 for A10).
    pub(crate) count: u32,
}

fn name_chars_ok(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// An app or deployment name: `[A-Za-z0-9._-]`, 1–64 characters, not an `ap-` id.
pub(crate) fn check_app_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("app name must not be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "app name `{name}` is {} characters long; at most {MAX_NAME_LEN} are allowed",
            name.len()
        ));
    }
    if !name_chars_ok(name) {
        return Err(format!(
            "app name `{name}` may only contain letters, digits, `.`, `_` and `-`"
        ));
    }
    if name.starts_with("ap-") {
        return Err(format!(
            "app name `{name}` looks like an app id; names must not start with `ap-`"
        ));
    }
    Ok(())
}

/// A deployment tag: `[A-Za-z0-9._-]`, at most 50 characters (may be empty).
pub(crate) fn check_deployment_tag(tag: &str) -> Result<(), String> {
    if tag.len() > 50 {
        return Err(format!(
            "deployment tag `{tag}` is {} characters long; at most 50 are allowed",
            tag.len()
        ));
    }
    if !name_chars_ok(tag) {
        return Err(format!(
            "deployment tag `{tag}` may only contain letters, digits, `.`, `_` and `-`"
        ));
    }
    Ok(())
}

/// A function name (`name = …`): `[A-Za-z0-9_-]`, 1–64 characters; `.` is reserved for classes.
pub(crate) fn check_function_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!(
            "function name `{name}` must be 1–{MAX_NAME_LEN} characters long"
        ));
    }
    if name.contains('.') {
        return Err(format!(
            "function name `{name}` must not contain `.` (reserved for class methods)"
        ));
    }
    if !name_chars_ok(name) {
        return Err(format!(
            "function name `{name}` may only contain letters, digits, `_` and `-`"
        ));
    }
    Ok(())
}

/// An app tag key or value: `[A-Za-z0-9._-]`, 1–63 characters.
pub(crate) fn check_tag(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > MAX_TAG_LEN {
        return Err(format!(
            "tag {what} `{s}` must be 1–{MAX_TAG_LEN} characters long"
        ));
    }
    if !name_chars_ok(s) {
        return Err(format!(
            "tag {what} `{s}` may only contain letters, digits, `.`, `_` and `-`"
        ));
    }
    Ok(())
}

fn check_range(param: &str, value: u64, (lo, hi): (u64, u64), unit: &str) -> Result<(), String> {
    if value < lo || value > hi {
        return Err(format!(
            "`{param}` is {value}{unit}; it must be between {lo} and {hi}{unit}"
        ));
    }
    Ok(())
}

/// `scaledown_window`: 2–3600 seconds.
pub(crate) fn check_scaledown_window(secs: u64) -> Result<(), String> {
    check_range("scaledown_window", secs, SCALEDOWN_WINDOW_SECS, " s")
}

/// `timeout`: 1–86400 seconds.
pub(crate) fn check_timeout(secs: u64) -> Result<(), String> {
    check_range("timeout", secs, TIMEOUT_SECS, " s")
}

/// `startup_timeout`: 1–86400 seconds.
pub(crate) fn check_startup_timeout(secs: u64) -> Result<(), String> {
    check_range("startup_timeout", secs, TIMEOUT_SECS, " s")
}

/// `min_containers ≤ max_containers`, and `max_containers ≥ 1`.
pub(crate) fn check_container_counts(min: Option<u64>, max: Option<u64>) -> Result<(), String> {
    if let Some(0) = max {
        return Err("`max_containers` must be at least 1".into());
    }
    if let (Some(min), Some(max)) = (min, max)
        && min > max
    {
        return Err(format!(
            "`min_containers` ({min}) must not be greater than `max_containers` ({max})"
        ));
    }
    Ok(())
}

/// `max_inputs` (deprecated): only 1 is accepted; use `single_use_containers = true`.
pub(crate) fn check_max_inputs(n: u64) -> Result<(), String> {
    if n != 1 {
        return Err(format!(
            "`max_inputs = {n}` is not supported: only `max_inputs = 1` is accepted (it is deprecated; use `single_use_containers = true`)"
        ));
    }
    Ok(())
}

/// `cpu = x` or `cpu = (request, limit)`: positive cores, limit ≥ request.
pub(crate) fn check_cpu(request: f64, limit: Option<f64>) -> Result<(), String> {
    if request.is_nan() || request <= 0.0 {
        return Err(format!(
            "`cpu` request must be a positive number of cores, got {request:?}"
        ));
    }
    if let Some(limit) = limit {
        if limit.is_nan() || limit <= 0.0 {
            return Err(format!(
                "`cpu` limit must be a positive number of cores, got {limit:?}"
            ));
        }
        if limit < request {
            return Err(format!(
                "`cpu` limit ({limit:?}) must be greater than or equal to the request ({request:?})"
            ));
        }
    }
    Ok(())
}

/// `memory = MiB` or `memory = (request, limit)`: positive MiB, limit ≥ request.
pub(crate) fn check_memory(request: u64, limit: Option<u64>) -> Result<(), String> {
    if request == 0 {
        return Err("`memory` request must be a positive number of MiB".into());
    }
    if let Some(limit) = limit
        && limit < request
    {
        return Err(format!(
            "`memory` limit ({limit} MiB) must be greater than or equal to the request ({request} MiB)"
        ));
    }
    Ok(())
}

/// `Retries(max_retries, backoff_coefficient, initial_delay, max_delay)` ranges (delays in seconds).
pub(crate) fn check_retries(
    max_retries: i64,
    backoff_coefficient: f64,
    initial_delay: f64,
    max_delay: f64,
) -> Result<(), String> {
    if max_retries < 0 {
        return Err(format!(
            "`retries` max_retries must be 0 or more, got {max_retries}"
        ));
    }
    if !(1.0..=10.0).contains(&backoff_coefficient) {
        return Err(format!(
            "`retries` backoff_coefficient must be between 1.0 and 10.0, got {backoff_coefficient:?}"
        ));
    }
    if !(0.0..=60.0).contains(&initial_delay) {
        return Err(format!(
            "`retries` initial_delay must be between 0 and 60 seconds, got {initial_delay:?}"
        ));
    }
    if !(1.0..=60.0).contains(&max_delay) {
        return Err(format!(
            "`retries` max_delay must be between 1 and 60 seconds, got {max_delay:?}"
        ));
    }
    Ok(())
}

/// Paths of a container that a volume cannot be mounted at: the system's own (read-only host
/// directories, the kernel's file systems, the private `/tmp`, the runtime's `/__modal`).
const RESERVED_MOUNT_PATHS: &[&str] = &[
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/sbin",
    "/sys", "/tmp", "/usr", "/__modal",
];

/// A volume mount path: absolute, normalized, not `/` and not in or above a system path.
pub(crate) fn check_volume_path(path: &str) -> Result<(), String> {
    let inner = path.strip_prefix('/').unwrap_or("");
    let normal = path.starts_with('/')
        && !inner.is_empty()
        && inner
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    if !normal {
        return Err(format!(
            "volume mount path `{path}` must be an absolute path below `/` (like `/data`), without `.`, `..` or a trailing `/`"
        ));
    }
    for reserved in RESERVED_MOUNT_PATHS {
        let within = path == *reserved || path.starts_with(&format!("{reserved}/"));
        if within || reserved.starts_with(&format!("{path}/")) {
            return Err(format!(
                "volume mount path `{path}` is taken by the container's system ({reserved}); mount it elsewhere, like `/data`"
            ));
        }
    }
    Ok(())
}

/// The mounts of one function: each path valid, none inside another, no volume twice.
pub(crate) fn check_volume_mounts<'a>(
    mounts: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<String> {
    let mounts: Vec<(&str, &str)> = mounts.into_iter().collect();
    let mut errors = Vec::new();
    for (i, (path, name)) in mounts.iter().enumerate() {
        if let Err(e) = check_volume_path(path) {
            errors.push(e);
        }
        for (other, other_name) in &mounts[..i] {
            if other.starts_with(&format!("{path}/")) || path.starts_with(&format!("{other}/")) {
                errors.push(format!(
                    "volume mount paths `{other}` and `{path}` are nested; mount volumes side by side"
                ));
            }
            if other_name == name {
                errors.push(format!(
                    "volume `{name}` is mounted at `{other}` and `{path}`; mount a volume at one path"
                ));
            }
        }
    }
    errors
}

/// `cloud = …`: one of aws, gcp, oci, auto.
pub(crate) fn check_cloud(cloud: &str) -> Result<(), String> {
    if CLOUDS.contains(&cloud) {
        Ok(())
    } else {
        Err(format!(
            "unknown `cloud = \"{cloud}\"`; expected one of: {}",
            CLOUDS.join(", ")
        ))
    }
}

/// `#[modal::concurrent(max_inputs, target_inputs)]`: max ≥ 1, target ≤ max.
pub(crate) fn check_concurrency(max_inputs: u64, target_inputs: Option<u64>) -> Result<(), String> {
    if max_inputs == 0 {
        return Err("`max_inputs` must be at least 1".into());
    }
    if let Some(target) = target_inputs {
        if target == 0 {
            return Err("`target_inputs` must be at least 1".into());
        }
        if target > max_inputs {
            return Err(format!(
                "`target_inputs` ({target}) must not be greater than `max_inputs` ({max_inputs})"
            ));
        }
    }
    Ok(())
}

/// `#[modal::batched(max_batch_size, wait_ms)]`: size 1–1000, wait 0–600000 ms.
pub(crate) fn check_batching(max_batch_size: u64, wait_ms: u64) -> Result<(), String> {
    if max_batch_size == 0 || max_batch_size > MAX_BATCH_SIZE {
        return Err(format!(
            "`max_batch_size` is {max_batch_size}; it must be between 1 and {MAX_BATCH_SIZE}"
        ));
    }
    if wait_ms > MAX_BATCH_WAIT_MS {
        return Err(format!(
            "`wait_ms` is {wait_ms}; it must be at most {MAX_BATCH_WAIT_MS}"
        ));
    }
    Ok(())
}

/// Parses `"TYPE"` or `"TYPE:N"` (case-insensitive) into a canonical GPU request.
pub(crate) fn parse_gpu(spec: &str) -> Result<GpuRule, String> {
    let spec = spec.trim();
    let (kind, count) = match spec.split_once(':') {
        Some((kind, count)) => {
            let count: u32 = count.trim().parse().map_err(|_| {
                format!("invalid GPU count in `{spec}`: `{count}` is not a whole number")
            })?;
            (kind.trim(), count)
        }
        None => (spec, 1),
    };
    let upper = kind.to_ascii_uppercase();
    if !GPU_TYPES.contains(&upper.as_str()) {
        return Err(format!(
            "unknown GPU type `{kind}`; expected one of: {} (optionally with `:N`)",
            GPU_TYPES.join(", ")
        ));
    }
    let max = if upper == "A10" { 4 } else { 8 };
    if count == 0 || count > max {
        return Err(format!(
            "invalid GPU count {count} for {upper}: it must be between 1 and {max}"
        ));
    }
    Ok(GpuRule { kind: upper, count })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_specs() {
        assert_eq!(
            parse_gpu("h100").unwrap(),
            GpuRule {
                kind: "H100".into(),
                count: 1
            }
        );
        assert_eq!(
            parse_gpu("A100-80GB:4").unwrap(),
            GpuRule {
                kind: "A100-80GB".into(),
                count: 4
            }
        );
        let accepted = [
            ("T4", "T4", 1),
            ("l4", "L4", 1),
            ("a10:4", "A10", 4),
            ("L40S:2", "L40S", 2),
            ("A100", "A100", 1),
            ("a100-40gb", "A100-40GB", 1),
            ("A100-80GB:8", "A100-80GB", 8),
            ("rtx-pro-6000", "RTX-PRO-6000", 1),
            ("H100", "H100", 1),
            ("h100!:2", "H100!", 2),
            ("H200", "H200", 1),
            ("b200", "B200", 1),
            ("B200+", "B200+", 1),
            ("any", "ANY", 1),
            ("Any:3", "ANY", 3),
        ];
        for (spec, kind, count) in accepted {
            let rule = parse_gpu(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
            assert_eq!((rule.kind.as_str(), rule.count), (kind, count), "{spec}");
        }
        assert!(
            parse_gpu("H100:x")
                .unwrap_err()
                .contains("invalid GPU count")
        );
        assert!(parse_gpu("H100:9").unwrap_err().contains("between 1 and 8"));
        assert!(parse_gpu("A10:5").unwrap_err().contains("between 1 and 4"));
        assert!(parse_gpu("H100:0").is_err());
        assert!(parse_gpu("V100").unwrap_err().contains("expected one of"));
        assert!(parse_gpu("").unwrap_err().contains("unknown GPU type"));
        assert!(
            parse_gpu("H100:-1")
                .unwrap_err()
                .contains("invalid GPU count")
        );
    }

    #[test]
    fn ranges() {
        assert!(check_scaledown_window(1).is_err());
        assert!(check_scaledown_window(2).is_ok());
        assert!(check_scaledown_window(3600).is_ok());
        assert!(check_scaledown_window(3601).is_err());
        assert!(check_timeout(0).is_err());
        assert!(check_timeout(86_400).is_ok());
        assert!(check_timeout(86_401).is_err());
        assert!(check_container_counts(Some(3), Some(2)).is_err());
        assert!(check_container_counts(Some(2), Some(2)).is_ok());
        assert!(check_container_counts(None, Some(0)).is_err());
        assert!(check_max_inputs(1).is_ok());
        assert!(check_max_inputs(2).is_err());
    }

    #[test]
    fn resources() {
        assert!(check_cpu(0.5, None).is_ok());
        assert!(check_cpu(0.0, None).is_err());
        assert!(check_cpu(1.0, Some(0.5)).is_err());
        assert!(check_cpu(1.0, Some(1.0)).is_ok());
        assert!(check_memory(128, Some(64)).is_err());
        assert!(check_memory(0, None).is_err());
        assert!(check_memory(128, Some(256)).is_ok());
    }

    #[test]
    fn retries() {
        assert!(check_retries(3, 2.0, 1.0, 60.0).is_ok());
        assert!(check_retries(-1, 2.0, 1.0, 60.0).is_err());
        assert!(check_retries(1, 0.5, 1.0, 60.0).is_err());
        assert!(check_retries(1, 11.0, 1.0, 60.0).is_err());
        assert!(check_retries(1, 2.0, 61.0, 60.0).is_err());
        assert!(check_retries(1, 2.0, 0.0, 60.0).is_ok());
        assert!(check_retries(1, 2.0, 1.0, 0.5).is_err());
    }

    #[test]
    fn names_and_tags() {
        assert!(check_app_name("hello-world_1.0").is_ok());
        assert!(check_app_name("has space").is_err());
        assert!(check_app_name("ap-123").is_err());
        assert!(check_app_name(&"x".repeat(65)).is_err());
        assert!(check_function_name("square").is_ok());
        assert!(check_function_name("a.b").is_err());
        assert!(check_tag("key", "team").is_ok());
        assert!(check_tag("value", "a/b").is_err());
        assert!(check_deployment_tag("").is_ok());
        assert!(check_deployment_tag("v1.2").is_ok());
        assert!(check_cloud("aws").is_ok());
        assert!(check_cloud("azure").is_err());
        assert!(check_concurrency(4, Some(5)).is_err());
        assert!(check_batching(1001, 0).is_err());
        assert!(check_batching(8, 600_001).is_err());
    }

    #[test]
    fn volume_mount_paths() {
        assert!(check_volume_path("/data").is_ok());
        assert!(check_volume_path("/mnt/models").is_ok());
        for bad in [
            "data",
            "/",
            "/data/",
            "/a//b",
            "/a/../b",
            "/tmp",
            "/usr/local",
            "/__modal",
        ] {
            assert!(check_volume_path(bad).is_err(), "{bad}");
        }
        let errors = check_volume_mounts([("/a", "v"), ("/a/b", "w"), ("/c", "v")]);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("nested"));
        assert!(errors[1].contains("mount a volume at one path"));
    }
}
