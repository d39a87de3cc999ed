//! The process runtime: a container is a child process running the app's own binary, in its own
//! process group, with a clean environment and its output captured line by line.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;

use super::Report;
use crate::gpu::inventory::Device;
use crate::model::{ContainerSpec, FunctionDef, InputsSeen, LogSource, WorkerEvent, WorkerLogLine};
use crate::task_env as cenv;

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
    "CUDA_DEVICE_ORDER",
];

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

/// The directory of this worker's journals: the user's own (mode 0700), in
/// `XDG_RUNTIME_DIR` or the temporary directory; journals hold results, which other users must
/// not read.
fn journal_dir() -> PathBuf {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let uid = nix::unistd::getuid().as_raw();
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let mine = |dir: &std::path::Path| {
            let _ = std::fs::DirBuilder::new().mode(0o700).create(dir);
            std::fs::symlink_metadata(dir)
                .is_ok_and(|m| m.is_dir() && m.uid() == uid && m.mode() & 0o077 == 0)
        };
        let shared = base.join(format!("modal-journals-{uid}"));
        if mine(&shared) {
            return shared;
        }
        // Someone else made that name: a directory of this process's own.
        let own = base.join(format!(
            "modal-journals-{uid}-{}-{}",
            std::process::id(),
            crate::ids::new_id("")
        ));
        if !mine(&own) {
            tracing::warn!(dir = %own.display(), "cannot make a private directory for journals");
        }
        own
    })
    .clone()
}

/// The longest line of a container's output the worker forwards; longer lines are cut into
/// pieces of this size.
pub(super) const MAX_LOG_LINE: usize = 64 << 10;

/// Where a container keeps its journal (the worker reads it after the container exits).
fn journal_path(task_id: &str) -> PathBuf {
    journal_dir().join(format!("{task_id}.journal"))
}

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

/// The most result bytes an exit report carries (the latest results first), so that it stays
/// well within [`crate::wire::MAX_WORKER_MESSAGE_BYTES`].
const JOURNAL_RESULT_BYTES: usize = 16 << 20;

/// What the container's journal says, once it exited (the file is removed); `None` when it
/// kept none.
fn read_journal(path: &std::path::Path) -> Option<InputsSeen> {
    let text = std::fs::read_to_string(path).ok()?;
    let _ = std::fs::remove_file(path);
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

fn command(
    spec: &ContainerSpec,
    def: &FunctionDef,
    exe: PathBuf,
    gpus: &[Device],
    journal: &std::path::Path,
) -> Command {
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
    cmd.envs(spec.secret_env.iter());
    if !spec.token_id.is_empty() {
        cmd.env("MODAL_TOKEN_ID", &spec.token_id)
            .env("MODAL_TOKEN_SECRET", &spec.token_secret);
    }
    cmd.env(cenv::TASK_ID, &spec.task_id)
        .env(cenv::SERVER_URL, &spec.server_url)
        .env(cenv::APP_ID, &spec.app_id)
        .env(cenv::APP_NAME, &spec.app_name)
        .env(cenv::APP_IN_CODE, &def.app_in_code)
        .env(cenv::FUNCTION_ID, &spec.function_id)
        .env(cenv::FUNCTION_TAG, &def.tag)
        .env(cenv::BINARY_HASH, &def.binary_hash)
        .env(
            cenv::MAX_INPUTS,
            def.max_concurrent_inputs.max(1).to_string(),
        )
        .env(cenv::IS_REMOTE, "1")
        .env(cenv::JOURNAL, journal);
    if let Some(params) = def.class_params.as_ref().filter(|p| !p.data.is_empty()) {
        cmd.env(cenv::CLASS_PARAMS, hex::encode(&params.data));
    }
    if def.single_use_containers {
        cmd.env(cenv::SINGLE_USE, "1");
    }
    cmd.envs(gpu_env(&spec.gpu_indices, gpus));
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
    spec: ContainerSpec,
    resolver: std::sync::Arc<super::binaries::Resolver>,
    gpus: std::sync::Arc<[Device]>,
    mut stop: mpsc::UnboundedReceiver<u32>,
    reports: mpsc::UnboundedSender<Report>,
) {
    let task_id = spec.task_id.clone();
    let def = &spec.definition;
    let exe = match resolver.resolve(def).await {
        Ok(exe) => exe,
        Err(message) => {
            let _ = reports.send(Report::Event(WorkerEvent::SpawnFailed { task_id, message }));
            return;
        }
    };
    let journal = journal_path(&task_id);
    // An empty journal: the container writes its header before it takes an input.
    if let Err(e) = create_journal(&journal) {
        tracing::warn!(path = %journal.display(), "cannot create a container's journal: {e}");
    }
    let mut child = match command(&spec, def, exe.clone(), &gpus, &journal).spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_file(&journal);
            let _ = reports.send(Report::Event(WorkerEvent::SpawnFailed {
                task_id,
                message: format!("{}: {e}", exe.display()),
            }));
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
    let _ = reports.send(Report::Event(WorkerEvent::Exited {
        task_id,
        exit_code,
        signal,
        journal: read_journal(&journal),
    }));
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
