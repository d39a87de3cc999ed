//! What generated code may use (`::modal::__private`): registration types and the small
//! helpers the macros expand to. Not a public API.

use std::cell::Cell;
use std::fmt::{Debug, Display};
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use bytes::Bytes;
pub use inventory;

pub use crate::app::{FunctionSpec, GpuConfig};
pub use crate::cli::command::run as modal_command;
pub use crate::cli::main_with;
pub use crate::client::ClsCore;
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

pub use crate::registry::{BatchFuture, ClassBuilder, ClassInstance, GeneratorSink};
pub use serde;

/// Runs blocking user code off the async runtime; a panic becomes the input's outcome.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Outcome> {
    crate::container::runner::blocking(f).await
}

/// Sends every item of a sync generator; the outcome counts them.
pub fn drain_iter<T: Serialize>(
    items: impl IntoIterator<Item = T>,
    sink: &GeneratorSink,
) -> Outcome {
    let mut n = 0u64;
    for item in items {
        if let Err(e) = sink.send(&item) {
            return Outcome::BadOutput(e);
        }
        n += 1;
    }
    encode_value(&n)
}

/// Sends every item of an async generator; the outcome counts them.
pub async fn drain_stream<T: Serialize>(
    items: impl futures::Stream<Item = T>,
    sink: &GeneratorSink,
) -> Outcome {
    use futures::StreamExt;
    let mut items = std::pin::pin!(items);
    let mut n = 0u64;
    while let Some(item) = items.next().await {
        if let Err(e) = sink.send(&item) {
            return Outcome::BadOutput(e);
        }
        n += 1;
    }
    encode_value(&n)
}

/// Decodes each input of a batch as the one-argument tuple `(T,)`.
pub fn decode_batch<T: DeserializeOwned>(inputs: &[Bytes]) -> Result<Vec<T>, Vec<Outcome>> {
    let mut out = Vec::with_capacity(inputs.len());
    for input in inputs {
        match decode_args::<(T,)>(input) {
            Ok((t,)) => out.push(t),
            Err(e) => {
                return Err(inputs
                    .iter()
                    .map(|_| Outcome::BadInput(e.clone()))
                    .collect());
            }
        }
    }
    Ok(out)
}

/// One outcome per input from a batched function's results (their count is checked by the
/// container).
pub fn batch_values<R: Serialize>(values: Vec<R>) -> Vec<Outcome> {
    values.iter().map(encode_value).collect()
}

/// The same outcome for every input of a batch.
pub fn batch_failed(n: usize, outcome: &Outcome) -> Vec<Outcome> {
    vec![outcome.clone(); n]
}

/// A class instance in a container: the user's struct behind a lock (`&self` methods share it,
/// `&mut self` ones and the lifecycle hooks take it alone).
pub struct ClassCell<T>(pub tokio::sync::RwLock<T>);

/// The parameters of a class (`#[modal::cls]` implements it).
pub trait ClassParams: Sized {
    /// The parameter fields, as sent.
    type Params: Serialize + DeserializeOwned + Send;
    /// The instance: parameters from `params`, every other field from `Default`.
    fn __from_params(params: Self::Params) -> Self;
}

/// The methods and hooks of a class (`#[modal::methods]` implements it).
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no `#[modal::methods]` impl block",
    label = "a `#[modal::cls]` needs its methods",
    note = "add `#[modal::methods]` to an `impl {Self}` block in the same module, with at least one `#[modal::method]`"
)]
pub trait ClassMethods: Sized + Send + Sync + 'static {
    /// Its methods.
    const METHODS: &'static [&'static str];
    /// Those that are generators.
    const GENERATORS: &'static [&'static str];
    /// `(max_batch_size, wait_ms)` of its batched method, if it has one.
    const BATCHED: Option<(u64, u64)>;
    /// Runs the enter hooks.
    fn __enter(
        cell: Arc<ClassCell<Self>>,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
    /// Runs the exit hooks.
    fn __exit(cell: Arc<ClassCell<Self>>) -> Pin<Box<dyn Future<Output = ()> + Send>>;
    /// Calls a method.
    fn __call(
        cell: Arc<ClassCell<Self>>,
        method: String,
        input: Bytes,
        sink: Option<GeneratorSink>,
    ) -> OutcomeFuture;
    /// Calls the batched method.
    fn __call_batch(cell: Arc<ClassCell<Self>>, method: String, inputs: Vec<Bytes>) -> BatchFuture;
}

impl<T: ClassMethods> ClassInstance for ClassCell<T> {
    fn enter(self: Arc<Self>) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> {
        T::__enter(self)
    }
    fn call(
        self: Arc<Self>,
        method: String,
        input: Bytes,
        sink: Option<GeneratorSink>,
    ) -> OutcomeFuture {
        T::__call(self, method, input, sink)
    }
    fn call_batch(self: Arc<Self>, method: String, inputs: Vec<Bytes>) -> BatchFuture {
        T::__call_batch(self, method, inputs)
    }
    fn exit(self: Arc<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        T::__exit(self)
    }
}

/// Builds a class instance in a container from its encoded parameters.
pub fn new_class<T: ClassParams + ClassMethods>(
    params: &[u8],
) -> Result<Arc<dyn ClassInstance>, String> {
    let params: T::Params = crate::codec::decode(params).map_err(|e| e.to_string())?;
    Ok(Arc::new(ClassCell(tokio::sync::RwLock::new(
        T::__from_params(params),
    ))))
}

/// Turns a lifecycle hook's failure (an error value or a panic) into the init failure's message.
pub fn hook_failure(hook: &str, outcome: Outcome) -> String {
    match outcome {
        Outcome::Panic {
            message, location, ..
        } => format!("`{hook}` panicked at {location}: {message}"),
        Outcome::UserError { message, .. } => format!("`{hook}` failed: {message}"),
        other => format!("`{hook}` failed: {other:?}"),
    }
}

/// The outcome of an unknown method.
pub fn no_such_method(class: &str, method: &str) -> Outcome {
    Outcome::BadInput(format!("class `{class}` has no method `{method}`"))
}

/// Marks misuse of a generator's handle (`map`, `spawn`): never implemented.
#[diagnostic::on_unimplemented(
    message = "a generator cannot be mapped or spawned",
    label = "call the generator with `.remote_gen(…)` and read its items as a stream"
)]
pub trait GeneratorMisuse {}

/// Runs an async lifecycle hook, turning a panic into the hook's failure.
pub async fn guard_hook(
    hook: &str,
    f: impl Future<Output = Result<(), String>>,
) -> Result<(), String> {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(f).catch_unwind().await {
        Ok(r) => r,
        Err(p) => Err(hook_failure(
            hook,
            crate::container::runner::panic_outcome(p.as_ref()),
        )),
    }
}

/// Reports an exit hook that failed (the container stops anyway).
pub fn hook_error(message: &str) {
    tracing::warn!("{message}");
}
