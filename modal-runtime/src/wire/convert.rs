//! Conversions between the runtime's own types (the app model, outcomes, results, schedules)
//! and the protobuf messages.

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use super::pb;
use crate::app::{Cron, FunctionSpec, Period, Schedule};
use crate::codec::{self, PayloadFormat};
use crate::error::{FailureKind, RemoteFailure};
use crate::registry::Outcome;

pub(crate) fn payload(data: Vec<u8>) -> pb::Payload {
    pb::Payload {
        format: format_tag(codec::FORMAT) as i32,
        data: Bytes::from(data),
    }
}

fn format_tag(f: PayloadFormat) -> pb::PayloadFormat {
    match f {
        PayloadFormat::Bincode => pb::PayloadFormat::Bincode,
    }
}

/// The bytes of a payload this build can decode.
pub(crate) fn payload_bytes(p: Option<&pb::Payload>) -> Result<Bytes, String> {
    let p = p.ok_or("missing payload")?;
    if p.format == format_tag(codec::FORMAT) as i32 {
        Ok(p.data.clone())
    } else {
        Err(format!(
            "payload format {} is not supported by this build (it reads bincode)",
            p.format
        ))
    }
}

/// A function's definition as registered with the control plane.
pub(crate) fn function_definition(
    spec: &FunctionSpec,
    implementation: &str,
    binary_hash: &str,
    binary_path: &str,
    secret_env: Vec<(String, String)>,
    app_secrets: &[crate::app::Secret],
    types: (&str, &str),
) -> pb::FunctionDefinition {
    let retry_policy = spec.retries.as_ref().map(retry_policy);
    let gpu = spec
        .gpu_rules()
        .unwrap_or_default()
        .into_iter()
        .map(|g| pb::GpuRequest {
            kind: g.kind,
            count: g.count,
        })
        .collect();
    let (milli_cpu, milli_cpu_max) = match spec.cpu {
        Some((req, lim)) => (cores_to_milli(req), lim.map(cores_to_milli).unwrap_or(0)),
        None => (0, 0),
    };
    let (memory_mb, memory_mb_max) = match spec.memory {
        Some((req, lim)) => (clamp_u32(req), lim.map(clamp_u32).unwrap_or(0)),
        None => (0, 0),
    };
    pb::FunctionDefinition {
        tag: spec.tag.clone(),
        implementation: implementation.to_owned(),
        binary_hash: binary_hash.to_owned(),
        binary_path: binary_path.to_owned(),
        resources: Some(pb::Resources {
            milli_cpu,
            milli_cpu_max,
            memory_mb,
            memory_mb_max,
            ephemeral_disk_mb: spec.ephemeral_disk.map(clamp_u32).unwrap_or(0),
        }),
        gpu,
        retry_policy,
        timeout_secs: clamp_u32(spec.timeout),
        startup_timeout_secs: clamp_u32(spec.startup_timeout.unwrap_or(spec.timeout)),
        autoscaler: Some(pb::AutoscalerSettings {
            min_containers: spec.min_containers.map(clamp_u32).unwrap_or(0),
            max_containers: spec.max_containers.map(clamp_u32),
            buffer_containers: spec.buffer_containers.map(clamp_u32).unwrap_or(0),
            scaledown_window_secs: clamp_u32(
                spec.scaledown_window
                    .unwrap_or(crate::app::rules::DEFAULT_SCALEDOWN_WINDOW_SECS),
            ),
        }),
        env: spec.env.iter().cloned().collect(),
        secret_env: secret_env.into_iter().collect(),
        single_use_containers: spec.single_use(),
        max_concurrent_inputs: spec.concurrency.map_or(1, |(max, _)| clamp_u32(max)),
        target_concurrent_inputs: spec
            .concurrency
            .map_or(1, |(max, target)| clamp_u32(target.unwrap_or(max))),
        batch: spec.batch.map(|(size, wait)| pb::BatchConfig {
            max_batch_size: clamp_u32(size),
            wait_ms: clamp_u32(wait),
        }),
        is_class: spec.is_class,
        methods: spec.methods.clone(),
        generator_methods: spec.generator_methods.clone(),
        class_params: None,
        variant_of: String::new(),
        schedule: spec.schedule.as_ref().map(schedule_to_pb),
        named_secrets: spec
            .secrets
            .iter()
            .chain(app_secrets)
            .filter_map(|s| s.named())
            .map(named_secret)
            .collect(),
        args_type: types.0.to_owned(),
        return_type: types.1.to_owned(),
    }
}

/// A secret created with `modal secret create`, as a function definition names it.
pub(crate) fn named_secret(
    (name, environment_name, required_keys): (&str, Option<&str>, &[String]),
) -> pb::NamedSecret {
    pb::NamedSecret {
        name: name.to_owned(),
        environment_name: environment_name.unwrap_or_default().to_owned(),
        required_keys: required_keys.to_vec(),
    }
}

/// Milliseconds, saturating at `u32::MAX`.
pub(crate) fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// `v`, saturating at `u32::MAX`.
pub(crate) fn clamp_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Thousandths of a core, at least 1.
pub(crate) fn cores_to_milli(cores: f64) -> u32 {
    let m = (cores * 1000.0).round();
    if m <= 0.0 {
        1
    } else if m >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        m as u32
    }
}

/// What a container reports for an input, from the function's outcome.
pub(crate) fn outcome_result(outcome: Outcome, task_id: &str) -> pb::CallResult {
    let mut r = pb::CallResult {
        task_id: task_id.to_owned(),
        ..Default::default()
    };
    match outcome {
        Outcome::Success(data) => {
            r.status = pb::ResultStatus::Success as i32;
            r.data = Some(payload(data));
        }
        Outcome::UserError {
            type_name,
            message,
            payload: p,
        } => {
            r.status = pb::ResultStatus::UserError as i32;
            r.error_type = type_name.to_owned();
            r.message = message;
            r.data = p.map(payload);
        }
        Outcome::BadInput(message) => {
            r.status = pb::ResultStatus::InternalFailure as i32;
            r.message = format!("cannot decode the arguments: {message}");
        }
        Outcome::BadOutput(message) => {
            r.status = pb::ResultStatus::InternalFailure as i32;
            r.message = format!("cannot encode the return value: {message}");
        }
        Outcome::Panic {
            message,
            location,
            backtrace,
        } => {
            r.status = pb::ResultStatus::Panic as i32;
            r.message = message;
            r.location = location;
            r.backtrace = backtrace;
        }
    }
    r
}

/// A failure result with no payload.
pub(crate) fn failure(
    status: pb::ResultStatus,
    message: impl Into<String>,
    task_id: &str,
) -> pb::CallResult {
    pb::CallResult {
        status: status as i32,
        message: message.into(),
        task_id: task_id.to_owned(),
        ..Default::default()
    }
}

/// The value of a successful result, or the failure it describes.
pub(crate) fn into_value(
    result: pb::CallResult,
    function: &str,
) -> Result<Bytes, crate::error::Error> {
    let status = pb::ResultStatus::try_from(result.status).unwrap_or(pb::ResultStatus::Unspecified);
    let kind = match status {
        pb::ResultStatus::Success => {
            return payload_bytes(result.data.as_ref()).map_err(|m| {
                crate::error::Error::from(RemoteFailure {
                    kind: FailureKind::Internal,
                    function: function.to_owned(),
                    message: m,
                    error_type: None,
                    location: None,
                    backtrace: None,
                    task_id: non_empty(result.task_id.clone()),
                    attempt: result.attempt,
                    payload: None,
                })
            });
        }
        pb::ResultStatus::UserError => FailureKind::UserError,
        pb::ResultStatus::Panic => FailureKind::Panic,
        pb::ResultStatus::Timeout => FailureKind::Timeout,
        pb::ResultStatus::Terminated => FailureKind::Cancelled,
        pb::ResultStatus::InitFailure => FailureKind::InitFailure,
        pb::ResultStatus::InternalFailure | pb::ResultStatus::Unspecified => FailureKind::Internal,
    };
    Err(crate::error::Error::from(RemoteFailure {
        kind,
        function: function.to_owned(),
        message: result.message,
        error_type: non_empty(result.error_type),
        location: non_empty(result.location),
        backtrace: non_empty(result.backtrace),
        task_id: non_empty(result.task_id),
        attempt: result.attempt,
        payload: result.data.map(|p| p.data),
    }))
}

fn non_empty(s: String) -> Option<String> {
    if s.is_empty() { None } else { Some(s) }
}

/// A retry policy as sent on the wire.
pub(crate) fn retry_policy(r: &crate::app::Retries) -> pb::RetryPolicy {
    pb::RetryPolicy {
        max_retries: u32::try_from(r.max_retries).unwrap_or(0),
        backoff_coefficient: r.backoff_coefficient as f32,
        initial_delay_ms: millis(r.initial_delay),
        max_delay_ms: millis(r.max_delay),
    }
}

/// A schedule as sent on the wire.
pub(crate) fn schedule_to_pb(s: &Schedule) -> pb::Schedule {
    let kind = match s {
        Schedule::Period(p) => pb::schedule::Kind::Period(pb::PeriodSchedule {
            years: p.years,
            months: p.months,
            weeks: p.weeks,
            days: p.days,
            hours: p.hours,
            minutes: p.minutes,
            seconds: p.seconds,
        }),
        Schedule::Cron(c) => pb::schedule::Kind::Cron(pb::CronSchedule {
            expression: c.expression.clone(),
            timezone: c.timezone.clone(),
        }),
    };
    pb::Schedule { kind: Some(kind) }
}

/// A schedule received from the wire.
pub(crate) fn schedule_from_pb(s: &pb::Schedule) -> Result<Schedule, String> {
    match &s.kind {
        Some(pb::schedule::Kind::Period(p)) => Ok(Schedule::Period(Period {
            years: p.years,
            months: p.months,
            weeks: p.weeks,
            days: p.days,
            hours: p.hours,
            minutes: p.minutes,
            seconds: p.seconds,
        })),
        Some(pb::schedule::Kind::Cron(c)) => Ok(Schedule::Cron(
            Cron::new(c.expression.clone()).timezone(c.timezone.clone()),
        )),
        None => Err("a schedule without a period or a cron expression".into()),
    }
}

/// A GPU a worker offers, as it registers it.
pub(crate) fn gpu_device(d: &crate::gpu::inventory::Device) -> pb::GpuDevice {
    pb::GpuDevice {
        index: d.index,
        name: d.name.clone(),
        memory_mb: d.memory_mb,
        declared: d.declared,
    }
}

/// A function's argument tuple, encoded.
pub(crate) fn encode_args<A: Serialize>(
    args: &A,
    function: &str,
) -> Result<pb::Payload, crate::error::Error> {
    codec::encode(args)
        .map(payload)
        .map_err(|e| crate::error::Error::Serialization(format!("arguments of `{function}`: {e}")))
}
