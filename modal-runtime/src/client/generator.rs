//! Generators: `remote_gen` streams a function's items to the caller as they are produced, in
//! order; dropping the stream cancels the call.

use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::Function;
use crate::codec;
use crate::error::{Error, Result};
use crate::wire::{self, pb};

/// A handle to a generator: `A` is its argument tuple, `T` the type of its items.
///
/// ```no_run
/// # use modal::prelude::*;
/// # modal::app!(APP = App::new("example"));
/// #[modal::function(app = APP)]
/// fn countdown(from: u32) -> impl Iterator<Item = u32> {
///     (0..=from).rev()
/// }
/// # async fn demo() -> modal::Result<()> {
/// let mut items = countdown.remote_gen(3);
/// while let Some(n) = items.next().await {
///     println!("{}", n?);
/// }
/// # Ok(()) }
/// # fn main() {}
/// ```
pub struct Generator<A, T> {
    function: Function<A, T>,
}

impl<A, T> Clone for Generator<A, T> {
    fn clone(&self) -> Self {
        Generator {
            function: self.function.clone(),
        }
    }
}

impl<A, T> std::fmt::Debug for Generator<A, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("name", &self.function.name())
            .finish()
    }
}

impl<A, T> Generator<A, T> {
    #[doc(hidden)]
    pub const fn __new(function: Function<A, T>) -> Self {
        Generator { function }
    }

    /// A generator of a deployed app, by name (its types are the caller's declaration).
    pub fn from_name(app_name: &str, tag: &str) -> Self {
        Generator {
            function: Function::from_name(app_name, tag),
        }
    }

    /// The generator's tag.
    pub fn tag(&self) -> &str {
        self.function.tag()
    }
}

impl<A, T> Generator<A, T>
where
    A: Serialize + Send + 'static,
    T: DeserializeOwned + Send + 'static,
{
    /// Runs the generator in a container with the argument tuple; its items arrive as produced.
    pub fn remote_gen_args(&self, args: A) -> GenStream<T> {
        let (tx, rx) = mpsc::channel(256);
        let function = self.function.clone();
        tokio::spawn(async move {
            if let Err(e) = drive(function, args, tx.clone()).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        GenStream {
            items: ReceiverStream::new(rx),
            _type: PhantomData,
        }
    }
}

macro_rules! by_arity {
    ($($arg:ident: $t:ident),*) => {
        impl<$($t,)* T> Generator<($($t,)*), T>
        where
            ($($t,)*): Serialize + Send + 'static,
            T: DeserializeOwned + Send + 'static,
        {
            /// Runs the generator in a container; its items arrive as produced.
            pub fn remote_gen(&self, $($arg: $t),*) -> GenStream<T> {
                self.remote_gen_args(($($arg,)*))
            }
        }
    };
}

by_arity!();
by_arity!(a: T1);
by_arity!(a: T1, b: T2);
by_arity!(a: T1, b: T2, c: T3);

async fn drive<A: Serialize + 'static, T: DeserializeOwned + 'static>(
    function: Function<A, T>,
    args: A,
    items: mpsc::Sender<Result<T>>,
) -> Result<()> {
    let name = function.name();
    let bound = function.bound().await?;
    let input = bound
        .client
        .staged(wire::encode_args(&args, &name)?)
        .await?;
    let mut api = bound.client.api.clone();
    let mut events = api
        .function_call_generator(pb::FunctionCallRequest {
            function_id: bound.function_id,
            method_name: function.method().to_owned(),
            input: Some(input),
            wait: false,
            wait_ms: 0,
            // A generator's items stream to this caller alone: it is not sent again.
            call_id: String::new(),
        })
        .await?
        .into_inner();
    while let Some(event) = events.next().await {
        match event?.event {
            Some(pb::generator_event::Event::Item(mut payload)) => {
                bound.client.fetch(&mut payload).await?;
                let item = wire::payload_bytes(Some(&payload), wire::Reader::Only)
                    .map_err(Error::Serialization)
                    .and_then(|b| {
                        codec::decode_shared::<T>(&b).map_err(|e| {
                            Error::Serialization(format!(
                                "an item of `{name}` does not decode: {e}"
                            ))
                        })
                    });
                // The caller dropped the stream: dropping ours cancels the call.
                if items.send(item).await.is_err() {
                    return Ok(());
                }
            }
            Some(pb::generator_event::Event::Done(result)) => {
                let result = bound.client.fetched(result).await?;
                wire::into_value(result, &name, wire::Reader::Only)?;
                return Ok(());
            }
            Some(pb::generator_event::Event::CallId(_)) | None => {}
        }
    }
    Err(Error::ControlPlane(format!(
        "the stream of `{name}` ended before the generator did"
    )))
}

/// The items of one generator call, as a [`Stream`]; a failure ends it with the error.
#[must_use = "a generator's items are only delivered while the stream is read"]
pub struct GenStream<T> {
    items: ReceiverStream<Result<T>>,
    _type: PhantomData<fn() -> T>,
}

impl<T> Stream for GenStream<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.items.poll_next_unpin(cx)
    }
}
