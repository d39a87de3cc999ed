//! The pilots' memory between ticks and what each tick does: `squeue` read into the tracked
//! jobs, the plan carried out (`sbatch`, `scancel`, workers retired, inputs failed), failures
//! counted per shape so that one lost node fails nothing while a broken set-up fails fast.

use std::time::{Duration, Instant};

use super::plan::{self, Action, JobState, Memory, Pilot, Shape};
use super::{Settings, slurm};
use crate::credentials::Credentials;
use crate::model::WorkerSummary;
use crate::server::api::Api;

/// How often `squeue` is asked while every pilot's worker is connected (more often while some
/// is starting).
const QUEUE_EVERY: Duration = Duration::from_secs(2);
/// How long a shape Slurm refused fails its demand at once, without asking again.
const REFUSAL_KEPT: Duration = Duration::from_secs(30);
/// How long Slurm may be unreachable (a failing `squeue` or `sbatch`) before the waiting inputs
/// fail with its error.
const UNREACHABLE_FOR: Duration = Duration::from_secs(60);
/// Pilots of one shape lost in a row (ended or silent before their worker connected) that fail
/// the shape's waiting inputs: one is a node's bad luck, two a set-up that does not work.
const LOST_IN_A_ROW: u32 = 2;

/// A pilot as this control plane tracks it.
struct Tracked {
    pilot: Pilot,
    /// Cancelled here (no demand, idle, lost): its end says nothing more.
    cancelled: bool,
}

/// The pilots of one control plane.
pub(super) struct Pilots {
    api: Api,
    settings: Settings,
    /// What the plan works within (from the settings).
    limits: plan::Limits,
    url: String,
    token: Credentials,
    tracked: Vec<Tracked>,
    last_queue: Option<Instant>,
    /// Since when Slurm has been unreachable, and its last error.
    unreachable: Option<(Instant, String)>,
    /// Recent refusals by shape: when, and the message the demand fails with.
    refused: Vec<(Shape, Instant, String)>,
    /// Pilots of each shape lost in a row.
    lost: Vec<(Shape, u32)>,
    /// What `modal worker list` was last given.
    listed: Vec<WorkerSummary>,
}

/// The control plane is gone.
pub(super) struct ShuttingDown;

impl Pilots {
    pub(super) fn new(api: Api, settings: Settings, url: String, token: Credentials) -> Self {
        Pilots {
            api,
            limits: settings.limits(),
            settings,
            url,
            token,
            tracked: Vec::new(),
            last_queue: None,
            unreachable: None,
            refused: Vec::new(),
            lost: Vec::new(),
            listed: Vec::new(),
        }
    }

    /// One look at Slurm's queue (when due) and at the demand, and what they call for.
    pub(super) async fn tick(&mut self, now: Instant) -> Result<(), ShuttingDown> {
        self.refused
            .retain(|(_, at, _)| now.duration_since(*at) < REFUSAL_KEPT);
        if self.queue_due(now) {
            self.last_queue = Some(now);
            match slurm::queue(&self.settings.submission.job_name).await {
                Ok(jobs) => {
                    self.unreachable = None;
                    self.reconcile(jobs, now).await?;
                }
                Err(e) => return self.slurm_unreachable(e, now).await,
            }
        }
        let (demands, workers) = self
            .api
            .ask(|s| Ok(s.pilot_view()))
            .await
            .map_err(|_| ShuttingDown)?;
        // Only workers of jobs submitted (or found) here are this control plane's pilots.
        let workers: Vec<plan::PilotWorker> = workers
            .into_iter()
            .filter(|w| self.tracked.iter().any(|t| t.pilot.job_id == w.job_id))
            .collect();
        for t in &mut self.tracked {
            if let Some(w) = workers.iter().find(|w| w.job_id == t.pilot.job_id) {
                if t.pilot.worker_id.is_none()
                    && let Some(shape) = &t.pilot.shape
                {
                    self.lost.retain(|(s, _)| s != shape);
                }
                t.pilot.worker_id = Some(w.worker_id.clone());
            }
        }
        self.list_pending().await?;
        let pilots: Vec<Pilot> = self
            .tracked
            .iter()
            .filter(|t| !t.cancelled)
            .map(|t| t.pilot.clone())
            .collect();
        let memory = Memory {
            leaving: self.tracked.iter().filter(|t| t.cancelled).count(),
            refused: self
                .refused
                .iter()
                .map(|(s, _, m)| (s.clone(), m.clone()))
                .collect(),
        };
        for action in plan::plan(&demands, &workers, &pilots, &self.limits, &memory, now) {
            match action {
                Action::Submit { shape, functions } => {
                    let names: Vec<String> = demands
                        .iter()
                        .filter(|d| functions.contains(&d.function_id))
                        .map(|d| d.name.clone())
                        .collect();
                    self.submit(shape, functions, &names, now).await?;
                }
                Action::Cancel { job_id, why } => {
                    tracing::info!(%job_id, "cancelling pilot job: {why}");
                    if let Err(e) = slurm::cancel_pending(&job_id).await {
                        tracing::warn!(%job_id, "cannot cancel pilot job: {e}");
                    }
                    self.cancelled(&job_id);
                }
                Action::Lost {
                    job_id,
                    shape,
                    functions,
                    message,
                    hopeless,
                } => {
                    if let Err(e) = slurm::cancel(std::slice::from_ref(&job_id)).await {
                        tracing::warn!(%job_id, "cannot cancel pilot job: {e}");
                    }
                    self.cancelled(&job_id);
                    // A job that never started wrote nothing.
                    let message = if hopeless {
                        message
                    } else {
                        let log = self.log_of(&job_id);
                        format!(
                            "{message}; its output ({}):\n{}",
                            log.display(),
                            slurm::log_tail(&log)
                        )
                    };
                    self.pilot_lost(shape, functions, message, hopeless).await?;
                }
                Action::Retire { worker_id, job_id } => {
                    let id = worker_id.clone();
                    let may_go = self
                        .api
                        .ask(move |s| Ok(s.retire_worker(&id)))
                        .await
                        .map_err(|_| ShuttingDown)?;
                    if may_go {
                        tracing::info!(%job_id, %worker_id, "letting an idle pilot go");
                        if let Err(e) = slurm::cancel(std::slice::from_ref(&job_id)).await {
                            tracing::warn!(%job_id, "cannot cancel pilot job: {e}");
                        }
                        self.cancelled(&job_id);
                    }
                }
                Action::Fail { functions, message } => self.fail(functions, message).await?,
            }
        }
        Ok(())
    }

    fn queue_due(&self, now: Instant) -> bool {
        let starting = self
            .tracked
            .iter()
            .any(|t| t.pilot.worker_id.is_none() && !t.cancelled);
        let every = if starting {
            super::TICK * 2
        } else {
            QUEUE_EVERY
        };
        self.last_queue
            .is_none_or(|t| now.duration_since(t) >= every)
    }

    fn log_of(&self, job_id: &str) -> std::path::PathBuf {
        self.settings.log_dir.join(format!("pilot-{job_id}.log"))
    }

    fn cancelled(&mut self, job_id: &str) {
        if let Some(t) = self.tracked.iter_mut().find(|t| t.pilot.job_id == job_id) {
            t.cancelled = true;
        }
    }

    /// Submits a pilot of `shape` for `functions` (`names` in messages). A refusal in Slurm's
    /// own words fails their inputs (and the shape's demand for a while); Slurm out of reach
    /// fails nothing until it has been so for [`UNREACHABLE_FOR`].
    async fn submit(
        &mut self,
        shape: Shape,
        functions: Vec<String>,
        names: &[String],
        now: Instant,
    ) -> Result<(), ShuttingDown> {
        let log = self.settings.log_dir.join("pilot-%j.log");
        let args = slurm::sbatch_args(&shape, &self.settings.submission, &log);
        let script = self.settings.script(&self.url, &self.token, &shape.labels);
        match slurm::submit(&args, &script).await {
            Ok(job_id) => {
                tracing::info!(%job_id, cpus = shape.cpus, memory_mb = shape.memory_mb, gpus = ?shape.gpus, partition = ?shape.partition, "pilot job submitted");
                self.tracked.push(Tracked {
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
                Ok(())
            }
            Err(e) if slurm::is_transient(&e) => self.slurm_unreachable(e, now).await,
            Err(e) => {
                let asked: Vec<&str> = args
                    .iter()
                    .map(String::as_str)
                    .filter(|a| {
                        !a.starts_with("--output")
                            && !a.starts_with("--job-name")
                            && *a != "--parsable"
                    })
                    .collect();
                let message = format!(
                    "Slurm refused the pilot job for {} ({}): {e}",
                    names.join(", "),
                    asked.join(" ")
                );
                self.refused.push((shape, now, message.clone()));
                self.fail(functions, message).await
            }
        }
    }

    /// Slurm cannot be reached: said in the log, and, once that has lasted
    /// [`UNREACHABLE_FOR`], to the waiting inputs.
    async fn slurm_unreachable(&mut self, error: String, now: Instant) -> Result<(), ShuttingDown> {
        let since = match &self.unreachable {
            Some((since, last)) => {
                if *last != error {
                    tracing::error!("Slurm cannot be reached: {error}");
                }
                *since
            }
            None => {
                tracing::error!("Slurm cannot be reached: {error}");
                now
            }
        };
        self.unreachable = Some((since, error.clone()));
        if now.duration_since(since) < UNREACHABLE_FOR {
            return Ok(());
        }
        let (demands, _) = self
            .api
            .ask(|s| Ok(s.pilot_view()))
            .await
            .map_err(|_| ShuttingDown)?;
        if demands.is_empty() {
            return Ok(());
        }
        let functions = demands.into_iter().map(|d| d.function_id).collect();
        self.fail(
            functions,
            format!(
                "no pilot job can be started: Slurm has not been reachable for {} s: {error}",
                now.duration_since(since).as_secs()
            ),
        )
        .await
    }

    /// A pilot that gave no worker: `hopeless` (Slurm will never start it) fails its functions
    /// at once; otherwise the shape's [`LOST_IN_A_ROW`]th in a row does.
    async fn pilot_lost(
        &mut self,
        shape: Option<Shape>,
        functions: Vec<String>,
        message: String,
        hopeless: bool,
    ) -> Result<(), ShuttingDown> {
        let in_a_row = match &shape {
            Some(shape) => match self.lost.iter_mut().find(|(s, _)| s == shape) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    self.lost.push((shape.clone(), 1));
                    1
                }
            },
            None => 0,
        };
        if functions.is_empty() || !(hopeless || in_a_row >= LOST_IN_A_ROW) {
            tracing::warn!("{message} (another pilot is submitted if work still waits)");
            return Ok(());
        }
        if let Some(shape) = &shape {
            self.lost.retain(|(s, _)| s != shape);
        }
        self.fail(functions, message).await
    }

    /// Fails the queued inputs of `functions` with `message` (each retried per its policy),
    /// said in the log too.
    async fn fail(&self, functions: Vec<String>, message: String) -> Result<(), ShuttingDown> {
        tracing::warn!("{message}");
        self.api
            .ask(move |s| {
                s.pilots_failed(&functions, &message);
                Ok(())
            })
            .await
            .map_err(|_| ShuttingDown)
    }

    /// Tells the state which pilots have not connected yet, when that changed.
    async fn list_pending(&mut self) -> Result<(), ShuttingDown> {
        let pending = pending_summaries(&self.tracked);
        if pending == self.listed {
            return Ok(());
        }
        self.listed = pending.clone();
        self.api
            .ask(move |s| {
                s.pending_pilots = pending;
                Ok(())
            })
            .await
            .map_err(|_| ShuttingDown)
    }

    /// Brings the tracked pilots in line with Slurm's queue: states updated, jobs of this job
    /// name adopted (a restarted control plane's), and ended ones dropped; one that ended before
    /// its worker connected, not cancelled here, is a lost pilot.
    async fn reconcile(
        &mut self,
        jobs: Vec<(String, JobState)>,
        now: Instant,
    ) -> Result<(), ShuttingDown> {
        let mut ended = Vec::new();
        self.tracked.retain(|t| {
            let listed = jobs.iter().any(|(id, _)| *id == t.pilot.job_id);
            if !listed && !t.cancelled && t.pilot.worker_id.is_none() {
                ended.push(t.pilot.clone());
            }
            listed
        });
        for (job_id, state) in jobs {
            match self.tracked.iter_mut().find(|t| t.pilot.job_id == job_id) {
                Some(t) => {
                    if state == JobState::Running && t.pilot.running_since.is_none() {
                        t.pilot.running_since = Some(now);
                    }
                    t.pilot.state = state;
                }
                None => self.tracked.push(Tracked {
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
        for pilot in ended {
            let log = self.log_of(&pilot.job_id);
            let message = format!(
                "Slurm pilot job {} ended before its worker connected; its output ({}):\n{}",
                pilot.job_id,
                log.display(),
                slurm::log_tail(&log)
            );
            self.pilot_lost(pilot.shape, pilot.functions, message, false)
                .await?;
        }
        Ok(())
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
