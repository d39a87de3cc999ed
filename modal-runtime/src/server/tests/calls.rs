//! Calls: retries with their backoff, timeouts, cancellation, app stop, maps, generators and
//! spawned calls.

use std::time::Duration;

use tokio::sync::mpsc;

use super::{Asked, Plane, def, has_shutdown};
use crate::app::Retries;
use crate::model::{ContainerCommand, GeneratorEvent, Payload, ResultStatus};
use crate::server::auth::Principal;
use crate::server::calls::Wait;
use crate::server::store::Op;
use crate::wire::Reader;

/// Runs one input through a ready container and fails it with `status`; returns the task.
fn fail_first_attempt(p: &mut Plane, status: ResultStatus) -> (String, String) {
    let task = p.ready_container();
    let input = p.inputs(&task).remove(0);
    p.output(&task, &input.input_id, status);
    (task, input.input_id)
}

#[test]
fn failures_are_retried_after_their_delay_per_the_table() {
    // (status, policy, delay before the retry is sent; None = final at once)
    let table = [
        (ResultStatus::UserError, Retries::fixed(2), Some(1000)),
        (ResultStatus::Panic, Retries::fixed(1), Some(1000)),
        (
            ResultStatus::UserError,
            Retries::new(3).initial_delay(Duration::from_millis(250)),
            Some(250),
        ),
        (ResultStatus::InternalFailure, Retries::fixed(2), Some(0)),
        (ResultStatus::Cancelled, Retries::fixed(2), None),
        (ResultStatus::UserError, Retries::fixed(0), None),
    ];
    for (status, policy, delay) in table {
        let mut p = Plane::with_worker();
        let mut d = def("f");
        d.retries = Some(policy);
        let f = p.function(d);
        let mut caller = p.call(&f);
        let (task, input_id) = fail_first_attempt(&mut p, status);
        match delay {
            None => {
                let r = caller.result().expect("final at once");
                assert_eq!((r.status, r.attempt), (status, 0), "{status:?} {policy:?}");
            }
            Some(ms) => {
                assert_eq!(caller.status(), None, "{status:?} is retried");
                assert_eq!(p.attempt(&input_id), Some(1));
                if ms > 0 {
                    p.advance(Duration::from_millis(ms - 1));
                    assert!(p.inputs(&task).is_empty(), "{status:?}: not before {ms} ms");
                }
                p.advance(Duration::from_millis(1));
                let again = p.inputs(&task);
                assert_eq!(again.len(), 1, "{status:?}: sent again after {ms} ms");
                assert_eq!(
                    (again[0].input_id.as_str(), again[0].attempt),
                    (input_id.as_str(), 1)
                );
            }
        }
    }
}

#[test]
fn backoff_doubles_between_retries() {
    let mut p = Plane::with_worker();
    let mut d = def("f");
    d.retries = Some(Retries::new(3).initial_delay(Duration::from_secs(1)));
    let f = p.function(d);
    let _caller = p.call(&f);
    let (task, input_id) = fail_first_attempt(&mut p, ResultStatus::UserError);
    p.advance(Duration::from_secs(1));
    assert_eq!(p.inputs(&task).len(), 1);
    p.output(&task, &input_id, ResultStatus::UserError);
    p.advance(Duration::from_millis(1999));
    assert!(p.inputs(&task).is_empty(), "the second retry waits 2 s");
    p.advance(Duration::from_millis(1));
    assert_eq!(p.inputs(&task)[0].attempt, 2);
}

#[test]
fn the_final_result_carries_the_last_attempt_number() {
    let mut p = Plane::with_worker();
    let mut d = def("f");
    d.retries = Some(Retries::fixed(1));
    let f = p.function(d);
    let mut caller = p.call(&f);
    let (task, input_id) = fail_first_attempt(&mut p, ResultStatus::Panic);
    p.advance(Duration::from_secs(1));
    let _ = p.inputs(&task);
    p.output(&task, &input_id, ResultStatus::Panic);
    let r = caller.result().expect("final after the last retry");
    assert_eq!((r.status, r.attempt), (ResultStatus::Panic, 1));
    assert_eq!(p.attempt(&input_id), None, "the input is forgotten");
}

#[test]
fn an_input_past_its_timeout_ends_as_a_timeout_and_its_container_is_killed() {
    let mut p = Plane::with_worker();
    let mut d = def("f");
    d.timeout_secs = 3;
    let f = p.function(d);
    let mut caller = p.call(&f);
    let task = p.ready_container();
    let _ = p.inputs(&task);
    p.advance(Duration::from_millis(2999));
    assert_eq!(caller.status(), None);
    p.advance(Duration::from_millis(1));
    let r = caller.result().expect("timed out");
    assert_eq!(r.status, ResultStatus::Timeout);
    assert!(r.message.contains("timeout of 3 s"), "{}", r.message);
    assert!(p.asked().contains(&Asked::Stop {
        task_id: task.clone(),
        grace_ms: 0
    }));
    assert!(has_shutdown(&p.sent(&task)));
}

#[test]
fn the_timeout_counts_from_when_the_input_starts_not_from_the_call() {
    let mut p = Plane::with_worker();
    let mut d = def("f");
    d.timeout_secs = 3;
    let f = p.function(d);
    let mut caller = p.call(&f);
    let task = p.started_one();
    // The container takes 10 s to connect: its input has not started yet.
    p.advance(Duration::from_secs(10));
    p.hello(&task);
    let _ = p.inputs(&task);
    p.advance(Duration::from_secs(2));
    assert_eq!(caller.status(), None);
}

#[test]
fn a_timed_out_attempt_is_retried_in_a_new_container() {
    let mut p = Plane::with_worker();
    let mut d = def("f");
    d.timeout_secs = 1;
    d.retries = Some(Retries::fixed(1));
    let f = p.function(d);
    let mut caller = p.call(&f);
    let task = p.ready_container();
    let input = p.inputs(&task).remove(0);
    p.advance(Duration::from_secs(1));
    assert_eq!(caller.status(), None, "retried");
    p.exited(&task, None, Some(9));
    p.advance(Duration::from_secs(1));
    let second = p.ready_container();
    let again = p.inputs(&second);
    assert_eq!(
        (again[0].input_id.as_str(), again[0].attempt),
        (input.input_id.as_str(), 1)
    );
}

#[test]
fn cancelling_a_call_tells_its_container_and_can_terminate_it() {
    for terminate in [false, true] {
        let mut p = Plane::with_worker();
        let f = p.function(def("f"));
        let mut caller = p.call(&f);
        let task = p.ready_container();
        let input = p.inputs(&task).remove(0);
        p.state
            .call_cancel_request(&caller.call_id, terminate, &Principal::Local)
            .unwrap();
        assert_eq!(caller.status(), Some(ResultStatus::Cancelled));
        let sent = p.sent(&task);
        assert!(
            sent.contains(&ContainerCommand::Cancel(vec![input.input_id.clone()])),
            "{sent:?}"
        );
        let stops = p
            .asked()
            .into_iter()
            .filter(|a| matches!(a, Asked::Stop { .. }))
            .count();
        assert_eq!(
            stops,
            usize::from(terminate),
            "terminate_containers = {terminate}"
        );
    }
}

#[test]
fn stopping_an_app_cancels_its_inputs_and_stops_its_containers() {
    let mut p = Plane::with_worker();
    let app = p.app("a");
    let f = p.publish(&app, def("f"));
    let mut running = p.call(&f);
    let task = p.ready_container();
    let _ = p.inputs(&task);
    let mut done = p.state.app_stop(&app, "test").unwrap();
    assert_eq!(running.status(), Some(ResultStatus::Cancelled));
    assert!(p.asked().contains(&Asked::Stop {
        task_id: task.clone(),
        grace_ms: 2000
    }));
    assert!(
        done.try_recv().is_err(),
        "not done while the container lives"
    );
    p.exited(&task, Some(0), None);
    assert!(
        done.try_recv().is_ok(),
        "done once the last container is gone"
    );
    let err = p.refused(&f, &Principal::Local);
    assert!(err.message().contains("is stopped"), "{}", err.message());
}

#[test]
fn a_map_streams_results_by_position_and_closes_after_the_last() {
    let mut p = Plane::with_worker();
    let mut d = def("f");
    d.max_concurrent_inputs = 3;
    d.target_concurrent_inputs = 3;
    let f = p.function(d);
    let (out, mut results) = mpsc::unbounded_channel();
    let call = p.state.map_start(&f, "", &Principal::Local, out).unwrap();
    let inputs = (0..3).map(|i| (i, Payload::new(vec![i as u8]))).collect();
    p.state.map_inputs(&call, inputs, true);
    p.state.schedule();
    let task = p.ready_container();
    let sent = p.inputs(&task);
    assert_eq!(sent.len(), 3);
    for item in sent.iter().rev() {
        p.output(&task, &item.input_id, ResultStatus::Success);
    }
    let mut idx = Vec::new();
    while let Ok(o) = results.try_recv() {
        idx.push(o.idx);
    }
    assert_eq!(idx, vec![2, 1, 0], "as they finish, each with its position");
    assert!(
        results.try_recv().is_err() && results.is_closed(),
        "the stream ends"
    );
    assert!(!p.state.calls.contains_key(&call));
}

#[test]
fn a_generator_streams_its_items_then_how_it_ended() {
    let mut p = Plane::with_worker();
    let mut d = def("g");
    d.generator_methods = vec![String::new()];
    let g = p.function(d);
    let (out, mut events) = mpsc::unbounded_channel();
    p.state
        .invoke_generator(&g, "", Payload::new(vec![]), &Principal::Local, out)
        .unwrap();
    p.state.schedule();
    let task = p.ready_container();
    let input = p.inputs(&task).remove(0);
    p.state.generator_items(
        &task,
        &input.input_id,
        vec![Payload::new(vec![1]), Payload::new(vec![2])],
    );
    p.output(&task, &input.input_id, ResultStatus::Success);
    let mut got = Vec::new();
    while let Ok(e) = events.try_recv() {
        got.push(match e {
            GeneratorEvent::Item(p) => p.data[0],
            GeneratorEvent::Done(r) => {
                assert_eq!(r.status, ResultStatus::Success);
                0
            }
        });
    }
    assert_eq!(got, vec![1, 2, 0]);
}

#[test]
fn a_generator_is_refused_to_remote_and_a_function_to_remote_gen() {
    let mut p = Plane::with_worker();
    let mut d = def("g");
    d.generator_methods = vec![String::new()];
    let g = p.function(d);
    let err = p.refused(&g, &Principal::Local);
    assert!(
        err.message().contains("call it with `remote_gen`"),
        "{}",
        err.message()
    );
    let f = p.function(def("f"));
    let (out, _rx) = mpsc::unbounded_channel();
    let err = p
        .state
        .invoke_generator(&f, "", Payload::new(vec![]), &Principal::Local, out)
        .err()
        .unwrap();
    assert!(
        err.message().contains("call it with `remote`"),
        "{}",
        err.message()
    );
}

#[test]
fn a_spawned_call_keeps_its_result_and_a_durable_plane_stores_it() {
    let mut p = Plane::durable();
    p.worker(8000, 16_384, Vec::new());
    let f = p.function(def("f"));
    let call = p.spawn(&f);
    assert!(
        p.state
            .ops
            .iter()
            .any(|op| matches!(op, Op::UpsertCall(row) if row.id == call)),
        "the spawned call is stored before it is acknowledged"
    );
    let task = p.ready_container();
    let input = p.inputs(&task).remove(0);
    p.output(&task, &input.input_id, ResultStatus::Success);
    assert!(
        p.state
            .ops
            .iter()
            .any(|op| matches!(op, Op::FinishCall { id, .. } if *id == call))
    );
    let (_, r) = p.state.call_get(&call, &Principal::Local).unwrap();
    assert_eq!(r.ok().map(|r| r.status), Some(ResultStatus::Success));
}

#[test]
fn a_container_token_may_only_call_its_own_app() {
    let mut p = Plane::with_worker();
    let f = p.function(def("f"));
    let outsider = Principal::Container {
        task_id: "ta-x".into(),
        app_id: "ap-other".into(),
        restricted: false,
    };
    let err = p.refused(&f, &outsider);
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
}

#[test]
fn a_remote_call_is_forgotten_once_its_result_reached_the_caller() {
    let mut p = Plane::with_worker();
    let f = p.function(def("f"));
    let mut caller = p.call(&f);
    let task = p.ready_container();
    let input = p.inputs(&task).remove(0);
    p.output(&task, &input.input_id, ResultStatus::Success);
    assert_eq!(caller.status(), Some(ResultStatus::Success));
    assert!(
        p.state.calls.is_empty(),
        "nothing is kept for a delivered `remote`"
    );
    assert!(p.state.inputs.is_empty());
    let deadlines = p
        .state
        .timers
        .iter()
        .filter(|(_, t)| matches!(t, crate::server::state::Timer::InputDeadline { .. }))
        .count();
    assert_eq!(deadlines, 0, "nor its deadline timer");
}

#[test]
fn a_remote_result_nobody_waited_for_is_kept_until_read_once() {
    let mut p = Plane::with_worker();
    let f = p.function(def("f"));
    let caller = p.call(&f);
    let call_id = caller.call_id.clone();
    drop(caller); // the caller's wait ran out
    let task = p.ready_container();
    let input = p.inputs(&task).remove(0);
    p.output(&task, &input.input_id, ResultStatus::Success);
    let (reader, first) = p.state.call_get(&call_id, &Principal::Local).unwrap();
    assert_eq!(first.ok().map(|r| r.status), Some(ResultStatus::Success));
    assert_eq!(reader, Reader::Only, "a `remote` result is handed over");
    let again = p.state.call_get(&call_id, &Principal::Local).err().unwrap();
    assert_eq!(again.code(), tonic::Code::NotFound);
}

#[test]
fn a_spawned_result_is_kept_for_the_retention_window_then_expires() {
    let mut p = Plane::with_worker();
    p.state.retention = Duration::from_secs(3600);
    let f = p.function(def("f"));
    let call = p.spawn(&f);
    let task = p.ready_container();
    let input = p.inputs(&task).remove(0);
    p.output(&task, &input.input_id, ResultStatus::Success);
    for _ in 0..2 {
        let (reader, r) = p.state.call_get(&call, &Principal::Local).unwrap();
        assert_eq!(
            reader,
            Reader::OneOfMany,
            "every `get` reads a spawned result"
        );
        assert_eq!(
            r.ok().map(|r| r.status),
            Some(ResultStatus::Success),
            "read again"
        );
    }
    p.advance(Duration::from_secs(3599));
    p.housekeeping();
    assert!(p.state.calls.contains_key(&call));
    p.advance(Duration::from_secs(61));
    p.housekeeping();
    let err = p.state.call_get(&call, &Principal::Local).err().unwrap();
    assert!(err.message().contains("expired"), "{}", err.message());
}

#[test]
fn a_call_sent_again_with_its_id_is_the_same_call() {
    let mut p = Plane::with_worker();
    let f = p.function(def("f"));
    let g = p.function(def("g"));
    let send = |p: &mut Plane, id: &str, function: &str| {
        p.state.invoke_as(
            Some(id.to_owned()),
            function,
            "",
            Payload::new(vec![7]),
            Wait::Spawned,
            &Principal::Local,
        )
    };
    let (first, _) = send(&mut p, "fc-client-chosen-1", &f).unwrap();
    let (again, rx) = send(&mut p, "fc-client-chosen-1", &f).unwrap();
    assert_eq!(first, "fc-client-chosen-1");
    assert_eq!(again, first);
    assert!(rx.is_none(), "the caller reads the result with call_get");
    p.state.schedule();
    let task = p.ready_container();
    assert_eq!(p.inputs(&task).len(), 1, "one input, not two");
    let taken = send(&mut p, "fc-client-chosen-1", &g).unwrap_err();
    assert_eq!(taken.code(), tonic::Code::AlreadyExists);
    for bad in [
        "client-chosen",
        "fc-",
        "fc-a b",
        &format!("fc-{}", "x".repeat(65)),
    ] {
        let err = send(&mut p, bad, &f).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{bad}: {err:?}");
    }
}
