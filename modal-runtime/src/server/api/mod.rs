//! The gRPC edge of the control plane: each handler finds out who is calling, converts its
//! request into the runtime's own types (`wire`), runs the one `State` method it needs on the
//! event loop, and converts the answer back. `client.rs` serves the client API, `streams.rs`
//! the container and worker streams.

mod client;
pub(crate) mod guard;
pub(crate) mod images;
mod stored;
mod streams;
mod transfers;
mod volumes;

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Status};

use super::auth::Principal;
use super::binaries::Binaries;
use super::event_loop::{Command, Reply};
use super::state::State;
use super::store::Store;

#[derive(Clone)]
pub(crate) struct Api {
    commands: mpsc::Sender<Command>,
    store: Arc<dyn Store>,
    binaries: Option<Binaries>,
    volume_files: Option<Binaries>,
    images: Option<Images>,
    /// The payload store of this machine (`None`: payloads travel inline).
    payloads: Option<Arc<crate::payloads::Store>>,
    /// Payloads held for clients in other processes (uploads, results to download).
    transfers: Arc<transfers::Transfers>,
}

/// What the image requests use: the layer store and the files images copy in.
#[derive(Clone)]
pub(crate) struct Images {
    pub(crate) store: crate::images::store::Store,
    pub(crate) files: Binaries,
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

fn shutting_down() -> Status {
    Status::unavailable("the control plane is shutting down")
}

impl Api {
    /// The last `tail` log lines the store kept of `app_id`, oldest first (none where the store
    /// keeps none, as the embedded control plane's).
    pub(crate) async fn recent_logs(
        &self,
        app_id: &str,
        tail: usize,
    ) -> Vec<crate::model::LogEntry> {
        match self.store.logs(app_id, tail).await {
            Ok(rows) => rows
                .into_iter()
                .map(|r| crate::model::LogEntry {
                    function_id: r.function_id,
                    function_tag: r.function_tag,
                    task_id: r.task_id,
                    input_id: r.input_id,
                    source: crate::wire::log_source_of(r.source),
                    data: r.data,
                    timestamp_ms: r.timestamp_ms,
                })
                .collect(),
            Err(e) => {
                tracing::warn!("cannot read the logs of {app_id}: {e}");
                Vec::new()
            }
        }
    }

    pub(crate) fn new(
        commands: mpsc::Sender<Command>,
        store: Arc<dyn Store>,
        binaries: Option<Binaries>,
        volume_files: Option<Binaries>,
        images: Option<Images>,
        payloads: Option<Arc<crate::payloads::Store>>,
    ) -> Self {
        Api {
            commands,
            store,
            binaries,
            volume_files,
            images,
            payloads,
            transfers: Arc::default(),
        }
    }

    /// Queues `cmd` for the event loop, waiting while its queue is full (a flood of requests
    /// slows its callers instead of growing memory).
    async fn send(&self, cmd: Command) -> Result<(), Status> {
        self.commands.send(cmd).await.map_err(|_| shutting_down())
    }

    /// Runs `f` on the event loop's state; its answer comes back once the writes it queued are
    /// durable.
    pub(crate) async fn ask<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut State) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        self.ask_with(move |state, reply| {
            let r = f(state);
            state.respond(reply, r);
        })
        .await
    }

    /// Like [`Api::ask`], for a request that decides itself when to reply.
    async fn ask_with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut State, Reply<T>) + Send + 'static,
    ) -> Result<T, Status> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Request(Box::new(move |state| f(state, tx))))
            .await?;
        rx.await.map_err(|_| shutting_down())?
    }

    /// Waits for a reply that an explicit event carries.
    async fn event<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, Status> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx)).await?;
        rx.await.map_err(|_| shutting_down())?
    }

    /// Requires a user's token.
    fn user<T>(&self, req: &Request<T>) -> Result<Principal, Status> {
        let p = guard::principal_of(req)?;
        p.require_user()?;
        Ok(p)
    }

    /// Anyone with a valid token but a restricted container's (a container's is checked
    /// against the app later).
    fn caller<T>(&self, req: &Request<T>) -> Result<Principal, Status> {
        let p = guard::principal_of(req)?;
        p.require_unrestricted()?;
        Ok(p)
    }

    fn binaries(&self) -> Result<&Binaries, Status> {
        self.binaries.as_ref().ok_or_else(|| {
            Status::failed_precondition(
                "this control plane stores no binaries (it is embedded in a program)",
            )
        })
    }
}

/// Cancels a map's or generator's remaining inputs when its response stream is dropped before
/// the end (a no-op for a call that finished: the event loop no longer knows it).
struct AbandonGuard {
    api: Api,
    call_id: String,
}

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        let cmd = Command::CallAbandoned {
            call_id: std::mem::take(&mut self.call_id),
        };
        // A full queue must not lose the abandon: it is sent once there is room.
        if let Err(mpsc::error::TrySendError::Full(cmd)) = self.api.commands.try_send(cmd)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let api = self.api.clone();
            runtime.spawn(async move { api.send(cmd).await });
        }
    }
}
