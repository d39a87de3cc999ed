//! The control plane's other messages: app states, deployments and the admin listings, log
//! lines, and what workers and containers are told and report.

use super::{pb, sorted, unsorted};
use crate::model::{
    AppState, AppSummary, ContainerCommand, ContainerHello, ContainerSpec, ContainerSummary,
    DeployStrategy, Deployment, GpuDevice, InputsSeen, LogBatch, LogEntry, LogSource,
    SecretSummary, WorkerCommand, WorkerEvent, WorkerInfo, WorkerLogLine, WorkerSummary,
};

pub(crate) fn app_state_code(s: AppState) -> i32 {
    (match s {
        AppState::Initializing => pb::AppState::Initializing,
        AppState::Ephemeral => pb::AppState::Ephemeral,
        AppState::Detached => pb::AppState::Detached,
        AppState::Deployed => pb::AppState::Deployed,
        AppState::Stopping => pb::AppState::Stopping,
        AppState::Stopped => pb::AppState::Stopped,
    }) as i32
}

/// An app state as received or stored (`None` for an unknown code).
pub(crate) fn app_state_of(code: i32) -> Option<AppState> {
    Some(match pb::AppState::try_from(code).ok()? {
        pb::AppState::Unspecified => return None,
        pb::AppState::Initializing => AppState::Initializing,
        pb::AppState::Ephemeral => AppState::Ephemeral,
        pb::AppState::Detached => AppState::Detached,
        pb::AppState::Deployed => AppState::Deployed,
        pb::AppState::Stopping => AppState::Stopping,
        pb::AppState::Stopped => AppState::Stopped,
    })
}

pub(crate) fn strategy_code(s: DeployStrategy) -> i32 {
    (match s {
        DeployStrategy::Rolling => pb::DeployStrategy::Rolling,
        DeployStrategy::Recreate => pb::DeployStrategy::Recreate,
    }) as i32
}

/// A deploy strategy as received (unset or unknown: rolling, the default).
pub(crate) fn strategy_of(code: i32) -> DeployStrategy {
    match pb::DeployStrategy::try_from(code) {
        Ok(pb::DeployStrategy::Recreate) => DeployStrategy::Recreate,
        _ => DeployStrategy::Rolling,
    }
}

impl From<Deployment> for pb::Deployment {
    fn from(d: Deployment) -> Self {
        pb::Deployment {
            version: d.version,
            deployed_at_ms: d.deployed_at_ms,
            client: d.client,
            tag: d.tag,
            strategy: strategy_code(d.strategy),
        }
    }
}

impl From<AppSummary> for pb::AppSummary {
    fn from(a: AppSummary) -> Self {
        pb::AppSummary {
            app_id: a.app_id,
            name: a.name,
            description: a.description,
            state: app_state_code(a.state),
            tasks: a.tasks,
            created_at_ms: a.created_at_ms,
            stopped_at_ms: a.stopped_at_ms,
            environment_name: a.environment,
            deployed_version: a.deployed_version,
        }
    }
}

impl From<ContainerSummary> for pb::ContainerSummary {
    fn from(c: ContainerSummary) -> Self {
        pb::ContainerSummary {
            task_id: c.task_id,
            app_id: c.app_id,
            app_name: c.app_name,
            function_tag: c.function_tag,
            started_at_ms: c.started_at_ms,
            running_inputs: c.running_inputs,
            worker_id: c.worker_id,
            worker_host: c.worker_host,
        }
    }
}

impl From<WorkerSummary> for pb::WorkerSummary {
    fn from(w: WorkerSummary) -> Self {
        pb::WorkerSummary {
            worker_id: w.worker_id,
            hostname: w.hostname,
            slurm_job_id: w.slurm_job_id.unwrap_or_default(),
            state: w.state,
            milli_cpu: w.milli_cpu,
            memory_mb: w.memory_mb,
            used_milli_cpu: w.used_milli_cpu,
            used_memory_mb: w.used_memory_mb,
            gpus: w.gpus,
            busy_gpus: w.busy_gpus,
            containers: w.containers,
            labels: w.labels.into_iter().collect(),
            runtime: w.runtime,
        }
    }
}

impl From<SecretSummary> for pb::SecretSummary {
    fn from(s: SecretSummary) -> Self {
        pb::SecretSummary {
            name: s.name,
            environment_name: s.environment,
            keys: s.keys,
            created_at_ms: s.created_at_ms,
            updated_at_ms: s.updated_at_ms,
        }
    }
}

pub(crate) fn log_source_code(s: LogSource) -> i32 {
    (match s {
        LogSource::Stdout => pb::LogSource::Stdout,
        LogSource::Stderr => pb::LogSource::Stderr,
        LogSource::System => pb::LogSource::System,
    }) as i32
}

/// A log source as received or stored (unknown: stdout).
pub(crate) fn log_source_of(code: i32) -> LogSource {
    match pb::LogSource::try_from(code) {
        Ok(pb::LogSource::Stderr) => LogSource::Stderr,
        Ok(pb::LogSource::System) => LogSource::System,
        _ => LogSource::Stdout,
    }
}

impl From<LogEntry> for pb::LogEntry {
    fn from(e: LogEntry) -> Self {
        pb::LogEntry {
            function_id: e.function_id,
            function_tag: e.function_tag,
            task_id: e.task_id,
            input_id: e.input_id,
            source: log_source_code(e.source),
            data: e.data,
            timestamp_ms: e.timestamp_ms,
        }
    }
}

impl From<LogBatch> for pb::LogBatch {
    fn from(b: LogBatch) -> Self {
        pb::LogBatch {
            entries: b.entries.into_iter().map(Into::into).collect(),
            app_done: b.app_done,
        }
    }
}

impl From<&GpuDevice> for pb::GpuDevice {
    fn from(d: &GpuDevice) -> Self {
        pb::GpuDevice {
            index: d.index,
            name: d.name.clone(),
            memory_mb: d.memory_mb,
            declared: d.declared,
        }
    }
}

impl From<pb::WorkerRegister> for WorkerInfo {
    fn from(r: pb::WorkerRegister) -> Self {
        WorkerInfo {
            hostname: r.hostname,
            milli_cpu: r.milli_cpu,
            memory_mb: r.memory_mb,
            gpus: r
                .gpus
                .into_iter()
                .map(|g| GpuDevice {
                    index: g.index,
                    name: g.name,
                    memory_mb: g.memory_mb,
                    declared: g.declared,
                })
                .collect(),
            runtime: r.runtime,
            labels: r.labels.into_iter().collect(),
            slurm_job_id: Some(r.slurm_job_id).filter(|j| !j.is_empty()),
        }
    }
}

impl From<&WorkerInfo> for pb::WorkerRegister {
    fn from(w: &WorkerInfo) -> Self {
        pb::WorkerRegister {
            hostname: w.hostname.clone(),
            milli_cpu: w.milli_cpu,
            memory_mb: w.memory_mb,
            gpus: w.gpus.iter().map(Into::into).collect(),
            runtime: w.runtime.clone(),
            labels: w
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            slurm_job_id: w.slurm_job_id.clone().unwrap_or_default(),
        }
    }
}

impl From<WorkerCommand> for pb::WorkerCommand {
    fn from(c: WorkerCommand) -> Self {
        use pb::worker_command::Command;
        pb::WorkerCommand {
            command: Some(match c {
                WorkerCommand::Start(spec) => Command::Start(pb::StartContainer {
                    spec: Some(pb::ContainerSpec {
                        task_id: spec.task_id,
                        app_id: spec.app_id,
                        app_name: spec.app_name,
                        function_id: spec.function_id,
                        definition: Some((&spec.definition).into()),
                        server_url: spec.server_url,
                        gpu_indices: spec.gpu_indices,
                        secret_env: unsorted(&spec.secret_env),
                        token_id: spec.token_id,
                        token_secret: spec.token_secret,
                    }),
                }),
                WorkerCommand::Stop { task_id, grace_ms } => {
                    Command::Stop(pb::StopContainer { task_id, grace_ms })
                }
            }),
        }
    }
}

impl TryFrom<pb::WorkerCommand> for WorkerCommand {
    type Error = String;

    fn try_from(c: pb::WorkerCommand) -> Result<Self, String> {
        use pb::worker_command::Command;
        match c.command {
            Some(Command::Start(s)) => {
                let spec = s.spec.ok_or("a start command without a container spec")?;
                let def = spec
                    .definition
                    .ok_or("a container spec without a function definition")?;
                Ok(WorkerCommand::Start(Box::new(ContainerSpec {
                    task_id: spec.task_id,
                    app_id: spec.app_id,
                    app_name: spec.app_name,
                    function_id: spec.function_id,
                    definition: def.try_into()?,
                    server_url: spec.server_url,
                    gpu_indices: spec.gpu_indices,
                    secret_env: sorted(spec.secret_env).into(),
                    token_id: spec.token_id,
                    token_secret: spec.token_secret,
                })))
            }
            Some(Command::Stop(s)) => Ok(WorkerCommand::Stop {
                task_id: s.task_id,
                grace_ms: s.grace_ms,
            }),
            None => Err("an empty worker command".into()),
        }
    }
}

impl From<WorkerEvent> for pb::worker_message::Message {
    fn from(e: WorkerEvent) -> Self {
        use pb::worker_message::Message;
        match e {
            WorkerEvent::Exited {
                task_id,
                exit_code,
                signal,
                out_of_memory,
                journal,
            } => {
                let has_journal = journal.is_some();
                let seen = journal.unwrap_or_default();
                Message::Exited(pb::ContainerExited {
                    task_id,
                    exit_code,
                    signal,
                    has_journal,
                    started_inputs: seen.started,
                    ended_inputs: seen.ended,
                    results: seen
                        .results
                        .into_iter()
                        .map(|(input_id, r)| pb::OutputItem {
                            input_id,
                            result: Some(r.into()),
                            run_us: 0,
                            input_kept: false,
                        })
                        .collect(),
                    out_of_memory: out_of_memory.unwrap_or_default(),
                })
            }
            WorkerEvent::SpawnFailed { task_id, message } => {
                Message::SpawnFailed(pb::ContainerSpawnFailed { task_id, message })
            }
            WorkerEvent::Logs(lines) => Message::Logs(pb::WorkerLogBatch {
                lines: lines
                    .into_iter()
                    .map(|l| pb::WorkerLogLine {
                        task_id: l.task_id,
                        source: log_source_code(l.source),
                        data: l.data,
                        timestamp_ms: l.timestamp_ms,
                    })
                    .collect(),
            }),
        }
    }
}

/// What a worker reported (`None` for a second registration, which means nothing).
pub(crate) fn worker_event(m: pb::worker_message::Message) -> Option<WorkerEvent> {
    use pb::worker_message::Message;
    Some(match m {
        Message::Register(_) => return None,
        Message::Exited(e) => WorkerEvent::Exited {
            task_id: e.task_id,
            exit_code: e.exit_code,
            signal: e.signal,
            out_of_memory: Some(e.out_of_memory).filter(|m| !m.is_empty()),
            journal: e.has_journal.then(|| InputsSeen {
                started: e.started_inputs,
                ended: e.ended_inputs,
                results: e
                    .results
                    .into_iter()
                    .map(|o| {
                        let o = crate::model::OutputItem::from(o);
                        (o.input_id, o.result)
                    })
                    .collect(),
            }),
        },
        Message::SpawnFailed(f) => WorkerEvent::SpawnFailed {
            task_id: f.task_id,
            message: f.message,
        },
        Message::Logs(b) => WorkerEvent::Logs(
            b.lines
                .into_iter()
                .map(|l| WorkerLogLine {
                    task_id: l.task_id,
                    source: log_source_of(l.source),
                    data: l.data,
                    timestamp_ms: l.timestamp_ms,
                })
                .collect(),
        ),
    })
}

impl From<pb::ContainerHello> for ContainerHello {
    fn from(h: pb::ContainerHello) -> Self {
        ContainerHello {
            task_id: h.task_id,
            binary_hash: h.binary_hash,
            app_name: h.app_name,
            function_tag: h.function_tag,
            sends_ready: h.sends_ready,
        }
    }
}

impl From<ContainerCommand> for pb::ContainerCommand {
    fn from(c: ContainerCommand) -> Self {
        use pb::container_command::Command;
        pb::ContainerCommand {
            command: Some(match c {
                ContainerCommand::Inputs(items) => Command::Inputs(pb::InputBatch {
                    items: items.into_iter().map(Into::into).collect(),
                }),
                ContainerCommand::Cancel(input_ids) => {
                    Command::Cancel(pb::CancelInputs { input_ids })
                }
                ContainerCommand::Shutdown(reason) => {
                    Command::Shutdown(pb::ContainerShutdown { reason })
                }
            }),
        }
    }
}
