//! The dashboard: web pages the control plane serves itself, on a listener of its own (apps,
//! an app's functions, containers and logs as they happen, calls, stopping an app), behind a
//! per-run key in the URL the program prints (embedded) or a login with a user token (`modal
//! server`). No page ever shows a secret's value.

mod data;
pub(crate) mod link;
mod pages;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::{Form, Path, Query, State as Shared};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use maud::Markup;
use serde::Deserialize;
use tokio::net::TcpListener;

use super::api::Api;
use super::auth::{Auth, Principal};
use crate::model::LogSource;
pub(crate) use link::Link;

/// The cookie a browser holds once let in.
const COOKIE: &str = "modal_dashboard";

/// Who may see a dashboard.
#[derive(Clone, Debug)]
pub(crate) enum Access {
    /// The embedded control plane's: this key, which the URL the program prints carries.
    Key(String),
    /// `modal server`'s: a login with a user token.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    Login,
}

/// A browser let in, and the token its forms carry.
struct Session {
    csrf: String,
}

#[derive(Clone)]
struct Dashboard {
    api: Api,
    auth: Auth,
    access: Access,
    sessions: Arc<Mutex<HashMap<String, Session>>>,
}

fn random() -> String {
    format!("{}{}", crate::ids::new_id(""), crate::ids::new_id(""))
}

/// A new key for an embedded dashboard.
pub(crate) fn new_key() -> String {
    random()
}

/// Serves the dashboard on `listener` for the control plane behind `api`, until the process
/// ends.
pub(crate) async fn serve(listener: TcpListener, api: Api, auth: Auth, access: Access) {
    let dashboard = Dashboard {
        api,
        auth,
        access,
        sessions: Arc::default(),
    };
    let app = Router::new()
        .route("/", get(|| async { Redirect::to("/apps") }))
        .route("/apps", get(apps))
        .route("/apps/{app_id}", get(app))
        .route("/apps/{app_id}/logs", get(logs))
        .route("/apps/{app_id}/stop", post(stop))
        .route("/calls/{call_id}", get(call))
        .route("/objects", get(objects))
        .route("/login", get(login_form).post(login))
        .with_state(dashboard);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("the dashboard stopped: {e}");
    }
}

fn html(status: StatusCode, page: Markup) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], page).into_response()
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(str::to_owned)
        })
}

fn set_cookie(value: &str) -> String {
    format!("{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/")
}

/// Lets a request in (its session's CSRF token), or answers it: the embedded key in the URL
/// becomes a cookie, a browser without a session goes to the login page.
#[allow(clippy::result_large_err)] // The answer goes straight back to the browser.
fn admit(d: &Dashboard, headers: &HeaderMap, uri: &Uri) -> Result<String, Response> {
    let cookie = cookie_value(headers);
    match &d.access {
        Access::Key(key) => {
            let given = uri
                .query()
                .unwrap_or("")
                .split('&')
                .find_map(|p| p.strip_prefix("key="));
            if given == Some(key.as_str()) {
                let mut r = Redirect::to(uri.path()).into_response();
                if let Ok(v) = set_cookie(key).parse() {
                    r.headers_mut().insert(header::SET_COOKIE, v);
                }
                return Err(r);
            }
            if cookie.as_deref() == Some(key.as_str()) {
                return Ok(
                    blake3::derive_key("modal-rs dashboard csrf v1", key.as_bytes())
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect(),
                );
            }
            Err(html(
                StatusCode::UNAUTHORIZED,
                pages::message(
                    "This dashboard belongs to a running program",
                    "Open the link the program printed when it started (“View run at …”), or App::get_dashboard_url(): it carries the key of this run.",
                ),
            ))
        }
        Access::Login => {
            let sessions = d.sessions.lock().unwrap_or_else(PoisonError::into_inner);
            match cookie.and_then(|c| sessions.get(&c).map(|s| s.csrf.clone())) {
                Some(csrf) => Ok(csrf),
                None => Err(Redirect::to(&format!(
                    "/login?next={}",
                    uri.path_and_query().map_or("/apps", |p| p.as_str())
                ))
                .into_response()),
            }
        }
    }
}

/// Runs `f` on the state, or answers that the control plane is going away.
async fn ask<T: Send + 'static>(
    d: &Dashboard,
    f: impl FnOnce(&super::state::State) -> T + Send + 'static,
) -> Result<T, Response> {
    d.api.ask(move |s| Ok(f(s))).await.map_err(|_| {
        html(
            StatusCode::SERVICE_UNAVAILABLE,
            pages::message("Stopping", "The control plane is shutting down."),
        )
    })
}

#[derive(Deserialize, Default)]
struct AppsFilter {
    #[serde(default)]
    state: String,
    #[serde(default)]
    tag: String,
}

async fn apps(
    Shared(d): Shared<Dashboard>,
    headers: HeaderMap,
    uri: Uri,
    Query(filter): Query<AppsFilter>,
) -> Response {
    if let Err(r) = admit(&d, &headers, &uri) {
        return r;
    }
    match ask(&d, |s| s.dashboard_apps()).await {
        Ok(rows) => html(
            StatusCode::OK,
            pages::apps(&rows, &filter.state, &filter.tag),
        ),
        Err(r) => r,
    }
}

async fn app(
    Shared(d): Shared<Dashboard>,
    headers: HeaderMap,
    uri: Uri,
    Path(app_id): Path<String>,
) -> Response {
    let csrf = match admit(&d, &headers, &uri) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let id = app_id.clone();
    match ask(&d, move |s| s.dashboard_app(&id)).await {
        Ok(Some(page)) => html(StatusCode::OK, pages::app(&page, &csrf)),
        Ok(None) => html(
            StatusCode::NOT_FOUND,
            pages::message(
                "No such app",
                &format!("This control plane has no app {app_id}."),
            ),
        ),
        Err(r) => r,
    }
}

async fn call(
    Shared(d): Shared<Dashboard>,
    headers: HeaderMap,
    uri: Uri,
    Path(call_id): Path<String>,
) -> Response {
    if let Err(r) = admit(&d, &headers, &uri) {
        return r;
    }
    let id = call_id.clone();
    match ask(&d, move |s| s.dashboard_call(&id)).await {
        Ok(Some(page)) => html(StatusCode::OK, pages::call(&page)),
        Ok(None) => html(
            StatusCode::NOT_FOUND,
            pages::message(
                "No such call",
                &format!(
                    "This control plane does not hold call {call_id}: a `remote` call is forgotten once its result reached its caller, a spawned one after its retention."
                ),
            ),
        ),
        Err(r) => r,
    }
}

async fn objects(Shared(d): Shared<Dashboard>, headers: HeaderMap, uri: Uri) -> Response {
    if let Err(r) = admit(&d, &headers, &uri) {
        return r;
    }
    let images = d.api.image_summaries().await.ok();
    match ask(&d, |s| s.dashboard_objects()).await {
        Ok(o) => html(StatusCode::OK, pages::objects(&o, images.as_deref())),
        Err(r) => r,
    }
}

/// Lines of the past a log view starts with.
const REPLAYED_LINES: usize = 200;

/// A log line as the page's script reads it.
fn line_event(e: &crate::model::LogEntry) -> Event {
    let line = serde_json::json!({
        "time": chrono::DateTime::from_timestamp_millis(e.timestamp_ms)
            .map(|t| t.format("%H:%M:%S%.3f").to_string())
            .unwrap_or_default(),
        "function": e.function_tag,
        "container": e.task_id,
        "stderr": e.source != LogSource::Stdout,
        "data": e.data,
    });
    Event::default().event("line").data(line.to_string())
}

/// The app's log lines as server-sent events (`line`, then `done` when the app stopped).
async fn logs(
    Shared(d): Shared<Dashboard>,
    headers: HeaderMap,
    uri: Uri,
    Path(app_id): Path<String>,
) -> Response {
    if let Err(r) = admit(&d, &headers, &uri) {
        return r;
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let id = app_id.clone();
    if d.api.ask(move |s| s.subscribe_logs(&id, tx)).await.is_err() {
        return html(
            StatusCode::NOT_FOUND,
            pages::message("No such app", "This control plane has no such app."),
        );
    }
    // The lines the store kept first (a page opened late, or after the app stopped), then
    // the new ones as they come.
    let past = d.api.recent_logs(&app_id, REPLAYED_LINES).await;
    let replay = futures::stream::iter(past.into_iter().map(|e| Ok(line_event(&e))));
    let live = tokio_stream::wrappers::UnboundedReceiverStream::new(rx).flat_map(|batch| {
        let mut events: Vec<Result<Event, std::convert::Infallible>> =
            batch.entries.iter().map(|e| Ok(line_event(e))).collect();
        if batch.app_done {
            // An event without data is dropped by browsers: this one says what happened.
            events.push(Ok(Event::default().event("done").data("stopped")));
        }
        futures::stream::iter(events)
    });
    let events = replay.chain(live);
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[derive(Deserialize)]
struct StopForm {
    #[serde(default)]
    csrf: String,
}

/// Stops an app (the one action the dashboard offers), from a form of one of its own pages.
async fn stop(
    Shared(d): Shared<Dashboard>,
    headers: HeaderMap,
    uri: Uri,
    Path(app_id): Path<String>,
    Form(form): Form<StopForm>,
) -> Response {
    let csrf = match admit(&d, &headers, &uri) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if form.csrf != csrf {
        return html(
            StatusCode::FORBIDDEN,
            pages::message(
                "Refused",
                "This form did not come from this dashboard's page: reload the app's page and stop it from there.",
            ),
        );
    }
    let id = app_id.clone();
    match d
        .api
        .ask(move |s| s.app_stop_request(&id, "").map(|(_, done)| done))
        .await
    {
        Ok(done) => {
            if let Some(done) = done {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(10), done).await;
            }
            // The page itself, not a redirect: an embedded control plane ends with its program,
            // which ends once its app stopped.
            let id = app_id.clone();
            match ask(&d, move |s| s.dashboard_app(&id)).await {
                Ok(Some(page)) => html(StatusCode::OK, pages::app(&page, &csrf)),
                Ok(None) => Redirect::to("/apps").into_response(),
                Err(r) => r,
            }
        }
        Err(e) => html(
            StatusCode::BAD_REQUEST,
            pages::message("Cannot stop this app", e.message()),
        ),
    }
}

#[derive(Deserialize, Default)]
struct LoginQuery {
    #[serde(default)]
    next: String,
}

/// Where a login may send the browser next: a path of this dashboard, nothing else.
fn next_path(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") {
        next
    } else {
        "/apps"
    }
}

async fn login_form(Shared(d): Shared<Dashboard>, Query(q): Query<LoginQuery>) -> Response {
    if let Access::Key(_) = d.access {
        return Redirect::to("/apps").into_response();
    }
    html(StatusCode::OK, pages::login(None, next_path(&q.next)))
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    token_id: String,
    #[serde(default)]
    token_secret: String,
    #[serde(default)]
    next: String,
}

async fn login(Shared(d): Shared<Dashboard>, Form(form): Form<LoginForm>) -> Response {
    let next = next_path(&form.next).to_owned();
    let mut meta = tonic::metadata::MetadataMap::new();
    let (Ok(id), Ok(secret)) = (
        form.token_id.trim().parse(),
        form.token_secret.trim().parse(),
    ) else {
        return html(
            StatusCode::UNAUTHORIZED,
            pages::login(Some("Enter a token id and its secret."), &next),
        );
    };
    meta.insert(crate::credentials::TOKEN_ID_HEADER, id);
    meta.insert(crate::credentials::TOKEN_SECRET_HEADER, secret);
    match d.auth.authenticate(&meta) {
        Ok(Principal::User { token_id }) => {
            let session = random();
            d.sessions
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(session.clone(), Session { csrf: random() });
            tracing::info!(%token_id, "dashboard login");
            let mut r = Redirect::to(&next).into_response();
            if let Ok(v) = set_cookie(&session).parse() {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Ok(_) => html(
            StatusCode::UNAUTHORIZED,
            pages::login(
                Some("Only a user token logs in (not a worker's or a container's)."),
                &next,
            ),
        ),
        Err(_) => html(
            StatusCode::UNAUTHORIZED,
            pages::login(
                Some(
                    "That token is not valid on this server: check its id and secret (`modal token new` makes one).",
                ),
                &next,
            ),
        ),
    }
}
