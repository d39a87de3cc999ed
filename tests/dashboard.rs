//! End-to-end tests of the dashboard over HTTP (the `dashboard` program): the embedded one
//! behind the key in the URL the program prints (pages with the right numbers, a failed call's
//! error and backtrace, log lines as server-sent events, stopping the app from its page), and
//! `modal server`'s behind a login with a token; and the same numbers from code
//! (`Function::get_current_stats`, `update_autoscaler`, `modal function stats`).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use modal_tests::show;
use support::{MODAL, Server};

const DASHBOARD: &str = env!("CARGO_BIN_EXE_dashboard");
const AUTOSCALER: &str = env!("CARGO_BIN_EXE_autoscaler");

/// An HTTP answer.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    /// The `name=value` of its Set-Cookie header.
    fn cookie(&self) -> Option<String> {
        self.header("set-cookie")
            .and_then(|c| c.split(';').next().map(str::to_owned))
    }
}

/// `http://host:port` and the rest of `url`.
fn split(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    (host.to_owned(), format!("/{path}"))
}

/// One request (HTTP/1.1, the connection closed after it).
fn http(method: &str, url: &str, cookie: Option<&str>, form: Option<&str>) -> Answer {
    let (host, path) = split(url);
    let mut stream = TcpStream::connect(&host).expect("the dashboard listens");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if let Some(c) = cookie {
        req.push_str(&format!("Cookie: {c}\r\n"));
    }
    let body = form.unwrap_or("");
    if form.is_some() {
        req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(req.as_bytes()).expect("sent");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("an answer");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// The value of the hidden `csrf` field of a page.
fn csrf(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the page has a stop form")
        .to_owned()
}

#[test]
fn the_embedded_dashboard_shows_the_run_follows_its_logs_and_stops_it() {
    let (mut child, mut out) = modal_tests::spawn_embedded(DASHBOARD, &["run", "show"]);
    let [url, call]: [String; 2] = modal_tests::read_keys(&mut out, &["url", "call"])
        .try_into()
        .expect("two values");
    let (host, path) = split(&url);
    let base = format!("http://{host}");
    let app_path = path.split('?').next().unwrap_or_default().to_owned();
    assert!(app_path.starts_with("/apps/ap-"), "{url}");

    // Without the key: refused, saying where the key is.
    let refused = http("GET", &format!("{base}{app_path}"), None, None);
    assert_eq!(refused.status, 401);
    assert!(refused.body.contains("Open the link the program printed"));
    // With it: a cookie, and back to the page.
    let entry = http("GET", &url, None, None);
    assert_eq!(entry.status, 303, "{}", entry.head);
    assert_eq!(entry.header("location").as_deref(), Some(app_path.as_str()));
    let set = entry.header("set-cookie").unwrap_or_default();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = entry.cookie().expect("a cookie");

    let page = http("GET", &format!("{base}{app_path}"), Some(&cookie), None);
    assert_eq!(page.status, 200);
    let row = |tag: &str| {
        page.body
            .split(&format!("data-function=\"{tag}\""))
            .nth(1)
            .and_then(|r| r.split("</tr>").next())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        row("square").contains("<td class=\"num succeeded\">20</td>"),
        "{}",
        row("square")
    );
    assert!(row("explode").contains(">1</span>"), "{}", row("explode"));
    let apps = http("GET", &format!("{base}/apps"), Some(&cookie), None);
    assert!(apps.body.contains("dashboard") && apps.body.contains("ephemeral"));

    // The failed call: its error and the backtrace's frame in the function.
    let failed = http("GET", &format!("{base}/calls/{call}"), Some(&cookie), None);
    assert_eq!(failed.status, 200);
    assert!(
        failed.body.contains("exploded: on purpose"),
        "{}",
        failed.body
    );
    assert!(failed.body.contains("panicked"));
    assert!(failed.body.contains("Attempts"), "each attempt is listed");
    assert!(
        failed.body.contains("dashboard.rs:"),
        "the location or a frame"
    );

    // Log lines as they are printed.
    let (_, logs_path) = split(&format!("{base}{app_path}/logs"));
    let mut stream = TcpStream::connect(&host).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {logs_path} HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .expect("sent");
    let started = Instant::now();
    let mut events = BufReader::new(stream);
    let mut line = String::new();
    let mut seen = false;
    while started.elapsed() < Duration::from_secs(10) {
        line.clear();
        if events.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if line.starts_with("data:") && line.contains("\"data\":\"marker ") {
            seen = true;
            break;
        }
    }
    assert!(seen, "a printed line arrived as an event within 10 s");

    // Stopping: a form without the page's token is refused; the page's own stops the app.
    let forged = http(
        "POST",
        &format!("{base}{app_path}/stop"),
        Some(&cookie),
        Some("csrf=forged"),
    );
    assert_eq!(forged.status, 403);
    let token = csrf(&page.body);
    let stopped = http(
        "POST",
        &format!("{base}{app_path}/stop"),
        Some(&cookie),
        Some(&format!("csrf={token}")),
    );
    assert_eq!(stopped.status, 200, "{}", stopped.body);
    assert!(
        stopped.body.contains("s-stopped"),
        "the stop answers with the page, which says it stopped"
    );
    assert!(
        stopped.body.contains("Ended containers") && stopped.body.contains("its app stopped"),
        "the ended containers say why"
    );
    let ended = modal_tests::wait_until(Duration::from_secs(30), || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
    if !ended {
        let _ = child.kill();
    }
    let _ = child.wait();
    assert!(ended, "the program ends once its app is stopped");
}

#[test]
fn modal_server_s_dashboard_asks_for_a_login_with_a_token() {
    let s = Server::start(MODAL, "dashboard-login", None, true);
    let printed = s.printed();
    let base = printed
        .lines()
        .find_map(|l| l.strip_prefix("dashboard at "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no dashboard line in: {printed}"))
        .to_owned();
    let to_login = http("GET", &format!("{base}/apps"), None, None);
    assert_eq!(to_login.status, 303);
    assert_eq!(
        to_login.header("location").as_deref(),
        Some("/login?next=/apps")
    );
    let wrong = http(
        "POST",
        &format!("{base}/login"),
        None,
        Some("token_id=ak-nope&token_secret=as-nope&next=/apps"),
    );
    assert_eq!(wrong.status, 401);
    assert!(
        wrong
            .body
            .contains("That token is not valid on this server")
    );
    let (id, secret) = s.token();
    let right = http(
        "POST",
        &format!("{base}/login"),
        None,
        Some(&format!("token_id={id}&token_secret={secret}&next=/apps")),
    );
    assert_eq!(right.status, 303, "{}", right.body);
    let cookie = right.cookie().expect("a session");
    assert_eq!(
        http("GET", &format!("{base}/apps"), Some(&cookie), None).status,
        200
    );
    // Secrets are listed by name and keys, never by value.
    let made = s.modal(&[
        "secret",
        "create",
        "dash-secret",
        "API_KEY=sekrit-value-123",
    ]);
    assert!(made.status.success(), "{}", show(&made));
    let objects = http("GET", &format!("{base}/objects"), Some(&cookie), None);
    assert_eq!(objects.status, 200);
    assert!(objects.body.contains("dash-secret") && objects.body.contains("API_KEY"));
    assert!(
        !objects.body.contains("sekrit-value-123"),
        "a secret's value on a page"
    );

    // An app running there: `modal app dashboard` names its page, which the session opens.
    let mut child = s
        .command(DASHBOARD, &["run", "show"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("runs");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let printed = modal_tests::read_keys(&mut out, &["url"]);
    assert!(
        printed[0].starts_with(&format!("{base}/apps/ap-")),
        "{printed:?}"
    );
    let link = s.modal(&["app", "dashboard", "dashboard"]);
    assert!(link.status.success(), "{}", show(&link));
    let url = String::from_utf8_lossy(&link.stdout).trim().to_owned();
    assert!(url.starts_with(&format!("{base}/apps/ap-")), "{url}");
    let page = http("GET", &url, Some(&cookie), None);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("s-ephemeral") && page.body.contains("square"));
    let stats = s.modal(&["function", "stats", "dashboard", "square", "--json"]);
    assert!(stats.status.success(), "{}", show(&stats));
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).expect("JSON");
    assert_eq!(stats["succeeded"], 20);
    assert_eq!(stats["backlog"], 0);
    drop(child.stdin.take());
    let _ = child.wait();
}

#[test]
fn the_autoscaler_follows_update_autoscaler_and_the_stats_say_so() {
    let out = modal_tests::run_bounded(
        AUTOSCALER,
        &["run", "tune"],
        &[("MODAL_CONFIG_PATH", "/nonexistent/modal-config.toml")],
        Duration::from_secs(180),
    );
    assert!(out.status.success(), "{}", show(&out));
    // Two warm containers without a call, then none once the minimum is lowered.
    modal_tests::assert_field(&out, "warm", "2");
    modal_tests::assert_field(&out, "cold", "0");
    let refused = modal_tests::field(&out, "refused").unwrap_or_default();
    assert!(
        refused.contains("max_containers must be at least 1"),
        "{refused}"
    );
    modal_tests::assert_field(&out, "mapped", "8");
    let spare: u32 = modal_tests::field(&out, "spare")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!(
        spare >= 2,
        "buffer_containers = 2 kept {spare} spare containers\n{}",
        show(&out)
    );
    modal_tests::assert_field(&out, "succeeded", "8");
}
