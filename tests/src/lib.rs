//! Shared helpers of the end-to-end tests: finding container processes and waiting with bounds,
//! a real `modal server` ([`server`]), the run log functions note themselves in ([`runlog`]),
//! and the chaos suite ([`chaos`]).

pub mod chaos;
pub mod runlog;
pub mod server;

use std::collections::HashMap;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A container process: its pid and environment.
#[derive(Debug, Clone)]
pub struct ContainerProcess {
    /// Process id.
    pub pid: i32,
    /// Its environment variables.
    pub env: HashMap<String, String>,
}

/// Every live process that is a modal container (it has `MODAL_TASK_ID` in its environment).
pub fn containers() -> Vec<ContainerProcess> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if is_zombie(pid) {
            continue;
        }
        let env: HashMap<String, String> = raw
            .split(|b| *b == 0)
            .filter_map(|kv| {
                let kv = String::from_utf8_lossy(kv);
                kv.split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
            })
            .collect();
        if env.contains_key("MODAL_TASK_ID") {
            out.push(ContainerProcess { pid, env });
        }
    }
    out
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// Containers of the app with id `app_id`.
pub fn containers_of_app(app_id: &str) -> Vec<ContainerProcess> {
    containers()
        .into_iter()
        .filter(|c| c.env.get("MODAL_APP_ID").map(String::as_str) == Some(app_id))
        .collect()
}

/// The container with task id `task_id`, if its process is alive.
pub fn container(task_id: &str) -> Option<ContainerProcess> {
    containers()
        .into_iter()
        .find(|c| c.env.get("MODAL_TASK_ID").map(String::as_str) == Some(task_id))
}

/// A component a test needs is missing (`why` says which, and how CI gets it): under `CI=true`
/// that fails the test (CI sets every component up); otherwise the test says it is skipped.
pub fn skip_without(why: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI needs it: {why}"
    );
    eprintln!("skipped: {why}");
}

/// The PostgreSQL server the tests may use (`MODAL_TEST_POSTGRES_URL`, which `cargo xtask ci`
/// sets): `None`, after saying that `what` skips, where there is none; under `CI=true` a
/// missing server fails the test instead.
pub fn postgres_url(what: &str) -> Option<String> {
    let url = std::env::var("MODAL_TEST_POSTGRES_URL").ok();
    if url.is_none() {
        skip_without(&format!(
            "{what}: MODAL_TEST_POSTGRES_URL is not set (cargo xtask ci, or `source .ci/postgres.sh`, starts a server)"
        ));
    }
    url
}

/// Whether a Slurm cluster is there for `what` (`MODAL_TEST_SLURM`, which `cargo xtask ci`
/// sets after starting one with `.ci/slurm.sh`): false, after saying that `what` skips, where
/// there is none; under `CI=true` a missing cluster fails the test instead.
pub fn slurm_available(what: &str) -> bool {
    let there = std::env::var_os("MODAL_TEST_SLURM").is_some();
    if !there {
        skip_without(&format!(
            "{what}: MODAL_TEST_SLURM is not set (cargo xtask ci, or `eval \"$(bash .ci/slurm.sh)\"`, starts a Slurm cluster)"
        ));
    }
    there
}

/// The first of `names` on `PATH`.
pub fn on_path(names: &[&str]) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// The chromedriver the browser tests start (on `PATH`; `cargo xtask ci`, or `bash
/// .ci/chromium.sh`, installs it with chromium): `None`, after saying that `what` skips, where
/// there is none; under `CI=true` a missing one fails the test instead.
pub fn browser_available(what: &str) -> Option<std::path::PathBuf> {
    let driver = on_path(&["chromedriver"]);
    if driver.is_none() {
        skip_without(&format!(
            "{what}: chromedriver is not on PATH (cargo xtask ci, or `bash .ci/chromium.sh`, installs chromium and chromium-driver)"
        ));
    }
    driver
}

/// Whether the oci container runtime can run here, judged as the runtime judges it: `crun` on
/// `PATH`, and no cgroup controllers held by the v2 hierarchy of a hybrid layout.
pub fn oci_usable() -> bool {
    let crun = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .any(|d| d.join("crun").is_file());
    let held =
        std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers").unwrap_or_default();
    crun && held.trim().is_empty()
}

/// The container runtime the tests' `modal server` and `modal worker` must be told to use:
/// `process` where the oci runtime cannot run here (saying so), except under `CI=true`, where
/// the servers' own error must fail the run; `None` for their default.
pub fn runtime_override() -> Option<&'static str> {
    if std::env::var_os("MODAL_RUNTIME").is_some() || oci_usable() {
        return None;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        return None;
    }
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        eprintln!(
            "note: crun cannot run here (.ci/crun.sh sets it up); servers in these tests use the process runtime"
        );
    });
    Some("process")
}

/// Polls `cond` every 50 ms until it holds or `limit` passes; returns whether it held.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `exe args` on the embedded control plane (no `MODAL_SERVER_URL`, no user config) with
/// `env` added, killed with SIGKILL if it runs past `limit`.
pub fn run_bounded(exe: &str, args: &[&str], env: &[(&str, &str)], limit: Duration) -> Output {
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .env_remove("MODAL_SERVER_URL")
        .env("MODAL_CONFIG_PATH", "/nonexistent/modal-config.toml")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("the program starts");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let killer = std::thread::spawn(move || {
        if finished.recv_timeout(limit).is_err() {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    });
    let out = child.wait_with_output().expect("the program runs");
    let _ = done.send(());
    let _ = killer.join();
    out
}

/// The value the program printed as `key: value` (the first such line), if any.
pub fn field(out: &Output, key: &str) -> Option<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")).map(str::to_owned))
}

/// Asserts that the program printed `key: expected`, showing its whole output when it did not.
#[track_caller]
pub fn assert_field(out: &Output, key: &str, expected: &str) {
    assert_eq!(field(out, key).as_deref(), Some(expected), "{}", show(out));
}

/// The `key: value` lines a run printed (the last one wins).
pub fn fields(out: &Output) -> HashMap<String, String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split_once(": ")
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// A run's status and output, for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// What a GPU container of the `gpus` fixture saw while it held its device.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct GpuSlot {
    /// Its `CUDA_VISIBLE_DEVICES`.
    pub cuda_visible_devices: String,
    /// Its `NVIDIA_VISIBLE_DEVICES`.
    pub nvidia_visible_devices: String,
    /// Whether its devices were declared rather than discovered.
    pub declared: bool,
    /// Its task id.
    pub task_id: String,
    /// When it started holding the device (ms since the epoch).
    pub started_ms: i64,
    /// When it stopped (ms since the epoch).
    pub ended_ms: i64,
}

/// The value in KiB of line `key` of `/proc/<pid>/<file>` (0 when it cannot be read).
fn proc_kib(pid: u32, file: &str, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// The resident memory of process `pid`, in KiB (0 when it cannot be read).
pub fn rss_kib(pid: u32) -> u64 {
    proc_kib(pid, "status", "VmRSS:")
}

/// The proportional memory of process `pid` (its shared pages split between their users), in
/// KiB (0 when it cannot be read).
pub fn pss_kib(pid: u32) -> u64 {
    proc_kib(pid, "smaps_rollup", "Pss:")
}

/// The memory of process `pid` that no other process maps (what one more such process costs),
/// in KiB (0 when it cannot be read).
pub fn uss_kib(pid: u32) -> u64 {
    proc_kib(pid, "smaps_rollup", "Private_Clean:")
        + proc_kib(pid, "smaps_rollup", "Private_Dirty:")
}

/// The summed proportional memory of process `root` and all its descendants, in KiB.
pub fn tree_pss_kib(root: u32) -> u64 {
    let mut parents: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let ppid = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|s| {
                let (_, rest) = s.rsplit_once(')')?;
                rest.split_whitespace().nth(1)?.parse::<u32>().ok()
            });
        if let Some(ppid) = ppid {
            parents.entry(ppid).or_default().push(pid);
        }
    }
    let mut total = 0;
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        total += pss_kib(pid);
        todo.extend(parents.get(&pid).into_iter().flatten());
    }
    total
}

/// A PostgreSQL schema of its own, so reruns and other tests do not see each other's state;
/// dropped when this is.
pub struct PgSchema {
    url: String,
    schema: String,
}

impl PgSchema {
    /// Creates schema `modal_{name}_{pid}` in the database at `url` (with `psql`).
    pub fn create(url: &str, name: &str) -> PgSchema {
        let schema = format!("modal_{name}_{}", std::process::id());
        let status = Command::new("psql")
            .args([
                url,
                "-q",
                "-c",
                &format!("CREATE SCHEMA IF NOT EXISTS {schema}"),
            ])
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "psql could not create schema {schema}"
        );
        PgSchema {
            url: url.to_owned(),
            schema,
        }
    }

    /// The store URL a `modal server` uses to keep its state in this schema.
    pub fn store_url(&self) -> String {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!(
            "{}{sep}options=-c%20search_path%3D{}",
            self.url, self.schema
        )
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .env("PGOPTIONS", "-c client_min_messages=warning")
            .args([
                self.url.as_str(),
                "-q",
                "-c",
                &format!("DROP SCHEMA {} CASCADE", self.schema),
            ])
            .status();
    }
}

/// Reads a program's standard output until lines `KEY: VALUE` came for each of `keys`: their
/// values, in the order of `keys` (a panic if the program ends first).
pub fn read_keys(
    out: &mut std::io::BufReader<std::process::ChildStdout>,
    keys: &[&str],
) -> Vec<String> {
    use std::io::BufRead;
    let mut found = vec![String::new(); keys.len()];
    let mut line = String::new();
    while found.iter().any(String::is_empty) {
        line.clear();
        if out.read_line(&mut line).expect("reads") == 0 {
            panic!("the program ended before printing {keys:?}: {found:?}");
        }
        for (i, k) in keys.iter().enumerate() {
            if let Some(v) = line.trim().strip_prefix(&format!("{k}: ")) {
                found[i] = v.to_owned();
            }
        }
    }
    found
}

/// `exe ARGS` on the embedded control plane (no config file, no server in the environment),
/// its standard input and output piped (its input open until the caller drops it), its
/// errors dropped: the child and its output, line by line.
pub fn spawn_embedded(
    exe: &str,
    args: &[&str],
) -> (
    std::process::Child,
    std::io::BufReader<std::process::ChildStdout>,
) {
    use std::process::{Command, Stdio};
    let mut child = Command::new(exe)
        .args(args)
        .env("MODAL_CONFIG_PATH", "/nonexistent/modal-config.toml")
        .env_remove("MODAL_SERVER_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{exe} starts: {e}"));
    let out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    (child, out)
}
