//! The worker: registers a machine's capacity with the control plane, starts and stops the
//! containers it is assigned, and forwards their output and exits.

mod binaries;
pub(crate) mod runtime;
mod supervisor;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::credentials::{Credentials, Trust};
use crate::gpu::inventory::Device;
pub(crate) use crate::gpu::inventory::Source as GpuSource;
use crate::model::{GpuDevice, WorkerCommand, WorkerEvent, WorkerInfo, WorkerLogLine};
use crate::wire::{self, AuthHeaders, pb};

/// The worker API stub, with credentials on every request.
pub(crate) type WorkerClient = pb::worker_api_client::WorkerApiClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, AuthHeaders>,
>;

/// What a worker offers and how it runs containers.
#[derive(Clone)]
pub(crate) struct WorkerConfig {
    /// How containers run (`oci` or `process`).
    pub(crate) runtime: Arc<dyn runtime::ContainerRuntime>,
    pub(crate) server_url: String,
    pub(crate) milli_cpu: u32,
    pub(crate) memory_mb: u32,
    /// The GPUs it offers (see [`gpus`]).
    pub(crate) gpus: Vec<Device>,
    /// Run containers from this executable instead of the one each function registered.
    pub(crate) container_exe: Option<PathBuf>,
    /// The worker's token (none for the embedded control plane).
    pub(crate) credentials: Option<Credentials>,
    /// Where executables downloaded from the control plane are kept, by hash.
    pub(crate) binary_cache: PathBuf,
    /// What an `https://` control plane's certificate is checked against; a certificate is
    /// handed to the containers too (`MODAL_SERVER_CERT_PEM`).
    pub(crate) trust: Trust,
    /// What placement constraints are matched against (`--label region=eu-west`).
    pub(crate) labels: BTreeMap<String, String>,
    /// The Slurm job it runs in (`SLURM_JOB_ID`), when it is one's.
    pub(crate) slurm_job_id: Option<String>,
    /// How many containers it runs, and since when none: what `--idle-exit` watches.
    pub(crate) activity: Arc<Activity>,
}

/// How busy a worker is, across its reconnections.
#[derive(Debug)]
pub(crate) struct Activity {
    /// Containers running, and since when there have been none (`None`: some run).
    state: std::sync::Mutex<(usize, Option<std::time::Instant>)>,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            state: std::sync::Mutex::new((0, Some(std::time::Instant::now()))),
        }
    }
}

impl Activity {
    fn started(&self) {
        let mut s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.0 += 1;
        s.1 = None;
    }

    fn finished(&self) {
        let mut s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.0 = s.0.saturating_sub(1);
        if s.0 == 0 {
            s.1 = Some(std::time::Instant::now());
        }
    }

    /// How long the worker has run no container (`None`: it runs some).
    #[cfg_attr(not(feature = "cli"), allow(dead_code))] // `modal worker --idle-exit`.
    pub(crate) fn idle_for(&self) -> Option<std::time::Duration> {
        let s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.1.map(|t| t.elapsed())
    }
}

/// What Slurm allocated to the job this process runs in: `(job id, CPUs, memory in MiB)`;
/// `None` outside a Slurm job.
pub(crate) fn slurm_allocation() -> Option<(String, Option<u32>, Option<u32>)> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let job = var("SLURM_JOB_ID")?;
    let cpus = var("SLURM_CPUS_PER_TASK")
        .or_else(|| var("SLURM_CPUS_ON_NODE"))
        .and_then(|c| c.trim().parse::<u32>().ok());
    let memory = var("SLURM_MEM_PER_NODE")
        .and_then(|m| m.trim().parse::<u32>().ok())
        .or_else(|| {
            let per_cpu: u32 = var("SLURM_MEM_PER_CPU")?.trim().parse().ok()?;
            Some(per_cpu.saturating_mul(cpus.unwrap_or(1)))
        });
    Some((job, cpus, memory))
}

impl WorkerConfig {
    /// This machine's CPUs, memory and GPUs, running containers as `runtime` says;
    /// `MODAL_WORKER_CONTAINER_EXE` overrides the executable. An error when the runtime cannot
    /// run here.
    pub(crate) fn local(
        server_url: String,
        credentials: Option<Credentials>,
        gpus: Vec<Device>,
        runtime: &runtime::Choice,
    ) -> Result<Self, String> {
        let runtime: Arc<dyn runtime::ContainerRuntime> = Arc::from(runtime.open()?);
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let mut milli_cpu = u32::try_from(cpus * 1000).unwrap_or(u32::MAX);
        let mut memory_mb = total_memory_mb().unwrap_or(4096);
        // In a Slurm job: what the job was given, not the whole machine.
        let slurm = slurm_allocation();
        if let Some((_, cpus, memory)) = &slurm {
            milli_cpu = cpus.map_or(milli_cpu, |c| c.saturating_mul(1000));
            memory_mb = memory.unwrap_or(memory_mb);
        }
        Ok(WorkerConfig {
            runtime,
            server_url,
            milli_cpu,
            memory_mb,
            gpus,
            container_exe: std::env::var_os("MODAL_WORKER_CONTAINER_EXE").map(PathBuf::from),
            credentials,
            binary_cache: default_binary_cache(),
            trust: Trust::default(),
            labels: BTreeMap::new(),
            slurm_job_id: slurm.map(|(job, _, _)| job),
            activity: Arc::default(),
        })
    }
}

/// This machine's GPUs from `source`, found off the async runtime (the driver's start-up blocks
/// for hundreds of milliseconds) starting now, so that other start-up work can overlap it. A
/// malformed `MODAL_WORKER_GPUS` is an error.
pub(crate) fn gpus(source: GpuSource) -> impl Future<Output = Result<Vec<Device>, String>> {
    let found = tokio::task::spawn_blocking(move || crate::gpu::inventory::load(source));
    async move {
        found
            .await
            .map_err(|e| format!("GPU discovery stopped: {e}"))?
            .map_err(|e| e.to_string())
    }
}

fn default_binary_cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("modal-rs")
        .join("binaries")
}

fn total_memory_mb() -> Option<u32> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    u32::try_from(kb / 1024).ok()
}

/// What a container supervisor reports, in order: output lines, then its exit.
pub(crate) enum Report {
    Line(WorkerLogLine),
    Event(WorkerEvent),
}

/// Like [`run`], and once connected, connects again whenever the control plane goes away (it
/// restarted): waits 0.25 s doubling to 2 s between tries, for as long as the process runs. An
/// error only when the first connection fails.
#[cfg_attr(not(feature = "cli"), allow(dead_code))] // `modal worker` runs it.
pub(crate) async fn run_reconnecting(config: WorkerConfig) -> Result<(), String> {
    const FIRST: std::time::Duration = std::time::Duration::from_millis(250);
    const MOST: std::time::Duration = std::time::Duration::from_secs(2);
    run(config.clone()).await?;
    let mut backoff = FIRST;
    loop {
        tracing::warn!(
            "worker lost the control plane at {}; connecting again in {:.1} s",
            config.server_url,
            backoff.as_secs_f64()
        );
        tokio::time::sleep(backoff).await;
        let started = std::time::Instant::now();
        match run(config.clone()).await {
            Ok(()) => {
                tracing::info!("worker was connected to the control plane again");
            }
            // The control plane is back but refuses this worker's token: waiting will not help.
            Err(e) if e.starts_with("unauthenticated") || e.starts_with("permission denied") => {
                return Err(e);
            }
            Err(e) => tracing::debug!("worker cannot reach the control plane yet: {e}"),
        }
        // A session that lasted resets the wait; failed tries wait longer and longer.
        backoff = if started.elapsed() > MOST * 2 {
            FIRST
        } else {
            (backoff * 2).min(MOST)
        };
    }
}

/// Connects to the control plane and serves assignments until the connection ends.
pub(crate) async fn run(config: WorkerConfig) -> Result<(), String> {
    let gpus: Arc<[Device]> = config.gpus.clone().into();
    let server_cert: Option<Arc<str>> = config.trust.pem().map(Arc::from);
    let route = crate::credentials::Route::trusting(config.trust.clone());
    let channel = wire::connect(&config.server_url, true, &route).await?;
    let mut client: WorkerClient = pb::worker_api_client::WorkerApiClient::with_interceptor(
        channel,
        AuthHeaders::new(config.credentials.as_ref()),
    )
    .max_decoding_message_size(wire::MAX_MESSAGE_BYTES)
    .max_encoding_message_size(wire::MAX_MESSAGE_BYTES);
    let resolver = Arc::new(binaries::Resolver::new(
        config.container_exe.clone(),
        config.binary_cache.clone(),
        client.clone(),
    ));
    let (out_tx, out_rx) = mpsc::unbounded_channel::<pb::WorkerMessage>();
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    let info = WorkerInfo {
        hostname,
        milli_cpu: config.milli_cpu,
        memory_mb: config.memory_mb,
        gpus: gpus
            .iter()
            .map(|d| GpuDevice {
                index: d.index,
                name: d.name.clone(),
                memory_mb: d.memory_mb,
                declared: d.declared,
            })
            .collect(),
        runtime: config.runtime.describe(),
        labels: config.labels.clone(),
        slurm_job_id: config.slurm_job_id.clone(),
    };
    let _ = out_tx.send(pb::WorkerMessage {
        message: Some(pb::worker_message::Message::Register((&info).into())),
    });
    let mut commands = client
        .worker_connect(UnboundedReceiverStream::new(out_rx))
        .await
        .map_err(|s| wire::status_text(&s))?
        .into_inner();

    let (report_tx, report_rx) = mpsc::unbounded_channel::<Report>();
    tokio::spawn(forward_reports(report_rx, out_tx));
    let mut containers: HashMap<String, mpsc::UnboundedSender<u32>> = HashMap::new();
    loop {
        let cmd = match commands.message().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(error = %e, "worker lost the control plane");
                break;
            }
        };
        containers.retain(|_, stop| !stop.is_closed());
        match WorkerCommand::try_from(cmd) {
            Ok(WorkerCommand::Start(spec)) => {
                let (stop_tx, stop_rx) = mpsc::unbounded_channel();
                containers.insert(spec.task_id.clone(), stop_tx);
                let supervised = supervisor::supervise(
                    *spec,
                    Arc::clone(&resolver),
                    Arc::clone(&config.runtime),
                    Arc::clone(&gpus),
                    server_cert.clone(),
                    stop_rx,
                    report_tx.clone(),
                );
                let activity = Arc::clone(&config.activity);
                activity.started();
                tokio::spawn(async move {
                    supervised.await;
                    activity.finished();
                });
            }
            Ok(WorkerCommand::Stop { task_id, grace_ms }) => {
                if let Some(tx) = containers.get(&task_id) {
                    let _ = tx.send(grace_ms);
                }
            }
            Err(e) => {
                tracing::warn!("the control plane sent a command this worker cannot read: {e}")
            }
        }
    }
    // Without a control plane no container may outlive this worker.
    for stop in containers.values() {
        let _ = stop.send(0);
    }
    Ok(())
}

/// The most output one message carries (lines are at most `supervisor::MAX_LOG_LINE` each).
const LOG_BATCH_BYTES: usize = 4 << 20;

/// Batches consecutive output lines into one message, keeping them in order with exits.
async fn forward_reports(
    mut rx: mpsc::UnboundedReceiver<Report>,
    out: mpsc::UnboundedSender<pb::WorkerMessage>,
) {
    let send = |event: WorkerEvent| {
        out.send(pb::WorkerMessage {
            message: Some(event.into()),
        })
        .is_ok()
    };
    let mut buf = Vec::with_capacity(256);
    while rx.recv_many(&mut buf, 256).await > 0 {
        let mut lines = Vec::new();
        let mut bytes = 0;
        for report in buf.drain(..) {
            match report {
                Report::Line(l) => {
                    // A message stays far below what the control plane takes from a worker.
                    bytes += l.data.len();
                    lines.push(l);
                    if bytes > LOG_BATCH_BYTES {
                        bytes = 0;
                        if !send(WorkerEvent::Logs(std::mem::take(&mut lines))) {
                            return;
                        }
                    }
                }
                Report::Event(e) => {
                    if !lines.is_empty() {
                        send(WorkerEvent::Logs(std::mem::take(&mut lines)));
                    }
                    send(e);
                }
            }
        }
        if !lines.is_empty() && !send(WorkerEvent::Logs(lines)) {
            return;
        }
    }
}
