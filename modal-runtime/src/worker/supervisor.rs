//! One container from start to exit, whatever runtime runs it: its environment, its journal,
//! its output captured line by line, its stop, and what the worker reports of its end.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use nix::unistd::Pid;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;

use super::Report;
use super::runtime::{self, ContainerRuntime, Handle, Launch, Limits, Prepared};
use crate::gpu::inventory::Device;
use crate::model::{ContainerSpec, FunctionDef, InputsSeen, LogSource, WorkerEvent, WorkerLogLine};
use crate::task_env as cenv;

/// The variables that give a container exactly its reserved devices and nothing else: the
/// worker's ids in `CUDA_VISIBLE_DEVICES`, UUIDs (when known) in `NVIDIA_VISIBLE_DEVICES`, and an
/// empty `CUDA_VISIBLE_DEVICES` for a container without GPUs, so that it cannot use devices
/// reserved for others.
fn gpu_env(assigned: &[u32], gpus: &[Device]) -> Vec<(&'static str, String)> {
    let devices: Vec<&Device> = assigned
        .iter()
        .filter_map(|i| gpus.iter().find(|g| g.index == *i))
        .collect();
    if devices.is_empty() {
        return vec![("CUDA_VISIBLE_DEVICES", String::new())];
    }
    let join =
        |f: &dyn Fn(&Device) -> String| devices.iter().map(|d| f(d)).collect::<Vec<_>>().join(",");
    let mut env = vec![
        ("CUDA_VISIBLE_DEVICES", join(&|d| d.visible_id.clone())),
        (
            "NVIDIA_VISIBLE_DEVICES",
            join(&|d| d.uuid.clone().unwrap_or_else(|| d.visible_id.clone())),
        ),
        (crate::gpu::NAMES_ENV, join(&|d| d.name.clone())),
    ];
    if devices.iter().any(|d| d.declared) {
        env.push((crate::gpu::DECLARED_ENV, "1".into()));
    }
    env
}

/// The longest line of a container's output the worker forwards; longer lines are cut into
/// pieces of this size.
pub(super) const MAX_LOG_LINE: usize = 64 << 10;

/// Creates the empty journal a container will write (mode 0600).
fn create_journal(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map(drop)
}

/// The most of a container's journal the worker reads.
const JOURNAL_READ_BYTES: u64 = 4 << 20;

/// The most result bytes an exit report carries (the latest results first), so that it stays
/// well within [`crate::wire::MAX_WORKER_MESSAGE_BYTES`].
const JOURNAL_RESULT_BYTES: usize = 16 << 20;

/// What the container's journal says, once it exited (the file is removed); `None` when it
/// kept none.
fn read_journal(path: &std::path::Path) -> Option<InputsSeen> {
    use std::io::Read;
    // A journal is 2 MiB; a container that made its file larger gets no more read.
    let mut bytes = Vec::new();
    let read =
        std::fs::File::open(path).and_then(|f| f.take(JOURNAL_READ_BYTES).read_to_end(&mut bytes));
    let _ = std::fs::remove_file(path);
    read.ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let j = cenv::read_journal(&text)?;
    let mut budget = JOURNAL_RESULT_BYTES;
    let mut results: Vec<_> = j
        .results
        .into_iter()
        .rev()
        .take_while(|(_, bytes)| {
            budget = budget.saturating_sub(bytes.len());
            budget > 0
        })
        .filter_map(|(id, bytes)| Some((id, crate::wire::decode_result(&bytes).ok()?)))
        .collect();
    results.reverse();
    Some(InputsSeen {
        started: j.started,
        ended: j.ended,
        results,
    })
}

/// What the container is given: its function's variables and secrets, its identity and
/// token, the certificate its worker trusts for the control plane, and its devices (the
/// runtime adds its own, the control plane's address and the journal's path).
fn environment(
    spec: &ContainerSpec,
    def: &FunctionDef,
    gpus: &[Device],
    server_cert: Option<&str>,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = Vec::new();
    let mut set = |k: &str, v: &str| env.push((k.into(), v.into()));
    for (k, v) in &def.env {
        set(k, v);
    }
    for (k, v) in spec.secret_env.iter() {
        set(k, v);
    }
    if !spec.token_id.is_empty() {
        set("MODAL_TOKEN_ID", &spec.token_id);
        set("MODAL_TOKEN_SECRET", &spec.token_secret);
    }
    set(cenv::TASK_ID, &spec.task_id);
    set(cenv::APP_ID, &spec.app_id);
    set(cenv::APP_NAME, &spec.app_name);
    set(cenv::APP_IN_CODE, &def.app_in_code);
    set(cenv::FUNCTION_ID, &spec.function_id);
    set(cenv::FUNCTION_TAG, &def.tag);
    set(cenv::BINARY_HASH, &def.binary_hash);
    set(
        cenv::MAX_INPUTS,
        &def.max_concurrent_inputs.max(1).to_string(),
    );
    set(cenv::IS_REMOTE, "1");
    // As text: an oci container may not see the worker's file.
    if let Some(pem) = server_cert {
        set(crate::credentials::SERVER_CERT_PEM_ENV, pem);
    }
    if let Some(params) = def.class_params.as_ref().filter(|p| !p.data.is_empty()) {
        set(cenv::CLASS_PARAMS, &hex::encode(&params.data));
    }
    if def.single_use_containers {
        set(cenv::SINGLE_USE, "1");
    }
    for (k, v) in gpu_env(&spec.gpu_indices, gpus) {
        set(k, &v);
    }
    if !def.volumes.is_empty() {
        set(
            cenv::VOLUME_MOUNTS,
            &serde_json::to_string(&def.volumes).unwrap_or_default(),
        );
    }
    env
}

/// The device files of the GPUs `assigned` to a container (with the driver's shared ones).
fn gpu_devices(assigned: &[u32], gpus: &[Device]) -> Vec<PathBuf> {
    let mut devices: Vec<PathBuf> = assigned
        .iter()
        .filter_map(|i| gpus.iter().find(|g| g.index == *i && !g.declared))
        .filter_map(|g| g.visible_id.parse::<u32>().ok())
        .map(|host| PathBuf::from(format!("/dev/nvidia{host}")))
        .collect();
    if !devices.is_empty() {
        for shared in ["/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"] {
            devices.push(shared.into());
        }
    }
    devices.retain(|d| d.exists());
    devices
}

/// Runs one container from start to exit. A stop request carries a grace period in
/// milliseconds, after which the whole process group is killed. `server_cert`: the certificate
/// (PEM) the worker trusts for the control plane, handed to the container.
pub(super) async fn supervise(
    spec: ContainerSpec,
    resolver: Arc<super::binaries::Resolver>,
    runtime: Arc<dyn ContainerRuntime>,
    gpus: Arc<[Device]>,
    server_cert: Option<Arc<str>>,
    mut stop: mpsc::UnboundedReceiver<u32>,
    reports: mpsc::UnboundedSender<Report>,
) {
    let task_id = spec.task_id.clone();
    let def = &spec.definition;
    let spawn_failed = |message: String| {
        let _ = reports.send(Report::Event(WorkerEvent::SpawnFailed {
            task_id: task_id.clone(),
            message,
        }));
    };
    let exe = match resolver.resolve(def).await {
        Ok(exe) => exe,
        Err(message) => return spawn_failed(message),
    };
    let journal = match runtime.journal_path(&task_id) {
        Ok(path) => path,
        Err(message) => return spawn_failed(message),
    };
    // An empty journal: the container writes its header before it takes an input.
    if let Err(e) = create_journal(&journal) {
        tracing::warn!(path = %journal.display(), "cannot create a container's journal: {e}");
    }
    let launch = Launch {
        task_id: task_id.clone(),
        exe: exe.path.clone(),
        exe_hash: exe.hash.clone(),
        env: environment(&spec, def, &gpus, server_cert.as_deref()),
        journal: journal.clone(),
        server_url: spec.server_url.clone(),
        limits: Limits::of(def),
        devices: gpu_devices(&spec.gpu_indices, &gpus),
        volumes: def.volumes.clone(),
        image: def.image.clone(),
        payloads: crate::payloads::hosted().cloned(),
    };
    // Preparing writes files and may hash or copy the executable: off the async threads.
    let prepared = tokio::task::spawn_blocking(move || runtime.prepare(launch))
        .await
        .unwrap_or_else(|e| Err(format!("preparing the container stopped: {e}")));
    let Prepared {
        mut command,
        mut handle,
    } = match prepared {
        Ok(p) => p,
        Err(message) => {
            let _ = std::fs::remove_file(&journal);
            return spawn_failed(message);
        }
    };
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_file(&journal);
            // Finishing runs the runtime and removes files: off the async threads.
            let _ = tokio::task::spawn_blocking(move || handle.finish(None)).await;
            return spawn_failed(format!(
                "{}: {e}",
                command.as_std().get_program().to_string_lossy()
            ));
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
            LogSource::Stdout,
            reports.clone(),
        )));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(tokio::spawn(pump(
            err,
            task_id.clone(),
            LogSource::Stderr,
            reports.clone(),
        )));
    }
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
                    handle = kill(handle, pgid).await;
                    child.wait().await
                }
            }
        }
    };
    // Whatever the container started must not outlive it either.
    let handle = kill(handle, pgid).await;
    for r in readers {
        let _ = tokio::time::timeout(Duration::from_millis(500), r).await;
    }
    let status = status.ok();
    // Read before the runtime removes the container's files.
    let journal = read_journal(&journal);
    let ended = tokio::task::spawn_blocking(move || handle.finish(status))
        .await
        .unwrap_or_default();
    // An outbox the container left empty (the control plane removes one with files when the
    // container's stream ends).
    if let Some(outbox) = crate::payloads::hosted().and_then(|s| s.outbox(&task_id).ok()) {
        let _ = std::fs::remove_dir(outbox);
    }
    let (exit_code, signal) = match (ended.signal, status) {
        (Some(signal), _) => (None, Some(signal)),
        (None, Some(s)) => (s.code(), s.signal()),
        (None, None) => (None, None),
    };
    let _ = reports.send(Report::Event(WorkerEvent::Exited {
        task_id,
        exit_code,
        signal,
        out_of_memory: ended.out_of_memory,
        journal,
    }));
}

/// Kills what the container runs, off the async threads (the runtime may run a command).
async fn kill(handle: Box<dyn Handle>, leader: Option<Pid>) -> Box<dyn Handle> {
    tokio::task::spawn_blocking(move || {
        handle.kill(leader);
        handle
    })
    .await
    // The kill panicked: nothing is left to finish.
    .unwrap_or_else(|_| Box::new(Gone))
}

/// A container whose handle was lost.
struct Gone;

impl Handle for Gone {
    fn kill(&self, _leader: Option<Pid>) {}

    fn finish(self: Box<Self>, _status: Option<std::process::ExitStatus>) -> runtime::Ended {
        runtime::Ended::default()
    }
}

async fn pump(
    stream: impl AsyncRead + Unpin,
    task_id: String,
    source: LogSource,
    reports: mpsc::UnboundedSender<Report>,
) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::with_capacity(256);
    loop {
        let ended = match next_line(&mut reader, &mut line).await {
            Ok(ended) => ended,
            Err(_) => return,
        };
        if !line.is_empty() || !ended {
            while matches!(line.last(), Some(b'\n' | b'\r')) {
                line.pop();
            }
            let entry = WorkerLogLine {
                task_id: task_id.clone(),
                source,
                data: String::from_utf8_lossy(&line).into_owned(),
                timestamp_ms: chrono::Utc::now().timestamp_millis(),
            };
            if reports.send(Report::Line(entry)).is_err() {
                return;
            }
        }
        if ended {
            return;
        }
    }
}

/// Reads the next line of output into `line` (emptied first), cut at [`MAX_LOG_LINE`] bytes:
/// a longer line comes as several, so no output can make the worker's memory or its messages
/// grow without bound. True at the end of the output.
async fn next_line(
    reader: &mut (impl AsyncBufRead + Unpin),
    line: &mut Vec<u8>,
) -> std::io::Result<bool> {
    line.clear();
    loop {
        let chunk = reader.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(true);
        }
        let room = MAX_LOG_LINE - line.len();
        match chunk.iter().take(room).position(|b| *b == b'\n') {
            Some(i) => {
                line.extend_from_slice(&chunk[..=i]);
                reader.consume(i + 1);
                return Ok(false);
            }
            None => {
                let take = chunk.len().min(room);
                line.extend_from_slice(&chunk[..take]);
                reader.consume(take);
                if line.len() >= MAX_LOG_LINE {
                    return Ok(false);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn long_lines_come_in_pieces() {
        let mut text = vec![b'x'; MAX_LOG_LINE * 2 + 10];
        text.extend_from_slice(b"\nshort\nlast");
        let mut reader = BufReader::new(&text[..]);
        let mut line = Vec::new();
        let mut lines = Vec::new();
        loop {
            let ended = next_line(&mut reader, &mut line).await.unwrap();
            if !line.is_empty() {
                lines.push(line.len());
            }
            if ended {
                break;
            }
        }
        assert_eq!(lines, [MAX_LOG_LINE, MAX_LOG_LINE, 11, 6, 4]);
    }

    fn device(index: u32, uuid: Option<&str>, visible_id: &str, declared: bool) -> Device {
        Device {
            index,
            name: format!("GPU {index}"),
            memory_mb: 1024,
            uuid: uuid.map(str::to_owned),
            visible_id: visible_id.into(),
            declared,
        }
    }

    #[test]
    fn containers_see_exactly_their_devices() {
        let real = [
            device(0, Some("GPU-aa"), "2", false),
            device(1, Some("GPU-bb"), "3", false),
        ];
        assert_eq!(
            gpu_env(&[], &real),
            vec![("CUDA_VISIBLE_DEVICES", String::new())]
        );
        assert_eq!(
            gpu_env(&[1], &real),
            vec![
                ("CUDA_VISIBLE_DEVICES", "3".to_owned()),
                ("NVIDIA_VISIBLE_DEVICES", "GPU-bb".to_owned()),
                (crate::gpu::NAMES_ENV, "GPU 1".to_owned()),
            ]
        );
        let fake = [device(0, None, "0", true), device(1, None, "1", true)];
        let env = gpu_env(&[0, 1], &fake);
        assert!(env.contains(&("CUDA_VISIBLE_DEVICES", "0,1".to_owned())));
        assert!(env.contains(&("NVIDIA_VISIBLE_DEVICES", "0,1".to_owned())));
        assert!(env.contains(&(crate::gpu::DECLARED_ENV, "1".to_owned())));
    }
}
