//! Apps as the control plane reports them: their states, deployments, and the summaries the
//! admin commands list (apps, containers, secrets).

/// Where an app is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum AppState {
    /// Being set up (not used by this control plane; kept for the wire).
    Initializing,
    /// Lives while its client does.
    Ephemeral,
    /// Started with `run --detach`: lives until stopped.
    Detached,
    Deployed,
    Stopping,
    Stopped,
}

impl AppState {
    /// Whether the app takes inputs.
    pub(crate) fn is_live(self) -> bool {
        !matches!(self, AppState::Stopping | AppState::Stopped)
    }
}

/// How a deploy replaces the containers of the previous version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum DeployStrategy {
    /// Old containers finish their inputs; new inputs go to the new version.
    #[default]
    Rolling,
    /// Old containers are stopped before the deploy returns.
    Recreate,
}

impl DeployStrategy {
    pub(crate) fn name(self) -> &'static str {
        match self {
            DeployStrategy::Rolling => "rolling",
            DeployStrategy::Recreate => "recreate",
        }
    }
}

/// One deploy of an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Deployment {
    pub(crate) version: i64,
    pub(crate) deployed_at_ms: i64,
    /// Who deployed (user@host).
    pub(crate) client: String,
    pub(crate) tag: String,
    pub(crate) strategy: DeployStrategy,
}

/// An app in `modal app list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AppSummary {
    pub(crate) app_id: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) state: AppState,
    /// Its containers now.
    pub(crate) tasks: u32,
    pub(crate) created_at_ms: i64,
    /// Zero while it runs.
    pub(crate) stopped_at_ms: i64,
    pub(crate) environment: String,
    pub(crate) deployed_version: i64,
}

/// A container in `modal container list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContainerSummary {
    pub(crate) task_id: String,
    pub(crate) app_id: String,
    pub(crate) app_name: String,
    pub(crate) function_tag: String,
    /// Zero while it is starting.
    pub(crate) started_at_ms: i64,
    pub(crate) running_inputs: u32,
    /// The worker it runs on, and that worker's host.
    pub(crate) worker_id: String,
    pub(crate) worker_host: String,
}

/// A named secret in `modal secret list`: its keys, never its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SecretSummary {
    pub(crate) name: String,
    pub(crate) environment: String,
    pub(crate) keys: Vec<String>,
    pub(crate) created_at_ms: i64,
    pub(crate) updated_at_ms: i64,
}
