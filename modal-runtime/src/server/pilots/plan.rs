//! What the pilot jobs should be, as a pure function of demand and of the jobs there are:
//! which to submit, which pending ones to cancel, which idle workers to let go, and which
//! functions to fail because the cluster cannot start a worker for them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::super::scheduler::{PilotOffer, Request};
use crate::model::Constraints;

/// A function's containers that no connected worker can take now.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Demand {
    pub(crate) function_id: String,
    /// `app.function`, for messages.
    pub(crate) name: String,
    pub(crate) request: Request,
    pub(crate) constraints: Constraints,
    /// Containers wanted and not placed.
    pub(crate) containers: usize,
}

/// A connected worker that runs in a pilot job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PilotWorker {
    pub(crate) worker_id: String,
    pub(crate) job_id: String,
    /// How long it has run no container (`None`: it runs some).
    pub(crate) idle_for: Option<Duration>,
}

/// What a pilot job asks Slurm for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Shape {
    /// `None`: the cluster's default partition.
    pub(crate) partition: Option<String>,
    pub(crate) cpus: u32,
    pub(crate) memory_mb: u32,
    /// `(kind, count)`: `kind` as the function wrote it (`ANY`, `H100`, …).
    pub(crate) gpus: Option<(String, u32)>,
    /// The labels its worker carries (its partition's).
    pub(crate) labels: BTreeMap<String, String>,
}

/// Where a submitted job is, as `squeue` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JobState {
    /// Waiting for resources, with Slurm's reason.
    Pending(String),
    /// Allocated (running, configuring, completing).
    Running,
}

/// A pilot job this control plane submitted (or found under its job name after a restart).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pilot {
    pub(crate) job_id: String,
    /// `None` for a job found after a restart.
    pub(crate) shape: Option<Shape>,
    /// The functions whose demand it was submitted for.
    pub(crate) functions: Vec<String>,
    pub(crate) state: JobState,
    /// When it was submitted, or first seen running.
    pub(crate) since: Instant,
    pub(crate) running_since: Option<Instant>,
    /// Its worker, once connected.
    pub(crate) worker_id: Option<String>,
}

/// How pilots are sized and kept.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Limits {
    pub(crate) offer: PilotOffer,
    /// At most this many pilot jobs at once, pending or running.
    pub(crate) max_jobs: usize,
    /// CPUs a pilot asks for (more when one container needs more).
    pub(crate) cpus_per_job: u32,
    /// An idle worker is let go after this.
    pub(crate) idle_window: Duration,
    /// A running job whose worker has not connected after this has failed.
    pub(crate) connect_window: Duration,
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    Submit {
        shape: Shape,
        functions: Vec<String>,
    },
    /// Cancel a job if it is still pending (no demand is left for it).
    Cancel { job_id: String, why: String },
    /// A job that will not give a worker: cancel it and count it against its shape
    /// (`hopeless`: Slurm said it will never start it, which fails its functions at once).
    Lost {
        job_id: String,
        shape: Option<Shape>,
        functions: Vec<String>,
        message: String,
        hopeless: bool,
    },
    /// Let an idle worker go, then cancel its job.
    Retire { worker_id: String, job_id: String },
    /// Fail the queued inputs of these functions.
    Fail {
        functions: Vec<String>,
        message: String,
    },
}

/// Memory a pilot asks for beyond its containers', for the worker itself.
pub(crate) const WORKER_MEMORY_MB: u32 = 256;

/// Pending reasons after which Slurm will never start the job as it is.
const HOPELESS: &[&str] = &[
    "BadConstraints",
    "PartitionConfig",
    "PartitionNodeLimit",
    "PartitionTimeLimit",
    "InvalidAccount",
    "InvalidQOS",
    "AccountNotAllowed",
    "QOSNotAllowed",
];

/// The shape of a pilot for `d` (`cpus_per_job` CPUs, or what one container needs if more),
/// and how many of its containers one such pilot holds; `None`
/// when no partition meets its constraints (the scheduler fails it itself).
pub(crate) fn shape_for(d: &Demand, limits: &Limits) -> Option<(Shape, usize)> {
    let partition = limits.offer.meeting(&d.constraints)?;
    let per_cpu = d.request.milli_cpu.max(1);
    let gpus = d.request.gpu.first().cloned();
    let cpus = per_cpu.div_ceil(1000).max(limits.cpus_per_job).max(1);
    // A GPU pilot holds one container: its devices are the job's.
    let containers = if gpus.is_some() {
        1
    } else {
        usize::try_from(cpus.saturating_mul(1000) / per_cpu)
            .unwrap_or(usize::MAX)
            .max(1)
    };
    let memory_mb = u32::try_from(containers)
        .unwrap_or(u32::MAX)
        .saturating_mul(d.request.memory_mb)
        .saturating_add(WORKER_MEMORY_MB);
    Some((
        Shape {
            partition: partition.name.clone(),
            cpus,
            memory_mb,
            gpus,
            labels: partition.labels.clone(),
        },
        containers,
    ))
}

/// What the pilots know besides the jobs they track.
#[derive(Debug, Default)]
pub(crate) struct Memory {
    /// Jobs cancelled here that Slurm still lists: they hold their slots until they go.
    pub(crate) leaving: usize,
    /// Shapes Slurm refused lately, with its words: their demand fails without asking again.
    pub(crate) refused: Vec<(Shape, String)>,
}

/// Decides what to do now.
pub(crate) fn plan(
    demands: &[Demand],
    workers: &[PilotWorker],
    pilots: &[Pilot],
    limits: &Limits,
    memory: &Memory,
    now: Instant,
) -> Vec<Action> {
    let mut actions = Vec::new();
    // Jobs Slurm will never start, running jobs whose worker never connected, and pending jobs
    // of an earlier run of this control plane (no demand of this run is theirs).
    let mut gone: Vec<&str> = Vec::new();
    for p in pilots.iter().filter(|p| p.worker_id.is_none()) {
        let action = match (&p.state, &p.shape) {
            (JobState::Pending(reason), _) if HOPELESS.iter().any(|h| reason.starts_with(h)) => {
                let message = format!("Slurm will not start pilot job {} ({reason})", p.job_id);
                Some(Action::Lost {
                    job_id: p.job_id.clone(),
                    shape: p.shape.clone(),
                    functions: p.functions.clone(),
                    message,
                    hopeless: true,
                })
            }
            (JobState::Pending(_), None) => Some(Action::Cancel {
                job_id: p.job_id.clone(),
                why: "a pending pilot of an earlier run of this server".into(),
            }),
            (JobState::Running, _) => p
                .running_since
                .filter(|t| now.duration_since(*t) >= limits.connect_window)
                .map(|_| Action::Lost {
                    job_id: p.job_id.clone(),
                    shape: p.shape.clone(),
                    functions: p.functions.clone(),
                    message: format!(
                        "the worker of Slurm pilot job {} did not connect within {} s of the job's start (can the cluster's nodes reach the server's advertised URL, and run the `modal` executable at its path?)",
                        p.job_id,
                        limits.connect_window.as_secs()
                    ),
                    hopeless: false,
                }),
            (JobState::Pending(_), Some(_)) => None,
        };
        if let Some(action) = action {
            gone.push(&p.job_id);
            actions.push(action);
        }
    }
    // Idle workers go.
    for w in workers {
        if w.idle_for.is_some_and(|d| d >= limits.idle_window) {
            actions.push(Action::Retire {
                worker_id: w.worker_id.clone(),
                job_id: w.job_id.clone(),
            });
        }
    }
    // Every job Slurm lists holds a slot until it is gone.
    let mut live = pilots.len() + memory.leaving;
    // Pending pilots (no worker yet) by shape, newest last.
    let mut unclaimed: Vec<&Pilot> = pilots
        .iter()
        .filter(|p| p.worker_id.is_none() && !gone.contains(&p.job_id.as_str()))
        .collect();
    unclaimed.sort_by_key(|p| p.since);
    let mut wanted: Vec<(Shape, usize, Vec<String>)> = Vec::new();
    for d in demands.iter().filter(|d| d.containers > 0) {
        let Some((shape, per_pilot)) = shape_for(d, limits) else {
            continue;
        };
        let pilots_needed = d.containers.div_ceil(per_pilot);
        match wanted.iter_mut().find(|(s, _, _)| *s == shape) {
            Some((_, n, fs)) => {
                *n += pilots_needed;
                fs.push(d.function_id.clone());
            }
            None => wanted.push((shape, pilots_needed, vec![d.function_id.clone()])),
        }
    }
    for (shape, needed, functions) in &wanted {
        let mut covered = 0;
        unclaimed.retain(|p| {
            if covered < *needed && p.shape.as_ref() == Some(shape) {
                covered += 1;
                false
            } else {
                true
            }
        });
        if covered >= *needed {
            continue;
        }
        if let Some((_, message)) = memory.refused.iter().find(|(s, _)| s == shape) {
            actions.push(Action::Fail {
                functions: functions.clone(),
                message: message.clone(),
            });
            continue;
        }
        for _ in covered..*needed {
            if live >= limits.max_jobs {
                break;
            }
            live += 1;
            actions.push(Action::Submit {
                shape: shape.clone(),
                functions: functions.clone(),
            });
        }
    }
    // What no demand claims and Slurm has not started yet is cancelled, the newest first (only
    // while still pending: one that started meanwhile may hold work already).
    for p in unclaimed.iter().rev() {
        if matches!(p.state, JobState::Pending(_)) && p.shape.is_some() {
            actions.push(Action::Cancel {
                job_id: p.job_id.clone(),
                why: "no demand is left for it".into(),
            });
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::super::super::scheduler::PartitionOffer;
    use super::*;

    fn limits() -> Limits {
        Limits {
            offer: PilotOffer {
                partitions: vec![
                    PartitionOffer {
                        name: Some("debug".into()),
                        labels: BTreeMap::new(),
                    },
                    PartitionOffer {
                        name: Some("spot".into()),
                        labels: [("preemptible".to_owned(), "true".to_owned())].into(),
                    },
                ],
            },
            max_jobs: 4,
            cpus_per_job: 1,
            idle_window: Duration::from_secs(30),
            connect_window: Duration::from_secs(60),
        }
    }

    fn demand(f: &str, containers: usize, milli_cpu: u32, gpu: Option<(&str, u32)>) -> Demand {
        Demand {
            function_id: f.into(),
            name: format!("app.{f}"),
            request: Request {
                milli_cpu,
                memory_mb: 128,
                gpu: gpu.map(|(k, c)| (k.to_owned(), c)).into_iter().collect(),
            },
            constraints: Constraints::default(),
            containers,
        }
    }

    fn pending(job: &str, shape: Shape, secs_ago: u64, now: Instant) -> Pilot {
        Pilot {
            job_id: job.into(),
            shape: Some(shape),
            functions: vec!["fn".into()],
            state: JobState::Pending("Resources".into()),
            since: now - Duration::from_secs(secs_ago),
            running_since: None,
            worker_id: None,
        }
    }

    fn submits(actions: &[Action]) -> Vec<&Shape> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Submit { shape, .. } => Some(shape),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_pilot_is_sized_for_its_containers_and_at_least_the_minimum() {
        let (shape, n) = shape_for(&demand("f", 4, 125, None), &limits()).unwrap();
        assert_eq!(
            (shape.cpus, n),
            (1, 8),
            "eight 0.125-CPU containers in one CPU"
        );
        assert_eq!(shape.memory_mb, 8 * 128 + WORKER_MEMORY_MB);
        assert_eq!(shape.partition.as_deref(), Some("debug"));
        let (shape, n) = shape_for(&demand("f", 3, 1500, None), &limits()).unwrap();
        assert_eq!(
            (shape.cpus, n),
            (2, 1),
            "a container needing 1.5 CPU gets two"
        );
        let (shape, n) = shape_for(&demand("g", 5, 125, Some(("ANY", 2))), &limits()).unwrap();
        assert_eq!(shape.gpus, Some(("ANY".into(), 2)));
        assert_eq!(n, 1, "a GPU pilot holds one container");
    }

    #[test]
    fn constraints_choose_the_partition_and_none_meeting_them_submits_nothing() {
        let mut d = demand("f", 1, 125, None);
        d.constraints.nonpreemptible = true;
        assert_eq!(
            shape_for(&d, &limits()).unwrap().0.partition.as_deref(),
            Some("debug")
        );
        d.constraints.regions = vec!["eu-west".into()];
        assert!(shape_for(&d, &limits()).is_none());
        assert!(
            plan(
                &[d],
                &[],
                &[],
                &limits(),
                &Memory::default(),
                Instant::now()
            )
            .is_empty()
        );
    }

    #[test]
    fn demand_submits_what_pending_pilots_do_not_cover_up_to_the_cap() {
        let now = Instant::now();
        let gpu = demand("g", 6, 125, Some(("ANY", 1)));
        let (shape, _) = shape_for(&gpu, &limits()).unwrap();
        // Six GPU containers, one pilot each; one is pending already; the cap is four jobs.
        let pilots = vec![pending("1", shape.clone(), 5, now)];
        let actions = plan(&[gpu], &[], &pilots, &limits(), &Memory::default(), now);
        assert_eq!(submits(&actions).len(), 3);
        assert!(actions.iter().all(|a| !matches!(a, Action::Cancel { .. })));
    }

    #[test]
    fn pending_pilots_without_demand_are_cancelled_newest_first() {
        let now = Instant::now();
        let d = demand("f", 1, 125, None);
        let (shape, _) = shape_for(&d, &limits()).unwrap();
        let pilots = vec![
            pending("1", shape.clone(), 9, now),
            pending("2", shape.clone(), 5, now),
        ];
        let actions = plan(&[d], &[], &pilots, &limits(), &Memory::default(), now);
        assert_eq!(
            actions,
            vec![Action::Cancel {
                job_id: "2".into(),
                why: "no demand is left for it".into()
            }]
        );
        let actions = plan(&[], &[], &pilots, &limits(), &Memory::default(), now);
        assert_eq!(actions.len(), 2);
    }

    #[test]
    fn idle_workers_retire_and_busy_ones_stay() {
        let workers = vec![
            PilotWorker {
                worker_id: "wk-1".into(),
                job_id: "1".into(),
                idle_for: Some(Duration::from_secs(31)),
            },
            PilotWorker {
                worker_id: "wk-2".into(),
                job_id: "2".into(),
                idle_for: None,
            },
            PilotWorker {
                worker_id: "wk-3".into(),
                job_id: "3".into(),
                idle_for: Some(Duration::from_secs(3)),
            },
        ];
        let actions = plan(
            &[],
            &workers,
            &[],
            &limits(),
            &Memory::default(),
            Instant::now(),
        );
        assert_eq!(
            actions,
            vec![Action::Retire {
                worker_id: "wk-1".into(),
                job_id: "1".into()
            }]
        );
    }

    #[test]
    fn hopeless_and_silent_jobs_are_lost_and_earlier_runs_pending_ones_cancelled() {
        let now = Instant::now();
        let d = demand("f", 1, 125, None);
        let (shape, _) = shape_for(&d, &limits()).unwrap();
        let mut bad = pending("1", shape.clone(), 5, now);
        bad.state = JobState::Pending("PartitionConfig".into());
        let mut silent = pending("2", shape, 120, now);
        silent.state = JobState::Running;
        silent.running_since = Some(now - Duration::from_secs(61));
        let mut adopted = pending("3", shape_for(&d, &limits()).unwrap().0, 1, now);
        adopted.shape = None;
        let actions = plan(
            &[],
            &[],
            &[bad, silent, adopted],
            &limits(),
            &Memory::default(),
            now,
        );
        let lost: Vec<(&str, bool)> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Lost {
                    message, hopeless, ..
                } => Some((message.as_str(), *hopeless)),
                _ => None,
            })
            .collect();
        assert_eq!(lost.len(), 2, "{actions:?}");
        assert!(lost[0].0.contains("PartitionConfig") && lost[0].1);
        assert!(lost[1].0.contains("did not connect within 60 s") && !lost[1].1);
        assert!(actions.contains(&Action::Cancel {
            job_id: "3".into(),
            why: "a pending pilot of an earlier run of this server".into()
        }));
    }

    #[test]
    fn a_shape_slurm_refused_lately_fails_its_demand_without_asking_again() {
        let now = Instant::now();
        let d = demand("g", 1, 125, Some(("ANY", 5)));
        let (shape, _) = shape_for(&d, &limits()).unwrap();
        let memory = Memory {
            leaving: 0,
            refused: vec![(
                shape,
                "Requested node configuration is not available".into(),
            )],
        };
        let actions = plan(&[d], &[], &[], &limits(), &memory, now);
        assert_eq!(
            actions,
            vec![Action::Fail {
                functions: vec!["g".into()],
                message: "Requested node configuration is not available".into()
            }]
        );
    }

    #[test]
    fn jobs_still_leaving_hold_their_slots() {
        let memory = Memory {
            leaving: 3,
            refused: Vec::new(),
        };
        let gpu = demand("g", 6, 125, Some(("ANY", 1)));
        let actions = plan(&[gpu], &[], &[], &limits(), &memory, Instant::now());
        assert_eq!(submits(&actions).len(), 1, "four slots, three held");
    }
}
