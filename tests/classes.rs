//! End-to-end tests of classes (lifecycle, parameters, failing `enter`), generators, concurrent
//! inputs and batching, with the `classes` fixture binary.

use std::process::Output;
use std::time::Duration;

use modal_tests::{fields, show};

const CLASSES: &str = env!("CARGO_BIN_EXE_classes");

fn run(entrypoint: &str) -> Output {
    modal_tests::run_bounded(CLASSES, &["run", entrypoint], &[], Duration::from_secs(180))
}

#[test]
fn enter_runs_once_per_container_and_exit_at_scale_down() {
    let out = run("lifecycle");
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        fields(&out).get("count").map(String::as_str),
        Some("50"),
        "{}",
        show(&out)
    );
    assert_eq!(
        stdout.matches("[Counter] enter small").count(),
        1,
        "{}",
        show(&out)
    );
    assert!(
        stdout.contains("[Counter] exit after 50 calls"),
        "{}",
        show(&out)
    );
    assert_eq!(
        fields(&out).get("scaled down").map(String::as_str),
        Some("true"),
        "{}",
        show(&out)
    );
}

#[test]
fn two_parameter_sets_get_two_containers() {
    let out = run("params");
    assert!(out.status.success(), "{}", show(&out));
    let f = fields(&out);
    assert_eq!(
        f.get("distinct").map(String::as_str),
        Some("true"),
        "{}",
        show(&out)
    );
    assert_eq!(
        f.get("same pool").map(String::as_str),
        Some("true"),
        "{}",
        show(&out)
    );
}

#[test]
fn a_failing_enter_is_an_init_failure_of_the_waiting_input() {
    let out = run("broken");
    assert!(out.status.success(), "{}", show(&out));
    let f = fields(&out);
    assert_eq!(
        f.get("kind").map(String::as_str),
        Some("Some(InitFailure)"),
        "{}",
        show(&out)
    );
    assert!(
        f.get("display")
            .is_some_and(|d| d.contains("weights missing")),
        "{}",
        show(&out)
    );
}

#[test]
fn the_startup_timeout_covers_enter_and_the_timeout_starts_after_it() {
    let out = run("slow_enter");
    assert!(out.status.success(), "{}", show(&out));
    let f = fields(&out);
    assert_eq!(
        f.get("too slow kind").map(String::as_str),
        Some("Some(InitFailure)"),
        "{}",
        show(&out)
    );
    assert!(
        f.get("too slow")
            .is_some_and(|m| m.contains("`enter` hooks within the startup timeout of 2 s")),
        "{}",
        show(&out)
    );
    assert_eq!(
        f.get("allowed").map(String::as_str),
        Some("Ok(1)"),
        "a 4 s `enter` does not count against a 2 s timeout\n{}",
        show(&out)
    );
}

#[test]
fn generator_items_arrive_in_order_while_it_runs() {
    let out = run("generator");
    assert!(out.status.success(), "{}", show(&out));
    let f = fields(&out);
    assert_eq!(
        f.get("items").map(String::as_str),
        Some("[4, 3, 2, 1, 0]"),
        "{}",
        show(&out)
    );
    assert_eq!(
        f.get("first before end").map(String::as_str),
        Some("true"),
        "{}",
        show(&out)
    );
}

#[test]
fn four_concurrent_inputs_share_one_container() {
    let out = run("concurrent");
    assert!(out.status.success(), "{}", show(&out));
    let f = fields(&out);
    assert_eq!(
        f.get("containers").map(String::as_str),
        Some("1"),
        "{}",
        show(&out)
    );
    let secs: f64 = f
        .get("seconds")
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::MAX);
    assert!(secs < 1.9, "four 1 s naps took {secs} s\n{}", show(&out));
}

#[test]
fn batches_never_exceed_their_size() {
    let out = run("batching");
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        fields(&out).get("max batch").map(String::as_str),
        Some("4"),
        "{}",
        show(&out)
    );
}
