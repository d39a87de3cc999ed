//! Compile-time dispatch on what a user's type implements (autoref specialisation): how a user
//! error, a result for display, and an entrypoint's error are turned into the runtime's types;
//! and the marker for misuse of a generator's handle.

use std::cell::Cell;
use std::fmt::{Debug, Display};
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::outcome::{Outcome, ResultFormatter};
use crate::error::Error;

/// Wraps a user error for the `__modal_user_error` probes (serde, then Display, then Debug).
pub struct ErrorProbe<'a, E>(pub &'a E);

/// The error type is serde: the caller can get the value back.
pub trait UserErrorViaSerde {
    /// Describes the error.
    fn __modal_user_error(&self) -> Outcome;
}
impl<E: Serialize + Display> UserErrorViaSerde for &&ErrorProbe<'_, E> {
    fn __modal_user_error(&self) -> Outcome {
        Outcome::UserError {
            type_name: std::any::type_name::<E>(),
            message: format!("{:#}", self.0),
            payload: crate::codec::encode_plain(self.0).ok(),
        }
    }
}
/// The error type has `Display`.
pub trait UserErrorViaDisplay {
    /// Describes the error.
    fn __modal_user_error(&self) -> Outcome;
}
impl<E: Display> UserErrorViaDisplay for &ErrorProbe<'_, E> {
    fn __modal_user_error(&self) -> Outcome {
        Outcome::UserError {
            type_name: std::any::type_name::<E>(),
            message: format!("{:#}", self.0),
            payload: None,
        }
    }
}
/// The error type has only `Debug`.
pub trait UserErrorViaDebug {
    /// Describes the error.
    fn __modal_user_error(&self) -> Outcome;
}
impl<E: Debug> UserErrorViaDebug for ErrorProbe<'_, E> {
    fn __modal_user_error(&self) -> Outcome {
        Outcome::UserError {
            type_name: std::any::type_name::<E>(),
            message: format!("{:?}", self.0),
            payload: None,
        }
    }
}

/// Probes whether a return type can be shown with `Debug` (for `run FUNCTION`).
pub struct DescribeProbe<R>(PhantomData<fn() -> R>);
impl<R> DescribeProbe<R> {
    /// A probe.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        DescribeProbe(PhantomData)
    }
}
/// The return type has `Debug`.
pub trait DescribeViaDebug {
    /// A formatter for encoded values.
    fn __modal_describe(&self) -> Option<ResultFormatter>;
}
impl<R: DeserializeOwned + Debug> DescribeViaDebug for &DescribeProbe<R> {
    fn __modal_describe(&self) -> Option<ResultFormatter> {
        Some(|bytes| match crate::codec::decode_exact::<R>(bytes) {
            Ok(v) => format!("{v:?}"),
            Err(e) => format!("<undecodable result: {e}>"),
        })
    }
}
/// The return type cannot be shown.
pub trait DescribeNone {
    /// No formatter.
    fn __modal_describe(&self) -> Option<ResultFormatter>;
}
impl<R> DescribeNone for DescribeProbe<R> {
    fn __modal_describe(&self) -> Option<ResultFormatter> {
        None
    }
}

/// Turns an entrypoint's error into a `modal::Error` (kept as is when it is one).
pub struct EntryErrorProbe<E>(Cell<Option<E>>);
impl<E> EntryErrorProbe<E> {
    /// A probe holding `e`.
    pub fn new(e: E) -> Self {
        EntryErrorProbe(Cell::new(Some(e)))
    }
}
/// The error is a `modal::Error`.
pub trait EntryErrorViaModal {
    /// The error.
    fn __modal_entry_error(&self) -> Error;
}
impl EntryErrorViaModal for &&EntryErrorProbe<Error> {
    fn __modal_entry_error(&self) -> Error {
        self.0
            .take()
            .unwrap_or_else(|| Error::Other("entrypoint failed".into()))
    }
}
/// The error has `Display`.
pub trait EntryErrorViaDisplay {
    /// The error.
    fn __modal_entry_error(&self) -> Error;
}
impl<E: Display> EntryErrorViaDisplay for &EntryErrorProbe<E> {
    fn __modal_entry_error(&self) -> Error {
        Error::Other(self.0.take().map(|e| format!("{e:#}")).unwrap_or_default())
    }
}
/// The error has only `Debug`.
pub trait EntryErrorViaDebug {
    /// The error.
    fn __modal_entry_error(&self) -> Error;
}
impl<E: Debug> EntryErrorViaDebug for EntryErrorProbe<E> {
    fn __modal_entry_error(&self) -> Error {
        Error::Other(self.0.take().map(|e| format!("{e:?}")).unwrap_or_default())
    }
}

/// Marks misuse of a generator's handle (`map`, `spawn`): never implemented.
#[diagnostic::on_unimplemented(
    message = "a generator cannot be mapped or spawned",
    label = "call the generator with `.remote_gen(…)` and read its items as a stream"
)]
pub trait GeneratorMisuse {}

/// Runs a sync entrypoint off the async runtime; a panic in it continues as a panic.
pub async fn run_blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => match e.try_into_panic() {
            Ok(p) => std::panic::resume_unwind(p),
            Err(e) => panic!("entrypoint task failed: {e}"),
        },
    }
}
