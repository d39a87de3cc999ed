//! A function's load now and its autoscaler, from code: `Function::get_current_stats` and
//! `Function::update_autoscaler` (Modal's), for a function of a running or deployed app.

use super::function::Function;
use super::reconnect::reconnecting;
use crate::error::{Error, Result};
use crate::wire::pb;

/// What a function is doing now ([`Function::get_current_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct FunctionCurrentStats {
    /// Inputs waiting for a container.
    pub backlog: u32,
    /// Containers running or starting.
    pub num_total_runners: u32,
    /// Inputs running in them.
    pub num_running_inputs: u32,
    /// Inputs the ready containers could take on top of what they run.
    pub input_headroom: u32,
    /// Inputs that succeeded since the control plane started.
    pub succeeded: u64,
    /// Inputs that failed since the control plane started.
    pub failed: u64,
}

/// New autoscaler settings for [`Function::update_autoscaler`]; a field left `None` keeps the
/// function's current value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AutoscalerSettings {
    /// Containers kept running even without inputs.
    pub min_containers: Option<u32>,
    /// At most this many containers (at least 1).
    pub max_containers: Option<u32>,
    /// Idle containers kept ready beyond what the inputs need.
    pub buffer_containers: Option<u32>,
    /// Seconds an idle container waits before it stops (2–3600).
    pub scaledown_window: Option<u32>,
}

impl<A, R> Function<A, R> {
    fn whole_function(&self, what: &str) -> Result<()> {
        if self.method().is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "`{what}` applies to a function or a class, not to its method `{}`: call it on `Class::cls()`'s function",
                self.name()
            )))
        }
    }

    /// What the function is doing now: its backlog, its containers, the inputs they run.
    ///
    /// ```no_run
    /// # async fn demo() -> modal::Result<()> {
    /// let square: modal::Function<(i64,), i64> = modal::Function::from_name("deploy-me", "square");
    /// let stats = square.get_current_stats().await?;
    /// println!("{} waiting, {} containers", stats.backlog, stats.num_total_runners);
    /// # Ok(()) }
    /// # fn main() {}
    /// ```
    pub async fn get_current_stats(&self) -> Result<FunctionCurrentStats> {
        self.whole_function("get_current_stats")?;
        let bound = self.bound().await?;
        let s = reconnecting("reading a function's stats", || {
            let mut api = bound.client.api.clone();
            let req = pb::FunctionStatsRequest {
                function_id: bound.function_id.clone(),
            };
            async move { api.function_get_current_stats(req).await }
        })
        .await?
        .into_inner();
        Ok(FunctionCurrentStats {
            backlog: s.backlog,
            num_total_runners: s.num_total_runners,
            num_running_inputs: s.num_running_inputs,
            input_headroom: s.input_headroom,
            succeeded: s.succeeded,
            failed: s.failed,
        })
    }

    /// Changes the function's autoscaler until its next deploy: raising `min_containers`
    /// starts warm containers without a call, lowering it lets them scale down,
    /// `buffer_containers` keeps spare ones while inputs run.
    ///
    /// ```no_run
    /// # async fn demo() -> modal::Result<()> {
    /// let square: modal::Function<(i64,), i64> = modal::Function::from_name("deploy-me", "square");
    /// square
    ///     .update_autoscaler(modal::AutoscalerSettings {
    ///         min_containers: Some(2),
    ///         ..Default::default()
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// # fn main() {}
    /// ```
    pub async fn update_autoscaler(&self, settings: AutoscalerSettings) -> Result<()> {
        self.whole_function("update_autoscaler")?;
        let bound = self.bound().await?;
        reconnecting("updating a function's autoscaler", || {
            let mut api = bound.client.api.clone();
            let req = pb::FunctionUpdateAutoscalerRequest {
                function_id: bound.function_id.clone(),
                min_containers: settings.min_containers,
                max_containers: settings.max_containers,
                buffer_containers: settings.buffer_containers,
                scaledown_window: settings.scaledown_window,
            };
            async move { api.function_update_autoscaler(req).await }
        })
        .await?;
        Ok(())
    }
}
