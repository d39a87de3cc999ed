//! Payloads and results as messages: payload formats, result statuses, call results, the inputs
//! and outputs of a container, map outputs, generator events, and their stored encodings.

use super::{pb, stored, unstored};
use crate::codec::PayloadFormat;
use crate::model::{
    CallResult, GeneratorEvent, InputItem, MapOutput, OutputItem, Payload, ResultStatus, Stored,
};

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
            stored: p.stored.map(|s| pb::StoredPayload {
                handle: s.handle,
                size: s.size,
            }),
        }
    }
}

impl From<pb::Payload> for Payload {
    fn from(p: pb::Payload) -> Self {
        Payload {
            format: format_of(p.format),
            data: p.data,
            stored: p.stored.map(|s| Stored {
                handle: s.handle,
                size: s.size,
            }),
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
        ResultStatus::InvalidInput => pb::ResultStatus::InvalidInput,
        ResultStatus::OutOfMemory => pb::ResultStatus::OutOfMemory,
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
        Ok(pb::ResultStatus::InvalidInput) => ResultStatus::InvalidInput,
        Ok(pb::ResultStatus::OutOfMemory) => ResultStatus::OutOfMemory,
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
                stored: None,
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
            run: (o.run_us > 0).then(|| std::time::Duration::from_micros(o.run_us)),
            input_kept: o.input_kept,
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
            ResultStatus::InvalidInput,
            ResultStatus::OutOfMemory,
        ] {
            assert_eq!(status_of(status_code(s)), s);
        }
        assert_eq!(status_of(0), ResultStatus::InternalFailure);
        assert_eq!(status_of(99), ResultStatus::InternalFailure);
    }
}
