//! What generated code may use (`::modal::__private`): registration types and the small
//! helpers the macros expand to. Not a public API.

use std::cell::Cell;
use std::fmt::{Debug, Display};
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use bytes::Bytes;
pub use inventory;

pub use crate::app::{FunctionSpec, GpuConfig};
pub use crate::cli::command::run as modal_command;
pub use crate::cli::main_with;
pub use crate::registry::{
    AppEntry, BoundSlot, EntrypointArgs, EntrypointFuture, EntrypointRegistration, FunctionEntry,
    FunctionRegistration, Invoker, Outcome, OutcomeFuture, ParamKind, ParamSpec, ResultFormatter,
};
use crate::{Error, Volume};

/// Arguments and return values cross process boundaries, so they must be owned serde types.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an argument or result of a modal function",
    label = "not an owned serde type",
    note = "arguments and results travel between processes: they must implement `serde::Serialize` and `serde::de::DeserializeOwned` and be `Send + 'static`"
)]
pub trait RemoteValue: Serialize + DeserializeOwned + Send + 'static {}
impl<T: Serialize + DeserializeOwned + Send + 'static> RemoteValue for T {}

/// Compile-time check of an argument type.
pub fn assert_remote_arg<T: RemoteValue>() {}
/// Compile-time check of a return type.
pub fn assert_remote_value<T: RemoteValue>() {}

/// Decodes a function's argument tuple.
pub fn decode_args<A: DeserializeOwned>(bytes: &[u8]) -> Result<A, String> {
    crate::codec::decode(bytes).map_err(|e| e.to_string())
}

/// Encodes a return value.
pub fn encode_value<T: Serialize>(value: &T) -> Outcome {
    match crate::codec::encode(value) {
        Ok(b) => Outcome::Success(b),
        Err(e) => Outcome::BadOutput(e.to_string()),
    }
}

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
            payload: crate::codec::encode(self.0).ok(),
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
        Some(|bytes| match crate::codec::decode::<R>(bytes) {
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

/// `gpu = expr`: a string or a list of strings.
pub fn gpu_list<G: IntoGpuList>(g: G) -> Vec<GpuConfig> {
    g.into_gpu_list()
}

/// Values accepted by `gpu = …`.
pub trait IntoGpuList {
    /// The ranked list.
    fn into_gpu_list(self) -> Vec<GpuConfig>;
}
impl IntoGpuList for &str {
    fn into_gpu_list(self) -> Vec<GpuConfig> {
        vec![self.into()]
    }
}
impl IntoGpuList for String {
    fn into_gpu_list(self) -> Vec<GpuConfig> {
        vec![self.into()]
    }
}
impl<S: Into<GpuConfig>> IntoGpuList for Vec<S> {
    fn into_gpu_list(self) -> Vec<GpuConfig> {
        self.into_iter().map(Into::into).collect()
    }
}
impl<S: Into<GpuConfig>, const N: usize> IntoGpuList for [S; N] {
    fn into_gpu_list(self) -> Vec<GpuConfig> {
        self.into_iter().map(Into::into).collect()
    }
}

/// `cpu = expr`: cores, or `(request, limit)`.
pub fn cpu<C: IntoCpu>(c: C) -> (f64, Option<f64>) {
    c.into_cpu()
}
/// Values accepted by `cpu = …`.
pub trait IntoCpu {
    /// `(request, limit)`.
    fn into_cpu(self) -> (f64, Option<f64>);
}
impl IntoCpu for f64 {
    fn into_cpu(self) -> (f64, Option<f64>) {
        (self, None)
    }
}
impl IntoCpu for (f64, f64) {
    fn into_cpu(self) -> (f64, Option<f64>) {
        (self.0, Some(self.1))
    }
}

/// `memory = expr`: MiB, or `(request, limit)`.
pub fn memory<M: IntoMemory>(m: M) -> (u64, Option<u64>) {
    m.into_memory()
}
/// Values accepted by `memory = …`.
pub trait IntoMemory {
    /// `(request, limit)`.
    fn into_memory(self) -> (u64, Option<u64>);
}
impl IntoMemory for u64 {
    fn into_memory(self) -> (u64, Option<u64>) {
        (self, None)
    }
}
impl IntoMemory for (u64, u64) {
    fn into_memory(self) -> (u64, Option<u64>) {
        (self.0, Some(self.1))
    }
}

/// `region = …`: a string or strings.
pub fn strings<S: IntoStrings>(s: S) -> Vec<String> {
    s.into_strings()
}
/// Values accepted where one or several strings are.
pub trait IntoStrings {
    /// The strings.
    fn into_strings(self) -> Vec<String>;
}
impl IntoStrings for &str {
    fn into_strings(self) -> Vec<String> {
        vec![self.to_owned()]
    }
}
impl IntoStrings for String {
    fn into_strings(self) -> Vec<String> {
        vec![self]
    }
}
impl<S: Into<String>> IntoStrings for Vec<S> {
    fn into_strings(self) -> Vec<String> {
        self.into_iter().map(Into::into).collect()
    }
}
impl<S: Into<String>, const N: usize> IntoStrings for [S; N] {
    fn into_strings(self) -> Vec<String> {
        self.into_iter().map(Into::into).collect()
    }
}

/// `env = [("K", "V")]` and `experimental_options = …`.
pub fn string_pairs<K: Into<String>, V: Into<String>>(
    pairs: impl IntoIterator<Item = (K, V)>,
) -> Vec<(String, String)> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
}

/// `volumes = [("/mnt/data", Volume::from_name("data"))]`.
pub fn volumes<P: Into<String>>(v: impl IntoIterator<Item = (P, Volume)>) -> Vec<(String, Volume)> {
    v.into_iter().map(|(p, v)| (p.into(), v)).collect()
}
