//! Where containers may go: placement constraints against workers' labels, demand left for
//! pilot jobs when a cluster backend could start a worker, idle pilots let go, and what a lost
//! worker costs.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Plane, def};
use crate::model::{GpuRequest, ResultStatus, WorkerInfo};
use crate::server::scheduler::{PartitionOffer, PilotOffer};

fn labelled(pairs: &[(&str, &str)], slurm_job: Option<&str>) -> WorkerInfo {
    WorkerInfo {
        hostname: "node".into(),
        milli_cpu: 2000,
        memory_mb: 4096,
        runtime: "test".into(),
        labels: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        slurm_job_id: slurm_job.map(str::to_owned),
        ..WorkerInfo::default()
    }
}

fn spot_partition() -> PilotOffer {
    PilotOffer {
        partitions: vec![PartitionOffer {
            name: Some("spot".into()),
            labels: BTreeMap::from([("preemptible".to_owned(), "true".to_owned())]),
        }],
    }
}

#[test]
fn constraints_place_containers_on_matching_workers_and_fail_fast_naming_what_is_offered() {
    let mut p = Plane::new();
    p.worker_with(labelled(&[("region", "us-east")], None));
    let mut d = def("eu");
    d.constraints.regions = vec!["eu-west".into()];
    let eu = p.function(d);
    let mut caller = p.call(&eu);
    let r = caller.result().expect("failed at once");
    assert_eq!(r.status, ResultStatus::InternalFailure);
    assert!(
        r.message.contains("region = \"eu-west\"") && r.message.contains("region=us-east"),
        "{}",
        r.message
    );
    assert!(p.started().is_empty());

    let mut d = def("us");
    d.constraints.regions = vec!["eu-west".into(), "us-east".into()];
    d.constraints.nonpreemptible = true;
    let us = p.function(d);
    let _caller = p.call(&us);
    assert_eq!(
        p.started().len(),
        1,
        "a worker without `preemptible` is not preemptible"
    );
}

#[test]
fn a_constraint_only_a_partition_meets_waits_for_a_pilot_and_one_none_meets_fails() {
    let mut p = Plane::new();
    p.state.pilot_offer = Some(spot_partition());
    p.worker_with(labelled(&[("preemptible", "true")], None));
    let mut d = def("steady");
    d.constraints.nonpreemptible = true;
    let steady = p.function(d);
    let mut caller = p.call(&steady);
    let r = caller.result().expect("no worker or partition meets it");
    assert!(
        r.message.contains("nonpreemptible = true")
            && r.message
                .contains("Slurm partition spot (preemptible=true)")
            && r.message.contains("worker wk-"),
        "{}",
        r.message
    );

    let mut d = def("west");
    d.constraints.regions = vec!["eu-west".into()];
    let west = p.function(d);
    p.state.pilot_offer = Some(PilotOffer {
        partitions: vec![PartitionOffer {
            name: Some("eu".into()),
            labels: BTreeMap::from([("region".to_owned(), "eu-west".to_owned())]),
        }],
    });
    let mut caller = p.call(&west);
    assert_eq!(
        caller.status(),
        None,
        "it waits for a pilot in partition eu"
    );
    let (demands, _) = p.state.pilot_view();
    assert_eq!(demands.len(), 1);
    assert_eq!(demands[0].function_id, west);
    assert!(
        p.started().is_empty(),
        "the unlabelled worker does not take it"
    );
    p.worker_with(labelled(&[("region", "eu-west")], Some("42")));
    assert_eq!(p.started().len(), 1, "the pilot's worker takes it");
    assert!(p.state.pilot_view().0.is_empty(), "no demand is left");
}

#[test]
fn with_pilots_a_gpu_no_worker_offers_is_demand_rather_than_a_failure() {
    let mut p = Plane::new();
    p.state.pilot_offer = Some(PilotOffer {
        partitions: vec![PartitionOffer {
            name: None,
            labels: BTreeMap::new(),
        }],
    });
    p.worker(8000, 16_384, Vec::new());
    let mut d = def("g");
    d.gpu = vec![GpuRequest {
        kind: "ANY".into(),
        count: 1,
    }];
    let g = p.function(d);
    let mut caller = p.call(&g);
    assert_eq!(caller.status(), None);
    let (demands, _) = p.state.pilot_view();
    assert_eq!(demands[0].request.gpu, vec![("ANY".to_owned(), 1)]);
    p.state.pilots_failed(
        std::slice::from_ref(&g),
        "Slurm refused the pilot job: Requested node configuration is not available",
    );
    let r = caller.result().expect("failed with Slurm's reason");
    assert!(
        r.message.contains("Requested node configuration"),
        "{}",
        r.message
    );
}

#[test]
fn an_idle_pilot_worker_is_retired_and_takes_no_more_containers() {
    let mut p = Plane::new();
    p.state.pilot_offer = Some(spot_partition());
    let worker = p.worker_with(labelled(&[], Some("7")));
    let f = p.function(def("f"));
    let _caller = p.call(&f);
    let task = p.ready_container();
    assert!(!p.state.retire_worker(&worker), "it runs a container");
    let (_, workers) = p.state.pilot_view();
    assert_eq!(workers[0].idle_for, None);
    let inputs = p.inputs(&task);
    p.output(&task, &inputs[0].input_id, ResultStatus::Success);
    p.exited(&task, Some(0), None);
    p.advance(Duration::from_secs(40));
    let (_, workers) = p.state.pilot_view();
    assert_eq!(workers[0].job_id, "7");
    assert_eq!(workers[0].idle_for, Some(Duration::from_secs(40)));
    assert!(p.state.retire_worker(&worker));
    let mut caller = p.call(&f);
    assert!(p.started().is_empty(), "a retiring worker takes nothing");
    assert_eq!(caller.status(), None);
    assert_eq!(p.state.pilot_view().0.len(), 1, "the call is demand again");
    assert!(p.state.worker_list()[0].state == "retiring");
}

#[test]
fn a_lost_worker_fails_its_running_inputs_per_policy_and_blames_no_start() {
    let mut p = Plane::new();
    let worker = p.worker_with(labelled(&[], Some("9")));
    let mut d = def("f");
    d.retries = Some(crate::app::Retries::new(1));
    let f = p.function(d);
    let mut running = p.call(&f);
    let task = p.ready_container();
    assert_eq!(p.inputs(&task).len(), 1);
    p.state.worker_disconnected(&worker);
    assert_eq!(running.status(), None, "retried, not failed");
    p.advance(Duration::from_secs(5));
    // A container that was starting on a lost worker fails no queued input.
    let worker = p.worker_with(labelled(&[], Some("10")));
    let starting = p.started_one();
    p.state.worker_disconnected(&worker);
    assert!(!p.state.tasks.contains_key(&starting));
    assert_eq!(running.status(), None, "still waiting for a worker");
    p.worker_with(labelled(&[], Some("11")));
    let task = p.ready_container();
    let inputs = p.inputs(&task);
    assert_eq!(inputs[0].attempt, 1, "the lost run counted one attempt");
    p.output(&task, &inputs[0].input_id, ResultStatus::Success);
    assert_eq!(running.status(), Some(ResultStatus::Success));
}
