//! `Function<A, R>`: the typed handle behind every `#[modal::function]` (arguments as a tuple).

use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::call::{self, FunctionCall};
use super::map::{ForEach, MapCall};
use crate::codec;
use crate::error::{Error, Result};
use crate::registry::{Bound, FunctionRegistration};
use crate::wire::{self, pb};

/// How long one `remote` request waits for its result before it polls again.
const REMOTE_WAIT: Duration = Duration::from_secs(50);

/// A typed handle to a function: `A` is the tuple of its arguments, `R` its return value.
///
/// The `#[modal::function]` macro generates a handle per function whose methods take the
/// arguments one by one (`square.remote(3)`); it dereferences to this type, whose methods take
/// the argument tuple (`square.starmap([(3,), (4,)])`).
pub struct Function<A, R> {
    registration: &'static FunctionRegistration,
    _types: PhantomData<fn(A) -> R>,
}

impl<A, R> Clone for Function<A, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<A, R> Copy for Function<A, R> {}

impl<A, R> std::fmt::Debug for Function<A, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function")
            .field("tag", &self.registration.tag)
            .finish()
    }
}

impl<A, R> Function<A, R> {
    #[doc(hidden)]
    pub const fn __new(registration: &'static FunctionRegistration) -> Self {
        Function {
            registration,
            _types: PhantomData,
        }
    }

    /// The function's tag (its name within the app).
    pub fn tag(&self) -> &'static str {
        self.registration.tag
    }

    pub(crate) fn bound(&self) -> Result<Bound> {
        self.registration
            .bound
            .get()
            .ok_or_else(|| Error::NotRunning {
                app: (self.registration.app)().name().to_owned(),
                function: self.registration.tag.to_owned(),
            })
    }
}

pub(crate) fn encode_args<A: Serialize>(args: &A, function: &str) -> Result<pb::Payload> {
    codec::encode(args)
        .map(wire::payload)
        .map_err(|e| Error::Serialization(format!("arguments of `{function}`: {e}")))
}

impl<A, R> Function<A, R>
where
    A: Serialize + Send + 'static,
    R: DeserializeOwned + Send + 'static,
{
    /// Runs the function in a container with the argument tuple and waits for its result.
    pub async fn remote_args(&self, args: A) -> Result<R> {
        let bytes = self.remote_raw(args).await?;
        codec::decode(&bytes).map_err(|e| {
            Error::Serialization(format!(
                "the result of `{}` does not decode as {}: {e}",
                self.tag(),
                std::any::type_name::<R>()
            ))
        })
    }

    /// Submits one input; with `wait`, the response carries the result if it came in time.
    async fn submit(
        &self,
        bound: &Bound,
        args: A,
        wait: Option<Duration>,
    ) -> Result<pb::FunctionCallResponse> {
        let input = encode_args(&args, self.tag())?;
        let mut api = bound.client.api.clone();
        let resp = api
            .function_call(pb::FunctionCallRequest {
                function_id: bound.function_id.clone(),
                input: Some(input),
                wait: wait.is_some(),
                wait_ms: wait.map_or(0, |w| u32::try_from(w.as_millis()).unwrap_or(u32::MAX)),
            })
            .await?;
        Ok(resp.into_inner())
    }

    /// Like `remote_args`, returning the encoded result.
    pub(crate) async fn remote_raw(&self, args: A) -> Result<bytes::Bytes> {
        let bound = self.bound()?;
        let resp = self.submit(&bound, args, Some(REMOTE_WAIT)).await?;
        let result = match resp.result {
            Some(r) => r,
            None => call::wait_result(&bound.client, &resp.call_id, None).await?,
        };
        wire::into_value(result, self.tag())
    }

    /// Starts the function with the argument tuple without waiting; the result is read
    /// later through the returned [`FunctionCall`].
    pub async fn spawn_args(&self, args: A) -> Result<FunctionCall<R>> {
        let bound = self.bound()?;
        let resp = self.submit(&bound, args, None).await?;
        Ok(FunctionCall::new(bound.client, resp.call_id, self.tag()))
    }

    /// Runs the function once per argument tuple, in parallel containers; results stream back
    /// in input order (see [`MapCall`] for the options).
    pub fn starmap<I>(&self, inputs: I) -> MapCall<A, R>
    where
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
    {
        MapCall::new(*self, Box::new(inputs.into_iter()))
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
