//! Classes in a container: the instance behind a lock, its parameters, methods and lifecycle
//! hooks as `#[modal::cls]`/`#[modal::methods]` implement them, and how a hook's failure reads.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::outcome::{BatchFuture, GeneratorSink, Outcome, OutcomeFuture};

/// A class instance in a container: its lifecycle hooks and its methods.
#[doc(hidden)]
pub trait ClassInstance: Send + Sync {
    /// Runs the `#[modal::enter]` methods, in declaration order.
    fn enter(
        self: std::sync::Arc<Self>,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
    /// Calls a method (a generator method gets `sink`).
    fn call(
        self: std::sync::Arc<Self>,
        method: String,
        input: bytes::Bytes,
        sink: Option<GeneratorSink>,
    ) -> OutcomeFuture;
    /// Calls the batched method with one batch.
    fn call_batch(
        self: std::sync::Arc<Self>,
        method: String,
        inputs: Vec<bytes::Bytes>,
    ) -> BatchFuture;
    /// Runs the `#[modal::exit]` methods.
    fn exit(self: std::sync::Arc<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// Builds a class instance from its encoded parameters.
#[doc(hidden)]
pub type ClassBuilder = fn(&[u8]) -> Result<std::sync::Arc<dyn ClassInstance>, String>;

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

/// Reports an exit hook that failed (the container stops anyway).
pub fn hook_error(message: &str) {
    tracing::warn!("{message}");
}
