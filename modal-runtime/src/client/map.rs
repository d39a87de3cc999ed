//! `map`, `starmap` and `for_each`: inputs stream to the control plane through a window,
//! results stream back as they finish and are put in input order on this side when asked.

use std::collections::HashMap;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::Function;
use super::call::decode_result;
use super::output::Progress;
use crate::error::{Error, Result};
use crate::wire::{self, pb};

/// Inputs in flight (sent, result not back yet) per map.
const WINDOW: usize = 8192;
/// Inputs per message.
const CHUNK: usize = 512;

type Inputs<A> = Box<dyn Iterator<Item = A> + Send>;

/// A `map` over a function: a [`Stream`] of results, started when first polled.
///
/// By default results come in input order and the first failure ends the stream with that
/// error (the remaining inputs are cancelled). With [`return_exceptions`](MapCall::return_exceptions)
/// every input yields its own `Ok` or `Err`.
///
/// ```no_run
/// # use modal::prelude::*;
/// # modal::app!(APP = App::new("example"));
/// # #[modal::function(app = APP)] fn square(x: i64) -> i64 { x * x }
/// # async fn demo() -> modal::Result<()> {
/// let squares: Vec<i64> = square.map(0..100).try_collect().await?;
/// let any_order: Vec<modal::Result<i64>> =
///     square.map(0..100).order_outputs(false).return_exceptions(true).collect().await;
/// # Ok(()) }
/// # fn main() {}
/// ```
#[must_use = "a map does nothing until its results are read"]
pub struct MapCall<A, R> {
    state: MapState<A, R>,
    order_outputs: bool,
    return_exceptions: bool,
}

enum MapState<A, R> {
    Pending {
        function: Function<A, R>,
        inputs: Inputs<A>,
    },
    Running(ReceiverStream<Result<R>>),
    Done,
}

impl<A, R> MapCall<A, R>
where
    A: Serialize + Send + 'static,
    R: DeserializeOwned + Send + 'static,
{
    pub(crate) fn new(function: Function<A, R>, inputs: Inputs<A>) -> Self {
        MapCall {
            state: MapState::Pending { function, inputs },
            order_outputs: true,
            return_exceptions: false,
        }
    }

    /// Whether results come in input order (default `true`); `false` yields each as it finishes.
    pub fn order_outputs(mut self, ordered: bool) -> Self {
        self.order_outputs = ordered;
        self
    }

    /// Whether a failed input yields its error in place (`true`) instead of ending the map.
    pub fn return_exceptions(mut self, yes: bool) -> Self {
        self.return_exceptions = yes;
        self
    }

    fn start(&mut self) {
        let state = std::mem::replace(&mut self.state, MapState::Done);
        let MapState::Pending { function, inputs } = state else {
            self.state = state;
            return;
        };
        let (tx, rx) = mpsc::channel(1024);
        let options = (self.order_outputs, self.return_exceptions);
        tokio::spawn(async move {
            if let Err(e) = drive(function, inputs, options, tx.clone()).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        self.state = MapState::Running(ReceiverStream::new(rx));
    }
}

impl<A, R> Stream for MapCall<A, R>
where
    A: Serialize + Send + 'static,
    R: DeserializeOwned + Send + 'static,
{
    type Item = Result<R>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if matches!(this.state, MapState::Pending { .. }) {
            this.start();
        }
        match &mut this.state {
            MapState::Running(rx) => match rx.poll_next_unpin(cx) {
                Poll::Ready(None) => {
                    this.state = MapState::Done;
                    Poll::Ready(None)
                }
                other => other,
            },
            _ => Poll::Ready(None),
        }
    }
}

impl<A, R> Unpin for MapCall<A, R> {}

/// Runs the map: feeds inputs through the window, reorders when asked, stops at the first
/// failure unless `return_exceptions`.
async fn drive<A, R>(
    function: Function<A, R>,
    inputs: Inputs<A>,
    (ordered, return_exceptions): (bool, bool),
    results: mpsc::Sender<Result<R>>,
) -> Result<()>
where
    A: Serialize + Send + 'static,
    R: DeserializeOwned + Send + 'static,
{
    let bound = function.bound().await?;
    let tag: Arc<str> = Arc::from(function.name().as_str());
    let (req_tx, req_rx) = mpsc::channel::<pb::MapRequest>(16);
    let start = pb::MapRequest {
        request: Some(pb::map_request::Request::Start(pb::MapStart {
            method_name: function.method().to_owned(),
            function_id: bound.function_id.clone(),
        })),
    };
    let _ = req_tx.send(start).await;
    let mut api = bound.client.api.clone();
    let mut responses = api
        .function_map(ReceiverStream::new(req_rx))
        .await?
        .into_inner();
    let window = Arc::new(Semaphore::new(WINDOW));
    let (count_tx, mut count_rx) = mpsc::unbounded_channel::<usize>();
    let pump = tokio::spawn(pump_inputs(
        bound.client.clone(),
        inputs,
        Arc::clone(&tag),
        req_tx,
        Arc::clone(&window),
        count_tx,
    ));
    let progress = Progress::start(&tag);

    let mut total: Option<usize> = None;
    let mut received = 0usize;
    let mut next = 0u64;
    let mut pending: HashMap<u64, Result<R>> = HashMap::new();
    loop {
        if total.is_none()
            && let Ok(n) = count_rx.try_recv()
        {
            total = Some(n);
            progress.set_total(n);
        }
        if total.is_some_and(|t| received >= t) {
            break;
        }
        let msg = tokio::select! {
            m = responses.message() => m?,
            n = count_rx.recv(), if total.is_none() => {
                if let Some(n) = n {
                    total = Some(n);
                    progress.set_total(n);
                }
                continue;
            }
        };
        let Some(msg) = msg else { break };
        let n = msg.outputs.len();
        window.add_permits(n);
        received += n;
        progress.advance(n);
        for out in msg.outputs {
            let result = match out.result {
                Some(r) => match bound.client.fetched(r).await {
                    Ok(r) => decode_result::<R>(r, &tag, wire::Reader::Only),
                    Err(e) => Err(e),
                },
                None => Err(Error::ControlPlane("a map output without a result".into())),
            };
            let failed = result.is_err();
            if ordered {
                pending.insert(out.idx, result);
                while let Some(r) = pending.remove(&next) {
                    next += 1;
                    let stop = r.is_err() && !return_exceptions;
                    if results.send(r).await.is_err() || stop {
                        pump.abort();
                        return Ok(());
                    }
                }
            } else {
                if results.send(result).await.is_err() || (failed && !return_exceptions) {
                    pump.abort();
                    return Ok(());
                }
            }
        }
    }
    let pumped = pump
        .await
        .map_err(|e| Error::Invalid(format!("map input pump failed: {e}")))?;
    pumped?;
    if let Some(t) = total
        && received < t
    {
        return Err(Error::ControlPlane(format!(
            "the map of `{tag}` ended after {received} of {t} results"
        )));
    }
    progress.finish();
    Ok(())
}

/// Encodes and sends the inputs in chunks, never more than the window in flight; reports the
/// total once the iterator is exhausted.
async fn pump_inputs<A: Serialize + Send + 'static>(
    client: super::Client,
    mut inputs: Inputs<A>,
    tag: Arc<str>,
    req_tx: mpsc::Sender<pb::MapRequest>,
    window: Arc<Semaphore>,
    count: mpsc::UnboundedSender<usize>,
) -> Result<()> {
    let mut idx = 0u64;
    loop {
        let mut batch = Vec::with_capacity(CHUNK);
        let mut last = false;
        while batch.len() < CHUNK {
            let Some(a) = inputs.next() else {
                last = true;
                break;
            };
            match window.acquire().await {
                Ok(permit) => permit.forget(),
                Err(_) => return Ok(()),
            }
            batch.push(pb::MapInput {
                idx,
                input: Some(client.staged(wire::encode_args(&a, &tag)?).await?),
            });
            idx += 1;
            // Do not sit on a partial chunk while the window is full.
            if window.available_permits() == 0 {
                break;
            }
        }
        let msg = pb::MapRequest {
            request: Some(pb::map_request::Request::Inputs(pb::MapInputBatch {
                inputs: batch,
                last,
            })),
        };
        if req_tx.send(msg).await.is_err() {
            return Ok(());
        }
        if last {
            let _ = count.send(usize::try_from(idx).unwrap_or(usize::MAX));
            // Dropping the sender half-closes the request stream; results keep flowing back.
            return Ok(());
        }
    }
}

/// `for_each`: a map whose results are discarded. Await it.
#[must_use = "for_each does nothing until awaited"]
pub struct ForEach<A, R> {
    map: MapCall<A, R>,
    ignore_exceptions: bool,
}

impl<A, R> ForEach<A, R>
where
    A: Serialize + Send + 'static,
    R: DeserializeOwned + Send + 'static,
{
    pub(crate) fn new(map: MapCall<A, R>) -> Self {
        ForEach {
            map: map.order_outputs(false),
            ignore_exceptions: false,
        }
    }

    /// Keep going when an input fails (default: stop at the first failure and return it).
    pub fn ignore_exceptions(mut self, yes: bool) -> Self {
        self.ignore_exceptions = yes;
        self
    }
}

impl<A, R> IntoFuture for ForEach<A, R>
where
    A: Serialize + Send + 'static,
    R: DeserializeOwned + Send + 'static,
{
    type Output = Result<()>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        let ignore = self.ignore_exceptions;
        let mut map = self.map.return_exceptions(ignore);
        Box::pin(async move {
            while let Some(r) = map.next().await {
                if !ignore {
                    r?;
                }
            }
            Ok(())
        })
    }
}
