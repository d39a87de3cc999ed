//! `modal worker list`: the workers connected to a control plane, with their Slurm jobs,
//! capacity, load and labels, and the pilot jobs whose worker has not connected yet.

#![allow(clippy::print_stdout, clippy::print_stderr)] // A command-line tool.

use serde_json::json;

use super::admin::{client, table};
use crate::error::Result;
use crate::wire::pb;

/// `modal worker list`: the workers connected to the control plane, and pilot jobs whose
/// worker has not connected yet.
pub(super) async fn list(json: bool) -> Result<()> {
    let client = client().await?;
    let mut api = client.api.clone();
    let workers = api
        .worker_list(pb::WorkerListRequest {})
        .await?
        .into_inner()
        .workers;
    let gpus = |w: &pb::WorkerSummary| {
        if w.gpus.is_empty() {
            "-".to_owned()
        } else {
            format!(
                "{}/{} busy: {}",
                w.busy_gpus,
                w.gpus.len(),
                w.gpus.join(", ")
            )
        }
    };
    if json {
        let rows: Vec<_> = workers
            .iter()
            .map(|w| {
                json!({"worker_id": w.worker_id, "host": w.hostname, "slurm_job_id": w.slurm_job_id,
                       "state": w.state, "cpu": f64::from(w.milli_cpu) / 1000.0,
                       "cpu_used": f64::from(w.used_milli_cpu) / 1000.0, "memory_mb": w.memory_mb,
                       "memory_used_mb": w.used_memory_mb, "gpus": w.gpus, "gpus_busy": w.busy_gpus,
                       "containers": w.containers, "labels": w.labels, "runtime": w.runtime})
            })
            .collect();
        println!("{}", json!(rows));
        return Ok(());
    }
    let rows = workers
        .iter()
        .map(|w| {
            let mut labels: Vec<String> =
                w.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            labels.sort();
            vec![
                if w.worker_id.is_empty() {
                    "-".to_owned()
                } else {
                    w.worker_id.clone()
                },
                if w.hostname.is_empty() {
                    "-".to_owned()
                } else {
                    w.hostname.clone()
                },
                if w.slurm_job_id.is_empty() {
                    "-".to_owned()
                } else {
                    w.slurm_job_id.clone()
                },
                w.state.clone(),
                format!(
                    "{:.2}/{:.2}",
                    f64::from(w.used_milli_cpu) / 1000.0,
                    f64::from(w.milli_cpu) / 1000.0
                ),
                format!("{}/{} MiB", w.used_memory_mb, w.memory_mb),
                gpus(w),
                w.containers.to_string(),
                labels.join(","),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &[
                "Worker ID",
                "Host",
                "Slurm Job",
                "State",
                "CPU (used/total)",
                "Memory",
                "GPUs",
                "Containers",
                "Labels"
            ],
            rows
        )
    );
    Ok(())
}
