//! Deployed apps from the client's side: `App::deploy`, lookups by name, tags, stopping, and
//! uploading the executable a deployment runs (once per content hash).

use std::collections::BTreeMap;
use std::future::{Future, IntoFuture};
use std::pin::Pin;

use super::Client;
use super::target::Bound;
use crate::app::{App, rules};
use crate::error::{Error, Result};
use crate::wire::pb;

/// How a redeploy replaces the running version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Old containers finish their inputs while new inputs go to the new version (the default).
    #[default]
    Rolling,
    /// Old containers are stopped before the new version takes inputs.
    Recreate,
}

impl std::str::FromStr for Strategy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "rolling" => Ok(Strategy::Rolling),
            "recreate" => Ok(Strategy::Recreate),
            other => Err(Error::Invalid(format!(
                "unknown deploy strategy `{other}`; expected rolling or recreate"
            ))),
        }
    }
}

/// A finished deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// The app's id; the same for every deploy of a name.
    pub app_id: String,
    /// This deploy's version (1, 2, …).
    pub version: i64,
    /// The name it was deployed under.
    pub name: String,
}

/// Options of a deploy; `.await` it.
///
/// ```no_run
/// # use modal::prelude::*;
/// # modal::app!(APP = App::new("deploy-me"));
/// # async fn demo() -> modal::Result<()> {
/// let d = APP.deploy().tag("v1").strategy(modal::Strategy::Recreate).await?;
/// println!("{} is at version {}", d.app_id, d.version);
/// # Ok(()) }
/// ```
#[must_use = "a deploy happens only when the builder is awaited"]
pub struct DeployBuilder {
    app: &'static App,
    name: Option<String>,
    environment_name: Option<String>,
    tag: String,
    strategy: Strategy,
}

impl App {
    /// Starts building a deploy of this app (Modal's `app.deploy()`).
    pub fn deploy(&'static self) -> DeployBuilder {
        DeployBuilder {
            app: self,
            name: None,
            environment_name: None,
            tag: String::new(),
            strategy: Strategy::Rolling,
        }
    }

    /// Looks up an app by name (or `ap-` id): deployed apps, and running ephemeral ones too.
    pub async fn lookup(
        name: &str,
        environment_name: Option<&str>,
        create_if_missing: bool,
    ) -> Result<AppRef> {
        let client = standalone("App::lookup").await?;
        let mut api = client.api.clone();
        let resp = api
            .app_lookup(pb::AppLookupRequest {
                name: name.to_owned(),
                environment_name: environment_name.unwrap_or_default().to_owned(),
                create_if_missing,
            })
            .await
            .map_err(|s| not_found_or(s, || format!("no app named `{name}`")))?
            .into_inner();
        Ok(AppRef {
            client,
            app_id: resp.app_id,
            name: resp.name,
        })
    }

    fn require_id(&self) -> Result<String> {
        self.app_id().ok_or_else(|| {
            Error::Invalid(format!(
                "app `{}` has no id yet: run or deploy it first",
                self.name()
            ))
        })
    }

    /// Replaces the app's tags on the control plane, until the next deploy (which sets the tags
    /// the app's code declares).
    pub async fn set_tags<K: Into<String>, V: Into<String>>(
        &self,
        tags: impl IntoIterator<Item = (K, V)>,
    ) -> Result<()> {
        let app_id = self.require_id()?;
        set_tags(&Client::from_env().await?, &app_id, tags).await
    }

    /// The app's tags on the control plane.
    pub async fn get_tags(&self) -> Result<BTreeMap<String, String>> {
        let app_id = self.require_id()?;
        get_tags(&Client::from_env().await?, &app_id).await
    }
}

async fn standalone(what: &str) -> Result<Client> {
    let client = Client::from_env().await?;
    if client.embedded {
        return Err(Error::Invalid(format!(
            "{what} needs a standalone control plane: start `modal server` and set MODAL_SERVER_URL (an embedded control plane ends with its program)"
        )));
    }
    Ok(client)
}

fn not_found_or(s: tonic::Status, what: impl FnOnce() -> String) -> Error {
    if s.code() == tonic::Code::NotFound && s.message().is_empty() {
        Error::ControlPlane(what())
    } else {
        s.into()
    }
}

async fn set_tags<K: Into<String>, V: Into<String>>(
    client: &Client,
    app_id: &str,
    tags: impl IntoIterator<Item = (K, V)>,
) -> Result<()> {
    let tags: std::collections::HashMap<String, String> = tags
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    for (k, v) in &tags {
        rules::check_tag("key", k)
            .and_then(|()| rules::check_tag("value", v))
            .map_err(Error::Invalid)?;
    }
    let mut api = client.api.clone();
    api.app_set_tags(pb::AppSetTagsRequest {
        app_id: app_id.to_owned(),
        tags,
    })
    .await?;
    Ok(())
}

async fn get_tags(client: &Client, app_id: &str) -> Result<BTreeMap<String, String>> {
    let mut api = client.api.clone();
    let resp = api
        .app_get_tags(pb::AppGetTagsRequest {
            app_id: app_id.to_owned(),
        })
        .await?;
    Ok(resp.into_inner().tags.into_iter().collect())
}

/// An app found by name on the control plane.
#[derive(Clone)]
pub struct AppRef {
    client: Client,
    app_id: String,
    name: String,
}

impl std::fmt::Debug for AppRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppRef")
            .field("app_id", &self.app_id)
            .field("name", &self.name)
            .finish()
    }
}

impl AppRef {
    /// The app's id.
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The app's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Replaces the app's tags, until the next deploy (which sets the tags the app's code
    /// declares).
    pub async fn set_tags<K: Into<String>, V: Into<String>>(
        &self,
        tags: impl IntoIterator<Item = (K, V)>,
    ) -> Result<()> {
        set_tags(&self.client, &self.app_id, tags).await
    }

    /// The app's tags.
    pub async fn get_tags(&self) -> Result<BTreeMap<String, String>> {
        get_tags(&self.client, &self.app_id).await
    }

    /// Stops the app: no more inputs, every container gone when this returns.
    pub async fn stop(&self) -> Result<()> {
        let mut api = self.client.api.clone();
        api.app_stop(pb::AppStopRequest {
            app: self.app_id.clone(),
            environment_name: String::new(),
        })
        .await?;
        Ok(())
    }
}

impl DeployBuilder {
    /// Deploy under this name instead of the app's.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The environment to deploy in (default: `MODAL_ENVIRONMENT`, else `main`).
    pub fn environment_name(mut self, env: impl Into<String>) -> Self {
        self.environment_name = Some(env.into());
        self
    }

    /// Metadata of this deployment, shown in the history (`[A-Za-z0-9._-]`, at most 50).
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = tag.into();
        self
    }

    /// How the new version replaces the old one.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Validates the app, uploads its executable if new, and deploys it.
    pub async fn start(self) -> Result<Deployment> {
        let app = self.app;
        if crate::task_env::is_container() {
            return Err(Error::Invalid(
                "App::deploy was called inside a container".into(),
            ));
        }
        let name = self.name.unwrap_or_else(|| app.name().to_owned());
        rules::check_app_name(&name).map_err(Error::Invalid)?;
        rules::check_deployment_tag(&self.tag).map_err(Error::Invalid)?;
        let hash = crate::binhash::current_exe_hash().map_err(Error::Invalid)?;
        let mut definitions = super::publish::definitions(app, false, hash)?;
        let client = standalone("deploy").await?;
        super::publish::upload_binary(&client).await?;
        let output = super::output::Output::new(true);
        super::images::build_images(&client, app, &mut definitions, &output).await?;
        let environment_name = self
            .environment_name
            .or_else(|| std::env::var("MODAL_ENVIRONMENT").ok())
            .unwrap_or_default();
        super::publish::resolve_volumes(&client, app, &mut definitions, &environment_name, None)
            .await?;
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default();
        let mut api = client.api.clone();
        let resp = api
            .app_deploy(pb::AppDeployRequest {
                name: name.clone(),
                environment_name,
                tag: self.tag,
                strategy: match self.strategy {
                    Strategy::Rolling => pb::DeployStrategy::Rolling,
                    Strategy::Recreate => pb::DeployStrategy::Recreate,
                } as i32,
                functions: definitions.iter().map(|(_, d)| d.into()).collect(),
                tags: app
                    .tag_map()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                client: format!("{user}@{host}"),
            })
            .await?
            .into_inner();
        for (reg, def) in &definitions {
            if let Some(id) = resp.function_ids.get(&def.tag) {
                reg.bound.set(Some(Bound {
                    client: client.clone(),
                    function_id: id.clone(),
                }));
            }
        }
        app.remember_id(resp.app_id.clone());
        app.remember_dashboard_url(resp.dashboard_url.clone());
        Ok(Deployment {
            app_id: resp.app_id,
            version: resp.version,
            name,
        })
    }
}

impl IntoFuture for DeployBuilder {
    type Output = Result<Deployment>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Deployment>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.start())
    }
}
