//! End-to-end tests of volumes: `modal volume` against a real `modal server` (a 100 MiB file
//! put and got byte for byte, committed data surviving `kill -9` of the server), and containers
//! that commit, reload and read a volume (the `volumes` program). The container tests need the
//! oci runtime; where it cannot run (no `crun`) they print why and pass, except under
//! `CI=true`, where that fails the run.

mod support;

use std::process::Output;

use modal_tests::{assert_field, field, show};
use support::{MODAL, Server};

const VOLUMES: &str = env!("CARGO_BIN_EXE_volumes");

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{}", show(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails_saying(out: &Output, words: &str) {
    assert!(!out.status.success(), "should fail: {}", show(out));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains(words), "expected `{words}`: {}", show(out));
}

/// Deterministic bytes that no compression or pattern would make look equal by accident.
fn content(len: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let mut bytes = vec![0u8; len];
    rng.fill(&mut bytes);
    bytes
}

#[test]
fn volume_files_round_trip_byte_for_byte_and_outlive_a_killed_server() {
    let mut s = Server::start(MODAL, "volumes-cli", None, false);
    assert!(ok(&s.modal(&["volume", "create", "weights"])).contains("Created volume weights"));
    let big = s.dir.join("big.bin");
    let data = content(100 << 20);
    std::fs::write(&big, &data).expect("writes the file");
    let big_s = big.to_str().expect("utf-8");
    let out = ok(&s.modal(&["volume", "put", "weights", big_s, "/models/big.bin"]));
    assert!(out.contains("1 file (100.0 MiB)"), "{out}");
    // An existing file is replaced only with --force.
    fails_saying(
        &s.modal(&["volume", "put", "weights", big_s, "/models/big.bin"]),
        "use --force",
    );
    let listed = ok(&s.modal(&["volume", "ls", "weights", "/models", "--json"]));
    let rows: serde_json::Value = serde_json::from_str(&listed).expect("json");
    assert_eq!(rows[0]["path"], "/models/big.bin", "{listed}");
    assert_eq!(rows[0]["size"], 100 << 20, "{listed}");

    // Committed data is durable: the server dies without warning and comes back.
    s.kill9();
    assert!(s.launch(), "modal server did not restart: {}", s.log());
    let got = s.dir.join("got.bin");
    let out = ok(&s.modal(&[
        "volume",
        "get",
        "weights",
        "/models/big.bin",
        got.to_str().expect("utf-8"),
    ]));
    assert!(out.contains("1 file (100.0 MiB)"), "{out}");
    let back = std::fs::read(&got).expect("reads the copy");
    assert!(back == data, "the file came back different");
    let _ = std::fs::remove_file(&got);
    let _ = std::fs::remove_file(&big);

    let volumes = ok(&s.modal(&["volume", "list", "--json"]));
    let rows: serde_json::Value = serde_json::from_str(&volumes).expect("json");
    let weights = rows
        .as_array()
        .and_then(|r| r.iter().find(|v| v["name"] == "weights"))
        .unwrap_or_else(|| panic!("weights listed: {volumes}"));
    assert_eq!(weights["files"], 1, "{volumes}");
    assert_eq!(weights["bytes"], 100 << 20, "{volumes}");

    // Errors say what is wrong and what to do.
    fails_saying(
        &s.modal(&["volume", "get", "nothing-here", "/x"]),
        "no volume named `nothing-here`",
    );
    fails_saying(
        &s.modal(&["volume", "get", "weights", "/nope.bin", "-"]),
        "no `/nope.bin` in volume `weights`",
    );
    fails_saying(
        &s.modal(&["volume", "rm", "weights", "/models"]),
        "use --recursive",
    );
    ok(&s.modal(&["volume", "rm", "weights", "/models", "--recursive"]));
    let listed = ok(&s.modal(&["volume", "ls", "weights", "--json"]));
    assert_eq!(listed.trim(), "[]", "{listed}");
    ok(&s.modal(&["volume", "delete", "weights", "--yes"]));
    let volumes = ok(&s.modal(&["volume", "list", "--json"]));
    assert!(!volumes.contains("\"weights\""), "{volumes}");
}

/// A server with its built-in worker running the oci runtime; `None` (after saying why) where
/// that runtime cannot run here and CI does not require it.
fn oci_server(name: &str) -> Option<Server> {
    if !modal_tests::oci_usable() {
        modal_tests::skip_without(
            "the oci runtime cannot run here: no usable crun (.ci/crun.sh sets it up)",
        );
        return None;
    }
    Some(Server::start(MODAL, name, None, true))
}

#[test]
fn containers_see_what_others_committed_and_only_that() {
    let Some(s) = oci_server("volumes-containers") else {
        return;
    };
    let out = s.run(VOLUMES, &["--tag", "t1"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        field(&out, "outside")
            .unwrap_or_default()
            .contains("commit() and reload() work inside a container"),
        "{}",
        show(&out)
    );
    assert_field(&out, "reads committed", "one");
    assert_field(&out, "reads uncommitted", "none");
    assert_field(&out, "reads removed", "none");
    assert_field(&out, "done", "true");
    // The writer's container committed at its clean exit, when the run ended.
    let at_exit = ok(&s.modal(&["volume", "get", "data", "/t1-at-exit.txt", "-"]));
    assert_eq!(at_exit, "three");
    // Removed by one container, not brought back by the others' exits (the writer's files that
    // it never committed come with its exit, the last commit).
    fails_saying(
        &s.modal(&["volume", "get", "data", "/sub/t1-committed.txt", "-"]),
        "no `/sub/t1-committed.txt`",
    );
    let late = ok(&s.modal(&["volume", "get", "data", "/sub/t1-at-exit.txt", "-"]));
    assert_eq!(late, "three");
    // The run's ephemeral volume went with it; the named one stays.
    let volumes = ok(&s.modal(&["volume", "list", "--json"]));
    assert!(volumes.contains("\"data\""), "{volumes}");
    assert!(!volumes.contains("\"scratch\""), "{volumes}");
}

#[test]
fn the_process_runtime_refuses_volumes_and_says_why() {
    let out = modal_tests::run_bounded(
        VOLUMES,
        &["--tag", "p"],
        &[("MODAL_RUNTIME", "process")],
        std::time::Duration::from_secs(60),
    );
    assert!(!out.status.success(), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("cannot mount `volumes` (at /data, /scratch)")
            && text.contains("--runtime oci"),
        "{}",
        show(&out)
    );
}
