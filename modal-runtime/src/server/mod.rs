//! The control plane: gRPC services in front of a single event loop that owns all state.

mod api;
mod apps;
pub(crate) mod auth;
pub(crate) mod binaries;
mod calls;
mod containers;
pub(crate) mod dashboard;
mod deploy;
mod dispatch;
mod event_loop;
mod objects;
pub(crate) mod pilots;
mod restore;
pub(crate) mod retry;
pub(crate) mod scheduler;
mod schedules;
pub(crate) mod secrets;
#[cfg(feature = "server")]
pub(crate) mod standalone;
mod state;
pub(crate) mod stats;
pub(crate) mod store;
#[cfg(test)]
mod tests;
#[cfg(feature = "server")]
pub(crate) mod tls;
mod tuning;
mod variants;
pub(crate) mod volumes;
mod workers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::wire::{self, pb};

/// A control plane serving on a bound socket.
pub(crate) struct ControlPlane {
    pub(crate) addr: SocketAddr,
    /// The client API as a service, for callers in the same process.
    pub(crate) client_service: ClientService,
    /// Where its dashboard is, if it serves one.
    #[cfg_attr(not(feature = "server"), allow(dead_code))] // `modal server` prints it.
    pub(crate) dashboard: Option<dashboard::Link>,
}

/// The client API service type (requests pass the same authentication as over the network).
pub(crate) type ClientService = tonic::service::interceptor::InterceptedService<
    pb::client_api_server::ClientApiServer<api::Api>,
    api::guard::Authenticate,
>;

impl ControlPlane {
    /// The URL clients, workers and containers use.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// How a control plane keeps state and checks callers.
pub(crate) struct Config {
    /// Whether state is written to `store` (a standalone control plane).
    pub(crate) durable: bool,
    pub(crate) store: Arc<dyn store::Store>,
    pub(crate) auth: auth::Auth,
    pub(crate) secret_key: secrets::SecretKey,
    /// Where uploaded executables live; `None` for the embedded control plane.
    pub(crate) binaries: Option<binaries::Binaries>,
    /// Where the files of volumes live (`None`: the directory could not be made; volume
    /// requests say so).
    pub(crate) volume_files: Option<binaries::Binaries>,
    /// Where images are built and kept (`None`: the directory could not be made; image
    /// requests say so).
    pub(crate) images: Option<api::Images>,
    /// How long results of spawned calls are kept.
    pub(crate) retention: Duration,
    /// The URL containers and workers reach this control plane at (default: the bound address).
    pub(crate) advertise_url: Option<String>,
    /// Where large payloads are kept (`None`: the directory could not be made; payloads travel
    /// inline).
    pub(crate) payloads: Option<Arc<crate::payloads::Store>>,
    /// Serve TLS with this identity (`None`: plain HTTP/2, as the embedded control plane).
    pub(crate) tls: Option<TlsIdentity>,
    /// Workers started as pilot jobs of a cluster's scheduler when demand needs them (`None`:
    /// only the workers that connect by themselves).
    pub(crate) pilots: Option<pilots::Settings>,
    /// Where the dashboard listens and who may see it (`None`: no dashboard).
    pub(crate) dashboard: Option<DashboardConfig>,
}

/// A control plane's dashboard: its address (port 0: any free port) and who may see it.
#[derive(Clone, Debug)]
pub(crate) struct DashboardConfig {
    pub(crate) listen: SocketAddr,
    pub(crate) access: dashboard::Access,
}

/// The certificate chain and private key (PEM) a control plane serves TLS with.
#[derive(Clone)]
pub(crate) struct TlsIdentity {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
    /// Where they came from, for messages.
    pub(crate) source: String,
}

impl Config {
    /// The embedded control plane: nothing kept, no binary store (containers run the program's
    /// own executable); its callers hold a token made for the run ([`auth::Auth::process_token`]).
    pub(crate) fn embedded() -> Self {
        Config {
            durable: false,
            store: Arc::new(store::MemoryStore),
            auth: auth::Auth::default(),
            secret_key: secrets::SecretKey::ephemeral(),
            binaries: None,
            volume_files: embedded_volume_files(),
            images: image_stores(&crate::images::default_store_dir()),
            retention: Duration::from_secs(7 * 24 * 3600),
            advertise_url: None,
            // The embedded assembly gives it one (`crate::embedded`).
            payloads: None,
            // In-process and loopback only.
            tls: None,
            pilots: None,
            // On loopback, behind a key of this run that the URL the program prints carries.
            dashboard: Some(DashboardConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                access: dashboard::Access::Key(dashboard::new_key()),
            }),
        }
    }
}

/// A payload store made this process's own (a client in the process reads and writes it), or
/// `None` (said in the log).
pub(crate) fn hosted_payloads(
    store: std::io::Result<crate::payloads::Store>,
) -> Option<Arc<crate::payloads::Store>> {
    store
        .map(crate::payloads::host)
        .map_err(|e| tracing::warn!("large payloads travel inline: no payload store: {e}"))
        .ok()
}

/// The embedded control plane's volume files: a directory of this process under the temporary
/// directory (its volumes last as long as the program), after removing those of programs that
/// are gone.
fn embedded_volume_files() -> Option<binaries::Binaries> {
    let dir =
        crate::paths::of_this_process(&std::env::temp_dir(), "volumes", &crate::ids::new_id(""));
    binaries::Binaries::private_files(dir.clone(), "volume file")
        .map_err(|e| {
            tracing::warn!(
                "volumes cannot be used: cannot create {}: {e}",
                dir.display()
            )
        })
        .ok()
}

/// The image layer store and image file store under `dir`, or `None` (said in the log).
pub(crate) fn image_stores(dir: &std::path::Path) -> Option<api::Images> {
    let made = crate::images::store::Store::open(dir).and_then(|store| {
        let files = binaries::Binaries::private_files(dir.join("files"), "image file")
            .map_err(|e| format!("cannot make {}: {e}", dir.join("files").display()))?;
        Ok(api::Images { store, files })
    });
    made.map_err(|e| tracing::warn!("images cannot be built: {e}"))
        .ok()
}

/// Serves the control plane on `listener`, in tasks of the current tokio runtime, after loading
/// what its store kept.
pub(crate) async fn serve(listener: TcpListener, config: Config) -> Result<ControlPlane, String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    // A certificate or key that does not work stops the start before anything runs.
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &config.tls {
        let identity = tonic::transport::Identity::from_pem(&tls.cert_pem, &tls.key_pem);
        builder = builder
            .tls_config(
                tonic::transport::ServerTlsConfig::new()
                    .identity(identity)
                    // A peer that opens a connection and says nothing holds no task for long.
                    .timeout(Duration::from_secs(10)),
            )
            .map_err(|e| {
                format!(
                    "cannot serve TLS with {}: {}",
                    tls.source,
                    crate::error::with_causes(&e)
                )
            })?;
    }
    let snapshot = config.store.load().await.map_err(|e| e.to_string())?;
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let url = config
        .advertise_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{addr}"));
    let mut state = state::State::new(url, &config, state::Clock::system());
    let dashboard = match &config.dashboard {
        Some(d) => {
            let listener = TcpListener::bind(d.listen)
                .await
                .map_err(|e| format!("the dashboard cannot listen on {}: {e}", d.listen))?;
            let bound = listener.local_addr().map_err(|e| e.to_string())?;
            let ip = if bound.ip().is_unspecified() {
                std::net::IpAddr::from([127, 0, 0, 1])
            } else {
                bound.ip()
            };
            state.dashboard = Some(dashboard::Link {
                base: format!("http://{}", SocketAddr::new(ip, bound.port())),
                key: match &d.access {
                    dashboard::Access::Key(key) => Some(key.clone()),
                    dashboard::Access::Login => None,
                },
            });
            Some((listener, d.access.clone()))
        }
        None => None,
    };
    state.restore(snapshot);
    if let Some(payloads) = &config.payloads {
        let removed = payloads.keep_only(&state.live_payloads());
        if removed > 0 {
            tracing::info!("removed {removed} payload files no call holds any more");
        }
    }
    let pilot_url = state.server_url.clone();
    let dashboard_link = state.dashboard.clone();
    let (commands, rx) = mpsc::channel(event_loop::QUEUE);
    tokio::spawn(event_loop::run(state, Arc::clone(&config.store), rx));
    let api = api::Api::new(
        commands,
        Arc::clone(&config.store),
        config.binaries.clone(),
        config.volume_files.clone(),
        config.images.clone(),
        config.payloads.clone(),
    );
    tokio::spawn(api.clone().collect_volume_files());
    tokio::spawn(api.clone().sweep_transfers());
    if let Some((listener, access)) = dashboard {
        tokio::spawn(dashboard::serve(
            listener,
            api.clone(),
            config.auth.clone(),
            access,
        ));
    }
    if let Some(settings) = config.pilots.clone() {
        let token = config.auth.pilot_token(&config.secret_key);
        tokio::spawn(pilots::run(api.clone(), settings, pilot_url, token));
    }
    // Each service checks the caller's token before it reads a request's body.
    let authenticate = |service| api::guard::Authenticate {
        auth: config.auth.clone(),
        service,
    };
    let client = tonic::service::interceptor::InterceptedService::new(
        pb::client_api_server::ClientApiServer::new(api.clone())
            .max_decoding_message_size(wire::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(wire::MAX_MESSAGE_BYTES),
        authenticate(api::guard::Api::Client),
    );
    let container = tonic::service::interceptor::InterceptedService::new(
        pb::container_api_server::ContainerApiServer::new(api.clone())
            .max_decoding_message_size(wire::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(wire::MAX_MESSAGE_BYTES),
        authenticate(api::guard::Api::Container),
    );
    let worker = tonic::service::interceptor::InterceptedService::new(
        pb::worker_api_server::WorkerApiServer::new(api)
            .max_decoding_message_size(wire::MAX_WORKER_MESSAGE_BYTES)
            .max_encoding_message_size(wire::MAX_MESSAGE_BYTES),
        authenticate(api::guard::Api::Worker),
    );
    let client_service = client.clone();
    let router = builder
        .layer(api::guard::LimitBodies)
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
        dashboard: dashboard_link,
    })
}
