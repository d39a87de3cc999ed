//! End-to-end security tests against a real `modal server` and a real embedded control plane: what
//! a container's token cannot do, what a request without a valid token gets (refused before its
//! body is read), the bootstrap secret behind the first token, oversized requests, and TLS (a
//! self-signed server used by those that trust its certificate, refused by those that do not).

mod support;

use std::collections::HashMap;
use std::process::Output;
use std::time::Duration;

use modal_proto::v1 as pb;
use modal_tests::show;
use support::DeployedApp;
use tonic::Request;
use tonic::transport::Channel;

const INTRUDER: &str = env!("CARGO_BIN_EXE_intruder");

fn expect(report: &HashMap<String, String>, name: &str, code: &str, out: &Output) {
    assert_eq!(
        report.get(name).map(String::as_str),
        Some(code),
        "{name}: {}",
        show(out)
    );
}

#[test]
fn a_container_cannot_act_beyond_its_own_app() {
    let server = support::start("intruder", None);
    server.deploy(&[]);
    let out = server
        .command(INTRUDER, &[])
        .env("E2E_VICTIM_APP", "e2e-deployed")
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", show(&out));
    let r = modal_tests::fields(&out); // NAME: CODE lines of its report
    assert!(
        r.get("victim_function_id")
            .is_some_and(|id| id.starts_with("fu-")),
        "the user's token finds the victim's function: {}",
        show(&out)
    );
    // The container's token works for its own app: the refusals below are about scope.
    expect(&r, "own_function_get", "Ok", &out);
    for name in [
        "token_create",
        "victim_app_stop",
        "victim_function_get",
        "victim_function_call",
        "victim_logs",
        "secret_list",
        "container_list",
    ] {
        expect(&r, name, "PermissionDenied", &out);
    }
    expect(&r, "no_token_app_list", "Unauthenticated", &out);
    expect(&r, "wrong_secret_app_list", "Unauthenticated", &out);
    // The victim is untouched.
    let out = server.caller(&["square", "4"]);
    assert!(out.status.success(), "{}", show(&out));
}

#[test]
fn the_embedded_control_plane_refuses_requests_without_its_token() {
    let dir = std::env::temp_dir().join(format!("modal-embedded-auth-{}", std::process::id()));
    let out = std::process::Command::new(INTRUDER)
        .env("MODAL_CONFIG_PATH", dir.join("absent.toml"))
        .env_remove("MODAL_SERVER_URL")
        .env_remove("MODAL_TOKEN_ID")
        .env_remove("MODAL_TOKEN_SECRET")
        .env_remove("E2E_VICTIM_APP")
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", show(&out));
    let r = modal_tests::fields(&out); // NAME: CODE lines of its report
    // Another process on the machine (here, the container) without the run's token gets nothing.
    expect(&r, "no_token_app_list", "Unauthenticated", &out);
    expect(&r, "wrong_secret_app_list", "Unauthenticated", &out);
    expect(&r, "token_create", "PermissionDenied", &out);
    expect(&r, "secret_list", "PermissionDenied", &out);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

async fn api(url: &str) -> pb::client_api_client::ClientApiClient<Channel> {
    let channel = Channel::from_shared(url.to_owned())
        .expect("a URL")
        .connect()
        .await
        .expect("connects");
    pb::client_api_client::ClientApiClient::new(channel)
        .max_encoding_message_size(usize::MAX)
        .max_decoding_message_size(usize::MAX)
}

/// An `AppCreate` whose description is `bytes` long, with `token` (id, secret) if any.
fn app_create(
    name: &str,
    bytes: usize,
    token: Option<(&str, &str)>,
) -> Request<pb::AppCreateRequest> {
    let mut req = Request::new(pb::AppCreateRequest {
        name: name.to_owned(),
        description: "x".repeat(bytes),
        state: pb::AppState::Ephemeral as i32,
        ..Default::default()
    });
    if let Some((id, secret)) = token {
        req.metadata_mut()
            .insert("x-modal-token-id", id.parse().expect("ascii"));
        req.metadata_mut()
            .insert("x-modal-token-secret", secret.parse().expect("ascii"));
    }
    req
}

#[test]
fn requests_without_a_valid_token_are_refused_before_their_body_is_read() {
    let server = support::start("no-token", None);
    let rt = runtime();
    rt.block_on(async {
        let mut api = api(&server.url()).await;
        // Far over every limit: a refusal for size would say `OutOfRange`.
        let big = 64 << 20;
        let none = api
            .app_create(app_create("e2e-sneaky", big, None))
            .await
            .unwrap_err();
        assert_eq!(none.code(), tonic::Code::Unauthenticated, "{none:?}");
        assert!(none.message().contains("modal token new"), "{none:?}");
        let wrong = api
            .app_create(app_create(
                "e2e-sneaky",
                big,
                Some(("ak-doesnotexist", "as-wrong")),
            ))
            .await
            .unwrap_err();
        assert_eq!(wrong.code(), tonic::Code::Unauthenticated, "{wrong:?}");
    });
    let out = server.modal(&["app", "list", "--json"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("e2e-sneaky"),
        "a refused request created an app: {}",
        show(&out)
    );
}

#[test]
fn an_oversized_request_is_refused_and_the_server_does_not_keep_it() {
    let server = support::start("oversized", None);
    let pid = server.child.as_ref().expect("a server").id();
    let (id, secret) = server.token();
    let rt = runtime();
    let before = modal_tests::rss_kib(pid);
    assert!(before > 0, "the server's memory can be read");
    let rounds = 24;
    let size = 48 << 20;
    rt.block_on(async {
        let mut api = api(&server.url()).await;
        for _ in 0..rounds {
            let err = api
                .app_create(app_create("e2e-big", size, Some((&id, &secret))))
                .await
                .unwrap_err();
            assert_eq!(err.code(), tonic::Code::OutOfRange, "{err:?}");
            assert!(
                err.message().contains("AppCreate") && err.message().contains("limit of 4 MiB"),
                "{err:?}"
            );
        }
        // The server still answers.
        let ok = api
            .app_create(app_create("e2e-small", 10, Some((&id, &secret))))
            .await;
        assert!(ok.is_ok(), "{ok:?}");
    });
    let after = modal_tests::rss_kib(pid);
    let grown_mib = after.saturating_sub(before) / 1024;
    eprintln!("server RSS {before} KiB -> {after} KiB");
    // The requests total over 1 GiB; a server that buffered them would have grown by that much.
    assert!(
        grown_mib < 128,
        "the server grew by {grown_mib} MiB ({before} KiB -> {after} KiB) over {rounds} refused requests of {} MiB",
        size >> 20
    );
}

/// `modal token new --print` with the bootstrap secret looked for in `data_dir`, with the
/// server's token (`with_token`) or none.
fn token_new(
    server: &modal_tests::server::Server,
    data_dir: &std::path::Path,
    with_token: bool,
) -> Output {
    let mut cmd = server.command(
        support::MODAL,
        &["token", "new", "--server", &server.url(), "--print"],
    );
    cmd.arg("--data-dir").arg(data_dir);
    if !with_token {
        cmd.env("MODAL_CONFIG_PATH", server.dir.join("empty.toml"));
    }
    cmd.output().expect("runs")
}

#[test]
fn the_first_token_needs_the_bootstrap_secret_which_works_once() {
    let mut server = modal_tests::server::Server::start(support::MODAL, "bootstrap", None, false);
    let secret = server.dir.join("data").join("bootstrap.secret");
    assert!(
        !secret.exists(),
        "the bootstrap secret is removed once it made the first token"
    );
    // A restart with tokens writes none.
    server.kill9();
    assert!(server.launch(), "{}", server.log());
    assert!(
        !secret.exists(),
        "a server with tokens wrote a bootstrap secret"
    );
    // Asked for one while tokens exist, it prints it instead: containers may read its files.
    server.kill9();
    server.extra_args = vec!["--new-bootstrap-secret".into()];
    assert!(server.launch(), "{}", server.log());
    assert!(
        !secret.exists(),
        "the secret was written where containers could read it"
    );
    let printed = server.printed();
    let new_secret = printed
        .split_whitespace()
        .find_map(|w| w.strip_prefix("MODAL_BOOTSTRAP_SECRET="))
        .expect("the server prints the secret")
        .to_owned();
    // Without a token and without the secret: refused, saying where the secret is.
    let elsewhere = server.dir.join("not-the-data-dir");
    let out = token_new(&server, &elsewhere, false);
    assert!(!out.status.success(), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bootstrap secret") && stderr.contains("--data-dir"),
        "{}",
        show(&out)
    );
    // A user with a token creates more without the secret.
    let out = token_new(&server, &elsewhere, true);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("MODAL_TOKEN_ID=ak-"),
        "{}",
        show(&out)
    );
    // The new secret makes one token, then is spent.
    let with_secret = || {
        server
            .command(
                support::MODAL,
                &["token", "new", "--server", &server.url(), "--print"],
            )
            .env("MODAL_CONFIG_PATH", server.dir.join("empty.toml"))
            .env("MODAL_BOOTSTRAP_SECRET", &new_secret)
            .output()
            .expect("runs")
    };
    let first = with_secret();
    assert!(first.status.success(), "{}", show(&first));
    let second = with_secret();
    assert!(!second.status.success(), "{}", show(&second));
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("no bootstrap secret"),
        "{}",
        show(&second)
    );
}

const WALLS: &str = env!("CARGO_BIN_EXE_walls");

/// `modal server --tls-self-signed` without its built-in worker, a `modal worker` and clients
/// that trust its certificate because `modal token new` saved it in their config file: a
/// deployed function runs end to end over https, and so do the functions of an app run by a
/// program, with and (through the worker's bridge) without a network of their own.
#[test]
fn a_worker_and_a_client_over_https_run_functions_end_to_end() {
    use std::os::unix::fs::PermissionsExt;
    let server = modal_tests::server::Server::start_tls(support::MODAL, "tls", false);
    assert!(server.url().starts_with("https://"), "{}", server.url());
    let key = server.dir.join("data").join("tls").join("key.pem");
    let mode = std::fs::metadata(&key)
        .expect("the key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the key is its owner's alone");
    let config = std::fs::read_to_string(server.dir.join("config.toml")).unwrap_or_default();
    assert!(
        config.contains("server_cert") && config.contains("BEGIN CERTIFICATE"),
        "`modal token new` saves the certificate: {config}"
    );
    assert!(
        server.printed().contains("https://127.0.0.1:"),
        "{}",
        server.printed()
    );
    let out = server.modal(&["secret", "create", "e2e-secret", "API_KEY=placeholder"]);
    assert!(out.status.success(), "{}", show(&out));
    let mut worker = server.start_worker();
    server.deploy(&[]);
    let out = server.caller(&["square", "7"]);
    assert!(out.status.success(), "{}", show(&out));
    modal_tests::assert_field(&out, "square", "49");
    if modal_tests::runtime_override().is_none() {
        // oci containers: one on the host's network, one reaching the control plane only
        // through its worker's socket (the TLS name is the URL's host all the same).
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a listener");
        let addr = listener.local_addr().expect("its address").to_string();
        let out = server.run(WALLS, &["run", "network", "--addr", &addr]);
        assert!(out.status.success(), "{}", show(&out));
        modal_tests::assert_field(&out, "open", "connected");
        let blocked = modal_tests::field(&out, "blocked").unwrap_or_default();
        assert!(
            blocked.contains("returned an error"),
            "the bridged container ran its function: {}",
            show(&out)
        );
    }
    let _ = worker.kill();
    let _ = worker.wait();
    // The certificate is made once: a restart serves the same one.
    let before = std::fs::read_to_string(server.cert_path()).expect("the certificate");
    let mut server = server;
    server.kill9();
    assert!(server.launch(), "{}", server.log());
    let after = std::fs::read_to_string(server.cert_path()).expect("the certificate");
    assert_eq!(before, after, "a restart made a new certificate");
    let out = server.modal(&["app", "list", "--json"]);
    assert!(out.status.success(), "{}", show(&out));
}

/// A `modal` command with the server's URL and token but no certificate saved (and `env`).
fn untrusting(
    server: &modal_tests::server::Server,
    url: &str,
    exe: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let (id, secret) = server.token();
    let mut cmd = server.command(exe, args);
    cmd.env("MODAL_CONFIG_PATH", server.dir.join("empty.toml"))
        .env("MODAL_SERVER_URL", url)
        .env("MODAL_TOKEN_ID", id)
        .env("MODAL_TOKEN_SECRET", secret)
        .env("MODAL_RECONNECT_TIMEOUT", "5");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("runs")
}

/// What a client, a program and a worker that do not trust a self-signed server's certificate
/// are told; and a plain `http://` client of a TLS server.
#[test]
fn clients_and_workers_without_the_certificate_are_refused_and_told_what_to_do() {
    let server = modal_tests::server::Server::start_tls(support::MODAL, "tls-untrusted", false);
    let url = server.url();
    let told = |out: &Output, what: &str| {
        assert!(!out.status.success(), "{what}: {}", show(out));
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            said.contains("certificate is not trusted")
                && said.contains(&format!("modal token new --server {url}"))
                && said.contains("MODAL_SERVER_CERT=PATH"),
            "{what}: {}",
            show(out)
        );
    };
    let out = untrusting(&server, &url, support::MODAL, &["app", "list"], &[]);
    told(&out, "modal app list");
    let out = untrusting(&server, &url, support::CALLER, &["square", "3"], &[]);
    told(&out, "a program");
    // A worker without the certificate leaves at once, saying why.
    let out = modal_tests::run_bounded(
        support::MODAL,
        &["worker", "--server", &url],
        &[
            (
                "MODAL_CONFIG_PATH",
                &server.dir.join("empty.toml").to_string_lossy(),
            ),
            ("MODAL_SERVER_CERT", ""),
            ("MODAL_SERVER_CERT_PEM", ""),
        ],
        Duration::from_secs(60),
    );
    told(&out, "modal worker");
    // Given the certificate, the same client is let in.
    let cert = server.cert_path();
    let cert = cert.to_string_lossy();
    let out = untrusting(
        &server,
        &url,
        support::MODAL,
        &["app", "list"],
        &[("MODAL_SERVER_CERT", &cert)],
    );
    assert!(out.status.success(), "{}", show(&out));
    // A plain client of the TLS server is told to use https, at once (not retried).
    let plain = url.replace("https://", "http://");
    let out = untrusting(&server, &plain, support::MODAL, &["app", "list"], &[]);
    assert!(!out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "serves TLS, and this connection is plain: connect with {url}"
        )),
        "{}",
        show(&out)
    );
}

/// A TLS client of a plain server is told so.
#[test]
fn an_https_client_of_a_plain_server_is_told_it_does_not_speak_tls() {
    let server = modal_tests::server::Server::start(support::MODAL, "tls-plain", None, false);
    let https = server.url().replace("http://", "https://");
    let out = untrusting(&server, &https, support::MODAL, &["app", "list"], &[]);
    assert!(!out.status.success(), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("does not speak TLS") || stderr.contains("is it a plain http:// server"),
        "{}",
        show(&out)
    );
}
