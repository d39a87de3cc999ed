//! Classes from the caller's side: a class with parameter values and options is a variant with
//! its own pool of containers; its methods are ordinary typed handles.

use std::sync::{Arc, OnceLock};

use serde::Serialize;

use super::options::Options;
use super::target::Target;
use super::{Function, Generator};
use crate::model::{FunctionOptions, Payload};
use crate::registry::FunctionRegistration;

/// The binding of a class: where it is, its parameter values and options. Method handles made
/// from one binding share its variant.
#[doc(hidden)]
#[derive(Clone)]
pub struct ClsCore {
    base: Target,
    params: Option<Payload>,
    missing: Option<String>,
    options: Option<FunctionOptions>,
    error: Option<String>,
    variant: Arc<OnceLock<Target>>,
}

impl ClsCore {
    /// A class declared in this program.
    pub fn registered(registration: &'static FunctionRegistration) -> Self {
        Self::over(Target::Registered(registration))
    }

    /// A class of a deployed app, by name.
    pub fn named(app_name: &str, class: &str, environment_name: &str) -> Self {
        Self::over(Target::named(app_name, class, environment_name))
    }

    fn over(base: Target) -> Self {
        ClsCore {
            base,
            params: None,
            missing: None,
            options: None,
            error: None,
            variant: Arc::default(),
        }
    }

    /// The same class with parameter values (encoded as the class's parameter struct), or
    /// with `missing` naming a required parameter that has no value.
    pub fn with_params<P: Serialize>(&self, params: &P, missing: Option<String>) -> Self {
        let mut next = self.fresh();
        match crate::codec::encode_plain(params) {
            Ok(bytes) => next.params = Some(Payload::new(bytes)),
            Err(e) => next.error = Some(format!("class parameters of `{}`: {e}", self.base.tag())),
        }
        next.missing = missing;
        next
    }

    /// The same class with other options.
    pub fn with_options(&self, options: Options) -> Self {
        let mut next = self.fresh();
        match options.overrides() {
            Ok(o) => next.options = Some(o.on_top_of(next.options.take())),
            Err(e) => next.error = Some(e.to_string()),
        }
        next
    }

    fn fresh(&self) -> Self {
        ClsCore {
            variant: Arc::default(),
            ..self.clone()
        }
    }

    fn target(&self) -> Target {
        self.variant
            .get_or_init(|| {
                let invalid = self.error.clone().or_else(|| self.missing.clone());
                Target::variant(
                    self.base.clone(),
                    self.params.clone(),
                    self.options.clone(),
                    invalid,
                )
            })
            .clone()
    }

    /// A handle to one method.
    pub fn method<A, R>(&self, name: &'static str) -> Function<A, R> {
        Function::with_target(self.target(), name)
    }

    /// A handle to one generator method.
    pub fn generator<A, T>(&self, name: &'static str) -> Generator<A, T> {
        Generator::__new(Function::with_target(self.target(), name))
    }
}

/// A class of a deployed app, by name, for a program that does not declare it.
///
/// ```no_run
/// # async fn demo() -> modal::Result<()> {
/// let model = modal::Cls::from_name("models", "Model").params(&("large".to_string(),));
/// let predict: modal::Function<(Vec<f32>,), Vec<f32>> = model.method("predict");
/// let y = predict.remote(vec![1.0, 2.0]).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Cls {
    core: ClsCore,
}

impl std::fmt::Debug for Cls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cls")
            .field("class", &self.core.base.tag())
            .finish()
    }
}

impl Cls {
    /// The class `class` of the app `app_name`.
    pub fn from_name(app_name: &str, class: &str) -> Self {
        Cls {
            core: ClsCore::named(app_name, class, ""),
        }
    }

    /// Parameter values, encoded as the class's parameter struct (its parameter fields in
    /// declaration order, e.g. a tuple).
    pub fn params<P: Serialize>(&self, params: &P) -> Self {
        Cls {
            core: self.core.with_params(params, None),
        }
    }

    /// A variant with other options.
    pub fn with_options(&self, options: Options) -> Self {
        Cls {
            core: self.core.with_options(options),
        }
    }

    /// A variant whose containers run up to `max_inputs` inputs at once.
    pub fn with_concurrency(&self, max_inputs: u32, target_inputs: Option<u32>) -> Self {
        self.with_options(Options::new().concurrency(max_inputs, target_inputs))
    }

    /// A variant whose batched method gets batches of up to `max_batch_size` inputs.
    pub fn with_batching(&self, max_batch_size: u32, wait_ms: u32) -> Self {
        self.with_options(Options::new().batching(max_batch_size, wait_ms))
    }

    /// A method, typed by the caller's declaration.
    pub fn method<A, R>(&self, name: &'static str) -> Function<A, R> {
        self.core.method(name)
    }

    /// A generator method, typed by the caller's declaration.
    pub fn generator<A, T>(&self, name: &'static str) -> Generator<A, T> {
        self.core.generator(name)
    }
}
