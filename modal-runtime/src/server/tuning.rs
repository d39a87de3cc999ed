//! What users read of a running function and change in it: its current stats
//! (`Function::get_current_stats`) and its autoscaler settings until its next deploy
//! (`Function::update_autoscaler`).

use tonic::Status;

use super::auth::Principal;
use super::state::{State, TaskState};
use crate::app::rules;

/// A function's load now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct CurrentStats {
    pub(crate) backlog: u32,
    pub(crate) runners: u32,
    pub(crate) running_inputs: u32,
    pub(crate) headroom: u32,
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
}

/// New autoscaler settings; `None` keeps the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct AutoscalerUpdate {
    pub(crate) min_containers: Option<u32>,
    pub(crate) max_containers: Option<u32>,
    pub(crate) buffer_containers: Option<u32>,
    pub(crate) scaledown_window_secs: Option<u32>,
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl State {
    /// `function_id`'s load now, for `principal` (a user, or a container of its app).
    pub(crate) fn function_current_stats(
        &self,
        function_id: &str,
        principal: &Principal,
    ) -> Result<CurrentStats, Status> {
        let f = self
            .functions
            .get(function_id)
            .ok_or_else(|| Status::not_found(format!("function {function_id} not found")))?;
        principal.require_app(&f.app_id)?;
        let tasks: Vec<_> = f
            .tasks
            .iter()
            .filter_map(|t| self.tasks.get(t))
            .filter(|t| t.stop.is_none())
            .collect();
        let running: usize = tasks.iter().map(|t| t.running.len()).sum();
        let ready = tasks.iter().filter(|t| t.state == TaskState::Ready).count();
        let capacity = ready * f.def.concurrency();
        Ok(CurrentStats {
            backlog: count(f.queue.len()),
            runners: count(tasks.len()),
            running_inputs: count(running),
            headroom: count(capacity.saturating_sub(running)),
            succeeded: f.stats.succeeded,
            failed: f.stats.failed,
        })
    }

    /// Changes `function_id`'s autoscaler (kept by the store, until the next deploy replaces
    /// the definition), as Modal's `update_autoscaler` does: containers start or go at once.
    pub(crate) fn function_update_autoscaler(
        &mut self,
        function_id: &str,
        update: AutoscalerUpdate,
        principal: &Principal,
    ) -> Result<(), Status> {
        let f = self
            .functions
            .get(function_id)
            .ok_or_else(|| Status::not_found(format!("function {function_id} not found")))?;
        principal.require_app(&f.app_id)?;
        if update.max_containers == Some(0) {
            return Err(Status::invalid_argument(
                "max_containers must be at least 1",
            ));
        }
        if let Some(w) = update.scaledown_window_secs {
            rules::check_scaledown_window(u64::from(w)).map_err(Status::invalid_argument)?;
        }
        let mut a = f.def.autoscaler;
        if let Some(v) = update.min_containers {
            a.min_containers = v;
        }
        if let Some(v) = update.max_containers {
            a.max_containers = Some(v);
        }
        if let Some(v) = update.buffer_containers {
            a.buffer_containers = v;
        }
        if let Some(v) = update.scaledown_window_secs {
            a.scaledown_window_secs = v;
        }
        if let Some(max) = a.max_containers
            && a.min_containers > max
        {
            return Err(Status::invalid_argument(format!(
                "min_containers ({}) cannot exceed max_containers ({max})",
                a.min_containers
            )));
        }
        if let Some(f) = self.functions.get_mut(function_id) {
            f.def.autoscaler = a;
        }
        self.save_function(function_id);
        self.dirty.insert(function_id.to_owned());
        tracing::info!(%function_id, ?a, "autoscaler updated");
        Ok(())
    }
}
