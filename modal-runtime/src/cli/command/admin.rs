//! The admin subcommands of `modal`: tokens, apps, secrets and containers on a control plane;
//! tables like Modal's, `--json` for scripts.

#![allow(clippy::print_stdout, clippy::print_stderr)] // A command-line tool.

use std::path::PathBuf;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use futures::StreamExt;
use serde_json::json;

use super::args::{AppCommand, ContainerCommand, DEFAULT_LISTEN, SecretCommand};
use crate::client::Client;
use crate::credentials::{
    self, BOOTSTRAP_ENV, BOOTSTRAP_FILE, BOOTSTRAP_HEADER, Credentials, Route, SERVER_CERT_ENV,
    Settings, Trust,
};
use crate::error::{Error, Result};
use crate::server::standalone;
use crate::wire::pb;

pub(super) async fn client() -> Result<Client> {
    let settings = Settings::load();
    let url = settings
        .server_url
        .unwrap_or_else(|| format!("http://{DEFAULT_LISTEN}"));
    Client::connect(&url, settings.credentials.as_ref(), &settings.route)
        .await
        .map_err(|e| match e {
            // A TLS problem says what to do itself: the server is there.
            Error::Connect { url, message }
                if !message.contains("TLS") && !message.contains("certificate") =>
            {
                Error::Connect {
                    message: format!(
                        "{message}\n  is `modal server` running there? Start it with `modal server`, or point MODAL_SERVER_URL (or the config file `modal token new --server URL` writes) at your server"
                    ),
                    url,
                }
            }
            other => other,
        })
}

/// `modal token new`: a new user token (or, with `worker`, a worker token), created with the configured token or, for the first
/// one, with the bootstrap secret in the server's data directory.
pub(super) async fn token_new(
    server: Option<String>,
    label: String,
    print: bool,
    worker: bool,
    data_dir: Option<PathBuf>,
    server_cert: Option<PathBuf>,
) -> Result<()> {
    let settings = Settings::load();
    let configured = settings.server_url.as_deref() == server.as_deref() || server.is_none();
    let url = server
        .or(settings.server_url)
        .unwrap_or_else(|| format!("http://{DEFAULT_LISTEN}"));
    // The secret from the environment, else from the server's data directory: the default one
    // only for a server on this machine (a secret is never sent to another host unasked).
    let local = is_loopback(&url);
    let explicit_dir = data_dir.is_some();
    let data_dir = data_dir.unwrap_or_else(standalone::default_data_dir);
    let secret_path = data_dir.join(BOOTSTRAP_FILE);
    let (trust, cert_path) = token_trust(
        &url,
        server_cert,
        &data_dir,
        local || explicit_dir,
        configured.then_some(settings.route.trust),
    );
    let route = Route::trusting(trust);
    let client = Client::connect(&url, settings.credentials.as_ref(), &route).await?;
    let bootstrap = match std::env::var(BOOTSTRAP_ENV) {
        Ok(secret) if !secret.is_empty() => Ok(secret),
        _ if local || explicit_dir => std::fs::read_to_string(&secret_path),
        _ => Err(std::io::Error::other(format!(
            "{url} is not on this machine; pass --data-dir or set {BOOTSTRAP_ENV}"
        ))),
    };
    let mut req = tonic::Request::new(pb::TokenCreateRequest { label, worker });
    if let Some(value) = bootstrap.as_ref().ok().and_then(|s| s.trim().parse().ok()) {
        req.metadata_mut().insert(BOOTSTRAP_HEADER, value);
    }
    let mut api = client.api.clone();
    let resp = match api.token_create(req).await {
        Ok(resp) => resp.into_inner(),
        Err(status) if status.code() == tonic::Code::Unauthenticated => {
            let found = match &bootstrap {
                Ok(_) => "the secret was refused".to_owned(),
                Err(e) => format!("cannot read {}: {e}", secret_path.display()),
            };
            return Err(Error::ControlPlane(format!(
                "cannot create a token: {}\n  the first token needs the server's one-time bootstrap secret ({found}): run `modal token new` on the server's host as the user that runs `modal server`, with `--data-dir DIR` if the server has one; or configure a token you have (MODAL_TOKEN_ID and MODAL_TOKEN_SECRET); if every token is lost, restart the server with --new-bootstrap-secret",
                status.message()
            )));
        }
        Err(status) => return Err(status.into()),
    };
    // A worker token is for other machines' workers: it never replaces this user's own.
    if print || worker {
        println!("export MODAL_SERVER_URL={url}");
        if let Some(path) = &cert_path {
            println!("export {SERVER_CERT_ENV}={}", path.display());
        }
        println!("export MODAL_TOKEN_ID={}", resp.token_id);
        println!("export MODAL_TOKEN_SECRET={}", resp.token_secret);
        return Ok(());
    }
    let creds = Credentials {
        token_id: resp.token_id.clone(),
        token_secret: resp.token_secret,
    };
    let path = credentials::save(&url, &creds, route.trust.pem()).map_err(Error::Invalid)?;
    let trusting = match &route.trust {
        Trust::Cert { source, .. } => format!(", trusted by the certificate from {source}"),
        _ => String::new(),
    };
    println!(
        "Token {} created and saved to {} (server {url}{trusting})",
        resp.token_id,
        path.display()
    );
    Ok(())
}

/// What `modal token new` trusts an `https://` server by, and the file it came from: the
/// certificate `--server-cert` names, else the environment's, else (for a server on this
/// machine, or with `--data-dir`) the self-signed one in its data directory, else the config
/// file's (`configured`: for the server it was saved with), else the system's roots.
fn token_trust(
    url: &str,
    server_cert: Option<PathBuf>,
    data_dir: &std::path::Path,
    reads_data_dir: bool,
    configured: Option<Trust>,
) -> (Trust, Option<PathBuf>) {
    if let Some(path) = server_cert {
        let source = format!("--server-cert {}", path.display());
        return (Trust::from_file(&path, &source), Some(path));
    }
    if let Some(trust) = Trust::from_env() {
        // A file to name in `export` lines (none for a certificate given as text).
        let path = std::env::var_os(SERVER_CERT_ENV)
            .filter(|_| std::env::var_os(credentials::SERVER_CERT_PEM_ENV).is_none())
            .map(PathBuf::from);
        return (trust, path);
    }
    let self_signed = crate::server::tls::self_signed_cert(data_dir);
    if url.starts_with("https://") && reads_data_dir && self_signed.exists() {
        let source = self_signed.display().to_string();
        return (Trust::from_file(&self_signed, &source), Some(self_signed));
    }
    (configured.unwrap_or_default(), None)
}

/// Whether `url` names this machine (a loopback address or `localhost`).
fn is_loopback(url: &str) -> bool {
    let host = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split(['/', '?'])
        .next()
        .unwrap_or("");
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Bytes as a person reads them (`100.0 MiB`).
pub(super) fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

pub(super) fn time(ms: i64) -> String {
    if ms <= 0 {
        return String::new();
    }
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

fn state_name(state: i32) -> &'static str {
    match pb::AppState::try_from(state).unwrap_or(pb::AppState::Unspecified) {
        pb::AppState::Ephemeral => "ephemeral",
        pb::AppState::Detached => "ephemeral (detached)",
        pb::AppState::Deployed => "deployed",
        pb::AppState::Stopping => "stopping...",
        pb::AppState::Stopped => "stopped",
        pb::AppState::Initializing => "initializing...",
        pb::AppState::Unspecified => "unknown",
    }
}

pub(super) fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_header(header.to_vec());
    for r in rows {
        t.add_row(r);
    }
    t.to_string()
}

pub(super) async fn app(cmd: AppCommand) -> Result<()> {
    let client = client().await?;
    let mut api = client.api.clone();
    match cmd {
        AppCommand::List(c) => {
            let apps = api
                .app_list(pb::AppListRequest {
                    environment_name: c.env,
                })
                .await?
                .into_inner()
                .apps;
            if c.json {
                let rows: Vec<_> = apps
                    .iter()
                    .map(|a| {
                        json!({"app_id": a.app_id, "description": a.description, "state": state_name(a.state),
                               "tasks": a.tasks, "created_at": time(a.created_at_ms), "stopped_at": time(a.stopped_at_ms),
                               "environment": a.environment_name, "version": a.deployed_version})
                    })
                    .collect();
                println!("{}", json!(rows));
            } else {
                let rows = apps
                    .iter()
                    .map(|a| {
                        vec![
                            a.app_id.clone(),
                            a.description.clone(),
                            state_name(a.state).to_owned(),
                            a.tasks.to_string(),
                            time(a.created_at_ms),
                            time(a.stopped_at_ms),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(
                        &[
                            "App ID",
                            "Description",
                            "State",
                            "Tasks",
                            "Created at",
                            "Stopped at"
                        ],
                        rows
                    )
                );
            }
        }
        AppCommand::Logs {
            app,
            follow,
            tail,
            env,
        } => {
            let past = api
                .app_fetch_logs(pb::AppFetchLogsRequest {
                    app: app.clone(),
                    environment_name: env.clone(),
                    tail,
                })
                .await?
                .into_inner();
            for e in &past.entries {
                print_log(e);
            }
            if follow {
                let app_id = api
                    .app_lookup(pb::AppLookupRequest {
                        name: app,
                        environment_name: env,
                        create_if_missing: false,
                    })
                    .await?
                    .into_inner()
                    .app_id;
                let mut stream = api
                    .app_get_logs(pb::AppGetLogsRequest { app_id })
                    .await?
                    .into_inner();
                while let Some(batch) = stream.next().await {
                    let batch = batch?;
                    for e in &batch.entries {
                        print_log(e);
                    }
                    if batch.app_done {
                        break;
                    }
                }
            }
        }
        AppCommand::Stop { app, yes, env } => {
            if !confirm(&format!("Stop app {app}?"), yes) {
                println!("Not stopped.");
                return Ok(());
            }
            let resp = api
                .app_stop(pb::AppStopRequest {
                    app,
                    environment_name: env,
                })
                .await?
                .into_inner();
            if resp.already_stopped {
                println!("App is already stopped.");
            } else {
                println!(
                    "Stopped app {} ({} containers terminated).",
                    resp.app_id, resp.stopped_containers
                );
            }
        }
        AppCommand::Dashboard { app, open, env } => {
            let url = api
                .app_dashboard_url(pb::AppLookupRequest {
                    name: app,
                    environment_name: env,
                    create_if_missing: false,
                })
                .await?
                .into_inner()
                .url;
            println!("{url}");
            if open {
                let browser = std::env::var("BROWSER").unwrap_or_else(|_| "xdg-open".into());
                std::process::Command::new(&browser)
                    .arg(&url)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .map_err(|e| {
                        Error::Invalid(format!(
                            "cannot open a browser with `{browser}`: {e}; open the URL above yourself (or set BROWSER)"
                        ))
                    })?;
            }
        }
        AppCommand::History { app, common } => {
            let resp = api
                .app_history(pb::AppHistoryRequest {
                    app,
                    environment_name: common.env,
                })
                .await?
                .into_inner();
            let strategy = |s: i32| {
                if s == pb::DeployStrategy::Recreate as i32 {
                    "recreate"
                } else {
                    "rolling"
                }
            };
            if common.json {
                let rows: Vec<_> = resp
                    .deployments
                    .iter()
                    .map(|d| {
                        json!({"version": d.version, "deployed_at": time(d.deployed_at_ms), "client": d.client,
                               "tag": d.tag, "strategy": strategy(d.strategy)})
                    })
                    .collect();
                println!("{}", json!(rows));
            } else {
                let rows = resp
                    .deployments
                    .iter()
                    .map(|d| {
                        vec![
                            format!("v{}", d.version),
                            time(d.deployed_at_ms),
                            d.client.clone(),
                            d.tag.clone(),
                            strategy(d.strategy).into(),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(
                        &["Version", "Time deployed", "Deployed by", "Tag", "Strategy"],
                        rows
                    )
                );
            }
        }
    }
    Ok(())
}

fn print_log(e: &pb::LogEntry) {
    let line = format!("[{}] {}", e.function_tag, e.data);
    if e.source == pb::LogSource::Stdout as i32 {
        println!("{line}");
    } else {
        eprintln!("{line}");
    }
}

pub(super) async fn secret(cmd: SecretCommand) -> Result<()> {
    let client = client().await?;
    let mut api = client.api.clone();
    match cmd {
        SecretCommand::Create {
            name,
            pairs,
            force,
            env,
        } => {
            let mut values = std::collections::HashMap::new();
            for p in pairs {
                let (k, v) = p.split_once('=').ok_or_else(|| {
                    Error::Invalid(format!(
                        "`{}` is not KEY=VALUE",
                        p.split('=').next().unwrap_or("")
                    ))
                })?;
                values.insert(k.to_owned(), v.to_owned());
            }
            let keys: Vec<String> = values.keys().cloned().collect();
            api.secret_create(pb::SecretCreateRequest {
                name: name.clone(),
                environment_name: env,
                values,
                overwrite: force,
            })
            .await?;
            println!("Created secret {name} with keys {}", keys.join(", "));
        }
        SecretCommand::List(c) => {
            let secrets = api
                .secret_list(pb::SecretListRequest {
                    environment_name: c.env,
                })
                .await?
                .into_inner()
                .secrets;
            if c.json {
                let rows: Vec<_> = secrets
                    .iter()
                    .map(|s| json!({"name": s.name, "environment": s.environment_name, "keys": s.keys,
                                    "created_at": time(s.created_at_ms), "updated_at": time(s.updated_at_ms)}))
                    .collect();
                println!("{}", json!(rows));
            } else {
                let rows = secrets
                    .iter()
                    .map(|s| {
                        vec![
                            s.name.clone(),
                            s.environment_name.clone(),
                            s.keys.join(", "),
                            time(s.created_at_ms),
                            time(s.updated_at_ms),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(
                        &["Name", "Environment", "Keys", "Created at", "Updated at"],
                        rows
                    )
                );
            }
        }
        SecretCommand::Delete { name, yes, env } => {
            if !confirm(&format!("Delete secret {name}?"), yes) {
                println!("Not deleted.");
                return Ok(());
            }
            api.secret_delete(pb::SecretDeleteRequest {
                name: name.clone(),
                environment_name: env,
            })
            .await?;
            println!("Deleted secret {name}");
        }
    }
    Ok(())
}

pub(super) async fn container(cmd: ContainerCommand) -> Result<()> {
    let client = client().await?;
    let mut api = client.api.clone();
    match cmd {
        ContainerCommand::List { app_id, common } => {
            let list = api
                .container_list(pb::ContainerListRequest {
                    app_id,
                    environment_name: common.env,
                })
                .await?
                .into_inner()
                .containers;
            if common.json {
                let rows: Vec<_> = list
                    .iter()
                    .map(|c| json!({"container_id": c.task_id, "app_id": c.app_id, "app_name": c.app_name,
                                    "function": c.function_tag, "start_time": time(c.started_at_ms),
                                    "running_inputs": c.running_inputs, "worker_id": c.worker_id,
                                    "worker_host": c.worker_host}))
                    .collect();
                println!("{}", json!(rows));
            } else {
                let rows = list
                    .iter()
                    .map(|c| {
                        let start = if c.started_at_ms == 0 {
                            "Pending".to_owned()
                        } else {
                            time(c.started_at_ms)
                        };
                        vec![
                            c.task_id.clone(),
                            c.app_id.clone(),
                            c.app_name.clone(),
                            c.function_tag.clone(),
                            start,
                            format!("{} ({})", c.worker_id, c.worker_host),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(
                        &[
                            "Container ID",
                            "App ID",
                            "App Name",
                            "Function",
                            "Start Time",
                            "Worker"
                        ],
                        rows
                    )
                );
            }
        }
        ContainerCommand::Stop { task_id, graceful } => {
            api.container_stop(pb::ContainerStopRequest {
                task_id: task_id.clone(),
                graceful,
            })
            .await?;
            println!("Stopping container {task_id}");
        }
    }
    Ok(())
}

/// Asks `question` on a terminal; `--yes`, or input that is not a terminal (a script), means yes.
pub(super) fn confirm(question: &str, yes: bool) -> bool {
    use std::io::{BufRead, IsTerminal, Write};
    if yes || !std::io::stdin().is_terminal() {
        return true;
    }
    print!("{question} [y/N] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim(), "y" | "Y" | "yes" | "Yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_machine_is_loopback() {
        for url in [
            "http://127.0.0.1:7878",
            "http://localhost:7878",
            "http://[::1]:7878",
            "127.0.0.1",
        ] {
            assert!(is_loopback(url), "{url}");
        }
        for url in [
            "http://10.0.0.5:7878",
            "https://modal.example.org",
            "http://[2001:db8::1]:7878",
        ] {
            assert!(!is_loopback(url), "{url}");
        }
    }
}
