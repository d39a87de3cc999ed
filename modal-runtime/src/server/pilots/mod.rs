//! Pilot jobs: workers started through a cluster's scheduler (Slurm) when the demand no
//! connected worker can take calls for them, let go when idle, cancelled while pending when the
//! demand goes, and the waiting inputs failed with the cluster's reason when it cannot start
//! them.

mod plan;
mod slurm;
mod view;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use plan::{Action, JobState, Limits, Pilot};
pub(crate) use slurm::Submission;

use super::api::Api;
use super::scheduler::{PartitionOffer, PilotOffer};
use crate::credentials::Credentials;
use crate::model::WorkerSummary;

/// How often the pilots look at the demand.
const TICK: Duration = Duration::from_millis(200);
/// How often `squeue` is asked while every pilot's worker is connected (more often while
/// some is starting).
const QUEUE_EVERY: Duration = Duration::from_secs(2);
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

/// Fails the queued inputs of `functions` with `message`, said in the log too.
async fn fail(api: &Api, functions: Vec<String>, message: String) {
    tracing::warn!("{message}");
    let _ = api
        .ask(move |s| {
            s.pilots_failed(&functions, &message);
            Ok(())
        })
        .await;
}

/// Cancels every pilot job named `job_name` (a control plane that stops).
pub(crate) async fn cancel_all(job_name: &str) -> Result<(), String> {
    slurm::cancel_named(job_name).await
}

/// A pilot as this control plane tracks it.
struct Tracked {
    pilot: Pilot,
    /// Cancelled on purpose (no demand, idle): its end fails nothing.
    cancelled: bool,
}

/// Submits, watches and cancels pilot jobs for the control plane behind `api`, for as long as
/// it runs.
pub(crate) async fn run(api: Api, settings: Settings, url: String, token: Credentials) {
    if let Err(e) = std::fs::create_dir_all(&settings.log_dir) {
        tracing::error!(
            "pilot jobs cannot be submitted: cannot create {}: {e}",
            settings.log_dir.display()
        );
        return;
    }
    let limits = settings.limits();
    let mut tracked: Vec<Tracked> = Vec::new();
    let mut last_queue: Option<Instant> = None;
    let mut queue_error: Option<String> = None;
    let mut listed: Vec<WorkerSummary> = Vec::new();
    loop {
        tokio::time::sleep(TICK).await;
        let now = Instant::now();
        let starting = tracked
            .iter()
            .any(|t| t.pilot.worker_id.is_none() && !t.cancelled);
        let due = last_queue
            .is_none_or(|t| now.duration_since(t) >= if starting { TICK * 2 } else { QUEUE_EVERY });
        if due {
            last_queue = Some(now);
            match slurm::queue(&settings.submission.job_name).await {
                Ok(jobs) => {
                    queue_error = None;
                    for (functions, message) in reconcile(&mut tracked, jobs, &settings, now) {
                        fail(&api, functions, message).await;
                    }
                }
                Err(e) => {
                    if queue_error.as_ref() != Some(&e) {
                        tracing::error!("cannot read Slurm's queue: {e}");
                    }
                    queue_error = Some(e);
                    continue;
                }
            }
        }
        let Ok((demands, workers)) = api.ask(|s| Ok(s.pilot_view())).await else {
            return; // The control plane is shutting down.
        };
        for t in &mut tracked {
            if let Some(w) = workers.iter().find(|w| w.job_id == t.pilot.job_id) {
                t.pilot.worker_id = Some(w.worker_id.clone());
            }
        }
        let pending = pending_summaries(&tracked);
        if pending != listed {
            listed = pending.clone();
            let _ = api
                .ask(move |s| {
                    s.pending_pilots = pending;
                    Ok(())
                })
                .await;
        }
        let pilots: Vec<Pilot> = tracked
            .iter()
            .filter(|t| !t.cancelled)
            .map(|t| t.pilot.clone())
            .collect();
        for action in plan::plan(&demands, &workers, &pilots, &limits, now) {
            match action {
                Action::Submit { shape, functions } => {
                    let log = settings.log_dir.join("pilot-%j.log");
                    let args = slurm::sbatch_args(&shape, &settings.submission, &log);
                    let script = settings.script(&url, &token, &shape.labels);
                    match slurm::submit(&args, &script).await {
                        Ok(job_id) => {
                            tracing::info!(%job_id, cpus = shape.cpus, memory_mb = shape.memory_mb, gpus = ?shape.gpus, partition = ?shape.partition, "pilot job submitted");
                            tracked.push(Tracked {
                                pilot: Pilot {
                                    job_id,
                                    shape: Some(shape),
                                    functions,
                                    state: JobState::Pending("submitted".into()),
                                    since: now,
                                    running_since: None,
                                    worker_id: None,
                                },
                                cancelled: false,
                            });
                        }
                        Err(e) => {
                            let names: Vec<&str> = demands
                                .iter()
                                .filter(|d| functions.contains(&d.function_id))
                                .map(|d| d.name.as_str())
                                .collect();
                            let message = format!(
                                "Slurm refused the pilot job for {} ({}): {e}",
                                names.join(", "),
                                args.iter()
                                    .filter(|a| !a.starts_with("--output")
                                        && !a.starts_with("--job-name")
                                        && *a != "--parsable")
                                    .cloned()
                                    .collect::<Vec<_>>()
                                    .join(" ")
                            );
                            fail(&api, functions, message).await;
                        }
                    }
                }
                Action::Cancel { job_id, why } => {
                    tracing::info!(%job_id, "cancelling pilot job: {why}");
                    if let Err(e) = slurm::cancel(std::slice::from_ref(&job_id)).await {
                        tracing::warn!(%job_id, "cannot cancel pilot job: {e}");
                    }
                    if let Some(t) = tracked.iter_mut().find(|t| t.pilot.job_id == job_id) {
                        t.cancelled = true;
                    }
                }
                Action::Retire { worker_id, job_id } => {
                    let id = worker_id.clone();
                    let may_go = api.ask(move |s| Ok(s.retire_worker(&id))).await;
                    if may_go.unwrap_or(false) {
                        tracing::info!(%job_id, %worker_id, "letting an idle pilot go");
                        if let Err(e) = slurm::cancel(std::slice::from_ref(&job_id)).await {
                            tracing::warn!(%job_id, "cannot cancel pilot job: {e}");
                        }
                        if let Some(t) = tracked.iter_mut().find(|t| t.pilot.job_id == job_id) {
                            t.cancelled = true;
                        }
                    }
                }
                Action::Fail { functions, message } => {
                    fail(&api, functions, message).await;
                }
            }
        }
    }
}

/// The pilot jobs whose worker has not connected yet, as `modal worker list` shows them.
fn pending_summaries(tracked: &[Tracked]) -> Vec<WorkerSummary> {
    tracked
        .iter()
        .filter(|t| t.pilot.worker_id.is_none() && !t.cancelled)
        .map(|t| {
            let shape = t.pilot.shape.as_ref();
            WorkerSummary {
                slurm_job_id: Some(t.pilot.job_id.clone()),
                state: match &t.pilot.state {
                    JobState::Pending(reason) => format!("pending ({reason})"),
                    JobState::Running => "starting".to_owned(),
                },
                milli_cpu: shape.map_or(0, |s| s.cpus.saturating_mul(1000)),
                memory_mb: shape.map_or(0, |s| s.memory_mb),
                gpus: shape
                    .and_then(|s| s.gpus.as_ref())
                    .map(|(kind, n)| vec![kind.clone(); usize::try_from(*n).unwrap_or(0)])
                    .unwrap_or_default(),
                labels: shape.map(|s| s.labels.clone()).unwrap_or_default(),
                ..WorkerSummary::default()
            }
        })
        .collect()
}

/// Brings the tracked pilots in line with Slurm's queue: states updated, jobs of this job name
/// adopted (a restarted control plane's), and ended ones dropped. A job that ended before its
/// worker connected, not cancelled here, fails its functions: `(functions, message)`.
fn reconcile(
    tracked: &mut Vec<Tracked>,
    jobs: Vec<(String, JobState)>,
    settings: &Settings,
    now: Instant,
) -> Vec<(Vec<String>, String)> {
    let mut failures = Vec::new();
    tracked.retain(|t| {
        if jobs.iter().any(|(id, _)| *id == t.pilot.job_id) {
            return true;
        }
        if !t.cancelled && t.pilot.worker_id.is_none() && !t.pilot.functions.is_empty() {
            let log = settings
                .log_dir
                .join(format!("pilot-{}.log", t.pilot.job_id));
            failures.push((
                t.pilot.functions.clone(),
                format!(
                    "Slurm pilot job {} ended before its worker connected; its output ({}):\n{}",
                    t.pilot.job_id,
                    log.display(),
                    slurm::log_tail(&log)
                ),
            ));
        }
        false
    });
    for (job_id, state) in jobs {
        match tracked.iter_mut().find(|t| t.pilot.job_id == job_id) {
            Some(t) => {
                if state == JobState::Running && t.pilot.running_since.is_none() {
                    t.pilot.running_since = Some(now);
                }
                t.pilot.state = state;
            }
            None => tracked.push(Tracked {
                pilot: Pilot {
                    job_id,
                    shape: None,
                    functions: Vec::new(),
                    running_since: (state == JobState::Running).then_some(now),
                    state,
                    since: now,
                    worker_id: None,
                },
                cancelled: false,
            }),
        }
    }
    failures
}
