//! The registry: apps, functions and entrypoints collected at link time through `inventory`,
//! and the one identity scheme that the client and the container both use.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::RwLock;

use crate::app::{App, FunctionSpec};

/// An app declared with `modal::app!`.
#[doc(hidden)]
pub struct AppEntry {
    pub app: fn() -> &'static App,
}
inventory::collect!(AppEntry);

/// What running a function produced, before it goes on the wire.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The encoded return value.
    Success(Vec<u8>),
    /// The function returned `Err(e)`.
    UserError {
        type_name: &'static str,
        message: String,
        /// `e` encoded, when its type is serde.
        payload: Option<Vec<u8>>,
    },
    /// The input could not be decoded as the function's arguments.
    BadInput(String),
    /// The return value could not be encoded.
    BadOutput(String),
    /// The function panicked (caught where it ran).
    Panic {
        message: String,
        location: String,
        backtrace: String,
    },
}

/// A boxed future of a batched function's outcomes, one per input of the batch.
#[doc(hidden)]
pub type BatchFuture = Pin<Box<dyn Future<Output = Vec<Outcome>> + Send + 'static>>;

/// Where a generator puts its items (each encoded as it is produced).
#[doc(hidden)]
#[derive(Clone)]
pub struct GeneratorSink {
    pub(crate) send: std::sync::Arc<dyn Fn(Vec<u8>) -> bool + Send + Sync>,
}

impl GeneratorSink {
    /// Sends one item; `Err` when the item cannot be encoded or nobody reads any more.
    pub fn send<T: serde::Serialize>(&self, item: &T) -> Result<(), String> {
        let bytes = crate::codec::encode(item).map_err(|e| e.to_string())?;
        if (self.send)(bytes) {
            Ok(())
        } else {
            Err("the generator's caller went away".into())
        }
    }
}

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

/// A boxed future of an async function's outcome.
#[doc(hidden)]
pub type OutcomeFuture = Pin<Box<dyn Future<Output = Outcome> + Send + 'static>>;

/// Builds a class instance from its encoded parameters.
#[doc(hidden)]
pub type ClassBuilder = fn(&[u8]) -> Result<std::sync::Arc<dyn ClassInstance>, String>;

/// How the container calls a function: with the encoded arguments.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub enum Invoker {
    /// A plain `fn`, run on a blocking thread.
    Sync(fn(&[u8]) -> Outcome),
    /// An `async fn`, run on the container's tokio runtime.
    Async(fn(bytes::Bytes) -> OutcomeFuture),
    /// A generator: its items go to the sink as they are produced.
    Generator(fn(bytes::Bytes, GeneratorSink) -> OutcomeFuture),
    /// A batched function: one call per batch, one outcome per input.
    Batched(fn(Vec<bytes::Bytes>) -> BatchFuture),
    /// A class: builds an instance from its encoded parameters.
    Class(ClassBuilder),
}

/// Formats an encoded return value for display.
#[doc(hidden)]
pub type ResultFormatter = fn(&[u8]) -> String;

/// One `#[modal::function]`.
#[doc(hidden)]
pub struct FunctionRegistration {
    /// The app the function was declared on.
    pub app: fn() -> &'static App,
    /// The function's tag: its `name = …` or its Rust name.
    pub tag: &'static str,
    /// `module::path::name` of the implementation.
    pub implementation: &'static str,
    /// The argument tuple's and the result's types, as written (for messages).
    pub types: (&'static str, &'static str),
    pub spec: fn() -> FunctionSpec,
    pub invoker: Invoker,
    /// Formats an encoded return value with `Debug`, when the return type has it.
    pub describe_result: fn() -> Option<ResultFormatter>,
    /// Where the function is bound while its app runs.
    pub bound: BoundSlot,
}

/// Submitted to `inventory` for each function.
#[doc(hidden)]
pub struct FunctionEntry(pub &'static FunctionRegistration);
inventory::collect!(FunctionEntry);

/// A function's binding to a running app: the client to call through and its id.
#[derive(Clone)]
pub(crate) struct Bound {
    pub(crate) client: crate::client::Client,
    pub(crate) function_id: String,
}

/// Holds a function's binding while its app runs.
#[doc(hidden)]
pub struct BoundSlot(RwLock<Option<Bound>>);

impl BoundSlot {
    /// An empty slot (for statics).
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        BoundSlot(RwLock::new(None))
    }

    pub(crate) fn get(&self) -> Option<Bound> {
        self.0.read().ok().and_then(|g| g.clone())
    }

    pub(crate) fn set(&self, bound: Option<Bound>) {
        if let Ok(mut g) = self.0.write() {
            *g = bound;
        }
    }
}

/// A function's identity: the running app's name and the function's tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// Name of the app the function runs in.
    pub app: String,
    /// The function's tag.
    pub tag: String,
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}::{}", self.app, self.tag)
    }
}

/// The identity of `function` when it runs as part of `app`. Both the client (when it
/// registers functions) and the container (when it looks its function up) go through this.
pub(crate) fn identity(app: &App, function: &FunctionRegistration) -> Identity {
    Identity {
        app: app.name().to_owned(),
        tag: function.tag.to_owned(),
    }
}

/// Registry lookups that failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum RegistryError {
    #[error("no app named `{app}` is registered in this binary (registered: {known})")]
    UnknownApp { app: String, known: String },
    #[error("app `{app}` has no function tagged `{tag}` in this binary (functions: {known})")]
    UnknownFunction {
        app: String,
        tag: String,
        known: String,
    },
    #[error("app `{app}` has two functions tagged `{tag}`: {first} and {second}")]
    DuplicateTag {
        app: String,
        tag: String,
        first: String,
        second: String,
    },
}

/// Every app registered in this binary.
pub(crate) fn apps() -> impl Iterator<Item = &'static App> {
    inventory::iter::<AppEntry>.into_iter().map(|e| (e.app)())
}

/// The functions that run as part of `app`: its own and those of the apps it includes.
/// A tag declared twice on the app itself is an error; an included function whose tag the app
/// already has is left out (the including app wins).
/// Whether any function or class linked into this binary asks for a GPU.
pub(crate) fn any_gpu_function() -> bool {
    inventory::iter::<FunctionEntry>
        .into_iter()
        .any(|FunctionEntry(reg)| !(reg.spec)().gpu.is_empty())
}

pub(crate) fn functions_of(app: &App) -> Result<Vec<&'static FunctionRegistration>, RegistryError> {
    let mut own: Vec<&'static FunctionRegistration> = Vec::new();
    let mut included: Vec<&'static FunctionRegistration> = Vec::new();
    for FunctionEntry(reg) in inventory::iter::<FunctionEntry> {
        let home = (reg.app)();
        if std::ptr::eq(home, app) {
            if let Some(prev) = own.iter().find(|p| p.tag == reg.tag) {
                return Err(RegistryError::DuplicateTag {
                    app: app.name().to_owned(),
                    tag: reg.tag.to_owned(),
                    first: prev.implementation.to_owned(),
                    second: reg.implementation.to_owned(),
                });
            }
            own.push(reg);
        } else if app.contains(home) {
            included.push(reg);
        }
    }
    for reg in included {
        if own.iter().any(|p| p.tag == reg.tag) {
            tracing::warn!(
                tag = reg.tag,
                app = app.name(),
                "included function is shadowed by the app's own"
            );
        } else {
            own.push(reg);
        }
    }
    own.sort_by_key(|r| r.tag);
    Ok(own)
}

/// Finds the function with `identity` in this binary.
pub(crate) fn lookup(identity: &Identity) -> Result<&'static FunctionRegistration, RegistryError> {
    let app = apps().find(|a| a.name() == identity.app).ok_or_else(|| {
        let mut known: Vec<&str> = apps().map(App::name).collect();
        known.sort_unstable();
        RegistryError::UnknownApp {
            app: identity.app.clone(),
            known: list(&known),
        }
    })?;
    let functions = functions_of(app)?;
    functions
        .iter()
        .find(|f| f.tag == identity.tag)
        .copied()
        .ok_or_else(|| {
            let known: Vec<&str> = functions.iter().map(|f| f.tag).collect();
            RegistryError::UnknownFunction {
                app: identity.app.clone(),
                tag: identity.tag.clone(),
                known: list(&known),
            }
        })
}

fn list(items: &[&str]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// How an entrypoint parameter is given on the command line.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// `--name VALUE`.
    Value,
    /// `--name / --no-name`.
    Flag,
}

/// One parameter of a `#[modal::local_entrypoint]`.
#[doc(hidden)]
#[derive(Debug)]
pub struct ParamSpec {
    /// The Rust parameter name (the flag is `--` plus it with `_` replaced by `-`).
    pub name: &'static str,
    pub kind: ParamKind,
    /// False for `Option<T>`.
    pub required: bool,
    /// What the value looks like, for `--help`.
    pub value_hint: &'static str,
}

/// Parsed command-line values of an entrypoint, by parameter name.
#[doc(hidden)]
pub type EntrypointArgs = std::collections::HashMap<&'static str, String>;

/// The future an entrypoint returns once its arguments are parsed.
#[doc(hidden)]
pub type EntrypointFuture =
    Pin<Box<dyn Future<Output = Result<(), crate::Error>> + Send + 'static>>;

/// One `#[modal::local_entrypoint]`.
#[doc(hidden)]
pub struct EntrypointRegistration {
    pub app: fn() -> &'static App,
    /// The entrypoint's name: its `name = …` or its Rust name.
    pub name: &'static str,
    pub params: &'static [ParamSpec],
    /// Parses the arguments (an error says which flag is wrong) and starts the entrypoint.
    pub run: fn(&EntrypointArgs) -> Result<EntrypointFuture, String>,
}
inventory::collect!(EntrypointRegistration);

/// Every entrypoint in this binary, sorted by name.
pub(crate) fn entrypoints() -> Vec<&'static EntrypointRegistration> {
    let mut all: Vec<_> = inventory::iter::<EntrypointRegistration>
        .into_iter()
        .collect();
    all.sort_by_key(|e| e.name);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_identities_say_what_is_known() {
        let Err(err) = lookup(&Identity {
            app: "nope".into(),
            tag: "f".into(),
        }) else {
            panic!("an app named `nope` is not registered");
        };
        assert!(matches!(err, RegistryError::UnknownApp { .. }));
        assert!(err.to_string().contains("no app named `nope`"), "{err}");
        assert_eq!(
            Identity {
                app: "a".into(),
                tag: "f".into()
            }
            .to_string(),
            "a::f"
        );
    }
}
