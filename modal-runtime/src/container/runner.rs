//! Runs one input of the container's function: sync on a worker thread or async on the runtime,
//! turning a panic into a result with its message, location and backtrace; the events running
//! inputs report.

use std::any::Any;
use std::backtrace::Backtrace;
use std::cell::RefCell;
use std::io::Write as _;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;

use super::backtrace;
use crate::model::{CallResult, Payload};
use crate::registry::Outcome;

/// What running inputs report, in order.
pub(super) enum Event {
    Item {
        input_id: String,
        item: Payload,
    },
    Done {
        input_id: String,
        result: CallResult,
        /// How long the input's code ran (zero when it did not start).
        run: std::time::Duration,
    },
}

struct PanicRecord {
    message: String,
    location: String,
    backtrace: String,
}

thread_local! {
    static LAST_PANIC: RefCell<Option<PanicRecord>> = const { RefCell::new(None) };
}

/// Records every panic's location and backtrace for the result, then reports it on the
/// container's stderr (which goes to the app's logs): Rust's own report, except that with
/// `RUST_BACKTRACE=1` the backtrace shows the user's frames and folds the rest.
pub(crate) fn install_panic_hook() {
    let default = std::panic::take_hook();
    let style = backtrace::Style::from_env();
    std::panic::set_hook(Box::new(move |info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        let record = PanicRecord {
            message: payload_message(info.payload()),
            location,
            backtrace: Backtrace::force_capture().to_string(),
        };
        if style == backtrace::Style::Short {
            let thread = std::thread::current();
            let report = backtrace::short_report(
                thread.name().unwrap_or("<unnamed>"),
                &record.location,
                &record.message,
                &record.backtrace,
            );
            // One write: the report's lines are not split by other output.
            let _ = std::io::stderr().lock().write_all(report.as_bytes());
        } else {
            default(info);
        }
        LAST_PANIC.with(|p| *p.borrow_mut() = Some(record));
    }));
}

fn payload_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// The outcome of a panic caught on this thread (with the location and backtrace the hook
/// recorded).
pub(crate) fn panic_outcome(payload: &(dyn Any + Send)) -> Outcome {
    let record = LAST_PANIC.with(|p| p.borrow_mut().take());
    let (message, location, backtrace) = match record {
        Some(r) => (r.message, r.location, r.backtrace),
        None => (payload_message(payload), String::new(), String::new()),
    };
    Outcome::Panic {
        message,
        location,
        backtrace,
    }
}

fn panic_result(payload: &(dyn Any + Send), task_id: &str) -> CallResult {
    CallResult::from_outcome(panic_outcome(payload), task_id)
}

/// Runs a future, turning a panic into its outcome.
pub(crate) async fn catch(future: crate::registry::OutcomeFuture) -> Outcome {
    // The panic is caught in the same poll that raised it, so the record is on this thread.
    match AssertUnwindSafe(future).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(payload) => panic_outcome(payload.as_ref()),
    }
}

/// A panic that ended a whole batch.
pub(crate) struct Panicked(pub(crate) Outcome);

/// Runs a batch's future, turning a panic into an error for every input.
pub(crate) async fn catch_batch(
    future: crate::registry::BatchFuture,
) -> Result<Vec<Outcome>, Panicked> {
    AssertUnwindSafe(future)
        .catch_unwind()
        .await
        .map_err(|p| Panicked(panic_outcome(p.as_ref())))
}

/// Runs blocking user code on a blocking thread; a panic there becomes its outcome (recorded on
/// that thread, so its location and backtrace are kept).
#[doc(hidden)]
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Outcome> {
    match tokio::task::spawn_blocking(move || {
        std::panic::catch_unwind(AssertUnwindSafe(f)).map_err(|p| panic_outcome(p.as_ref()))
    })
    .await
    {
        Ok(r) => r,
        Err(e) => Err(Outcome::BadOutput(format!(
            "the input's thread failed: {e}"
        ))),
    }
}

pub(crate) fn run_sync(
    f: fn(bytes::Bytes) -> Outcome,
    input: bytes::Bytes,
    task_id: &str,
) -> CallResult {
    match std::panic::catch_unwind(AssertUnwindSafe(|| f(input))) {
        Ok(outcome) => CallResult::from_outcome(outcome, task_id),
        Err(payload) => panic_result(payload.as_ref(), task_id),
    }
}

/// Runs an async lifecycle hook, turning a panic into the hook's failure.
#[doc(hidden)]
pub async fn guard_hook(
    hook: &str,
    f: impl Future<Output = Result<(), String>>,
) -> Result<(), String> {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(f).catch_unwind().await {
        Ok(r) => r,
        Err(p) => Err(crate::registry::class::hook_failure(
            hook,
            panic_outcome(p.as_ref()),
        )),
    }
}
