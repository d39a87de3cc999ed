//! Pilot jobs: workers started through a cluster's scheduler (Slurm) when the demand no
//! connected worker can take calls for them, let go when idle, cancelled while pending when the
//! demand goes, and the waiting inputs failed with the cluster's reason when it cannot start
//! them.

mod plan;
mod slurm;
mod tracker;
mod view;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use plan::Limits;
pub(crate) use slurm::Submission;

use super::api::Api;
use super::scheduler::{PartitionOffer, PilotOffer};
use crate::credentials::Credentials;

/// How often the pilots look at the demand.
const TICK: Duration = Duration::from_millis(200);
/// A running job whose worker has not connected after this has failed.
const CONNECT_WINDOW: Duration = Duration::from_secs(90);
/// A pilot's worker leaves by itself this long after the control plane would have let it go
/// (when the control plane is gone, say).
const WORKER_IDLE_MARGIN: Duration = Duration::from_secs(60);

/// `modal server --backend slurm`: where and how pilot jobs are submitted.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The partitions pilots may go to, with their labels (`None`: the default partition).
    pub(crate) partitions: Vec<PartitionOffer>,
    pub(crate) submission: Submission,
    /// At most this many pilot jobs at once.
    pub(crate) max_jobs: usize,
    /// CPUs a pilot asks for (more when one container needs more).
    pub(crate) cpus_per_job: u32,
    /// A pilot whose worker runs no container for this long is let go.
    pub(crate) idle_window: Duration,
    /// The `modal` executable pilots run (the server's own by default: on a cluster, a path
    /// every node sees).
    pub(crate) worker_exe: PathBuf,
    /// More `modal worker` arguments (its container runtime).
    pub(crate) worker_args: Vec<String>,
    /// Environment variables the pilot's worker gets (besides its token).
    pub(crate) worker_env: BTreeMap<String, String>,
    /// Where pilot jobs write their output (`pilot-JOBID.log`).
    pub(crate) log_dir: PathBuf,
}

impl Settings {
    /// What pilots could offer the scheduler.
    pub(crate) fn offer(&self) -> PilotOffer {
        PilotOffer {
            partitions: if self.partitions.is_empty() {
                vec![PartitionOffer {
                    name: None,
                    labels: BTreeMap::new(),
                }]
            } else {
                self.partitions.clone()
            },
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            offer: self.offer(),
            max_jobs: self.max_jobs.max(1),
            cpus_per_job: self.cpus_per_job.max(1),
            idle_window: self.idle_window,
            connect_window: CONNECT_WINDOW,
        }
    }

    /// The batch script of a pilot: a worker for `url` with `token` and its partition's labels.
    fn script(&self, url: &str, token: &Credentials, labels: &BTreeMap<String, String>) -> String {
        use slurm::shell_quote as q;
        let mut script = format!(
            "#!/bin/sh\n# A modal-rs pilot: a worker for the control plane at {url}; it leaves when idle.\n"
        );
        for (k, v) in &self.worker_env {
            script.push_str(&format!("export {k}={}\n", q(v)));
        }
        script.push_str(&format!(
            "export MODAL_TOKEN_ID={}\nexport MODAL_TOKEN_SECRET={}\n",
            q(&token.token_id),
            q(&token.token_secret)
        ));
        let idle_exit = (self.idle_window + WORKER_IDLE_MARGIN).as_secs();
        script.push_str(&format!(
            "exec {} worker --server {} --idle-exit {idle_exit}",
            q(&self.worker_exe.to_string_lossy()),
            q(url)
        ));
        for (k, v) in labels {
            script.push_str(&format!(" --label {}", q(&format!("{k}={v}"))));
        }
        for a in &self.worker_args {
            script.push_str(&format!(" {}", q(a)));
        }
        script.push('\n');
        script
    }
}

/// Cancels every pilot job named `job_name` (a control plane that stops).
#[cfg_attr(not(feature = "cli"), allow(dead_code))] // `modal server` stopping.
pub(crate) async fn cancel_all(job_name: &str) -> Result<(), String> {
    slurm::cancel_named(job_name).await
}

/// Submits, watches and cancels pilot jobs for the control plane behind `api`, for as long as
/// it runs.
pub(crate) async fn run(api: Api, settings: Settings, url: String, token: Credentials) {
    let mut pilots = tracker::Pilots::new(api, settings, url, token);
    loop {
        tokio::time::sleep(TICK).await;
        if pilots.tick(Instant::now()).await.is_err() {
            return; // The control plane is shutting down.
        }
    }
}
