//! Dispatch and autoscaling: which containers start, which inputs go where, prefetch,
//! concurrency, batches, limits, GPUs, scale-down.

use std::time::Duration;

use super::{Asked, Plane, def};
use crate::model::{BatchConfig, ContainerCommand, GpuDevice, ResultStatus};

fn h100(index: u32) -> GpuDevice {
    GpuDevice {
        index,
        name: "NVIDIA H100 80GB HBM3".into(),
        memory_mb: 81_559,
        declared: true,
    }
}

#[test]
fn a_call_starts_a_container_and_its_input_goes_out_after_hello() {
    let mut p = Plane::with_worker();
    let f = p.function(def("f"));
    let mut caller = p.call(&f);
    let task = p.started_one();
    assert!(
        p.inputs(&task).is_empty(),
        "nothing before the container connects"
    );
    p.hello(&task);
    let inputs = p.inputs(&task);
    assert_eq!(inputs.len(), 1);
    assert_eq!(
        (inputs[0].attempt, inputs[0].input.data.to_vec()),
        (0, vec![7])
    );
    p.output(&task, &inputs[0].input_id, ResultStatus::Success);
    assert_eq!(caller.status(), Some(ResultStatus::Success));
    assert_eq!(p.state.tasks[&task].load(), 0);
}

#[test]
fn a_warm_container_takes_the_next_call() {
    let mut p = Plane::with_worker();
    let f = p.function(def("f"));
    let _first = p.call(&f);
    let task = p.ready_container();
    let first = p.inputs(&task);
    p.output(&task, &first[0].input_id, ResultStatus::Success);
    let _second = p.call(&f);
    assert!(p.started().is_empty(), "no second container");
    assert_eq!(p.inputs(&task).len(), 1);
}

#[test]
fn quick_inputs_are_prefetched_beyond_the_concurrency() {
    let mut p = Plane::with_worker();
    let f = p.function(def("f"));
    // A measured run time under a millisecond lets a container hold 64 more.
    p.state.functions.get_mut(&f).unwrap().exec_ewma = Some(Duration::from_micros(200));
    let callers: Vec<_> = (0..10).map(|_| p.call(&f)).collect();
    let task = p.ready_container();
    let sent = p.inputs(&task);
    assert_eq!(sent.len(), 10, "one running, nine prefetched");
    let t = &p.state.tasks[&task];
    assert_eq!((t.running.len(), t.prefetched.len()), (1, 9));
    drop(callers);
}

#[test]
fn slow_inputs_are_not_prefetched() {
    let mut p = Plane::with_worker();
    let f = p.function(def("f"));
    p.state.functions.get_mut(&f).unwrap().exec_ewma = Some(Duration::from_secs(2));
    let _callers: Vec<_> = (0..3).map(|_| p.call(&f)).collect();
    let task = p.ready_container();
    assert_eq!(p.inputs(&task).len(), 1);
}

#[test]
fn a_concurrent_function_runs_its_inputs_in_one_container_at_once() {
    let mut p = Plane::with_worker();
    let mut d = def("f");
    d.max_concurrent_inputs = 4;
    d.target_concurrent_inputs = 4;
    let f = p.function(d);
    let _callers: Vec<_> = (0..4).map(|_| p.call(&f)).collect();
    let task = p.ready_container();
    assert_eq!(p.inputs(&task).len(), 4);
    assert_eq!(p.state.tasks[&task].running.len(), 4);
    assert!(p.started().is_empty());
}

#[test]
fn a_batch_waits_for_company_until_its_wait_is_over() {
    let mut p = Plane::with_worker();
    let mut d = def("f");
    d.batch = Some(BatchConfig {
        max_batch_size: 3,
        wait_ms: 100,
    });
    let f = p.function(d);
    let _a = p.call(&f);
    let _b = p.call(&f);
    let task = p.ready_container();
    assert!(p.inputs(&task).is_empty(), "two of three wait");
    p.advance(Duration::from_millis(99));
    assert!(p.inputs(&task).is_empty());
    p.advance(Duration::from_millis(1));
    let batch = p.inputs(&task);
    assert_eq!(batch.len(), 2);
    assert!(!batch[0].batch_id.is_empty() && batch[0].batch_id == batch[1].batch_id);
}

#[test]
fn a_full_batch_goes_at_once_and_never_exceeds_its_size() {
    let mut p = Plane::with_worker();
    let mut d = def("f");
    d.batch = Some(BatchConfig {
        max_batch_size: 3,
        wait_ms: 60_000,
    });
    let f = p.function(d);
    let _callers: Vec<_> = (0..4).map(|_| p.call(&f)).collect();
    let task = p.ready_container();
    let batch = p.inputs(&task);
    assert_eq!(
        batch.len(),
        3,
        "one full batch; the fourth waits for a free container"
    );
}

#[test]
fn max_containers_caps_the_pool() {
    let mut p = Plane::with_worker();
    let mut d = def("f");
    d.autoscaler.max_containers = Some(1);
    let f = p.function(d);
    let _callers: Vec<_> = (0..3).map(|_| p.call(&f)).collect();
    let task = p.ready_container();
    let _ = p.inputs(&task);
    assert!(
        p.started().is_empty(),
        "the cap holds with two inputs queued"
    );
    assert_eq!(p.state.functions[&f].queue.len(), 2);
}

#[test]
fn containers_start_in_waves_while_none_is_ready() {
    let mut p = Plane::with_worker();
    let f = p.function(def("f"));
    let _callers: Vec<_> = (0..3).map(|_| p.call(&f)).collect();
    let first = p.started_one();
    p.hello(&first);
    // One ready: one more may start.
    assert_eq!(p.started().len(), 1);
}

#[test]
fn min_containers_start_without_calls_and_survive_scale_down() {
    let mut p = Plane::with_worker();
    let mut d = def("f");
    d.autoscaler.min_containers = 2;
    d.autoscaler.scaledown_window_secs = 2;
    let _f = p.function(d);
    let started = p.started();
    assert_eq!(started.len(), 2);
    for t in &started {
        p.hello(t);
    }
    p.advance(Duration::from_secs(10));
    p.housekeeping();
    assert!(
        p.asked().is_empty(),
        "no container below min_containers is stopped"
    );
}

#[test]
fn an_idle_container_stops_after_its_scaledown_window_and_not_before() {
    let mut p = Plane::with_worker();
    let mut d = def("f");
    d.autoscaler.scaledown_window_secs = 5;
    let f = p.function(d);
    let _c = p.call(&f);
    let task = p.ready_container();
    let input = p.inputs(&task).remove(0);
    p.output(&task, &input.input_id, ResultStatus::Success);
    p.advance(Duration::from_millis(4900));
    p.housekeeping();
    assert!(p.asked().is_empty());
    p.advance(Duration::from_millis(100));
    p.housekeeping();
    assert_eq!(
        p.asked(),
        vec![Asked::Stop {
            task_id: task.clone(),
            grace_ms: 2000
        }]
    );
    assert!(super::has_shutdown(&p.sent(&task)));
}

#[test]
fn inputs_wait_for_a_worker_and_start_when_one_registers() {
    let mut p = Plane::new();
    let f = p.function(def("f"));
    let mut caller = p.call(&f);
    assert_eq!(caller.status(), None);
    p.worker(2000, 4096, Vec::new());
    let task = p.ready_container();
    assert_eq!(p.inputs(&task).len(), 1);
}

#[test]
fn a_gpu_request_no_worker_can_meet_fails_at_once_with_what_is_available() {
    let mut p = Plane::new();
    p.worker(8000, 16_384, vec![h100(0)]);
    let mut d = def("f");
    d.gpu = vec![crate::model::GpuRequest {
        kind: "H100".into(),
        count: 4,
    }];
    let f = p.function(d);
    let mut caller = p.call(&f);
    let r = caller.result().expect("failed at once");
    assert_eq!(r.status, ResultStatus::InternalFailure);
    assert!(
        r.message.contains("no worker offers gpu \"H100:4\""),
        "{}",
        r.message
    );
    assert!(p.started().is_empty());
}

#[test]
fn a_gpu_container_gets_its_device_and_the_next_request_waits_for_it() {
    let mut p = Plane::new();
    p.worker(8000, 16_384, vec![h100(0)]);
    let mut d = def("g");
    d.gpu = vec![crate::model::GpuRequest {
        kind: "H100".into(),
        count: 1,
    }];
    d.max_concurrent_inputs = 1;
    let g = p.function(d.clone());
    let _a = p.call(&g);
    let asked = p.asked();
    assert!(
        matches!(&asked[..], [Asked::Start { gpus, .. }] if *gpus == vec![0]),
        "{asked:?}"
    );
    d.tag = "other".into();
    let other = p.function(d);
    let _b = p.call(&other);
    assert!(p.started().is_empty(), "the only device is taken");
}

#[test]
fn an_idle_container_of_another_function_gives_way_to_waiting_work() {
    let mut p = Plane::new();
    p.worker(1000, 4096, Vec::new());
    let mut d = def("a");
    d.resources.milli_cpu = 1000;
    let a = p.function(d.clone());
    let _x = p.call(&a);
    let ta = p.ready_container();
    let input = p.inputs(&ta).remove(0);
    p.output(&ta, &input.input_id, ResultStatus::Success);
    d.tag = "b".into();
    let b = p.function(d);
    let _y = p.call(&b);
    assert_eq!(
        p.asked(),
        vec![Asked::Stop {
            task_id: ta.clone(),
            grace_ms: 500
        }],
        "the idle container of `a` stops to make room"
    );
    p.exited(&ta, Some(0), None);
    assert_eq!(p.started().len(), 1, "`b` starts on the freed capacity");
}

#[test]
fn a_single_use_container_serves_one_input_then_stops() {
    let mut p = Plane::with_worker();
    let mut d = def("f");
    d.single_use_containers = true;
    let f = p.function(d);
    let _a = p.call(&f);
    let _b = p.call(&f);
    let task = p.started()[0].clone();
    p.hello(&task);
    let sent = p.inputs(&task);
    assert_eq!(sent.len(), 1);
    p.output(&task, &sent[0].input_id, ResultStatus::Success);
    let asked = p.asked();
    assert!(
        asked.contains(&Asked::Stop {
            task_id: task.clone(),
            grace_ms: 2000
        }),
        "{asked:?}"
    );
    assert!(
        p.sent(&task)
            .iter()
            .all(|c| !matches!(c, ContainerCommand::Inputs(_)))
    );
}
