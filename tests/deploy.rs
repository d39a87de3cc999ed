//! End-to-end tests of deployed apps: a real `modal server` (SQLite, and PostgreSQL when
//! `MODAL_TEST_POSTGRES_URL` is set), real deploys, lookups from a second program, restarts.

mod support;

use std::time::Duration;

use modal_tests::{assert_field, field, show};
use support::{CALLER, DEPLOYED, DeployedApp, Server};

fn crash_and_resume(server: &mut Server) {
    server.deploy(&[]);
    let out = server.caller(&["spawn-slow", "3"]);
    assert!(out.status.success(), "{}", show(&out));
    let call = field(&out, "call").expect("a call id");
    // A class method's spawned call is stored with its method.
    let out = server.caller(&["spawn-method", "3"]);
    assert!(out.status.success(), "{}", show(&out));
    let method_call = field(&out, "call").expect("a call id");
    std::thread::sleep(Duration::from_millis(500));
    server.kill9();
    assert!(
        server.launch(),
        "modal server did not restart: {}",
        server.log()
    );
    let out = server.caller(&["get", &call]);
    assert!(out.status.success(), "{}", show(&out));
    assert_field(&out, "result", "slept 3");
    let out = server.caller(&["get", &method_call]);
    assert!(out.status.success(), "{}", show(&out));
    assert_field(&out, "result", "napped 3");
}

#[test]
fn a_get_rides_out_a_server_restart_and_gives_up_after_its_budget() {
    let mut server = support::start("reconnect", None);
    server.deploy(&[]);
    let out = server.caller(&["spawn-slow", "4"]);
    assert!(out.status.success(), "{}", show(&out));
    let call = field(&out, "call").expect("a call id");
    // A second program waits for the result while the server goes down and comes back.
    let waiting = server
        .command(CALLER, &["get", &call])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    std::thread::sleep(Duration::from_millis(800));
    server.kill9();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        server.launch(),
        "modal server did not restart: {}",
        server.log()
    );
    let out = waiting.wait_with_output().expect("waits");
    assert!(out.status.success(), "{}", show(&out));
    assert_field(&out, "result", "slept 4");
    // With the server gone for good, a get gives up after its budget and says how to wait longer.
    let out = server.caller(&["spawn-slow", "30"]);
    assert!(out.status.success(), "{}", show(&out));
    let call = field(&out, "call").expect("a call id");
    let waiting = server
        .command(CALLER, &["get", &call])
        .env("MODAL_RECONNECT_TIMEOUT", "2")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    std::thread::sleep(Duration::from_millis(800));
    server.kill9();
    let out = waiting.wait_with_output().expect("waits");
    assert!(!out.status.success(), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("could not be reached") && stderr.contains("MODAL_RECONNECT_TIMEOUT"),
        "{}",
        show(&out)
    );
}

#[test]
fn a_spawned_call_survives_a_server_crash() {
    let mut server = support::start("crash", None);
    crash_and_resume(&mut server);
}

#[test]
fn a_spawned_call_survives_a_server_crash_on_postgres() {
    let Some(url) = modal_tests::postgres_url("the crash test on PostgreSQL") else {
        return;
    };
    let schema = modal_tests::PgSchema::create(&url, "e2e");
    let mut server = support::start("crash-pg", Some(schema.store_url()));
    crash_and_resume(&mut server);
    drop(server);
}

#[test]
fn a_second_program_looks_up_the_deployed_app_and_redeploys_keep_its_id() {
    let server = support::start("lookup", None);
    let first = server.deploy(&[]);
    let out = server.caller(&["square", "7"]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(field(&out, "square").as_deref(), Some("49"));
    // A handle declared with other types than the deployed function's is refused before any
    // input is sent (bincode would decode wrong numbers silently).
    let out = server.caller(&["wrong-types", "7"]);
    assert!(!out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`square` in app `e2e-deployed` takes `(i64,)` and returns `i64`, but this handle is a `Function<(u64,), u64>`"),
        "{}",
        show(&out)
    );
    let second = server.deploy(&["--tag", "v2"]);
    assert!(
        first.starts_with("ap-") && first == second,
        "app id changed: {first} then {second}"
    );
    let out = server.modal(&["app", "history", "e2e-deployed", "--json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\"version\":2") && text.contains("\"version\":1"),
        "{}",
        show(&out)
    );
    assert!(text.contains("\"tag\":\"v2\""), "{}", show(&out));
    // The same code deployed under another name runs there too.
    server.deploy(&["--name", "e2e-renamed"]);
    let out = server.caller(&["square-in", "e2e-renamed", "6"]);
    assert!(out.status.success(), "{}", show(&out));
    assert_field(&out, "square", "36");
}

#[test]
fn a_period_schedule_fires_and_stops_with_the_app() {
    let server = support::start("schedule", None);
    server.deploy(&[]);
    // A 2 s schedule: two ticks come within 20 s however slow the machine is.
    modal_tests::wait_until(Duration::from_secs(20), || server.ticks() >= 2);
    let before = server.ticks();
    assert!(before >= 2, "a 2 s schedule fired {before} times in 20 s");
    let out = server.modal(&["app", "stop", "e2e-deployed"]);
    assert!(out.status.success(), "{}", show(&out));
    let at_stop = server.ticks();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        server.ticks(),
        at_stop,
        "the schedule fired after the app stopped"
    );
    assert!(
        server.container_ids().is_empty(),
        "containers left after app stop: {:?}",
        server.container_ids()
    );
}

#[test]
fn a_wrong_token_is_refused() {
    let server = support::start("token", None);
    server.deploy(&[]);
    let out = server
        .command(CALLER, &["square", "3"])
        .env("MODAL_TOKEN_ID", "ak-doesnotexist")
        .env("MODAL_TOKEN_SECRET", "as-wrong")
        .output()
        .expect("runs");
    assert!(!out.status.success(), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unauthenticated") && stderr.contains("modal token new"),
        "{}",
        show(&out)
    );
}

#[test]
fn secrets_reach_only_the_functions_that_ask_and_never_the_logs() {
    let server = support::start("secret", None);
    let value = "hunter2-e2e-value";
    let out = server.modal(&[
        "secret",
        "create",
        "e2e-secret",
        "--force",
        &format!("API_KEY={value}"),
    ]);
    assert!(out.status.success(), "{}", show(&out));
    server.deploy(&[]);
    let out = server.caller(&["secret", "API_KEY"]);
    assert_field(&out, "len", &format!("Some({})", value.len()));
    let out = server.caller(&["no-secret", "API_KEY"]);
    assert_field(&out, "len", "None");
    // A secret given inline reaches its function, and is kept sealed in the store.
    let out = server.caller(&["dict-secret", "DICT_KEY"]);
    let dict_value = "dict-value-e2e-sealed";
    assert_field(&out, "len", &format!("Some({})", dict_value.len()));
    for entry in std::fs::read_dir(server.dir.join("data")).expect("a data directory") {
        let path = entry.expect("an entry").path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap_or_default();
            assert!(
                !bytes
                    .windows(dict_value.len())
                    .any(|w| w == dict_value.as_bytes()),
                "{} holds an inline secret's value in clear",
                path.display()
            );
        }
    }
    let mut seen = String::new();
    for args in [
        &["app", "logs", "e2e-deployed", "-n", "5000"][..],
        &["secret", "list"],
        &["secret", "list", "--json"],
    ] {
        let out = server.modal(args);
        seen.push_str(&String::from_utf8_lossy(&out.stdout));
        seen.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    seen.push_str(&std::fs::read_to_string(server.dir.join("server.log")).unwrap_or_default());
    assert!(seen.contains("API_KEY"), "listings show key names");
    assert!(
        !seen.contains(value) && !seen.contains(dict_value),
        "a secret's value appeared in logs or listings"
    );
}

#[test]
fn recreate_leaves_no_container_of_the_old_version() {
    let server = support::start("recreate", None);
    server.deploy(&[]);
    let out = server.caller(&["spawn-linger", "300"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        modal_tests::wait_until(Duration::from_secs(30), || !server
            .container_ids()
            .is_empty()),
        "a container should run the spawned call"
    );
    let old = server.container_ids();
    server.deploy(&["--strategy", "recreate"]);
    let alive: Vec<&String> = old
        .iter()
        .filter(|id| modal_tests::container(id).is_some())
        .collect();
    assert!(
        alive.is_empty(),
        "containers of the old version still run after a recreate deploy: {alive:?}"
    );
}

#[test]
fn a_detached_run_keeps_going_until_app_stop() {
    let server = support::start("detach", None);
    // A run of a function without arguments; the app's schedule keeps it busy afterwards.
    let out = server.run(DEPLOYED, &["run", "--detach", "square_of_two"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("keeps running detached"),
        "{}",
        show(&out)
    );
    let out = server.modal(&["app", "list", "--json"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ephemeral (detached)"),
        "{}",
        show(&out)
    );
    assert!(
        modal_tests::wait_until(Duration::from_secs(10), || server.ticks() >= 1),
        "the detached app's schedule should keep firing after its client exited"
    );
    let out = server.modal(&["app", "stop", "e2e-deployed"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        server.container_ids().is_empty(),
        "containers left after app stop: {:?}",
        server.container_ids()
    );
    let out = server.modal(&["app", "list", "--json"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"stopped\""),
        "{}",
        show(&out)
    );
}
