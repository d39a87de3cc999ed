//! `Function<A, R>`: the typed handle behind every `#[modal::function]` (arguments as a tuple).

use std::any::type_name;
use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::call::{self, FunctionCall};
use super::map::{ForEach, MapCall};
use super::options::Options;
use super::reconnect::reconnecting;
use super::target::Bound;
use super::target::Target;
use crate::codec;
use crate::error::{Error, Result};
use crate::ids::new_id;
use crate::model::function::short_type_name;
use crate::registry::FunctionRegistration;
use crate::wire::{self, pb};

/// How long one `remote` request waits for its result before it polls again.
const REMOTE_WAIT: Duration = Duration::from_secs(50);
/// How many times a `remote` call lost by a restarting control plane is sent again.
const MAX_SENT_AGAIN: u32 = 3;

/// A typed handle to a function: `A` is the tuple of its arguments, `R` its return value.
///
/// The `#[modal::function]` macro generates a handle per function whose methods take the
/// arguments one by one (`square.remote(3)`); it dereferences to this type, whose methods take
/// the argument tuple (`square.starmap([(3,), (4,)])`). A function of a deployed app is reached
/// by name with [`Function::from_name`]; the handle's types are then the caller's declaration:
///
/// ```no_run
/// # async fn demo() -> modal::Result<()> {
/// let square: modal::Function<(i64,), i64> = modal::Function::from_name("deploy-me", "square");
/// assert_eq!(square.remote(7).await?, 49);
/// # Ok(()) }
/// ```
pub struct Function<A, R> {
    target: Target,
    /// For a class: the method (empty for a function).
    method: &'static str,
    _types: PhantomData<fn(A) -> R>,
}

impl<A, R> Clone for Function<A, R> {
    fn clone(&self) -> Self {
        Function {
            target: self.target.clone(),
            method: self.method,
            _types: PhantomData,
        }
    }
}

impl<A, R> std::fmt::Debug for Function<A, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function")
            .field("name", &self.name())
            .finish()
    }
}

impl<A, R> Function<A, R> {
    #[doc(hidden)]
    pub const fn __new(registration: &'static FunctionRegistration) -> Self {
        Function {
            target: Target::Registered(registration),
            method: "",
            _types: PhantomData,
        }
    }

    pub(crate) fn with_target(target: Target, method: &'static str) -> Self {
        Function {
            target,
            method,
            _types: PhantomData,
        }
    }

    /// The function `tag` of the deployed (or running) app `app_name`, in the default
    /// environment. Nothing is contacted until the first call.
    pub fn from_name(app_name: &str, tag: &str) -> Self {
        Self::from_name_in(app_name, tag, "")
    }

    /// Like [`from_name`](Function::from_name), in `environment_name`.
    pub fn from_name_in(app_name: &str, tag: &str, environment_name: &str) -> Self {
        Self::with_target(Target::named(app_name, tag, environment_name), "")
    }

    /// A variant of this function with other options: its own pool of containers.
    ///
    /// ```no_run
    /// # modal::app!(APP = modal::App::new("example"));
    /// # #[modal::function(app = APP)] fn embed(x: String) -> Vec<f32> { vec![] }
    /// # async fn demo() -> modal::Result<()> {
    /// let big = embed.with_options(modal::Options::new().memory(4096).timeout(600))?;
    /// big.remote("text".to_string()).await?;
    /// # Ok(()) }
    /// # fn main() {}
    /// ```
    pub fn with_options(&self, options: Options) -> Result<Self> {
        Ok(Self::with_target(
            Target::variant(self.target.clone(), None, Some(options.overrides()?), None),
            self.method,
        ))
    }

    /// A variant whose containers run up to `max_inputs` inputs at once (the autoscaler plans
    /// for `target_inputs`).
    pub fn with_concurrency(&self, max_inputs: u32, target_inputs: Option<u32>) -> Result<Self> {
        self.with_options(Options::new().concurrency(max_inputs, target_inputs))
    }

    /// The function's tag (its name within the app).
    pub fn tag(&self) -> &str {
        self.target.tag()
    }

    /// The name used in messages: the tag, or `Class.method`.
    pub(crate) fn name(&self) -> String {
        if self.method.is_empty() {
            self.tag().to_owned()
        } else {
            format!("{}.{}", self.tag(), self.method)
        }
    }

    pub(crate) fn method(&self) -> &'static str {
        self.method
    }

    /// The client and function id to call. For a function found by name, its deployed types
    /// must be the ones this handle was declared with (bincode is not self-describing: a
    /// mismatch would decode wrong values silently).
    pub(crate) async fn bound(&self) -> Result<Bound> {
        let bound = self.target.bound().await?;
        if let Some(d) = self
            .target
            .declared()
            .filter(|d| !d.is_class && !d.args.is_empty())
        {
            let (args, returns) = (
                short_type_name(type_name::<A>()),
                short_type_name(type_name::<R>()),
            );
            if args != d.args || returns != d.returns {
                return Err(Error::Invalid(format!(
                    "`{}` in app `{}` takes `{}` and returns `{}`, but this handle is a `Function<{}, {}>`: declare it with the deployed function's types",
                    self.name(),
                    self.target.app_name().unwrap_or_default(),
                    d.args,
                    d.returns,
                    args,
                    returns,
                )));
            }
        }
        Ok(bound)
    }

    /// The deployed function's return type, once resolved (for messages).
    fn remote_return_type(&self) -> Option<&str> {
        self.target
            .declared()
            .filter(|d| !d.returns.is_empty())
            .map(|d| d.returns.as_str())
    }
}

impl<A, R> Function<A, R>
where
    A: Serialize + Send + 'static,
    R: DeserializeOwned + Send + 'static,
{
    /// Runs the function in a container with the argument tuple and waits for its result.
    pub async fn remote_args(&self, args: A) -> Result<R> {
        let bytes = self.remote_raw(args).await?;
        codec::decode_shared(&bytes).map_err(|e| {
            let declared = self
                .remote_return_type()
                .map(|t| format!(" (the function returns `{t}`)"))
                .unwrap_or_default();
            Error::Serialization(format!(
                "the result of `{}` does not decode as {}{declared}: {e}",
                self.name(),
                std::any::type_name::<R>()
            ))
        })
    }

    /// Submits one input (`encoded`: the argument tuple) as call `call_id`; with `wait`, the
    /// response carries the result if it came in time. The id is chosen here so that a request
    /// sent again after a lost connection is the same call. A large input goes up first to a
    /// control plane elsewhere, and once more if it no longer has the upload (it restarted).
    async fn submit(
        &self,
        bound: &Bound,
        call_id: &str,
        encoded: &pb::Payload,
        wait: Option<Duration>,
    ) -> Result<pb::FunctionCallResponse> {
        let mut input = bound.client.staged(encoded.clone()).await?;
        let mut staged_again = false;
        loop {
            let sent = reconnecting("calling a function", || {
                let mut api = bound.client.api.clone();
                let req = pb::FunctionCallRequest {
                    function_id: bound.function_id.clone(),
                    method_name: self.method.to_owned(),
                    input: Some(input.clone()),
                    wait: wait.is_some(),
                    wait_ms: wait.map_or(0, wire::millis),
                    call_id: call_id.to_owned(),
                };
                async move { api.function_call(req).await }
            })
            .await;
            match sent {
                Err(s) if !staged_again && wire::asks_to_upload_again(&s) => {
                    staged_again = true;
                    input = bound.client.staged(encoded.clone()).await?;
                }
                other => return Ok(other?.into_inner()),
            }
        }
    }

    /// Like `remote_args`, returning the encoded result.
    pub(crate) async fn remote_raw(&self, args: A) -> Result<bytes::Bytes> {
        let bound = self.bound().await?;
        let encoded = wire::encode_args(&args, &self.name())?;
        let call_id = new_id("fc-");
        let mut sent_again = 0;
        loop {
            let resp = self
                .submit(&bound, &call_id, &encoded, Some(REMOTE_WAIT))
                .await?;
            let result = match resp.result {
                Some(r) => Ok(r),
                None => call::wait_result(&bound.client, &resp.call_id, None).await,
            };
            match result {
                // A control plane that restarted lost this `remote` call (only spawned calls
                // are stored): the input is sent again, and may run again (at least once).
                Err(Error::OutputExpired(_)) if sent_again < MAX_SENT_AGAIN => {
                    sent_again += 1;
                    tracing::warn!(
                        call_id,
                        "the control plane lost call `{}` (did it restart?); sending it again",
                        self.name()
                    );
                }
                other => {
                    let result = bound.client.fetched(other?).await?;
                    return wire::into_value(result, &self.name(), wire::Reader::Only);
                }
            }
        }
    }

    /// Starts the function with the argument tuple without waiting; the result is read
    /// later through the returned [`FunctionCall`].
    pub async fn spawn_args(&self, args: A) -> Result<FunctionCall<R>> {
        let bound = self.bound().await?;
        let encoded = wire::encode_args(&args, &self.name())?;
        let resp = self.submit(&bound, &new_id("fc-"), &encoded, None).await?;
        Ok(FunctionCall::new(bound.client, resp.call_id, self.name()))
    }

    /// Runs the function once per argument tuple, in parallel containers; results stream back
    /// in input order (see [`MapCall`] for the options).
    pub fn starmap<I>(&self, inputs: I) -> MapCall<A, R>
    where
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
    {
        MapCall::new(self.clone(), Box::new(inputs.into_iter()))
    }

    /// Runs the function once per argument tuple and discards the results.
    pub fn for_each_args<I>(&self, inputs: I) -> ForEach<A, R>
    where
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
    {
        ForEach::new(self.starmap(inputs))
    }
}

macro_rules! by_arity {
    ($($arg:ident: $t:ident),*) => {
        impl<$($t,)* R> Function<($($t,)*), R>
        where
            ($($t,)*): Serialize + Send + 'static,
            R: DeserializeOwned + Send + 'static,
        {
            /// Runs the function in a container and waits for its result.
            #[allow(clippy::too_many_arguments)]
            pub async fn remote(&self, $($arg: $t),*) -> Result<R> {
                self.remote_args(($($arg,)*)).await
            }

            /// Starts the function without waiting; read the result later from the call.
            #[allow(clippy::too_many_arguments)]
            pub async fn spawn(&self, $($arg: $t),*) -> Result<FunctionCall<R>> {
                self.spawn_args(($($arg,)*)).await
            }
        }
    };
}

by_arity!();
by_arity!(a: T1);
by_arity!(a: T1, b: T2);
by_arity!(a: T1, b: T2, c: T3);
by_arity!(a: T1, b: T2, c: T3, d: T4);

impl<T1, R> Function<(T1,), R>
where
    T1: Serialize + Send + 'static,
    R: DeserializeOwned + Send + 'static,
{
    /// Runs the one-argument function once per input, in parallel containers.
    pub fn map<I>(&self, inputs: I) -> MapCall<(T1,), R>
    where
        I: IntoIterator<Item = T1>,
        I::IntoIter: Send + 'static,
    {
        self.starmap(inputs.into_iter().map(|x| (x,)))
    }
}
