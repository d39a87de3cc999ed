//! The dashboard benchmark (`cargo xtask bench --dashboard`), against a `modal server` given by
//! `BENCH_SERVER_URL`, `BENCH_TOKEN_ID`/`BENCH_TOKEN_SECRET` and `BENCH_DASHBOARD` (its
//! dashboard's base URL): it makes the apps and spawned calls asked for (`--apps N --calls N`),
//! logs in, times each page (median and worst of 20 loads), and times a printed line from the
//! function's `println!` to its arrival in the live log. Prints one JSON line.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use futures::StreamExt;
use modal_proto::v1 as pb;
use tonic::metadata::MetadataValue;

modal::app!(APP = modal::App::new("bench-dashboard"));

#[modal::function(app = APP)]
fn trivial(x: u64) -> u64 {
    x
}

/// Prints when it was asked to, in Unix ms, for the live-log latency.
#[modal::function(app = APP)]
fn shout(tag: u64) -> u64 {
    let now = chrono::Utc::now().timestamp_millis();
    println!("shout {tag} {now}");
    tag
}

fn arg(name: &str, default: usize) -> usize {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

/// One HTTP/1.1 request: status, headers and body.
fn http(method: &str, url: &str, cookie: &str, form: &str) -> (u16, String, String) {
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut s = TcpStream::connect(host).expect("the dashboard listens");
    let mut req = format!("{method} /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if !cookie.is_empty() {
        req.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    if !form.is_empty() {
        req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{form}", form.len()));
    s.write_all(req.as_bytes()).expect("sent");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// Median and worst of `n` loads of `url`, in ms.
fn time_page(url: &str, cookie: &str, n: usize) -> (f64, f64) {
    let mut ms: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            let (status, _, body) = http("GET", url, cookie, "");
            assert_eq!(status, 200, "{url}: {body}");
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    (ms[ms.len() / 2], ms[ms.len() - 1])
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[modal::main]
async fn main() -> modal::Result<()> {
    let apps = arg("--apps", 1000);
    let calls = arg("--calls", 100_000);
    let (url, dashboard) = (env("BENCH_SERVER_URL"), env("BENCH_DASHBOARD"));
    let (id, secret) = (env("BENCH_TOKEN_ID"), env("BENCH_TOKEN_SECRET"));

    // Apps, straight through the API (detached: they stay).
    let channel = tonic::transport::Endpoint::from_shared(url.clone())
        .map_err(|e| modal::Error::Invalid(e.to_string()))?
        .connect()
        .await
        .map_err(|e| modal::Error::Invalid(format!("cannot connect to {url}: {e}")))?;
    let (hid, hsecret): (MetadataValue<_>, MetadataValue<_>) = (
        id.parse()
            .map_err(|_| modal::Error::Invalid("token id".into()))?,
        secret
            .parse()
            .map_err(|_| modal::Error::Invalid("token secret".into()))?,
    );
    let mut api = pb::client_api_client::ClientApiClient::with_interceptor(
        channel,
        move |mut req: tonic::Request<()>| {
            req.metadata_mut().insert("x-modal-token-id", hid.clone());
            req.metadata_mut()
                .insert("x-modal-token-secret", hsecret.clone());
            Ok(req)
        },
    );
    for i in 0..apps {
        api.app_create(pb::AppCreateRequest {
            name: format!("bench-app-{i}"),
            description: String::new(),
            environment_name: "main".into(),
            state: pb::AppState::Detached as i32,
            tags: [("team".to_owned(), format!("t{}", i % 10))].into(),
        })
        .await
        .map_err(|e| modal::Error::Invalid(e.to_string()))?;
    }

    // Spawned calls, kept by the store with their results.
    let run = APP.run().output(false).await?;
    let t = Instant::now();
    let mut ids = futures::stream::iter(0..calls as u64)
        .map(|i| async move { trivial.spawn(i).await.map(|c| c.object_id().to_owned()) })
        .buffer_unordered(64);
    let mut last_call = String::new();
    while let Some(id) = ids.next().await {
        last_call = id?;
    }
    let spawn_secs = t.elapsed().as_secs_f64();
    let app_id = APP.app_id().unwrap_or_default();

    // Logged in, the pages.
    let (status, head, _) = http(
        "POST",
        &format!("{dashboard}/login"),
        "",
        &format!("token_id={id}&token_secret={secret}&next=/apps"),
    );
    assert_eq!(status, 303, "login: {head}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .unwrap_or_default()
        .to_owned();
    let n = 20;
    let apps_page = time_page(&format!("{dashboard}/apps"), &cookie, n);
    let app_page = time_page(&format!("{dashboard}/apps/{app_id}"), &cookie, n);
    let call_page = time_page(&format!("{dashboard}/calls/{last_call}"), &cookie, n);

    // A printed line's way to the live log.
    let rest = dashboard.trim_start_matches("http://");
    let mut stream = TcpStream::connect(rest).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET /apps/{app_id}/logs HTTP/1.1\r\nHost: {rest}\r\nCookie: {cookie}\r\n\r\n"
    )
    .expect("sent");
    let mut events = BufReader::new(stream);
    let mut delays = Vec::new();
    for tag in 0..10u64 {
        shout.remote(tag).await?;
        let mut line = String::new();
        let want = format!("shout {tag} ");
        loop {
            line.clear();
            if events.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            if let Some(i) = line.find(&want) {
                let printed: i64 = line[i + want.len()..]
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
                    .and_then(|d| d.parse().ok())
                    .unwrap_or(0);
                delays.push((chrono::Utc::now().timestamp_millis() - printed) as f64);
                break;
            }
        }
    }
    run.stop().await?;
    delays.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({
            "dashboard_apps": apps,
            "dashboard_calls": calls,
            "spawn_per_s": round(calls as f64 / spawn_secs),
            "apps_page_ms": round(apps_page.0), "apps_page_worst_ms": round(apps_page.1),
            "app_page_ms": round(app_page.0), "app_page_worst_ms": round(app_page.1),
            "call_page_ms": round(call_page.0), "call_page_worst_ms": round(call_page.1),
            "live_log_ms": delays.get(delays.len() / 2).copied().unwrap_or(-1.0),
            "live_log_worst_ms": delays.last().copied().unwrap_or(-1.0),
        })
    );
    Ok(())
}
