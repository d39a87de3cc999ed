//! Client handles: the connection to a control plane, app runs and deploys, typed function
//! handles, calls.

mod call;
mod cls;
pub(crate) mod credentials;
mod deploy;
mod function;
mod generator;
mod map;
mod options;
pub(crate) mod run;
mod target;
mod transport;

use tokio::sync::OnceCell;
use tonic::service::interceptor::InterceptedService;

pub use call::FunctionCall;
pub use cls::{Cls, ClsCore};
pub use deploy::{AppRef, DeployBuilder, Deployment, Strategy};
pub use function::Function;
pub use generator::{GenStream, Generator};
pub use map::{ForEach, MapCall};
pub use options::Options;
pub use run::{AppRun, RunBuilder};

use crate::error::{Error, Result};
use crate::wire::{self, pb};
use credentials::{AuthHeaders, Credentials, Settings};

/// The client API stub, with credentials on every request.
pub(crate) type Api =
    pb::client_api_client::ClientApiClient<InterceptedService<transport::Transport, AuthHeaders>>;

/// A connection to a control plane.
#[derive(Clone)]
pub(crate) struct Client {
    pub(crate) api: Api,
    /// Whether the control plane lives in this process.
    pub(crate) embedded: bool,
}

static DEFAULT: OnceCell<Client> = OnceCell::const_new();

impl Client {
    /// The process's client: the control plane at `MODAL_SERVER_URL` (or the config file's), or,
    /// when none is configured, an embedded one started on a loopback port together with a local
    /// worker.
    pub(crate) async fn from_env() -> Result<Client> {
        DEFAULT
            .get_or_try_init(|| async {
                let settings = Settings::load();
                match settings.server_url {
                    Some(url) => Client::connect(&url, settings.credentials.as_ref()).await,
                    None => Client::embedded().await,
                }
            })
            .await
            .cloned()
    }

    /// A client of the control plane at `url`.
    pub(crate) async fn connect(url: &str, credentials: Option<&Credentials>) -> Result<Client> {
        let channel = wire::connect(url, false)
            .await
            .map_err(|message| Error::Connect {
                url: url.to_owned(),
                message,
            })?;
        Ok(Client::over(
            transport::Transport::Remote(channel),
            credentials,
            false,
        ))
    }

    fn over(
        transport: transport::Transport,
        credentials: Option<&Credentials>,
        embedded: bool,
    ) -> Client {
        let api = pb::client_api_client::ClientApiClient::with_interceptor(
            transport,
            AuthHeaders::new(credentials),
        )
        .max_decoding_message_size(wire::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(wire::MAX_MESSAGE_BYTES);
        Client { api, embedded }
    }

    async fn embedded() -> Result<Client> {
        // This process now relays payloads between the program and its containers.
        crate::alloc_tuning::tune_for_payloads();
        // The driver's start-up costs a GPU machine a few hundred milliseconds: only a program
        // with GPU functions pays it, while the control plane starts.
        let gpus = crate::worker::gpus(if crate::registry::any_gpu_function() {
            crate::worker::GpuSource::DeclaredOrDiscovered
        } else {
            crate::worker::GpuSource::DeclaredOnly
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| Error::Connect {
                url: "127.0.0.1:0".into(),
                message: format!("cannot bind the embedded control plane: {e}"),
            })?;
        let plane = crate::server::serve(listener, crate::server::Config::embedded())
            .await
            .map_err(|message| Error::Connect {
                url: "127.0.0.1:0".into(),
                message,
            })?;
        let url = plane.url();
        let gpus = gpus.await.map_err(Error::Invalid)?;
        let worker = crate::worker::WorkerConfig::local(url.clone(), None, gpus);
        tokio::spawn(async move {
            if let Err(e) = crate::worker::run(worker).await {
                tracing::error!("local worker stopped: {e}");
            }
        });
        // This program's own calls skip the network: the service is called in-process.
        Ok(Client::over(
            transport::Transport::InProcess(plane.client_service),
            None,
            true,
        ))
    }
}
