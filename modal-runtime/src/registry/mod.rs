//! The registry: apps, functions and entrypoints collected at link time through `inventory`,
//! and the one identity scheme that the client and the container both use.

pub(crate) mod class;
pub(crate) mod outcome;
pub(crate) mod probes;

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

pub use class::{ClassBuilder, ClassInstance};
pub use outcome::{BatchFuture, GeneratorSink, Outcome, OutcomeFuture, ResultFormatter};

use crate::app::{App, FunctionSpec};

/// An app declared with `modal::app!`.
#[doc(hidden)]
pub struct AppEntry {
    pub app: fn() -> &'static App,
}
inventory::collect!(AppEntry);

/// How the container calls a function: with the encoded arguments.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub enum Invoker {
    /// A plain `fn`, run on a blocking thread.
    Sync(fn(bytes::Bytes) -> Outcome),
    /// An `async fn`, run on the container's tokio runtime.
    Async(fn(bytes::Bytes) -> OutcomeFuture),
    /// A generator: its items go to the sink as they are produced.
    Generator(fn(bytes::Bytes, GeneratorSink) -> OutcomeFuture),
    /// A batched function: one call per batch, one outcome per input.
    Batched(fn(Vec<bytes::Bytes>) -> BatchFuture),
    /// A class: builds an instance from its encoded parameters.
    Class(ClassBuilder),
}

/// One `#[modal::function]`.
#[doc(hidden)]
pub struct FunctionRegistration {
    /// The app the function was declared on.
    pub app: fn() -> &'static App,
    /// The function's tag: its `name = …` or its Rust name.
    pub tag: &'static str,
    /// `module::path::name` of the implementation.
    pub implementation: &'static str,
    /// The argument tuple's and the result's `std::any::type_name`s (a caller that looks the
    /// function up by name is checked against them).
    pub types: fn() -> (&'static str, &'static str),
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

/// Holds a function's binding while its app runs: whatever the client put there (its connection
/// and the function's id), opaque to the registry.
#[doc(hidden)]
pub struct BoundSlot(RwLock<Option<Arc<dyn Any + Send + Sync>>>);

impl BoundSlot {
    /// An empty slot (for statics).
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        BoundSlot(RwLock::new(None))
    }

    /// The binding, when one of type `T` is set.
    pub(crate) fn get<T: Any + Clone>(&self) -> Option<T> {
        let guard = self.0.read().ok()?;
        guard.as_ref()?.downcast_ref::<T>().cloned()
    }

    pub(crate) fn set<T: Any + Send + Sync>(&self, bound: Option<T>) {
        if let Ok(mut g) = self.0.write() {
            *g = bound.map(|b| Arc::new(b) as Arc<dyn Any + Send + Sync>);
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
        .find(|f| self::identity(app, f) == *identity)
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
    Pin<Box<dyn Future<Output = Result<(), crate::error::Error>> + Send + 'static>>;

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
