//! Conversions of values that are not messages of their own: argument tuples, schedules, and
//! payloads and results as a client reads them.

use bytes::Bytes;
use serde::Serialize;

use super::pb;
use crate::app::{Cron, Period, Schedule};
use crate::error::Error;
use crate::model::{CallResult, Payload};
use crate::payloads;

/// Whether the receiver of a stored payload is its only reader, who removes it once read
/// (the result of a `remote` call, a map's outputs, a generator's items) or one of many (a
/// spawned call's result, read by every `get`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reader {
    Only,
    OneOfMany,
}

/// A received payload with its bytes here: loaded from the payload store of the control plane
/// in this process when it is kept there.
pub(crate) fn loaded(mut p: Payload, reader: Reader) -> Result<Payload, String> {
    let Some(stored) = p.stored.take() else {
        return Ok(p);
    };
    let store = payloads::hosted().ok_or_else(|| {
        format!(
            "payload {} is kept in a payload store this process cannot reach",
            stored.handle
        )
    })?;
    let loaded = match reader {
        Reader::Only => store.take(&stored),
        Reader::OneOfMany => store.map(&stored),
    };
    p.data = loaded.map_err(|e| format!("cannot read payload {}: {e}", stored.handle))?;
    Ok(p)
}

/// The bytes of a received payload this build can decode.
pub(crate) fn payload_bytes(p: Option<&pb::Payload>, reader: Reader) -> Result<Bytes, String> {
    let p = loaded(Payload::from(p.ok_or("missing payload")?.clone()), reader)?;
    p.readable().cloned()
}

/// The value of a received result, or the failure it describes.
pub(crate) fn into_value(
    result: pb::CallResult,
    function: &str,
    reader: Reader,
) -> Result<Bytes, Error> {
    let mut result = CallResult::from(result);
    if let Some(p) = result.data.take() {
        result.data = Some(
            loaded(p, reader)
                .map_err(|e| Error::ControlPlane(format!("the result of `{function}`: {e}")))?,
        );
    }
    result.into_value(function)
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

/// A function's argument tuple, encoded: straight into the payload store of the control plane
/// in this process when it is large (only its handle is sent).
pub(crate) fn encode_args<A: Serialize + 'static>(
    args: &A,
    function: &str,
) -> Result<pb::Payload, Error> {
    let payload = match payloads::encode(args) {
        Ok(payloads::Encoded::Inline(bytes)) => Payload::new(bytes),
        Ok(payloads::Encoded::Stored(stored)) => Payload::in_store(stored),
        Err(e) => {
            return Err(Error::Serialization(format!(
                "arguments of `{function}`: {e}"
            )));
        }
    };
    Ok(payload.into())
}
