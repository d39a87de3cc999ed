//! Running an app: validate it, create it on the control plane, register its functions, stream
//! its logs, keep it alive, and end it so that no container outlives it.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::task::JoinHandle;

use super::Client;
use super::output::Output;
use super::target::Bound;
use crate::app::App;
use crate::error::{Error, Result};
use crate::registry::FunctionRegistration;
use crate::wire::pb;

/// How often a running app tells the control plane its client is alive.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// How long to wait for the last logs after the app stopped.
const LOGS_TIMEOUT: Duration = Duration::from_secs(10);

/// Options for running an app; `.await` it (or call [`start`](RunBuilder::start)) to start the app.
///
/// ```no_run
/// # use modal::prelude::*;
/// # modal::app!(APP = App::new("example"));
/// # async fn demo() -> modal::Result<()> {
/// let run = APP.run().environment_name("dev").await?;
/// // ... call functions ...
/// run.stop().await?;
/// # Ok(()) }
/// ```
#[must_use = "an app starts only when the builder is awaited"]
pub struct RunBuilder {
    app: &'static App,
    detach: bool,
    interactive: bool,
    environment_name: Option<String>,
    output: bool,
}

impl App {
    /// Starts building a run of this app (Modal's `app.run()`).
    pub fn run(&'static self) -> RunBuilder {
        RunBuilder {
            app: self,
            detach: false,
            interactive: false,
            environment_name: None,
            output: true,
        }
    }
}

impl RunBuilder {
    /// Keep the app running after this client exits (needs a standalone control plane).
    pub fn detach(mut self, detach: bool) -> Self {
        self.detach = detach;
        self
    }

    /// Interactive mode (a terminal attached to containers).
    pub fn interactive(mut self, interactive: bool) -> Self {
        self.interactive = interactive;
        self
    }

    /// The environment to run in (default: `MODAL_ENVIRONMENT`, else `main`).
    pub fn environment_name(mut self, name: impl Into<String>) -> Self {
        self.environment_name = Some(name.into());
        self
    }

    /// Whether to print progress and stream the containers' logs to this terminal (default on).
    pub fn output(mut self, on: bool) -> Self {
        self.output = on;
        self
    }

    /// Validates the app, creates it on the control plane and registers its functions.
    pub async fn start(self) -> Result<AppRun> {
        let app = self.app;
        if crate::task_env::is_container() {
            return Err(Error::Invalid(format!(
                "App::run for `{}` was called inside a container: the program's main must hand over to modal first (`#[modal::main]`, `#[modal::local_entrypoint]` on `main`, or `modal::main()`)",
                app.name()
            )));
        }
        if app.is_active() {
            return Err(Error::Invalid(format!(
                "app `{}` is already running",
                app.name()
            )));
        }
        let started = Instant::now();
        let output = Output::new(self.output);
        // Validated before anything starts; the executable's digest is filled in below.
        let mut definitions = super::publish::definitions(app, self.interactive, "")?;
        let client = Client::from_env().await?;
        // The digest is in every definition. On the first run of a new binary on the embedded
        // control plane it is computed while the app starts, and the functions are published
        // once it is known (their calls wait for that); otherwise it is known (cached, or
        // needed now to upload the binary).
        let known = if client.embedded {
            crate::binhash::known_exe_hash()
        } else {
            Some(
                crate::binhash::current_exe_hash()
                    .map_err(Error::Invalid)?
                    .to_owned(),
            )
        };
        if let Some(hash) = &known {
            for (_, def) in &mut definitions {
                def.binary_hash.clone_from(hash);
            }
        }
        super::publish::upload_binary(&client).await?;
        // Images first: a step that fails stops the start before anything exists.
        super::images::build_images(&client, app, &mut definitions, &output).await?;
        if self.detach && client.embedded {
            return Err(Error::Invalid(
                "`detach` needs a standalone control plane (set MODAL_SERVER_URL): the embedded one ends with this program".into(),
            ));
        }
        let environment_name = self
            .environment_name
            .or_else(|| std::env::var("MODAL_ENVIRONMENT").ok())
            .unwrap_or_else(|| "main".into());
        let mut api = client.api.clone();
        let created = api
            .app_create(pb::AppCreateRequest {
                name: app.name().to_owned(),
                description: app.description(),
                environment_name: environment_name.clone(),
                state: if self.detach {
                    pb::AppState::Detached
                } else {
                    pb::AppState::Ephemeral
                } as i32,
                tags: app
                    .tag_map()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            })
            .await?
            .into_inner();
        let app_id = created.app_id;
        app.set_active(Some(app_id.clone()));
        app.remember_dashboard_url(created.dashboard_url.clone());
        output.initialized(app.name(), &app_id, &created.dashboard_url);

        let logs = api
            .app_get_logs(pb::AppGetLogsRequest {
                app_id: app_id.clone(),
            })
            .await?
            .into_inner();
        let log_task = tokio::spawn(stream_logs(logs, output.clone()));
        // Volumes of this run (ephemeral ones) belong to the app: looked up once it exists.
        let resolved = super::publish::resolve_volumes(
            &client,
            app,
            &mut definitions,
            &environment_name,
            Some(app_id.as_str()),
        )
        .await;
        let registrations: Vec<&'static FunctionRegistration> =
            definitions.iter().map(|(r, _)| *r).collect();
        let mut tasks = Vec::new();
        let published = match (resolved, known) {
            (Ok(()), Some(_)) => publish(&client, &app_id, &definitions, &output).await,
            (Ok(()), None) => {
                let publishing = super::pending::Publishing::start(app.name());
                let (client, app_id, output) = (client.clone(), app_id.clone(), output.clone());
                tasks.push(tokio::spawn(async move {
                    let outcome = publish_hashed(&client, &app_id, definitions, &output).await;
                    if let Err(e) = &outcome {
                        tracing::error!("the app's functions could not be published: {e}");
                    }
                    publishing.done(outcome.map_err(|e| e.to_string()));
                }));
                Ok(())
            }
            (Err(e), _) => Err(e),
        };
        if let Err(e) = published {
            let _ = disconnect(
                &client,
                &app_id,
                pb::DisconnectReason::LocalException,
                &e.to_string(),
            )
            .await;
            app.set_active(None);
            return Err(e);
        }

        let heartbeat = tokio::spawn(heartbeats(client.clone(), app_id.clone()));
        let interrupted = Arc::new(AtomicBool::new(false));
        let ctrl_c = tokio::spawn(interrupt(
            client.clone(),
            app_id.clone(),
            output.clone(),
            Arc::clone(&interrupted),
        ));
        tracing::debug!(%app_id, elapsed = ?started.elapsed(), "app started");
        Ok(AppRun {
            app,
            app_id,
            client,
            started,
            registrations,
            tasks: [heartbeat, ctrl_c].into_iter().chain(tasks).collect(),
            interrupted,
            log_task: Some(log_task),
            output,
        })
    }
}

impl IntoFuture for RunBuilder {
    type Output = Result<AppRun>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<AppRun>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.start())
    }
}

/// A running app. End it with [`stop`](AppRun::stop); dropping it leaves the control plane to
/// reap the app once heartbeats stop (an embedded control plane ends with the program anyway).
pub struct AppRun {
    app: &'static App,
    app_id: String,
    client: Client,
    started: Instant,
    registrations: Vec<&'static FunctionRegistration>,
    tasks: Vec<JoinHandle<()>>,
    /// Whether Ctrl-C was pressed (its handler, among `tasks`, then ends the process).
    interrupted: Arc<AtomicBool>,
    log_task: Option<JoinHandle<()>>,
    output: Output,
}

impl std::fmt::Debug for AppRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppRun")
            .field("app", &self.app.name())
            .field("app_id", &self.app_id)
            .finish()
    }
}

impl AppRun {
    /// The running app's id (`ap-…`).
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// Ends the run: stops every container, waits for the last logs, prints the completion line.
    pub async fn stop(self) -> Result<()> {
        self.finish(pb::DisconnectReason::EntrypointCompleted, "")
            .await
    }

    /// Leaves a detached app running after this client exits.
    pub(crate) fn leave_running(mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        if let Some(logs) = self.log_task.take() {
            logs.abort();
        }
        self.output.detached(&self.app_id);
    }

    /// Ends the run after the entrypoint failed with `error`.
    pub(crate) async fn fail(self, error: &str) -> Result<()> {
        self.finish(pb::DisconnectReason::LocalException, error)
            .await
    }

    async fn finish(mut self, reason: pb::DisconnectReason, exception: &str) -> Result<()> {
        if self.interrupted.load(Ordering::SeqCst) {
            // Ctrl-C came first: the run ends as interrupted (its handler exits the process),
            // even when the entrypoint returned while the app was stopping.
            std::future::pending::<()>().await;
        }
        for t in self.tasks.drain(..) {
            t.abort();
        }
        let result = disconnect(&self.client, &self.app_id, reason, exception).await;
        if let Some(logs) = self.log_task.take() {
            let _ = tokio::time::timeout(LOGS_TIMEOUT, logs).await;
        }
        for reg in &self.registrations {
            reg.bound.set(None::<Bound>);
        }
        super::pending::forget(self.app.name());
        self.app.set_active(None);
        match reason {
            pb::DisconnectReason::EntrypointCompleted => {
                self.output.completed(self.started.elapsed())
            }
            _ => self.output.aborted(),
        }
        result
    }
}

impl Drop for AppRun {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Publishes the app's definitions and binds its functions to their ids.
async fn publish(
    client: &Client,
    app_id: &str,
    definitions: &[(&'static FunctionRegistration, crate::model::FunctionDef)],
    output: &Output,
) -> Result<()> {
    let ids = client
        .api
        .clone()
        .app_publish(pb::AppPublishRequest {
            app_id: app_id.to_owned(),
            functions: definitions.iter().map(|(_, d)| d.into()).collect(),
        })
        .await?
        .into_inner()
        .function_ids;
    for (reg, def) in definitions {
        if let Some(id) = ids.get(&def.tag) {
            reg.bound.set(Some(Bound {
                client: client.clone(),
                function_id: id.clone(),
            }));
        }
    }
    let tags: Vec<&str> = definitions.iter().map(|(_, d)| d.tag.as_str()).collect();
    output.created(&tags);
    Ok(())
}

/// [`publish`] once the executable is hashed (on a blocking thread).
async fn publish_hashed(
    client: &Client,
    app_id: &str,
    mut definitions: Vec<(&'static FunctionRegistration, crate::model::FunctionDef)>,
    output: &Output,
) -> Result<()> {
    let hash =
        tokio::task::spawn_blocking(|| crate::binhash::current_exe_hash().map(str::to_owned))
            .await
            .map_err(|e| Error::Invalid(format!("hashing the executable stopped: {e}")))?
            .map_err(Error::Invalid)?;
    for (_, def) in &mut definitions {
        def.binary_hash.clone_from(&hash);
    }
    publish(client, app_id, &definitions, output).await
}

async fn disconnect(
    client: &Client,
    app_id: &str,
    reason: pb::DisconnectReason,
    exception: &str,
) -> Result<()> {
    let mut api = client.api.clone();
    let exception: String = exception.chars().take(1000).collect();
    api.app_client_disconnect(pb::AppClientDisconnectRequest {
        app_id: app_id.to_owned(),
        reason: reason as i32,
        exception,
    })
    .await?;
    Ok(())
}

async fn stream_logs(mut logs: tonic::Streaming<pb::LogBatch>, output: Output) {
    while let Some(Ok(batch)) = logs.next().await {
        for entry in &batch.entries {
            output.log(entry);
        }
        if batch.app_done {
            return;
        }
    }
}

async fn heartbeats(client: Client, app_id: String) {
    let mut api = client.api.clone();
    loop {
        tokio::time::sleep(HEARTBEAT).await;
        if let Err(e) = api
            .app_heartbeat(pb::AppHeartbeatRequest {
                app_id: app_id.clone(),
            })
            .await
        {
            tracing::warn!("heartbeat for app {app_id} failed: {}", e.message());
        }
    }
}

/// On Ctrl-C: stop the app (every container with it), then exit like an interrupted program.
async fn interrupt(client: Client, app_id: String, output: Output, interrupted: Arc<AtomicBool>) {
    if tokio::signal::ctrl_c().await.is_err() {
        return;
    }
    interrupted.store(true, Ordering::SeqCst);
    output.disconnecting();
    let _ = disconnect(
        &client,
        &app_id,
        pb::DisconnectReason::KeyboardInterrupt,
        "",
    )
    .await;
    output.aborted();
    std::process::exit(130);
}
