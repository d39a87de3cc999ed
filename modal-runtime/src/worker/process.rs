//! The process runtime: a container is a child process running the app's own binary, in its own
//! process group, with a clean environment and its output captured line by line.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;

use super::Report;
use crate::container::env as cenv;
use crate::wire::pb;

/// Variables passed through from the worker's environment; everything else is cleared so that
/// a container sees only what its function asked for.
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
];

fn command(spec: &pb::ContainerSpec, def: &pb::FunctionDefinition, exe: PathBuf) -> Command {
    let mut cmd = Command::new(exe);
    cmd.env_clear();
    for (k, v) in std::env::vars_os() {
        let keep = k
            .to_str()
            .is_some_and(|k| PASS_THROUGH.contains(&k) || k.starts_with("LC_"));
        if keep {
            cmd.env(k, v);
        }
    }
    cmd.envs(&def.env);
    cmd.envs(&def.secret_env);
    cmd.envs(&spec.secret_env);
    if !spec.token_id.is_empty() {
        cmd.env("MODAL_TOKEN_ID", &spec.token_id)
            .env("MODAL_TOKEN_SECRET", &spec.token_secret);
    }
    cmd.env(cenv::TASK_ID, &spec.task_id)
        .env(cenv::SERVER_URL, &spec.server_url)
        .env(cenv::APP_ID, &spec.app_id)
        .env(cenv::APP_NAME, &spec.app_name)
        .env(cenv::FUNCTION_ID, &spec.function_id)
        .env(cenv::FUNCTION_TAG, &def.tag)
        .env(cenv::BINARY_HASH, &def.binary_hash)
        .env(
            cenv::MAX_INPUTS,
            def.max_concurrent_inputs.max(1).to_string(),
        )
        .env(cenv::IS_REMOTE, "1");
    if let Some(params) = def.class_params.as_ref().filter(|p| !p.data.is_empty()) {
        let hex: String = params.data.iter().map(|b| format!("{b:02x}")).collect();
        cmd.env(cenv::CLASS_PARAMS, hex);
    }
    if def.single_use_containers {
        cmd.env(cenv::SINGLE_USE, "1");
    }
    if !spec.gpu_indices.is_empty() {
        let list: Vec<String> = spec.gpu_indices.iter().map(u32::to_string).collect();
        cmd.env("CUDA_VISIBLE_DEVICES", list.join(","));
        cmd.env("NVIDIA_VISIBLE_DEVICES", list.join(","));
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    cmd
}

/// Runs one container from start to exit. A stop request carries a grace period in
/// milliseconds, after which the whole process group is killed.
pub(super) async fn supervise(
    spec: pb::ContainerSpec,
    resolver: std::sync::Arc<super::binaries::Resolver>,
    mut stop: mpsc::UnboundedReceiver<u32>,
    reports: mpsc::UnboundedSender<Report>,
) {
    let task_id = spec.task_id.clone();
    let Some(def) = spec.definition.clone() else {
        return;
    };
    let exe = match resolver.resolve(&def).await {
        Ok(exe) => exe,
        Err(message) => {
            let _ = reports.send(Report::Message(pb::worker_message::Message::SpawnFailed(
                pb::ContainerSpawnFailed { task_id, message },
            )));
            return;
        }
    };
    let mut child = match command(&spec, &def, exe.clone()).spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = reports.send(Report::Message(pb::worker_message::Message::SpawnFailed(
                pb::ContainerSpawnFailed {
                    task_id,
                    message: format!("{}: {e}", exe.display()),
                },
            )));
            return;
        }
    };
    let pgid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(tokio::spawn(pump(
            out,
            task_id.clone(),
            pb::LogSource::Stdout,
            reports.clone(),
        )));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(tokio::spawn(pump(
            err,
            task_id.clone(),
            pb::LogSource::Stderr,
            reports.clone(),
        )));
    }
    let kill = |pgid: Option<Pid>| {
        if let Some(pgid) = pgid {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    };
    let status = tokio::select! {
        status = child.wait() => status,
        grace = stop.recv() => {
            let grace = grace.unwrap_or(0);
            let within_grace = if grace > 0 {
                tokio::time::timeout(Duration::from_millis(u64::from(grace)), child.wait()).await.ok()
            } else {
                None
            };
            match within_grace {
                Some(status) => status,
                None => {
                    kill(pgid);
                    child.wait().await
                }
            }
        }
    };
    // Whatever the container started must not outlive it either.
    kill(pgid);
    for r in readers {
        let _ = tokio::time::timeout(Duration::from_millis(500), r).await;
    }
    let (exit_code, signal) = match &status {
        Ok(s) => (s.code(), s.signal()),
        Err(_) => (None, None),
    };
    let _ = reports.send(Report::Message(pb::worker_message::Message::Exited(
        pb::ContainerExited {
            task_id,
            exit_code,
            signal,
        },
    )));
}

async fn pump(
    stream: impl AsyncRead + Unpin,
    task_id: String,
    source: pb::LogSource,
    reports: mpsc::UnboundedSender<Report>,
) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::with_capacity(256);
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        let entry = pb::WorkerLogLine {
            task_id: task_id.clone(),
            source: source as i32,
            data: String::from_utf8_lossy(&buf).into_owned(),
            timestamp_ms: chrono::Utc::now().timestamp_millis(),
        };
        if reports.send(Report::Line(entry)).is_err() {
            return;
        }
    }
}
