//! End-to-end tests: the real fixture binary, real container processes, bounded waits.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use modal_tests::{assert_field, fields, show};

const FIXTURE: &str = env!("CARGO_BIN_EXE_fixture");
const OTHER: &str = env!("CARGO_BIN_EXE_other");

/// Runs the fixture with `args` (bounded by `limit`) and returns its output.
fn run(args: &[&str], env: &[(&str, &str)], limit: Duration) -> Output {
    modal_tests::run_bounded(FIXTURE, args, env, limit)
}

/// Starts `run long --containers n` and returns the child and its app id, once the app runs.
fn start_long(n: u32, stderr: Stdio) -> (std::process::Child, String) {
    let mut child = Command::new(FIXTURE)
        .args(["run", "long", "--containers", &n.to_string()])
        .env_remove("MODAL_SERVER_URL")
        .env("MODAL_CONFIG_PATH", "/nonexistent/modal-config.toml")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("fixture starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let app_id = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("app: ").map(str::to_owned))
        .expect("the fixture prints its app id");
    // The rest of its output is read too: a closed pipe would fail its next `println!`.
    std::thread::spawn(move || lines.for_each(drop));
    (child, app_id)
}

#[test]
fn hello_example_prints_the_sum_of_squares() {
    let out = Command::new(env!("CARGO"))
        .args(["run", "-q", "-p", "modal-examples", "--example", "hello"])
        .env_remove("MODAL_SERVER_URL")
        .env("MODAL_CONFIG_PATH", "/nonexistent/modal-config.toml")
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().any(|l| l == "332833500"), "{}", show(&out));
    assert!(stdout.contains("square.remote(7) = 49"), "{}", show(&out));
    assert!(stdout.contains("square.spawn(12) = 144"), "{}", show(&out));
}

/// A binary whose digest nobody cached: the app starts while it is hashed, its functions are
/// published once it is known, and the first calls wait for that; the digest is then cached.
#[test]
fn the_first_run_of_a_new_binary_starts_before_it_is_hashed() {
    let cache = std::env::temp_dir().join(format!("modal-e2e-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let env = [("XDG_CACHE_HOME", cache.to_str().expect("utf-8"))];
    for round in ["first", "cached"] {
        let out = run(&["run", "hello_sum"], &env, Duration::from_secs(60));
        assert!(out.status.success(), "{round} run: {}", show(&out));
        assert_field(&out, "sum", "332833500");
        let cached = std::fs::read_dir(cache.join("modal-rs").join("binhash"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert!(cached >= 1, "{round} run: the digest is cached");
    }
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn sum_of_squares_through_map() {
    let out = run(&["run", "hello_sum"], &[], Duration::from_secs(60));
    assert!(out.status.success(), "{}", show(&out));
    assert_field(&out, "sum", "332833500");
}

#[test]
fn a_panic_returns_its_message_and_location() {
    let out = run(&["run", "panics"], &[], Duration::from_secs(60));
    assert!(out.status.success(), "{}", show(&out));
    let f = fields(&out);
    assert_eq!(
        f.get("kind").map(String::as_str),
        Some("Panic"),
        "{}",
        show(&out)
    );
    assert_eq!(
        f.get("message").map(String::as_str),
        Some("boom: kaboom"),
        "{}",
        show(&out)
    );
    let location = f.get("location").cloned().unwrap_or_default();
    assert!(
        location.starts_with("tests/src/bin/fixture.rs:"),
        "location {location:?}\n{}",
        show(&out)
    );
    assert_eq!(
        f.get("backtrace").map(String::as_str),
        Some("true"),
        "{}",
        show(&out)
    );
    // The panic also shows in the streamed logs, prefixed by the function.
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("[boom]"),
        "{}",
        show(&out)
    );
}

#[test]
fn a_panic_report_shows_the_users_frames_and_folds_the_rest() {
    // Both streams into one pipe, as on a terminal: each line must arrive whole.
    let (reader, writer) = std::io::pipe().expect("a pipe");
    let mut child = Command::new(FIXTURE)
        .args(["run", "panics"])
        .env_remove("MODAL_SERVER_URL")
        .env("MODAL_CONFIG_PATH", "/nonexistent/modal-config.toml")
        .env("RUST_BACKTRACE", "1")
        .stdout(writer.try_clone().expect("a second writer"))
        .stderr(writer)
        .spawn()
        .expect("fixture starts");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut { reader }, &mut text).expect("reads");
    assert!(child.wait().expect("exits").success(), "{text}");
    assert!(
        text.contains("[boom] stack backtrace (std, runtime and modal-rs frames folded"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("[boom]") && l.contains("__modal_impl_boom")),
        "the user's frame is shown: {text}"
    );
    assert!(
        text.contains("frames of std, the runtime or modal-rs)"),
        "{text}"
    );
    assert!(!text.contains("rust_begin_unwind"), "{text}");
    for line in text.lines().filter(|l| l.contains("[boom]")) {
        assert!(
            line.starts_with("[boom]"),
            "a line was split: {line:?}\n{text}"
        );
    }
    // The full trace is one variable away.
    let out = run(
        &["run", "panics"],
        &[("RUST_BACKTRACE", "full")],
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("rust_begin_unwind"),
        "{}",
        show(&out)
    );
}

#[test]
fn retries_succeed_on_the_third_attempt() {
    let out = run(&["run", "retries"], &[], Duration::from_secs(60));
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        fields(&out).get("result").map(String::as_str),
        Some("attempt 3 succeeded"),
        "{}",
        show(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("retry 1/2") && stderr.contains("retry 2/2"),
        "{}",
        show(&out)
    );
}

#[test]
fn a_timeout_stops_the_container() {
    let out = run(&["run", "timeout"], &[], Duration::from_secs(60));
    assert!(out.status.success(), "{}", show(&out));
    let f = fields(&out);
    assert_eq!(
        f.get("kind").map(String::as_str),
        Some("Timeout"),
        "{}",
        show(&out)
    );
    assert!(
        f.get("display")
            .is_some_and(|d| d.contains("timeout of 1 s")),
        "{}",
        show(&out)
    );
    assert_eq!(
        f.get("container gone").map(String::as_str),
        Some("true"),
        "{}",
        show(&out)
    );
}

#[test]
fn map_outputs_are_ordered_unless_asked_otherwise() {
    let out = run(&["run", "map_order"], &[], Duration::from_secs(90));
    assert!(out.status.success(), "{}", show(&out));
    let f = fields(&out);
    assert_eq!(
        f.get("ordered").map(String::as_str),
        Some("true"),
        "{}",
        show(&out)
    );
    assert_eq!(
        f.get("unordered complete").map(String::as_str),
        Some("true"),
        "{}",
        show(&out)
    );
    assert_eq!(
        f.get("unordered differs").map(String::as_str),
        Some("true"),
        "{}",
        show(&out)
    );
}

#[test]
fn no_container_outlives_a_killed_client() {
    let (mut child, app_id) = start_long(3, Stdio::null());
    let started = modal_tests::wait_until(Duration::from_secs(30), || {
        modal_tests::containers_of_app(&app_id).len() == 3
    });
    let pids: Vec<i32> = modal_tests::containers_of_app(&app_id)
        .iter()
        .map(|c| c.pid)
        .collect();
    child.kill().expect("SIGKILL the client");
    let _ = child.wait();
    assert!(
        started,
        "three containers should have started, saw {pids:?}"
    );
    let gone = modal_tests::wait_until(Duration::from_secs(5), || {
        modal_tests::containers_of_app(&app_id).is_empty()
    });
    let left: Vec<i32> = modal_tests::containers_of_app(&app_id)
        .iter()
        .map(|c| c.pid)
        .collect();
    for pid in &left {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(
        gone,
        "containers {left:?} outlived the killed client by more than 5 s"
    );
}

#[test]
fn ctrl_c_stops_the_app_and_its_containers() {
    let (mut child, app_id) = start_long(2, Stdio::piped());
    let started = modal_tests::wait_until(Duration::from_secs(30), || {
        modal_tests::containers_of_app(&app_id).len() == 2
    });
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let exited = modal_tests::wait_until(Duration::from_secs(10), || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
    let status = child.try_wait().ok().flatten();
    if !exited {
        let _ = child.kill();
    }
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    let left = modal_tests::containers_of_app(&app_id);
    for c in &left {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(started, "two containers should have started");
    assert!(exited, "the client should exit after Ctrl-C");
    assert_eq!(status.and_then(|s| s.code()), Some(130), "{stderr}");
    assert!(stderr.contains("Disconnecting"), "{stderr}");
    assert!(left.is_empty(), "containers left after Ctrl-C: {left:?}");
}

#[test]
fn idle_containers_are_reused_then_scaled_down() {
    let out = run(&["run", "scaledown"], &[], Duration::from_secs(60));
    assert!(out.status.success(), "{}", show(&out));
    let f = fields(&out);
    assert_eq!(
        f.get("warm reuse").map(String::as_str),
        Some("true"),
        "{}",
        show(&out)
    );
    assert_eq!(
        f.get("scaled down").map(String::as_str),
        Some("true"),
        "{}",
        show(&out)
    );
}

#[test]
fn an_included_app_runs_its_functions_and_merges_tags() {
    let out = run(&["run", "included"], &[], Duration::from_secs(60));
    assert!(out.status.success(), "{}", show(&out));
    let f = fields(&out);
    assert_eq!(
        f.get("triple").map(String::as_str),
        Some("9"),
        "{}",
        show(&out)
    );
    assert_eq!(
        f.get("tags").map(String::as_str),
        Some("shared=ours,team=other"),
        "{}",
        show(&out)
    );
}

#[test]
fn a_container_with_a_different_binary_is_refused() {
    let out = run(
        &["run", "hello_sum"],
        &[("MODAL_WORKER_CONTAINER_EXE", OTHER)],
        Duration::from_secs(60),
    );
    assert!(!out.status.success(), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("could not start"), "{}", show(&out));
    assert!(
        stderr.contains("differs from the one registered"),
        "{}",
        show(&out)
    );
}

#[test]
fn entrypoint_flags_are_checked() {
    let out = run(&["run", "long"], &[], Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--containers"),
        "{}",
        show(&out)
    );
    let out = run(&["run", "nonexistent"], &[], Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing named `nonexistent`"),
        "{}",
        show(&out)
    );
}

#[test]
fn a_lookup_by_name_without_a_server_says_where_it_looked_and_what_to_do() {
    let caller = env!("CARGO_BIN_EXE_caller");
    let out = modal_tests::run_bounded(caller, &["square", "7"], &[], Duration::from_secs(60));
    assert!(!out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no app named `e2e-deployed`")
            && err.contains("looked in the control plane embedded in it")
            && err.contains("MODAL_SERVER_URL"),
        "{}",
        show(&out)
    );
}

#[test]
fn the_modal_command_with_no_server_listening_says_how_to_start_one() {
    let modal = env!("CARGO_BIN_EXE_modal");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let url = format!("http://127.0.0.1:{port}");
    let out = modal_tests::run_bounded(
        modal,
        &["app", "list"],
        &[("MODAL_SERVER_URL", url.as_str())],
        Duration::from_secs(60),
    );
    assert!(!out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot reach the control plane at {url}"))
            && err.contains("is `modal server` running there?"),
        "{}",
        show(&out)
    );
}

#[test]
fn inputs_sent_to_a_container_that_leaves_after_a_cancel_run_elsewhere() {
    let out = run(&["run", "for_each_rounds"], &[], Duration::from_secs(120));
    assert!(out.status.success(), "{}", show(&out));
    let f = fields(&out);
    for round in ["round 1", "round 2"] {
        assert_eq!(
            f.get(round).map(String::as_str),
            Some("Some(UserError)"),
            "{}",
            show(&out)
        );
    }
    let got = |k: &str| f.get(k).cloned().unwrap_or_default();
    assert_eq!(
        (got("ok"), got("refused"), got("other")),
        ("12".to_owned(), "3".to_owned(), "0".to_owned()),
        "every input of the last round ends with its own result\n{}",
        show(&out)
    );
}

#[test]
fn a_crashing_container_is_blamed_only_for_the_input_it_was_running() {
    let out = run(&["run", "crashes"], &[], Duration::from_secs(120));
    assert!(out.status.success(), "{}", show(&out));
    let f = fields(&out);
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    assert_eq!(get("crashed where they crashed"), "4", "{}", show(&out));
    assert_eq!(get("blamed wrongly"), "[]", "{}", show(&out));
    assert_eq!(
        get("most runs of one input"),
        "1",
        "no input runs more than 1 + retries times (no retries here)\n{}",
        show(&out)
    );
    assert_eq!(
        (get("ok"), get("lost after returning")),
        ("36".to_owned(), "0".to_owned()),
        "inputs that returned keep their results (the container's journal kept them)\n{}",
        show(&out)
    );
}
