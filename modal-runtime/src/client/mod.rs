//! Client handles: the connection to a control plane, app runs and deploys, typed function
//! handles, calls.

mod call;
mod cls;
mod deploy;
mod files;
mod function;
mod generator;
mod images;
mod map;
mod options;
mod output;
mod pending;
mod publish;
mod reconnect;
pub(crate) mod run;
mod target;
mod transfers;
mod transport;
mod tuning;
#[cfg(feature = "cli")]
pub(crate) mod volumes;

use std::future::Future;
use std::pin::Pin;

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
pub use tuning::{AutoscalerSettings, FunctionCurrentStats};

use crate::credentials::{Credentials, Route, Settings};
use crate::error::{Error, Result};
use crate::wire::{self, AuthHeaders, pb};
pub(crate) use transport::{LocalResponse, LocalService};

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
                    Some(url) => {
                        Client::connect(&url, settings.credentials.as_ref(), &settings.route).await
                    }
                    None => start_embedded().await,
                }
            })
            .await
            .cloned()
    }

    /// A client of the control plane at `url`, reached by `route`.
    pub(crate) async fn connect(
        url: &str,
        credentials: Option<&Credentials>,
        route: &Route,
    ) -> Result<Client> {
        let channel = wire::connect(url, false, route)
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

    /// A client of a control plane in this process, whose service it calls directly.
    pub(crate) fn in_process(service: LocalService, credentials: &Credentials) -> Client {
        Client::over(
            transport::Transport::InProcess(service),
            Some(credentials),
            true,
        )
    }
}

/// Starts a control plane in this process for a program that configured none. The layer that
/// assembles the embedded default (`crate::embedded`: control plane, local worker, in-process
/// transport) submits the one implementation; the client finds it at link time and never
/// names that layer.
pub(crate) struct EmbeddedStart(pub(crate) fn() -> EmbeddedFuture);

/// What [`EmbeddedStart`] returns.
pub(crate) type EmbeddedFuture = Pin<Box<dyn Future<Output = Result<Client>> + Send>>;

inventory::collect!(EmbeddedStart);

async fn start_embedded() -> Result<Client> {
    match inventory::iter::<EmbeddedStart>().next() {
        Some(start) => (start.0)().await,
        None => Err(Error::Invalid(
            "no control plane is configured (MODAL_SERVER_URL) and this build has no embedded one"
                .into(),
        )),
    }
}
