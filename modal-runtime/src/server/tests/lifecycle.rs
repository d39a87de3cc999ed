//! Container lifecycle and app changes: exits, init failures, start-up deadlines, binary
//! mismatch, redeploys with each strategy, schedules, reaping, variants.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Asked, Plane, def};
use crate::app::{Period, Retries};
use crate::model::{DeployStrategy, FunctionOptions, Payload, ResultStatus};
use crate::server::auth::Principal;
use crate::server::deploy::DeployRequest;

#[test]
fn a_container_that_crashes_fails_its_running_input_as_an_internal_failure() {
    let mut p = Plane::with_worker();
    let f = p.function(def("f"));
    let mut caller = p.call(&f);
    let task = p.ready_container();
    let _ = p.inputs(&task);
    p.exited(&task, Some(3), None);
    let r = caller.result().expect("failed");
    assert_eq!(r.status, ResultStatus::InternalFailure);
    assert!(
        r.message
            .contains("exited unexpectedly (exit code 3) while running the input"),
        "{}",
        r.message
    );
}

#[test]
fn prefetched_inputs_of_a_crashed_container_go_back_without_an_attempt() {
    let mut p = Plane::with_worker();
    let f = p.function(def("f"));
    p.state.functions.get_mut(&f).unwrap().exec_ewma = Some(Duration::from_micros(100));
    let mut callers: Vec<_> = (0..3).map(|_| p.call(&f)).collect();
    let task = p.ready_container();
    let sent = p.inputs(&task);
    assert_eq!(sent.len(), 3);
    p.exited(&task, None, Some(9));
    assert_eq!(callers[0].status(), Some(ResultStatus::InternalFailure));
    for (c, item) in callers.iter_mut().zip(&sent).skip(1) {
        assert_eq!(c.status(), None, "a prefetched input is not failed");
        assert_eq!(p.attempt(&item.input_id), Some(0), "and keeps its attempt");
    }
    let next = p.ready_container();
    assert_eq!(p.inputs(&next).len(), 2);
}

#[test]
fn a_container_that_exits_before_it_connects_fails_the_waiting_inputs_as_init_failures() {
    let mut p = Plane::with_worker();
    let f = p.function(def("f"));
    let mut caller = p.call(&f);
    let task = p.started_one();
    p.exited(&task, Some(101), None);
    let r = caller.result().expect("failed");
    assert_eq!(r.status, ResultStatus::InitFailure);
    assert!(r.message.contains("before it connected"), "{}", r.message);
}

#[test]
fn a_container_that_never_connects_is_stopped_at_its_startup_deadline() {
    let mut p = Plane::with_worker();
    let mut d = def("f");
    d.startup_timeout_secs = 5;
    let f = p.function(d);
    let mut caller = p.call(&f);
    let task = p.started_one();
    p.advance(Duration::from_millis(4999));
    assert!(p.asked().is_empty());
    p.advance(Duration::from_millis(1));
    assert_eq!(
        p.asked(),
        vec![Asked::Stop {
            task_id: task.clone(),
            grace_ms: 0
        }]
    );
    p.exited(&task, None, Some(9));
    let r = caller.result().expect("failed");
    assert_eq!(r.status, ResultStatus::InitFailure);
    assert!(
        r.message.contains("startup timeout of 5 s"),
        "{}",
        r.message
    );
}

#[test]
fn a_container_takes_no_input_until_its_enter_hooks_ran() {
    let mut p = Plane::with_worker();
    let f = p.function(def("f"));
    let _caller = p.call(&f);
    let task = p.started_one();
    p.hello_entering(&task);
    assert!(p.inputs(&task).is_empty(), "not while `enter` runs");
    p.ready(&task);
    assert_eq!(p.inputs(&task).len(), 1);
}

#[test]
fn the_startup_timeout_covers_the_enter_hooks() {
    let mut p = Plane::with_worker();
    let mut d = def("f");
    d.startup_timeout_secs = 5;
    let f = p.function(d);
    let mut caller = p.call(&f);
    let task = p.started_one();
    p.advance(Duration::from_secs(1));
    p.hello_entering(&task);
    p.advance(Duration::from_secs(4));
    assert_eq!(
        p.asked(),
        vec![Asked::Stop {
            task_id: task.clone(),
            grace_ms: 0
        }],
        "still in `enter` when the start-up timeout ran out"
    );
    p.exited(&task, None, Some(9));
    let r = caller.result().expect("failed");
    assert_eq!(r.status, ResultStatus::InitFailure);
    assert!(
        r.message
            .contains("had not run its `enter` hooks within the startup timeout of 5 s"),
        "{}",
        r.message
    );
}

#[test]
fn the_timeout_counts_from_when_the_input_starts_after_enter() {
    let mut p = Plane::with_worker();
    let mut d = def("f");
    d.startup_timeout_secs = 30;
    d.timeout_secs = 3;
    let f = p.function(d);
    let mut caller = p.call(&f);
    let task = p.started_one();
    p.hello_entering(&task);
    p.advance(Duration::from_secs(6));
    p.ready(&task);
    let input = p.inputs(&task).remove(0);
    p.advance(Duration::from_secs(2));
    assert_eq!(
        caller.status(),
        None,
        "6 s of `enter` count against startup, not timeout"
    );
    p.output(&task, &input.input_id, ResultStatus::Success);
    assert_eq!(caller.status(), Some(ResultStatus::Success));
}

#[test]
fn an_init_failure_fails_the_input_with_its_message_and_is_retried() {
    let mut p = Plane::with_worker();
    let mut d = def("f");
    d.retries = Some(Retries::fixed(1));
    let f = p.function(d);
    let mut caller = p.call(&f);
    let task = p.ready_container();
    let input = p.inputs(&task).remove(0);
    p.state
        .container_init_failure(&task, "`Model::load` panicked: weights missing");
    p.state.schedule();
    assert_eq!(caller.status(), None, "retried after its delay");
    assert_eq!(p.attempt(&input.input_id), Some(1));
    p.exited(&task, Some(1), None);
    p.advance(Duration::from_secs(1));
    let second = p.ready_container();
    p.state
        .container_init_failure(&second, "`Model::load` panicked: weights missing");
    let r = caller.result().expect("final");
    assert_eq!((r.status, r.attempt), (ResultStatus::InitFailure, 1));
    assert!(r.message.contains("weights missing"));
}

#[test]
fn a_container_with_another_binary_is_refused() {
    let mut p = Plane::with_worker();
    let f = p.function(def("f"));
    let mut caller = p.call(&f);
    let task = p.started_one();
    let err = p.hello_with(&task, "ffffffffffffffffffff").err().unwrap();
    assert!(
        err.message().contains("differs from the one registered"),
        "{}",
        err.message()
    );
    let r = caller.result().expect("failed");
    assert_eq!(r.status, ResultStatus::InitFailure);
}

fn deploy(
    p: &mut Plane,
    strategy: DeployStrategy,
    defs: Vec<crate::model::FunctionDef>,
) -> tokio::sync::oneshot::Receiver<Result<crate::server::deploy::Deployed, tonic::Status>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let req = DeployRequest {
        name: "svc".into(),
        environment: String::new(),
        tag: String::new(),
        strategy,
        functions: defs,
        tags: BTreeMap::new(),
        client: "test".into(),
    };
    p.state.app_deploy(req, tx);
    p.state.schedule();
    rx
}

#[test]
fn a_rolling_redeploy_lets_busy_containers_finish_and_retires_them() {
    let mut p = Plane::with_worker();
    let v1 = deploy(&mut p, DeployStrategy::Rolling, vec![def("f")]);
    let f = v1.blocking_recv_ok().function_ids["f"].clone();
    let mut caller = p.call(&f);
    let old = p.ready_container();
    let input = p.inputs(&old).remove(0);
    let v2 = deploy(&mut p, DeployStrategy::Rolling, vec![def("f")]);
    assert_eq!(v2.blocking_recv_ok().version, 2, "answered at once");
    assert!(
        p.asked().iter().all(|a| !matches!(a, Asked::Stop { .. })),
        "busy: not stopped"
    );
    let _next = p.call(&f);
    let new = p.started_one();
    assert_ne!(new, old, "new inputs go to the new version");
    p.output(&old, &input.input_id, ResultStatus::Success);
    assert_eq!(caller.status(), Some(ResultStatus::Success));
    assert!(p.asked().contains(&Asked::Stop {
        task_id: old.clone(),
        grace_ms: 2000
    }));
}

#[test]
fn a_recreate_redeploy_stops_old_containers_and_answers_once_they_are_gone() {
    let mut p = Plane::with_worker();
    let v1 = deploy(&mut p, DeployStrategy::Rolling, vec![def("f")]);
    let f = v1.blocking_recv_ok().function_ids["f"].clone();
    let _caller = p.call(&f);
    let old = p.ready_container();
    let _ = p.inputs(&old);
    let mut v2 = deploy(&mut p, DeployStrategy::Recreate, vec![def("f")]);
    assert!(p.asked().contains(&Asked::Stop {
        task_id: old.clone(),
        grace_ms: 0
    }));
    assert!(v2.try_recv().is_err(), "waits for the old container");
    p.exited(&old, None, Some(9));
    assert_eq!(v2.try_recv().unwrap().unwrap().version, 2);
}

#[test]
fn a_redeploy_without_a_function_fails_its_queued_inputs() {
    let mut p = Plane::new();
    let v1 = deploy(&mut p, DeployStrategy::Rolling, vec![def("f"), def("g")]);
    let g = v1.blocking_recv_ok().function_ids["g"].clone();
    let mut caller = p.call(&g);
    let _v2 = deploy(&mut p, DeployStrategy::Rolling, vec![def("f")]);
    let r = caller.result().expect("failed");
    assert!(r.message.contains("removed by deploy v2"), "{}", r.message);
    let err = p.refused(&g, &Principal::Local);
    assert!(
        err.message().contains("no longer part of its app"),
        "{}",
        err.message()
    );
}

#[test]
fn a_schedule_fires_when_due_while_its_app_runs() {
    let mut p = Plane::with_worker();
    let mut d = def("tick");
    d.schedule = Some(Period::seconds(2.0).into());
    d.args_type = "()".into();
    let app = p.app("a");
    let f = p.publish(&app, d);
    let calls = |p: &Plane| {
        p.state
            .calls
            .values()
            .filter(|c| c.function_id == f)
            .count()
    };
    assert_eq!(calls(&p), 0);
    p.advance(Duration::from_secs(2));
    assert_eq!(calls(&p), 1, "first tick");
    p.advance(Duration::from_secs(2));
    assert_eq!(calls(&p), 2, "second tick");
    p.state.app_stop(&app, "test").unwrap();
    p.advance(Duration::from_secs(4));
    assert_eq!(calls(&p), 2, "stopped: no tick fires");
    assert!(
        p.state.calls.values().all(|c| c.unfinished.is_empty()),
        "and its calls were cancelled"
    );
}

#[test]
fn an_ephemeral_app_without_heartbeats_is_stopped() {
    let mut p = Plane::with_worker();
    let app = p.app("a");
    p.advance(Duration::from_secs(59));
    p.state.app_heartbeat(&app).unwrap();
    p.advance(Duration::from_secs(59));
    p.housekeeping();
    assert!(p.state.apps[&app].is_live(), "a heartbeat keeps it");
    p.advance(Duration::from_secs(2));
    p.housekeeping();
    assert!(
        !p.state.apps[&app].is_live(),
        "reaped after 60 s of silence"
    );
}

#[test]
fn variants_with_the_same_parameters_share_a_function_and_apply_their_options() {
    let mut p = Plane::with_worker();
    let mut d = def("Model");
    d.is_class = true;
    d.methods = vec!["predict".into()];
    let base = p.function(d);
    let small = || Some(Payload::new(b"small".to_vec()));
    let options = FunctionOptions {
        timeout_secs: Some(900),
        ..Default::default()
    };
    let a = p
        .state
        .function_bind(&base, small(), Some(options.clone()), &Principal::Local)
        .unwrap();
    let b = p
        .state
        .function_bind(&base, small(), Some(options), &Principal::Local)
        .unwrap();
    let c = p
        .state
        .function_bind(
            &base,
            Some(Payload::new(b"large".to_vec())),
            None,
            &Principal::Local,
        )
        .unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    let variant = &p.state.functions[&a].def;
    assert_eq!(variant.timeout_secs, 900);
    assert_eq!(variant.variant_of, base);
    assert_eq!(variant.class_params, small());
    let err = p
        .state
        .function_bind(&a, None, None, &Principal::Local)
        .err()
        .unwrap();
    assert!(err.message().contains("not one of its variants"));
}

#[test]
fn a_definition_out_of_range_is_refused_by_the_control_plane() {
    let mut p = Plane::new();
    let app = p.app("a");
    let mut d = def("f");
    d.timeout_secs = 0;
    let err = p.state.app_publish(&app, vec![d]).err().unwrap();
    assert!(err.message().contains("timeout"), "{}", err.message());
}

/// A deploy's reply, which these tests expect to be there already.
trait Answered<T> {
    fn blocking_recv_ok(self) -> T;
}

impl<T> Answered<T> for tokio::sync::oneshot::Receiver<Result<T, tonic::Status>> {
    fn blocking_recv_ok(mut self) -> T {
        match self.try_recv() {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => panic!("refused: {}", e.message()),
            Err(e) => panic!("no answer yet: {e}"),
        }
    }
}

#[test]
fn a_container_that_must_leave_gets_no_more_inputs_and_loses_none() {
    let mut p = Plane::with_worker();
    let f = p.function(def("f"));
    p.state.functions.get_mut(&f).unwrap().exec_ewma = Some(Duration::from_micros(100));
    let mut first = p.call(&f);
    let mut waiting: Vec<_> = (0..2).map(|_| p.call(&f)).collect();
    let task = p.ready_container();
    let sent = p.inputs(&task);
    assert_eq!(sent.len(), 3, "one running, two prefetched");
    // The running input is cancelled; the container cannot interrupt it and says it leaves.
    p.state
        .call_cancel_request(&first.call_id, false, &Principal::Local)
        .unwrap();
    assert_eq!(first.status(), Some(ResultStatus::Cancelled));
    p.state
        .container_leaving(&task, "a cancelled input runs on one of its threads");
    p.state.schedule();
    let asked = p.asked();
    assert!(asked.contains(&Asked::Stop {
        task_id: task.clone(),
        grace_ms: 2000
    }));
    let next = asked
        .iter()
        .find_map(|a| match a {
            Asked::Start { task_id, .. } => Some(task_id.clone()),
            Asked::Stop { .. } => None,
        })
        .expect("another container starts for the inputs sent back");
    let _late = p.call(&f);
    assert!(
        p.inputs(&task).is_empty(),
        "nothing more goes to a container that leaves"
    );
    for (c, item) in waiting.iter_mut().zip(&sent[1..]) {
        assert_eq!(c.status(), None, "a prefetched input is not failed");
        assert_eq!(
            p.attempt(&item.input_id),
            Some(0),
            "nor does it count an attempt"
        );
    }
    p.exited(&task, Some(0), None);
    p.hello(&next);
    assert_eq!(
        p.inputs(&next).len(),
        3,
        "the two it never started, and the late one"
    );
}

#[test]
fn a_crash_is_settled_by_the_containers_journal() {
    let mut p = Plane::with_worker();
    let f = p.function(def("f"));
    p.state.functions.get_mut(&f).unwrap().exec_ewma = Some(Duration::from_micros(100));
    let mut callers: Vec<_> = (0..4).map(|_| p.call(&f)).collect();
    let task = p.ready_container();
    let sent = p.inputs(&task);
    let ids: Vec<String> = sent.iter().map(|i| i.input_id.clone()).collect();
    // The control plane thinks: a running, b, c and d prefetched. The container had returned a
    // (its result kept in the journal) and b (too large to keep), was running c when it
    // exited, and never started d.
    let key = |id: &String| crate::task_env::journal_key(id, 0);
    let seen = crate::model::InputsSeen {
        started: ids[..3].iter().map(key).collect(),
        ended: ids[..2].iter().map(key).collect(),
        results: vec![(
            key(&ids[0]),
            crate::model::CallResult::success(Payload::new(vec![42])),
        )],
    };
    p.state.task_exited(&task, Some(3), None, None, Some(seen));
    p.state.schedule();
    let a = callers[0].result().expect("a is settled");
    assert_eq!(a.status, ResultStatus::Success, "a keeps its result");
    assert_eq!(a.data.map(|d| d.data.to_vec()), Some(vec![42]));
    let b = callers[1].result().expect("b is settled");
    assert!(
        b.message
            .contains("after the input returned, before its result reached"),
        "{}",
        b.message
    );
    let c = callers[2].result().expect("c is settled");
    assert!(
        c.message
            .contains("exited unexpectedly (exit code 3) while running the input"),
        "{}",
        c.message
    );
    assert_eq!(callers[3].status(), None, "d never ran: it runs elsewhere");
    assert_eq!(p.attempt(&ids[3]), Some(0), "without counting an attempt");
    let next = p.ready_container();
    assert_eq!(p.inputs(&next)[0].input_id, ids[3]);
}

#[test]
fn an_ephemeral_app_and_its_spawned_calls_survive_a_restart_while_its_client_is_there() {
    let mut p = Plane::durable();
    p.worker(8000, 16_384, Vec::new());
    let f = p.function(def("f"));
    let call = p.spawn(&f);
    let mut q = p.restarted();
    q.worker(8000, 16_384, Vec::new());
    // The app still takes calls, and the spawned call runs again.
    let again = q.spawn(&f);
    let task = q.ready_container();
    let mut ran = 0;
    for _ in 0..3 {
        for input in q.inputs(&task) {
            q.output(&task, &input.input_id, ResultStatus::Success);
            ran += 1;
        }
    }
    assert_eq!(ran, 2, "the restored call and the new one");
    for id in [&call, &again] {
        let (_, r) = q.state.call_get(id, &Principal::Local).unwrap();
        assert_eq!(r.ok().map(|r| r.status), Some(ResultStatus::Success));
    }
    // A client that never comes back: its app is stopped once its heartbeats stay away.
    q.advance(Duration::from_secs(61));
    q.housekeeping();
    let err = q.refused(&f, &Principal::Local);
    assert!(err.message().contains("stopped"), "{err:?}");
}

#[test]
fn a_crash_is_settled_for_the_attempt_that_ran_not_an_earlier_one() {
    let mut p = Plane::with_worker();
    let mut d = def("f");
    d.retries = Some(Retries::new(2).initial_delay(Duration::ZERO));
    let f = p.function(d);
    let mut caller = p.call(&f);
    let task = p.ready_container();
    let first = p.inputs(&task).remove(0);
    // Attempt 0 fails in this container; attempt 1 comes back to it.
    p.output(&task, &first.input_id, ResultStatus::UserError);
    p.advance(Duration::from_millis(10));
    let again = p.inputs(&task);
    assert_eq!(again.len(), 1, "attempt 1 goes to the same container");
    assert_eq!(again[0].attempt, 1);
    // It crashes before attempt 1 starts: the journal knows only attempt 0.
    let old = crate::task_env::journal_key(&first.input_id, 0);
    let seen = crate::model::InputsSeen {
        started: vec![old.clone()],
        ended: vec![old.clone()],
        results: vec![(
            old,
            crate::model::CallResult::failure(ResultStatus::UserError, "attempt 0", ""),
        )],
    };
    p.state.task_exited(&task, Some(3), None, None, Some(seen));
    p.state.schedule();
    assert_eq!(
        caller.status(),
        None,
        "attempt 0's result is not attempt 1's"
    );
    assert_eq!(p.attempt(&first.input_id), Some(1), "no attempt counted");
}
