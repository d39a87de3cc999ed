//! End-to-end tests of the `oci` runtime's walls: what a container can see and reach, its
//! memory and CPU limits, its network and its token, with real crun containers (`walls`
//! program). Where the oci runtime cannot run (no `crun`), each test prints why and passes,
//! except under `CI=true`, where that fails the run.

use std::process::Output;
use std::time::Duration;

use modal_tests::{assert_field, run_bounded, show};

const WALLS: &str = env!("CARGO_BIN_EXE_walls");

/// Runs `walls args` on the embedded control plane with the oci runtime; `None` (after saying
/// why) where that runtime cannot run here and CI does not require it.
fn walls(args: &[&str]) -> Option<Output> {
    let out = run_bounded(
        WALLS,
        args,
        &[("MODAL_RUNTIME", "oci")],
        Duration::from_secs(90),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("cannot run containers") {
        modal_tests::skip_without(&format!(
            "the oci runtime cannot run here (.ci/crun.sh sets crun up): {}",
            show(&out)
        ));
        return None;
    }
    Some(out)
}

fn field(out: &Output, key: &str) -> String {
    modal_tests::field(out, key).unwrap_or_default()
}

#[test]
fn a_container_sees_only_itself_and_writes_only_its_tmp() {
    // Another app's container, with a secret in its environment, runs meanwhile.
    let mut holder = std::process::Command::new(WALLS)
        .args(["run", "holder", "--secs", "60"])
        .env_remove("MODAL_SERVER_URL")
        .env("MODAL_CONFIG_PATH", "/nonexistent/modal-config.toml")
        .env("MODAL_RUNTIME", "oci")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the holder starts");
    let held = modal_tests::wait_until(Duration::from_secs(30), || {
        modal_tests::containers()
            .iter()
            .any(|c| c.env.contains_key("HOLDER_SECRET"))
    });
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let out = walls(&[
        "run",
        "look",
        "--secret",
        "holder-secret-value",
        "--host-home",
        &home,
    ]);
    let _ = holder.kill();
    let _ = holder.wait();
    let Some(out) = out else { return };
    assert!(held, "the other app's container did not start");
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        field(&out, "processes"),
        "1",
        "its own process only: {}",
        show(&out)
    );
    assert_field(&out, "sees secret", "false");
    assert_field(&out, "host home listed", "false");
    assert_field(&out, "home", "/tmp");
    assert_field(&out, "writes /tmp", "true");
    assert_field(&out, "writes /etc", "false");
    assert_field(&out, "writes /usr", "false");
    assert_field(&out, "writes cgroups", "false");
    assert_field(&out, "new user namespace", "false");
}

#[test]
fn past_its_memory_limit_a_function_fails_out_of_memory_and_is_retried() {
    let Some(out) = walls(&["run", "oom"]) else {
        return;
    };
    assert!(out.status.success(), "{}", show(&out));
    assert_field(&out, "hog kind", "Some(OutOfMemory)");
    let error = field(&out, "hog error");
    assert!(
        error.contains("was killed: out of memory (limit 256 MiB)"),
        "{}",
        show(&out)
    );
    assert_eq!(field(&out, "hog runs"), "2", "retries = 1: {}", show(&out));
    assert_field(&out, "small hog", "16");
}

#[test]
fn ephemeral_disk_limits_what_tmp_holds() {
    let Some(out) = walls(&["run", "disk"]) else {
        return;
    };
    assert!(out.status.success(), "{}", show(&out));
    assert_field(&out, "small", "written");
    assert!(
        field(&out, "large").contains("No space left on device"),
        "{}",
        show(&out)
    );
    // No single file grows past the size of `/tmp` (the journal on the worker's disk neither).
    assert!(
        field(&out, "one file").contains("File too large"),
        "{}",
        show(&out)
    );
}

#[test]
fn half_a_core_is_about_half_a_core() {
    let Some(out) = walls(&["run", "cpu"]) else {
        return;
    };
    assert!(out.status.success(), "{}", show(&out));
    let cores: f64 = field(&out, "cores").parse().expect("a number of cores");
    assert!(
        cores > 0.1 && cores < 0.75,
        "cpu = (0.5, 0.5) gave {cores} cores"
    );
    // The program sees its quota, not the host's CPUs (its own cgroup is mounted in).
    assert_field(&out, "cpus", "1");
}

#[test]
fn block_network_cuts_the_host_network_off() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a listener");
    let addr = listener.local_addr().expect("its address").to_string();
    let Some(out) = walls(&["run", "network", "--addr", &addr]) else {
        return;
    };
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        field(&out, "blocked").starts_with("refused"),
        "{}",
        show(&out)
    );
    assert_field(&out, "open", "connected");
}

#[test]
fn a_restricted_container_cannot_look_functions_up() {
    let Some(out) = walls(&["run", "restricted"]) else {
        return;
    };
    assert!(out.status.success(), "{}", show(&out));
    let refused = field(&out, "lookup refused");
    assert!(
        refused.contains("permission denied") && refused.contains("restrict_modal_access"),
        "{}",
        show(&out)
    );
}

#[test]
fn a_process_worker_refuses_a_memory_limit_naming_both() {
    let out = run_bounded(
        WALLS,
        &["run", "oom"],
        &[("MODAL_RUNTIME", "process")],
        Duration::from_secs(60),
    );
    assert!(!out.status.success(), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("process runtime, which cannot enforce a `memory` limit (256 MiB)"),
        "{}",
        show(&out)
    );
}
