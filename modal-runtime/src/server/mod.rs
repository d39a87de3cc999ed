//! The control plane: gRPC services in front of a single event loop that owns all state.

mod api;
mod apps;
mod calls;
mod containers;
mod event_loop;
pub(crate) mod retry;
pub(crate) mod scheduler;
mod state;

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::wire::{self, pb};

/// A control plane serving on a bound socket.
pub(crate) struct ControlPlane {
    pub(crate) addr: SocketAddr,
    /// The client API as a service, for callers in the same process.
    pub(crate) client_service: ClientService,
}

/// The client API service type.
pub(crate) type ClientService = pb::client_api_server::ClientApiServer<api::Api>;

impl ControlPlane {
    /// The URL clients, workers and containers use.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Serves the control plane on `listener`, in tasks of the current tokio runtime.
pub(crate) fn serve(listener: TcpListener) -> std::io::Result<ControlPlane> {
    let addr = listener.local_addr()?;
    let (commands, rx) = mpsc::unbounded_channel();
    tokio::spawn(event_loop::run(
        state::State::new(format!("http://{addr}")),
        rx,
    ));
    let api = api::Api::new(commands);
    let client = pb::client_api_server::ClientApiServer::new(api.clone())
        .max_decoding_message_size(wire::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(wire::MAX_MESSAGE_BYTES);
    let container = pb::container_api_server::ContainerApiServer::new(api.clone())
        .max_decoding_message_size(wire::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(wire::MAX_MESSAGE_BYTES);
    let worker = pb::worker_api_server::WorkerApiServer::new(api)
        .max_decoding_message_size(wire::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(wire::MAX_MESSAGE_BYTES);
    let client_service = client.clone();
    let router = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .initial_stream_window_size(wire::STREAM_WINDOW)
        .initial_connection_window_size(wire::CONNECTION_WINDOW)
        .max_frame_size(wire::MAX_FRAME)
        .add_service(client)
        .add_service(container)
        .add_service(worker);
    // The server's own `tcp_nodelay` applies only to listeners it binds itself.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tokio::spawn(async move {
        if let Err(e) = router.serve_with_incoming(incoming).await {
            tracing::error!(error = %e, "control plane server stopped");
        }
    });
    tracing::debug!(%addr, "control plane listening");
    Ok(ControlPlane {
        addr,
        client_service,
    })
}
