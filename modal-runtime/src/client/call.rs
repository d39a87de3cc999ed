//! `FunctionCall<R>`: a spawned call whose result can be read (and re-read) later, or cancelled.

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use super::Client;
use super::reconnect::{reconnecting, reconnecting_until};
use crate::codec;
use crate::error::{Error, Result};
use crate::wire::{self, pb};

/// Longest single wait on the control plane.
const POLL: Duration = Duration::from_secs(50);

/// A call started with `spawn`.
///
/// ```no_run
/// # use modal::prelude::*;
/// # modal::app!(APP = App::new("example"));
/// # #[modal::function(app = APP)] fn slow(x: u64) -> u64 { x }
/// # async fn demo() -> modal::Result<()> {
/// let call = slow.spawn(7).await?;
/// let value = call.get(std::time::Duration::from_secs(30)).await?;
/// # Ok(()) }
/// # fn main() {}
/// ```
pub struct FunctionCall<R> {
    client: Client,
    call_id: String,
    function: String,
    _type: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for FunctionCall<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionCall")
            .field("call_id", &self.call_id)
            .field("function", &self.function)
            .finish()
    }
}

impl<R: DeserializeOwned + 'static> FunctionCall<R> {
    pub(crate) fn new(client: Client, call_id: String, function: String) -> Self {
        FunctionCall {
            client,
            call_id,
            function,
            _type: PhantomData,
        }
    }

    /// A call spawned earlier (perhaps by another program), by its id.
    pub async fn from_id(call_id: &str) -> Result<Self> {
        let client = Client::from_env().await?;
        let resp = reconnecting("looking up a call", || {
            let mut api = client.api.clone();
            let req = pb::FunctionCallFromIdRequest {
                call_id: call_id.to_owned(),
            };
            async move { api.function_call_from_id(req).await }
        })
        .await
        .map_err(|s| expired_or(s, call_id))?
        .into_inner();
        Ok(FunctionCall::new(
            client,
            call_id.to_owned(),
            resp.function_tag,
        ))
    }

    /// The call's id (`fc-…`).
    pub fn object_id(&self) -> &str {
        &self.call_id
    }

    /// Waits for the result, at most `timeout` (`None`: as long as it takes). The result stays
    /// readable, so `get` may be called again.
    pub async fn get(&self, timeout: impl Into<Option<Duration>>) -> Result<R> {
        let result = wait_result(&self.client, &self.call_id, timeout.into()).await?;
        let result = self.client.fetched(result).await?;
        decode_result(result, &self.function, wire::Reader::OneOfMany)
    }

    /// Cancels the call: an input not started yet never runs; a running one is stopped.
    pub async fn cancel(&self) -> Result<()> {
        self.cancel_with(false).await
    }

    /// Cancels the call and, with `terminate_containers`, also stops the containers running it.
    pub async fn cancel_with(&self, terminate_containers: bool) -> Result<()> {
        reconnecting("cancelling a call", || {
            let mut api = self.client.api.clone();
            let req = pb::FunctionCallCancelRequest {
                call_id: self.call_id.clone(),
                terminate_containers,
            };
            async move { api.function_call_cancel(req).await }
        })
        .await?;
        Ok(())
    }
}

/// Polls the control plane until the call has a result or `timeout` passes.
pub(crate) async fn wait_result(
    client: &Client,
    call_id: &str,
    timeout: Option<Duration>,
) -> Result<pb::CallResult> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let wait = || match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()).min(POLL),
            None => POLL,
        };
        let resp = reconnecting_until("waiting for a result", deadline, || {
            let mut api = client.api.clone();
            let req = pb::FunctionCallGetRequest {
                call_id: call_id.to_owned(),
                timeout_ms: wire::millis(wait()),
            };
            async move { api.function_call_get(req).await }
        })
        .await
        .map_err(|s| match s.code() {
            // The caller's timeout passed while the control plane was away.
            tonic::Code::DeadlineExceeded if deadline.is_some() => {
                Error::GetTimeout(timeout.unwrap_or_default())
            }
            _ => expired_or(s, call_id),
        })?
        .into_inner();
        if let Some(r) = resp.result {
            return Ok(r);
        }
        if let Some(d) = deadline
            && Instant::now() >= d
        {
            return Err(Error::GetTimeout(timeout.unwrap_or_default()));
        }
    }
}

/// A call the control plane does not know (any more): its result expired, or it never existed.
fn expired_or(status: tonic::Status, call_id: &str) -> Error {
    if status.code() == tonic::Code::NotFound {
        Error::OutputExpired(call_id.to_owned())
    } else {
        status.into()
    }
}

pub(crate) fn decode_result<R: DeserializeOwned + 'static>(
    result: pb::CallResult,
    function: &str,
    reader: wire::Reader,
) -> Result<R> {
    let bytes = wire::into_value(result, function, reader)?;
    codec::decode_shared(&bytes).map_err(|e| {
        Error::Serialization(format!(
            "the result of `{function}` does not decode as {}: {e}",
            std::any::type_name::<R>()
        ))
    })
}
