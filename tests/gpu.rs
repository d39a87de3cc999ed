//! End-to-end tests of GPU scheduling with a declared inventory (always), and of GPU work on a
//! real device (only where the CUDA driver is present; skipped with a printed reason elsewhere).

use std::process::Output;
use std::time::Duration;

use modal_tests::{GpuSlot as Slot, fields, run_bounded, show};

const GPUS: &str = env!("CARGO_BIN_EXE_gpus");
const TWO_H100: &str = "NVIDIA H100 80GB HBM3:81559,NVIDIA H100 80GB HBM3:81559";

fn run(args: &[&str], declared: &str) -> Output {
    run_bounded(
        GPUS,
        args,
        &[("MODAL_WORKER_GPUS", declared)],
        Duration::from_secs(40),
    )
}

fn slots(out: &Output) -> Vec<Slot> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("slot: "))
        .map(|json| serde_json::from_str(json).expect("a slot"))
        .collect()
}

#[test]
fn two_devices_serve_two_calls_at_once_and_the_third_waits() {
    let out = run(&["run", "contend", "--ms", "1500"], TWO_H100);
    assert!(out.status.success(), "{}", show(&out));
    let slots = slots(&out);
    assert_eq!(slots.len(), 3, "{}", show(&out));
    for s in &slots {
        assert!(
            s.cuda_visible_devices == "0" || s.cuda_visible_devices == "1",
            "{s:?}"
        );
        assert_eq!(s.nvidia_visible_devices, s.cuda_visible_devices);
        assert!(s.declared, "{s:?}");
    }
    let overlap = |a: &Slot, b: &Slot| a.started_ms < b.ended_ms && b.started_ms < a.ended_ms;
    let pairs = [(0, 1), (0, 2), (1, 2)];
    let concurrent: Vec<_> = pairs
        .iter()
        .filter(|(a, b)| overlap(&slots[*a], &slots[*b]))
        .collect();
    // Two ran at once, on different devices; the third overlapped at most one of them.
    assert!(!concurrent.is_empty(), "nothing ran at once: {slots:?}");
    for (a, b) in &concurrent {
        assert_ne!(
            slots[*a].cuda_visible_devices, slots[*b].cuda_visible_devices,
            "two containers shared a device: {slots:?}"
        );
    }
    assert!(
        concurrent.len() < 3,
        "three calls held two devices at once: {slots:?}"
    );
}

#[test]
fn an_idle_container_gives_its_device_to_another_function() {
    // One device; the first function's container stays warm for 60 s unless it gives way, and
    // the run is killed after 40 s.
    let out = run(&["run", "switch"], "NVIDIA H100 80GB HBM3:81559");
    assert!(out.status.success(), "{}", show(&out));
    let slots = slots(&out);
    assert_eq!(slots.len(), 2, "{}", show(&out));
    assert_ne!(slots[0].task_id, slots[1].task_id);
    assert!(slots.iter().all(|s| s.cuda_visible_devices == "0"));
}

#[test]
fn requests_no_worker_can_meet_fail_at_once_with_what_is_available() {
    let out = run(&["run", "impossible"], TWO_H100);
    assert!(out.status.success(), "{}", show(&out));
    let f = fields(&out);
    let four = f.get("four").cloned().unwrap_or_default();
    assert!(
        four.contains(r#"no worker offers gpu "H100:4"; available: 2× NVIDIA H100 80GB HBM3"#),
        "{}",
        show(&out)
    );
    assert!(
        f.get("hold").is_some_and(|h| h.starts_with("ok ")),
        "{}",
        show(&out)
    );

    let out = run(&["run", "impossible"], "none");
    assert!(out.status.success(), "{}", show(&out));
    let hold = fields(&out).get("hold").cloned().unwrap_or_default();
    assert!(
        hold.contains(r#"no worker offers gpu "H100"; available: none"#),
        "{}",
        show(&out)
    );
}

#[test]
fn a_malformed_declaration_is_refused_before_anything_starts() {
    let out = run(&["run", "impossible"], "H100");
    assert!(!out.status.success(), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("MODAL_WORKER_GPUS entry 1 `H100`") && stderr.contains("NAME:MEMORY_MIB"),
        "{}",
        show(&out)
    );
}

#[test]
fn declared_devices_and_containers_without_a_gpu_say_why_they_cannot_compute() {
    let out = run(&["run", "device"], "NVIDIA H100 80GB HBM3:81559");
    assert!(out.status.success(), "{}", show(&out));
    let f = fields(&out);
    let cpu_only = f.get("cpu_only").cloned().unwrap_or_default();
    assert!(
        cpu_only.contains("this container has no GPU"),
        "{}",
        show(&out)
    );
    if !modal::gpu::driver_present() {
        let device = f.get("device").cloned().unwrap_or_default();
        assert!(
            device.contains("no CUDA driver") && device.contains("declared"),
            "{}",
            show(&out)
        );
    }
}

/// Runs an example on a real GPU, or says why not.
fn gpu_example(name: &str, args: &[&str]) -> Option<Output> {
    if !modal::gpu::driver_present() {
        eprintln!("skipped: no CUDA driver (libcuda.so) on this machine");
        return None;
    }
    let mut all = vec![
        "run",
        "-q",
        "--release",
        "-p",
        "modal-examples",
        "--example",
        name,
        "--",
    ];
    all.extend_from_slice(args);
    Some(run_bounded(
        env!("CARGO"),
        &all,
        &[],
        Duration::from_secs(300),
    ))
}

#[test]
fn a_real_gpu_opens_inside_its_container() {
    if !modal::gpu::driver_present() {
        eprintln!("skipped: no CUDA driver (libcuda.so) on this machine");
        return;
    }
    let out = run_bounded(GPUS, &["run", "device"], &[], Duration::from_secs(120));
    assert!(out.status.success(), "{}", show(&out));
    let device = fields(&out).get("device").cloned().unwrap_or_default();
    assert!(device.starts_with("ok NVIDIA"), "{}", show(&out));
}

#[test]
fn saxpy_on_a_real_gpu_matches_the_cpu() {
    let Some(out) = gpu_example("gpu_saxpy", &[]) else {
        return;
    };
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        fields(&out).get("matches the CPU").map(String::as_str),
        Some("true"),
        "{}",
        show(&out)
    );
}

#[test]
fn matmul_on_a_real_gpu_matches_the_cpu() {
    let Some(out) = gpu_example("gpu_matmul", &["--size", "256"]) else {
        return;
    };
    assert!(out.status.success(), "{}", show(&out));
    let f = fields(&out);
    for key in ["sgemm matches the CPU", "hgemm matches the CPU"] {
        assert_eq!(
            f.get(key).map(String::as_str),
            Some("true"),
            "{}",
            show(&out)
        );
    }
}
