//! What the dashboard's pages are made of, from the state: an app's functions with their
//! counts and latencies, its containers, a call's result.

use std::time::Duration;

use super::{Plane, def};
use crate::model::ResultStatus;

#[test]
fn an_app_page_counts_queued_running_succeeded_and_failed_inputs() {
    let mut p = Plane::with_worker();
    let f = p.function(def("f"));
    let app_id = p.state.functions[&f].app_id.clone();
    let mut first = p.call(&f);
    let task = p.ready_container();
    let inputs = p.inputs(&task);
    p.advance(Duration::from_millis(40));
    p.output(&task, &inputs[0].input_id, ResultStatus::Success);
    assert_eq!(first.status(), Some(ResultStatus::Success));
    let mut second = p.call(&f);
    let inputs = p.inputs(&task);
    p.output(&task, &inputs[0].input_id, ResultStatus::Panic);
    assert_eq!(second.status(), Some(ResultStatus::Panic));
    let _running = p.call(&f);
    let page = p.state.dashboard_app(&app_id).expect("the app's page");
    let row = &page.functions[0];
    assert_eq!(row.tag, "f");
    assert_eq!((row.queued, row.running), (0, 1));
    assert_eq!((row.succeeded, row.failed), (1, 1));
    assert_eq!(row.p99, Some(Duration::from_millis(40)));
    assert_eq!(row.series.iter().sum::<u32>(), 2);
    assert_eq!(page.containers.len(), 1);
    assert_eq!(page.containers[0].state, "busy");
    assert_eq!(page.app.failures_last_hour, 1);
    assert_eq!(p.state.dashboard_apps()[0].containers, 1);
    // A container that ends is listed with how, and no reason: nobody stopped it.
    p.exited(&task, Some(3), None);
    let page = p.state.dashboard_app(&app_id).expect("the app's page");
    assert!(page.containers.is_empty());
    assert_eq!(page.exited.len(), 1);
    assert_eq!(page.exited[0].task_id, task);
    assert!(page.exited[0].how.contains('3'), "{:?}", page.exited[0]);
    assert_eq!(page.exited[0].reason, "");
}

#[test]
fn a_spawned_call_s_page_keeps_its_result() {
    let mut p = Plane::with_worker();
    let f = p.function(def("f"));
    let call_id = p.spawn(&f);
    let task = p.ready_container();
    let inputs = p.inputs(&task);
    let before = p.state.dashboard_call(&call_id).expect("a page");
    assert_eq!(
        (before.kind, before.inputs_done, before.inputs_total),
        ("spawn", 0, 1)
    );
    p.output(&task, &inputs[0].input_id, ResultStatus::UserError);
    let after = p.state.dashboard_call(&call_id).expect("a page");
    assert_eq!(after.inputs_done, 1);
    assert_eq!(
        after.result.map(|r| r.status),
        Some(ResultStatus::UserError)
    );
    assert_eq!(after.attempts.len(), 1);
    assert_eq!(
        (
            after.attempts[0].attempt,
            after.attempts[0].task_id.as_str()
        ),
        (0, task.as_str())
    );
    assert!(p.state.dashboard_call("fc-unknown").is_none());
}

#[test]
fn update_autoscaler_starts_warm_containers_and_refuses_bad_settings() {
    use crate::server::auth::Principal;
    use crate::server::tuning::AutoscalerUpdate;
    let mut p = Plane::with_worker();
    let f = p.function(def("f"));
    let user = Principal::Local;
    let raise = AutoscalerUpdate {
        min_containers: Some(2),
        ..Default::default()
    };
    p.state
        .function_update_autoscaler(&f, raise, &user)
        .expect("updated");
    p.state.schedule();
    assert_eq!(p.started().len(), 2, "two warm containers without a call");
    let stats = p.state.function_current_stats(&f, &user).expect("stats");
    assert_eq!((stats.runners, stats.backlog), (2, 0));
    for (bad, says) in [
        (
            AutoscalerUpdate {
                max_containers: Some(0),
                ..Default::default()
            },
            "at least 1",
        ),
        (
            AutoscalerUpdate {
                scaledown_window_secs: Some(1),
                ..Default::default()
            },
            "scaledown_window",
        ),
        (
            AutoscalerUpdate {
                max_containers: Some(1),
                ..Default::default()
            },
            "cannot exceed max_containers",
        ),
    ] {
        let e = p
            .state
            .function_update_autoscaler(&f, bad, &user)
            .expect_err("refused");
        assert!(e.message().contains(says), "{}", e.message());
    }
    assert_eq!(
        p.state.functions[&f].def.autoscaler.min_containers, 2,
        "unchanged"
    );
}
