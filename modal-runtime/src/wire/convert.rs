//! Conversions of values that are not messages of their own: argument tuples, schedules, and
//! payloads and results as a client reads them.

use bytes::Bytes;
use serde::Serialize;

use super::pb;
use crate::app::{Cron, Period, Schedule};
use crate::codec;
use crate::error::Error;
use crate::model::{CallResult, Payload};

/// Encoded bytes in this build's format, as sent.
pub(crate) fn payload(data: Vec<u8>) -> pb::Payload {
    Payload::new(data).into()
}

/// The bytes of a received payload this build can decode.
pub(crate) fn payload_bytes(p: Option<&pb::Payload>) -> Result<Bytes, String> {
    let p = Payload::from(p.ok_or("missing payload")?.clone());
    p.readable().cloned()
}

/// The value of a received result, or the failure it describes.
pub(crate) fn into_value(result: pb::CallResult, function: &str) -> Result<Bytes, Error> {
    CallResult::from(result).into_value(function)
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

/// A function's argument tuple, encoded.
pub(crate) fn encode_args<A: Serialize>(args: &A, function: &str) -> Result<pb::Payload, Error> {
    codec::encode(args)
        .map(payload)
        .map_err(|e| Error::Serialization(format!("arguments of `{function}`: {e}")))
}
