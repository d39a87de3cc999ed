//! An app whose function, running in a container, tries over the wire protocol what its
//! container's token must not allow: creating a token, stopping, looking up or calling another
//! app, listing secrets, containers or another app's logs, and calls with no token or a wrong
//! one. It prints one line per attempt, `NAME: CODE`, and a control attempt that must work.
//!
//! `E2E_VICTIM_APP=NAME intruder` (the victim's function `square` is looked up with the user's
//! token from the config file, so that its id can be tried too).

use std::time::Duration;

use modal_proto::v1 as pb;
use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

modal::app!(APP = modal::App::new("e2e-intruder"));

type Api = pb::client_api_client::ClientApiClient<Channel>;

/// A request with the token `(id, secret)` in its headers.
fn with_token<T>(msg: T, token: Option<(&str, &str)>) -> Request<T> {
    let mut req = Request::new(msg);
    if let Some((id, secret)) = token {
        for (name, value) in [("x-modal-token-id", id), ("x-modal-token-secret", secret)] {
            if let Ok(v) = MetadataValue::try_from(value) {
                req.metadata_mut().insert(name, v);
            }
        }
    }
    req
}

fn outcome<T>(name: &str, r: Result<T, tonic::Status>) -> String {
    match r {
        Ok(_) => format!("{name}: Ok"),
        Err(s) => format!("{name}: {:?}", s.code()),
    }
}

async fn connect(url: &str) -> Result<Api, String> {
    let channel = Channel::from_shared(url.to_owned())
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))?;
    Ok(Api::new(channel))
}

#[modal::function(app = APP)]
async fn probe(victim_app: String, victim_function_id: String) -> Vec<String> {
    let url = std::env::var("MODAL_SERVER_URL").unwrap_or_default();
    let id = std::env::var("MODAL_TOKEN_ID").unwrap_or_default();
    let secret = std::env::var("MODAL_TOKEN_SECRET").unwrap_or_default();
    let mut api = match connect(&url).await {
        Ok(api) => api,
        Err(e) => return vec![e],
    };
    let own = Some((id.as_str(), secret.as_str()));
    let mut out = Vec::new();
    let r = api
        .function_get(with_token(
            pb::FunctionGetRequest {
                app_name: "e2e-intruder".into(),
                tag: "probe".into(),
                ..Default::default()
            },
            own,
        ))
        .await;
    out.push(outcome("own_function_get", r));
    let r = api
        .token_create(with_token(pb::TokenCreateRequest::default(), own))
        .await;
    out.push(outcome("token_create", r));
    let r = api
        .app_stop(with_token(
            pb::AppStopRequest {
                app: victim_app.clone(),
                ..Default::default()
            },
            own,
        ))
        .await;
    out.push(outcome("victim_app_stop", r));
    let r = api
        .function_get(with_token(
            pb::FunctionGetRequest {
                app_name: victim_app.clone(),
                tag: "square".into(),
                ..Default::default()
            },
            own,
        ))
        .await;
    out.push(outcome("victim_function_get", r));
    let input = pb::Payload::default();
    let r = api
        .function_call(with_token(
            pb::FunctionCallRequest {
                function_id: victim_function_id,
                input: Some(input),
                wait: true,
                wait_ms: 1000,
                ..Default::default()
            },
            own,
        ))
        .await;
    out.push(outcome("victim_function_call", r));
    let r = api
        .app_fetch_logs(with_token(
            pb::AppFetchLogsRequest {
                app: victim_app,
                tail: 10,
                ..Default::default()
            },
            own,
        ))
        .await;
    out.push(outcome("victim_logs", r));
    let r = api
        .secret_list(with_token(pb::SecretListRequest::default(), own))
        .await;
    out.push(outcome("secret_list", r));
    let r = api
        .container_list(with_token(pb::ContainerListRequest::default(), own))
        .await;
    out.push(outcome("container_list", r));
    let r = api
        .app_list(with_token(pb::AppListRequest::default(), None))
        .await;
    out.push(outcome("no_token_app_list", r));
    let r = api
        .app_list(with_token(
            pb::AppListRequest::default(),
            Some((id.as_str(), "ts-wrong")),
        ))
        .await;
    out.push(outcome("wrong_secret_app_list", r));
    out
}

/// The user's server and token, from the config file `modal token new` wrote.
fn user_settings() -> Option<(String, String, String)> {
    let path = std::env::var("MODAL_CONFIG_PATH").ok()?;
    let text = std::fs::read_to_string(path).ok()?;
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} = ")))
            .map(|v| v.trim_matches('"').to_owned())
    };
    Some((
        value("server_url")?,
        value("token_id")?,
        value("token_secret")?,
    ))
}

/// The id of the victim's function `square`, looked up with the user's token.
async fn victim_function_id(victim: &str) -> Result<String, String> {
    let Some((url, id, secret)) = user_settings() else {
        return Ok(String::new());
    };
    let mut api = connect(&url).await?;
    let r = api
        .function_get(with_token(
            pb::FunctionGetRequest {
                app_name: victim.to_owned(),
                tag: "square".into(),
                ..Default::default()
            },
            Some((&id, &secret)),
        ))
        .await
        .map_err(|s| format!("the user cannot look up {victim}: {s}"))?;
    Ok(r.into_inner().function_id)
}

#[modal::local_entrypoint(app = APP)]
async fn main() -> modal::Result<()> {
    let victim = std::env::var("E2E_VICTIM_APP").unwrap_or_default();
    let function_id = victim_function_id(&victim)
        .await
        .map_err(modal::Error::Other)?;
    println!("victim_function_id: {function_id}");
    for line in probe.remote(victim, function_id).await? {
        println!("{line}");
    }
    Ok(())
}
