//! Conversions between the runtime's own types (`crate::model`) and the protobuf messages, in
//! both directions: the one place where each message is read or built.

use std::collections::BTreeMap;
use std::time::Duration;

use super::pb;
use crate::app::{Retries, Schedule};
use crate::codec::PayloadFormat;
use crate::model::{
    AppState, AppSummary, Autoscaler, BatchConfig, CallResult, ContainerCommand, ContainerHello,
    ContainerSpec, ContainerSummary, DeployStrategy, Deployment, FunctionDef, FunctionOptions,
    GeneratorEvent, GpuDevice, GpuRequest, InputItem, LogBatch, LogEntry, LogSource, MapOutput,
    NamedSecret, OutputItem, Payload, Resources, ResultStatus, SecretSummary, WorkerCommand,
    WorkerEvent, WorkerInfo, WorkerLogLine,
};

/// Milliseconds, saturating at `u32::MAX`.
pub(crate) fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

fn sorted(m: std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    m.into_iter().collect()
}

fn unsorted(m: &BTreeMap<String, String>) -> std::collections::HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

// --- payloads and results -----------------------------------------------------------------

pub(crate) fn format_code(f: PayloadFormat) -> i32 {
    match f {
        PayloadFormat::Bincode => pb::PayloadFormat::Bincode as i32,
        PayloadFormat::Other(n) => n,
    }
}

fn format_of(code: i32) -> PayloadFormat {
    if code == pb::PayloadFormat::Bincode as i32 {
        PayloadFormat::Bincode
    } else {
        PayloadFormat::Other(code)
    }
}

impl From<Payload> for pb::Payload {
    fn from(p: Payload) -> Self {
        pb::Payload {
            format: format_code(p.format),
            data: p.data,
        }
    }
}

impl From<pb::Payload> for Payload {
    fn from(p: pb::Payload) -> Self {
        Payload {
            format: format_of(p.format),
            data: p.data,
        }
    }
}

pub(crate) fn status_code(s: ResultStatus) -> i32 {
    (match s {
        ResultStatus::Success => pb::ResultStatus::Success,
        ResultStatus::UserError => pb::ResultStatus::UserError,
        ResultStatus::Panic => pb::ResultStatus::Panic,
        ResultStatus::Timeout => pb::ResultStatus::Timeout,
        ResultStatus::Cancelled => pb::ResultStatus::Terminated,
        ResultStatus::InitFailure => pb::ResultStatus::InitFailure,
        ResultStatus::InternalFailure => pb::ResultStatus::InternalFailure,
    }) as i32
}

/// A status code as received (an unknown one is an internal failure).
pub(crate) fn status_of(code: i32) -> ResultStatus {
    match pb::ResultStatus::try_from(code) {
        Ok(pb::ResultStatus::Success) => ResultStatus::Success,
        Ok(pb::ResultStatus::UserError) => ResultStatus::UserError,
        Ok(pb::ResultStatus::Panic) => ResultStatus::Panic,
        Ok(pb::ResultStatus::Timeout) => ResultStatus::Timeout,
        Ok(pb::ResultStatus::Terminated) => ResultStatus::Cancelled,
        Ok(pb::ResultStatus::InitFailure) => ResultStatus::InitFailure,
        _ => ResultStatus::InternalFailure,
    }
}

impl From<CallResult> for pb::CallResult {
    fn from(r: CallResult) -> Self {
        pb::CallResult {
            status: status_code(r.status),
            data: r.data.map(Into::into),
            message: r.message,
            error_type: r.error_type,
            location: r.location,
            backtrace: r.backtrace,
            task_id: r.task_id,
            attempt: r.attempt,
        }
    }
}

impl From<pb::CallResult> for CallResult {
    fn from(r: pb::CallResult) -> Self {
        CallResult {
            status: status_of(r.status),
            data: r.data.map(Into::into),
            message: r.message,
            error_type: r.error_type,
            location: r.location,
            backtrace: r.backtrace,
            task_id: r.task_id,
            attempt: r.attempt,
        }
    }
}

impl From<InputItem> for pb::InputItem {
    fn from(i: InputItem) -> Self {
        pb::InputItem {
            input_id: i.input_id,
            input: Some(i.input.into()),
            attempt: i.attempt,
            method_name: i.method,
            batch_id: i.batch_id,
        }
    }
}

impl From<pb::InputItem> for InputItem {
    fn from(i: pb::InputItem) -> Self {
        InputItem {
            input_id: i.input_id,
            // An input without a payload fails where it is decoded ("missing payload").
            input: i.input.map(Into::into).unwrap_or(Payload {
                format: PayloadFormat::Other(0),
                data: bytes::Bytes::new(),
            }),
            attempt: i.attempt,
            method: i.method_name,
            batch_id: i.batch_id,
        }
    }
}

impl From<pb::OutputItem> for OutputItem {
    fn from(o: pb::OutputItem) -> Self {
        OutputItem {
            input_id: o.input_id,
            // A container that sent no result for an input failed it.
            result: o.result.map_or_else(
                || {
                    CallResult::failure(
                        ResultStatus::InternalFailure,
                        "the container reported no result",
                        "",
                    )
                },
                Into::into,
            ),
        }
    }
}

impl From<MapOutput> for pb::MapOutput {
    fn from(o: MapOutput) -> Self {
        pb::MapOutput {
            idx: o.idx,
            result: Some(o.result.into()),
        }
    }
}

impl From<GeneratorEvent> for pb::GeneratorEvent {
    fn from(e: GeneratorEvent) -> Self {
        pb::GeneratorEvent {
            event: Some(match e {
                GeneratorEvent::Item(p) => pb::generator_event::Event::Item(p.into()),
                GeneratorEvent::Done(r) => pb::generator_event::Event::Done(r.into()),
            }),
        }
    }
}

// --- function definitions and options -------------------------------------------------------

impl From<&Retries> for pb::RetryPolicy {
    fn from(r: &Retries) -> Self {
        pb::RetryPolicy {
            max_retries: u32::try_from(r.max_retries).unwrap_or(0),
            backoff_coefficient: r.backoff_coefficient as f32,
            initial_delay_ms: millis(r.initial_delay),
            max_delay_ms: millis(r.max_delay),
        }
    }
}

impl From<pb::RetryPolicy> for Retries {
    fn from(p: pb::RetryPolicy) -> Self {
        Retries::new(i64::from(p.max_retries))
            .backoff_coefficient(f64::from(p.backoff_coefficient))
            .initial_delay(Duration::from_millis(u64::from(p.initial_delay_ms)))
            .max_delay(Duration::from_millis(u64::from(p.max_delay_ms)))
    }
}

impl From<&NamedSecret> for pb::NamedSecret {
    fn from(s: &NamedSecret) -> Self {
        pb::NamedSecret {
            name: s.name.clone(),
            environment_name: s.environment.clone(),
            required_keys: s.required_keys.clone(),
        }
    }
}

impl From<pb::NamedSecret> for NamedSecret {
    fn from(s: pb::NamedSecret) -> Self {
        NamedSecret {
            name: s.name,
            environment: s.environment_name,
            required_keys: s.required_keys,
        }
    }
}

fn gpu_to_pb(g: &[GpuRequest]) -> Vec<pb::GpuRequest> {
    g.iter()
        .map(|g| pb::GpuRequest {
            kind: g.kind.clone(),
            count: g.count,
        })
        .collect()
}

fn gpu_of(g: Vec<pb::GpuRequest>) -> Vec<GpuRequest> {
    g.into_iter()
        .map(|g| GpuRequest {
            kind: g.kind,
            count: g.count,
        })
        .collect()
}

fn batch_to_pb(b: BatchConfig) -> pb::BatchConfig {
    pb::BatchConfig {
        max_batch_size: b.max_batch_size,
        wait_ms: b.wait_ms,
    }
}

fn batch_of(b: pb::BatchConfig) -> BatchConfig {
    BatchConfig {
        max_batch_size: b.max_batch_size,
        wait_ms: b.wait_ms,
    }
}

impl From<&FunctionDef> for pb::FunctionDefinition {
    fn from(d: &FunctionDef) -> Self {
        let r = d.resources;
        let a = d.autoscaler;
        pb::FunctionDefinition {
            tag: d.tag.clone(),
            implementation: d.implementation.clone(),
            binary_hash: d.binary_hash.clone(),
            binary_path: d.binary_path.clone(),
            resources: Some(pb::Resources {
                milli_cpu: r.milli_cpu,
                milli_cpu_max: r.milli_cpu_max,
                memory_mb: r.memory_mb,
                memory_mb_max: r.memory_mb_max,
                ephemeral_disk_mb: r.ephemeral_disk_mb,
            }),
            gpu: gpu_to_pb(&d.gpu),
            retry_policy: d.retries.as_ref().map(Into::into),
            timeout_secs: d.timeout_secs,
            startup_timeout_secs: d.startup_timeout_secs,
            autoscaler: Some(pb::AutoscalerSettings {
                min_containers: a.min_containers,
                max_containers: a.max_containers,
                buffer_containers: a.buffer_containers,
                scaledown_window_secs: a.scaledown_window_secs,
            }),
            env: unsorted(&d.env),
            secret_env: unsorted(&d.secret_env),
            single_use_containers: d.single_use_containers,
            max_concurrent_inputs: d.max_concurrent_inputs,
            schedule: d.schedule.as_ref().map(super::schedule_to_pb),
            named_secrets: d.named_secrets.iter().map(Into::into).collect(),
            args_type: d.args_type.clone(),
            return_type: d.return_type.clone(),
            is_class: d.is_class,
            methods: d.methods.clone(),
            class_params: d.class_params.clone().map(Into::into),
            target_concurrent_inputs: d.target_concurrent_inputs,
            batch: d.batch.map(batch_to_pb),
            generator_methods: d.generator_methods.clone(),
            variant_of: d.variant_of.clone(),
        }
    }
}

impl TryFrom<pb::FunctionDefinition> for FunctionDef {
    type Error = String;

    fn try_from(d: pb::FunctionDefinition) -> Result<Self, String> {
        let schedule: Option<Schedule> = d
            .schedule
            .as_ref()
            .map(super::schedule_from_pb)
            .transpose()
            .map_err(|e| format!("function `{}`: {e}", d.tag))?;
        let r = d.resources.unwrap_or_default();
        let autoscaler = d
            .autoscaler
            .map_or_else(Autoscaler::default, |a| Autoscaler {
                min_containers: a.min_containers,
                max_containers: a.max_containers,
                buffer_containers: a.buffer_containers,
                scaledown_window_secs: a.scaledown_window_secs,
            });
        Ok(FunctionDef {
            tag: d.tag,
            implementation: d.implementation,
            binary_hash: d.binary_hash,
            binary_path: d.binary_path,
            resources: Resources {
                milli_cpu: r.milli_cpu,
                milli_cpu_max: r.milli_cpu_max,
                memory_mb: r.memory_mb,
                memory_mb_max: r.memory_mb_max,
                ephemeral_disk_mb: r.ephemeral_disk_mb,
            },
            gpu: gpu_of(d.gpu),
            retries: d.retry_policy.map(Into::into),
            timeout_secs: d.timeout_secs,
            startup_timeout_secs: d.startup_timeout_secs,
            autoscaler,
            env: sorted(d.env),
            secret_env: sorted(d.secret_env),
            single_use_containers: d.single_use_containers,
            max_concurrent_inputs: d.max_concurrent_inputs,
            target_concurrent_inputs: d.target_concurrent_inputs,
            batch: d.batch.map(batch_of),
            schedule,
            named_secrets: d.named_secrets.into_iter().map(Into::into).collect(),
            args_type: d.args_type,
            return_type: d.return_type,
            is_class: d.is_class,
            methods: d.methods,
            generator_methods: d.generator_methods,
            class_params: d.class_params.map(Into::into),
            variant_of: d.variant_of,
        })
    }
}

impl From<&FunctionOptions> for pb::FunctionOptions {
    fn from(o: &FunctionOptions) -> Self {
        pb::FunctionOptions {
            timeout_secs: o.timeout_secs,
            scaledown_window_secs: o.scaledown_window_secs,
            max_containers: o.max_containers,
            min_containers: o.min_containers,
            buffer_containers: o.buffer_containers,
            milli_cpu: o.milli_cpu,
            memory_mb: o.memory_mb,
            gpu: gpu_to_pb(&o.gpu),
            retry_policy: o.retries.as_ref().map(Into::into),
            env: unsorted(&o.env),
            named_secrets: o.named_secrets.iter().map(Into::into).collect(),
            max_concurrent_inputs: o.max_concurrent_inputs,
            target_concurrent_inputs: o.target_concurrent_inputs,
            batch: o.batch.map(batch_to_pb),
            secret_env: unsorted(&o.secret_env),
        }
    }
}

impl From<pb::FunctionOptions> for FunctionOptions {
    fn from(o: pb::FunctionOptions) -> Self {
        FunctionOptions {
            timeout_secs: o.timeout_secs,
            scaledown_window_secs: o.scaledown_window_secs,
            max_containers: o.max_containers,
            min_containers: o.min_containers,
            buffer_containers: o.buffer_containers,
            milli_cpu: o.milli_cpu,
            memory_mb: o.memory_mb,
            gpu: gpu_of(o.gpu),
            retries: o.retry_policy.map(Into::into),
            env: sorted(o.env),
            named_secrets: o.named_secrets.into_iter().map(Into::into).collect(),
            secret_env: sorted(o.secret_env),
            max_concurrent_inputs: o.max_concurrent_inputs,
            target_concurrent_inputs: o.target_concurrent_inputs,
            batch: o.batch.map(batch_of),
        }
    }
}

// --- apps -----------------------------------------------------------------------------------

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

// --- logs -----------------------------------------------------------------------------------

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

// --- workers and containers -----------------------------------------------------------------

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
                    secret_env: sorted(spec.secret_env),
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
            } => Message::Exited(pb::ContainerExited {
                task_id,
                exit_code,
                signal,
            }),
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

// --- stored forms ---------------------------------------------------------------------------

fn stored<M: prost::Message>(m: &M) -> Vec<u8> {
    prost::Message::encode_to_vec(m)
}

fn unstored<M: prost::Message + Default>(bytes: &[u8], what: &str) -> Result<M, String> {
    M::decode(bytes).map_err(|e| format!("undecodable {what}: {e}"))
}

/// A function definition as the store keeps it (protobuf bytes).
pub(crate) fn encode_definition(d: &FunctionDef) -> Vec<u8> {
    stored(&pb::FunctionDefinition::from(d))
}

/// A function definition the store kept.
pub(crate) fn decode_definition(bytes: &[u8]) -> Result<FunctionDef, String> {
    unstored::<pb::FunctionDefinition>(bytes, "definition")?.try_into()
}

/// A payload as the store keeps it.
pub(crate) fn encode_payload(p: &Payload) -> Vec<u8> {
    stored(&pb::Payload::from(p.clone()))
}

/// A payload the store kept.
pub(crate) fn decode_payload(bytes: &[u8]) -> Result<Payload, String> {
    Ok(unstored::<pb::Payload>(bytes, "payload")?.into())
}

/// A result as the store keeps it.
pub(crate) fn encode_result(r: &CallResult) -> Vec<u8> {
    stored(&pb::CallResult::from(r.clone()))
}

/// A result the store kept.
pub(crate) fn decode_result(bytes: &[u8]) -> Result<CallResult, String> {
    Ok(unstored::<pb::CallResult>(bytes, "result")?.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::FunctionSpec;
    use crate::model::function::Origin;

    #[test]
    fn a_definition_round_trips() {
        let mut spec = FunctionSpec::new("f");
        spec.retries = Some(Retries::fixed(3));
        spec.gpu = vec!["H100:2".into()];
        spec.schedule = Some(crate::app::Period::minutes(5).into());
        spec.env = vec![("A".into(), "1".into())];
        let def = FunctionDef::new(
            &spec,
            Origin {
                implementation: "crate::f",
                binary_hash: "abc",
                binary_path: "/bin/x",
                types: ("(i64,)", "i64"),
            },
            vec![("S".into(), "v".into())],
            &[],
        );
        let back = decode_definition(&encode_definition(&def)).unwrap();
        assert_eq!(back, def);
    }

    #[test]
    fn statuses_round_trip() {
        for s in [
            ResultStatus::Success,
            ResultStatus::UserError,
            ResultStatus::Panic,
            ResultStatus::Timeout,
            ResultStatus::Cancelled,
            ResultStatus::InitFailure,
            ResultStatus::InternalFailure,
        ] {
            assert_eq!(status_of(status_code(s)), s);
        }
        assert_eq!(status_of(0), ResultStatus::InternalFailure);
        assert_eq!(status_of(99), ResultStatus::InternalFailure);
    }
}
