//! What the pilots see of the control plane's state (the demand no connected worker takes,
//! the workers that run in pilot jobs) and what they change in it (workers let go, inputs
//! failed when the cluster cannot start a worker).

use super::super::dispatch::request_of;
use super::super::scheduler;
use super::super::state::State;
use super::plan::{Demand, PilotWorker};
use crate::model::ResultStatus;

impl State {
    /// The containers the autoscaler wants and no connected worker took, by function (after
    /// the last scheduling pass placed what fits), and the workers of pilot jobs.
    pub(crate) fn pilot_view(&self) -> (Vec<Demand>, Vec<PilotWorker>) {
        let mut demands = Vec::new();
        for (id, f) in &self.functions {
            let Some(app) = self.apps.get(&f.app_id).filter(|a| a.is_live()) else {
                continue;
            };
            if self.unmeetable(&f.def.constraints).is_some() {
                continue;
            }
            let containers = scheduler::containers_to_start(&self.load_of(f));
            if containers > 0 {
                demands.push(Demand {
                    function_id: id.clone(),
                    name: format!("{}.{}", app.name, f.def.tag),
                    request: request_of(&f.def),
                    constraints: f.def.constraints.clone(),
                    containers,
                });
            }
        }
        demands.sort_by(|a, b| a.function_id.cmp(&b.function_id));
        let now = self.clock.now;
        let mut workers: Vec<PilotWorker> = self
            .workers
            .iter()
            .filter(|(_, w)| !w.retiring)
            .filter_map(|(id, w)| {
                Some(PilotWorker {
                    worker_id: id.clone(),
                    job_id: w.info.slurm_job_id.clone()?,
                    idle_for: w.idle_since.map(|t| now.saturating_duration_since(t)),
                })
            })
            .collect();
        workers.sort_by(|a, b| a.worker_id.cmp(&b.worker_id));
        (demands, workers)
    }

    /// Takes no more containers on `worker_id` if it runs none: true when it may go.
    pub(crate) fn retire_worker(&mut self, worker_id: &str) -> bool {
        let busy = self.tasks.values().any(|t| t.worker_id == worker_id);
        match self.workers.get_mut(worker_id) {
            Some(w) if !busy => {
                w.retiring = true;
                true
            }
            _ => false,
        }
    }

    /// The cluster cannot start a worker for these functions: their queued inputs fail with
    /// `message` (each retried per its policy, as a container that could not start).
    pub(crate) fn pilots_failed(&mut self, functions: &[String], message: &str) {
        for function_id in functions {
            self.fail_queued(
                function_id,
                ResultStatus::InternalFailure,
                message,
                "",
                true,
            );
        }
    }
}
