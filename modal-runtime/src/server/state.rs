//! The control plane's authoritative state: plain records in the runtime's own types, owned and
//! mutated by the event loop alone, with the clock it is given (state transitions never read
//! the system clock, so tests drive time themselves).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::auth::Auth;
use super::secrets::SecretKey;
use super::store::{Op, SecretRow, StoreError};
use crate::model::{
    AppState, CallResult, ContainerCommand, Deployment, FunctionDef, FunctionOptions,
    GeneratorEvent, LogBatch, MapOutput, Payload, WorkerCommand, WorkerInfo,
};

pub(crate) type AppId = String;
pub(crate) type FunctionId = String;
pub(crate) type CallId = String;
pub(crate) type InputId = String;
pub(crate) type TaskId = String;
pub(crate) type WorkerId = String;

/// The time as the event loop last gave it: monotonic for deadlines, wall clock (Unix ms) for
/// what is stored or shown.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    pub(crate) now: Instant,
    pub(crate) unix_ms: i64,
}

impl Clock {
    /// The system clock (read by the event loop, never by a state transition).
    pub(crate) fn system() -> Self {
        Clock {
            now: Instant::now(),
            unix_ms: chrono::Utc::now().timestamp_millis(),
        }
    }
}

pub(crate) struct AppRec {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) environment: String,
    pub(crate) state: AppState,
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) created_at_ms: i64,
    pub(crate) stopped_at_ms: Option<i64>,
    /// Latest deployment version; 0 = never deployed.
    pub(crate) deployed_version: i64,
    pub(crate) history: Vec<Deployment>,
    pub(crate) functions: Vec<FunctionId>,
    pub(crate) log_subscribers: Vec<mpsc::UnboundedSender<LogBatch>>,
    pub(crate) stop_waiters: Vec<oneshot::Sender<()>>,
    pub(crate) last_heartbeat: Instant,
    /// The containers that ended last, newest last (at most [`RECENT_EXITS`]), for the dashboard.
    pub(crate) recent_exits: VecDeque<ExitedContainer>,
}

/// How many ended containers an app remembers.
pub(crate) const RECENT_EXITS: usize = 20;

/// A container that ended, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExitedContainer {
    pub(crate) task_id: TaskId,
    pub(crate) function_tag: String,
    pub(crate) worker_id: WorkerId,
    /// How it ended (`exit code 0`, `killed by signal 9`, `worker … disconnected`…).
    pub(crate) how: String,
    /// Why the control plane stopped it, if it did.
    pub(crate) reason: String,
    pub(crate) ended_at_ms: i64,
}

/// One attempt of a `remote` or spawned call, as it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AttemptRec {
    pub(crate) attempt: u32,
    pub(crate) task_id: String,
    pub(crate) status: crate::model::ResultStatus,
    pub(crate) ended_at_ms: i64,
    /// From the input's start in a container (or its queueing) to the attempt's end.
    pub(crate) millis: u64,
}

pub(crate) struct FunctionRec {
    pub(crate) app_id: AppId,
    pub(crate) def: FunctionDef,
    /// Inputs waiting for a container, in arrival order.
    pub(crate) queue: VecDeque<InputId>,
    pub(crate) tasks: Vec<TaskId>,
    /// Moving average of how long an input takes in a container, from the moment it may start
    /// there to its result here.
    pub(crate) exec_ewma: Option<Duration>,
    /// Moving average of how long an input's code runs, as its containers measured it.
    pub(crate) run_ewma: Option<Duration>,
    /// Moving average of container start-up (start request to hello).
    pub(crate) startup_ewma: Option<Duration>,
    /// The deployment version of `def`; containers of older versions take no new inputs.
    pub(crate) version: i64,
    /// When the function was registered (the origin of its schedule), Unix ms.
    pub(crate) created_at_ms: i64,
    /// Whether the app still has it (a redeploy may drop functions).
    pub(crate) retired: bool,
    /// For a variant (class parameters, `with_options`…): the function it derives from, with
    /// the parameters and overrides applied to that function's definition.
    pub(crate) variant: Option<Variant>,
    /// Its finished inputs, counted (since this control plane started).
    pub(crate) stats: super::stats::CallStats,
}

/// How a variant derives from its function.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Variant {
    pub(crate) base: FunctionId,
    pub(crate) params: Option<Payload>,
    pub(crate) options: Option<FunctionOptions>,
}

impl AppRec {
    pub(crate) fn new(name: String, environment: String, state: AppState, clock: Clock) -> Self {
        AppRec {
            description: name.clone(),
            name,
            environment,
            state,
            tags: BTreeMap::new(),
            created_at_ms: clock.unix_ms,
            stopped_at_ms: None,
            deployed_version: 0,
            history: Vec::new(),
            functions: Vec::new(),
            log_subscribers: Vec::new(),
            stop_waiters: Vec::new(),
            last_heartbeat: clock.now,
            recent_exits: VecDeque::new(),
        }
    }

    /// Whether the app takes inputs.
    pub(crate) fn is_live(&self) -> bool {
        self.state.is_live()
    }
}

impl FunctionRec {
    pub(crate) fn new(app_id: AppId, def: FunctionDef, version: i64, created_at_ms: i64) -> Self {
        FunctionRec {
            app_id,
            def,
            queue: VecDeque::new(),
            tasks: Vec::new(),
            exec_ewma: None,
            run_ewma: None,
            startup_ewma: None,
            version,
            created_at_ms,
            retired: false,
            variant: None,
            stats: Default::default(),
        }
    }
}

pub(crate) enum CallKind {
    /// `remote` and `spawn`: one input and its result. A `remote` call is forgotten once its
    /// result reached its caller; a spawned one keeps it for the retention window.
    Unary {
        result: Option<CallResult>,
        waiters: Vec<oneshot::Sender<CallResult>>,
        spawned: bool,
    },
    /// `map`: results stream back as they finish.
    Map {
        out: mpsc::UnboundedSender<MapOutput>,
        inputs_closed: bool,
        /// For a class: the method mapped over.
        method: String,
    },
    /// `remote_gen`: items stream back as the generator produces them, then how it ended.
    Generator {
        out: mpsc::UnboundedSender<GeneratorEvent>,
    },
}

pub(crate) struct CallRec {
    pub(crate) function_id: FunctionId,
    pub(crate) app_id: AppId,
    pub(crate) kind: CallKind,
    /// Kept in the store (spawned and scheduled calls of a durable control plane).
    pub(crate) persisted: bool,
    pub(crate) created_at_ms: i64,
    /// When a spawned call got its final result: retention counts from here, as in the store.
    pub(crate) finished_at_ms: Option<i64>,
    /// Inputs of this call that have no final result yet.
    pub(crate) unfinished: HashSet<InputId>,
    /// Inputs the call has had (a map's progress is this less `unfinished`).
    pub(crate) inputs_total: u64,
    /// A unary call's attempts as they ended (at most 20).
    pub(crate) attempts: Vec<AttemptRec>,
}

impl CallRec {
    /// The value of the result a unary call keeps, if it has one.
    pub(crate) fn kept_value(&self) -> Option<&Payload> {
        match &self.kind {
            CallKind::Unary {
                result: Some(r), ..
            } => r.data.as_ref(),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InputState {
    Queued,
    /// Failed; waiting for its retry delay.
    RetryWait,
    /// Sent to a container that will start it after its current inputs.
    Prefetched(TaskId),
    Running {
        task: TaskId,
        started: Instant,
    },
}

pub(crate) struct InputRec {
    pub(crate) call_id: CallId,
    pub(crate) function_id: FunctionId,
    pub(crate) idx: u64,
    pub(crate) payload: Payload,
    /// Zero-based attempt number.
    pub(crate) attempt: u32,
    /// When the running attempt times out (its timer is removed when the attempt ends).
    pub(crate) deadline: Option<Instant>,
    pub(crate) state: InputState,
    /// For a class: the method called.
    pub(crate) method: String,
    /// When it last entered the queue (batches wait for company up to `wait_ms`).
    pub(crate) queued_at: Instant,
    /// When the control plane accepted it (what its latency counts from).
    pub(crate) accepted_at: Instant,
    /// Whether containers let go of the input's payload file (see [`InputMapping`]).
    pub(crate) mapping: InputMapping,
}

/// Whether the containers that ran an input still map its payload file: only one that every
/// container let go of may become a spare that later payloads are written into.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum InputMapping {
    /// An attempt is running, or one ended without its container saying.
    #[default]
    Unknown,
    /// The last attempt's container let go of it.
    LetGo,
    /// A container kept it (user code holds the bytes): removed once done, never reused.
    Kept,
}

impl InputMapping {
    /// After an attempt's container sent its output, saying whether it kept the input.
    pub(crate) fn after_output(self, kept: bool) -> Self {
        if kept || self == InputMapping::Kept {
            InputMapping::Kept
        } else {
            InputMapping::LetGo
        }
    }

    /// When an attempt is sent to a container (prefetched or started): it maps the input until
    /// it says otherwise.
    pub(crate) fn after_sending(self) -> Self {
        match self {
            InputMapping::Kept => InputMapping::Kept,
            _ => InputMapping::Unknown,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskState {
    /// Asked of a worker; not connected yet.
    Starting,
    /// Connected; building its class instance and running its `enter` hooks.
    Entering,
    /// Taking inputs.
    Ready,
}

/// Why the control plane asked a container to stop (so its exit is not a surprise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StopReason {
    Idle,
    AppStopped,
    /// One of its inputs ran past the timeout (and got its result already).
    Timeout,
    /// It did not connect within the start-up timeout.
    StartupTimeout(String),
    /// It reported an init failure.
    InitFailure,
    /// An input it ran was cancelled and the container had to be stopped to interrupt it.
    Cancelled,
    /// It served its one input (`single_use_containers`).
    SingleUse,
    /// A newer version of its function was deployed.
    Redeployed,
    /// Someone asked (`modal container stop`).
    Requested,
    /// Its worker went away (a pilot job cancelled, a machine lost): what it was running
    /// failed (retried per policy), and its start says nothing about the function.
    WorkerLost,
}

pub(crate) struct TaskRec {
    pub(crate) function_id: FunctionId,
    pub(crate) app_id: AppId,
    pub(crate) worker_id: WorkerId,
    pub(crate) state: TaskState,
    pub(crate) tx: Option<mpsc::UnboundedSender<ContainerCommand>>,
    pub(crate) running: Vec<InputId>,
    pub(crate) prefetched: VecDeque<InputId>,
    pub(crate) created: Instant,
    pub(crate) idle_since: Instant,
    pub(crate) served: u64,
    pub(crate) stop: Option<StopReason>,
    pub(crate) reservation: Reservation,
    /// The version of its function's definition it runs.
    pub(crate) version: i64,
    /// When it connected, Unix ms (0 while starting).
    pub(crate) ready_at_ms: i64,
}

impl TaskRec {
    pub(crate) fn load(&self) -> usize {
        self.running.len() + self.prefetched.len()
    }

    /// Whether new inputs may be sent to it.
    pub(crate) fn accepting(&self) -> bool {
        self.state == TaskState::Ready && self.stop.is_none() && self.tx.is_some()
    }

    /// Sends a command down its stream (a no-op before it connected or after it left).
    pub(crate) fn send(&self, command: ContainerCommand) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(command);
        }
    }
}

/// A volume as the control plane keeps it.
#[derive(Debug, Clone)]
pub(crate) struct VolumeRec {
    pub(crate) name: String,
    pub(crate) environment: String,
    /// For an ephemeral volume: the app it belongs to (it goes when the app stops).
    pub(crate) app_id: Option<String>,
    pub(crate) created_at_ms: i64,
    pub(crate) version: u64,
    pub(crate) committed_at_ms: i64,
    pub(crate) manifest: crate::model::volume::Manifest,
}

/// Worker resources held by one container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Reservation {
    pub(crate) milli_cpu: u32,
    pub(crate) memory_mb: u32,
    pub(crate) gpus: Vec<u32>,
}

pub(crate) struct WorkerRec {
    pub(crate) tx: mpsc::UnboundedSender<WorkerCommand>,
    pub(crate) info: WorkerInfo,
    pub(crate) used_milli_cpu: u32,
    pub(crate) used_memory_mb: u32,
    pub(crate) busy_gpus: HashSet<u32>,
    /// Since when it has run no container (`None`: it runs some).
    pub(crate) idle_since: Option<Instant>,
    /// Taking no more containers: it is about to be let go (an idle pilot).
    pub(crate) retiring: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    /// The attempt `attempt` of the input must have finished by now.
    InputDeadline { input_id: InputId, attempt: u32 },
    /// The input's retry delay is over.
    RetryDue { input_id: InputId },
    /// The container must have connected by now.
    StartupDeadline { task_id: TaskId },
    /// A scheduled function may be due.
    ScheduleDue { function_id: FunctionId },
    /// A batched function's oldest input has waited `wait_ms`.
    BatchDue { function_id: FunctionId },
}

/// A reply held back until the writes before it are durable.
pub(crate) type Deferred = Box<dyn FnOnce(Option<&StoreError>) + Send>;

pub(crate) struct State {
    /// The address containers connect back to.
    pub(crate) server_url: String,
    /// Whether writes go to a store (a standalone control plane) or nowhere (embedded).
    pub(crate) durable: bool,
    /// The time, as the event loop last set it.
    pub(crate) clock: Clock,
    /// Writes of the current batch, applied before its deferred replies are sent.
    pub(crate) ops: Vec<Op>,
    pub(crate) deferred: Vec<Deferred>,
    pub(crate) auth: Auth,
    pub(crate) secret_key: SecretKey,
    /// Named secrets by (environment, name), sealed.
    pub(crate) secrets: HashMap<(String, String), SecretRow>,
    /// Volumes by id.
    pub(crate) volumes: HashMap<String, VolumeRec>,
    /// Where this control plane keeps image layers (a definition's image must be one of its).
    pub(crate) image_store: Option<String>,
    /// Where large payloads are kept: those no input or result holds any more are removed.
    pub(crate) payloads: Option<std::sync::Arc<crate::payloads::Store>>,
    /// Last fire (Unix ms) and next planned fire of each scheduled function.
    pub(crate) schedules: HashMap<FunctionId, (Option<i64>, i64)>,
    /// How long finished spawned calls keep their results.
    pub(crate) retention: Duration,
    /// When results past their retention are next forgotten.
    pub(crate) next_prune: Instant,
    /// Deploys with `recreate` waiting for the old containers of their app to be gone.
    pub(crate) recreate_waiters: Vec<(AppId, i64, Deferred)>,
    /// Variants by their base function and parameters and options.
    pub(crate) variants: Vec<(Variant, FunctionId)>,
    pub(crate) apps: HashMap<AppId, AppRec>,
    pub(crate) functions: HashMap<FunctionId, FunctionRec>,
    pub(crate) calls: HashMap<CallId, CallRec>,
    pub(crate) inputs: HashMap<InputId, InputRec>,
    pub(crate) tasks: HashMap<TaskId, TaskRec>,
    pub(crate) workers: HashMap<WorkerId, WorkerRec>,
    /// Pending timers in firing order; a timer that no longer matters is removed (an input's
    /// deadline once it finished), so the set holds no more than what is live.
    pub(crate) timers: BTreeSet<(Instant, Timer)>,
    /// Functions whose queue or containers changed since the last scheduling pass.
    pub(crate) dirty: HashSet<FunctionId>,
    /// What a cluster backend could start workers in (`None`: only workers that connect).
    pub(crate) pilot_offer: Option<super::scheduler::PilotOffer>,
    /// Pilot jobs whose worker has not connected yet, as the pilots last said (for listings).
    pub(crate) pending_pilots: Vec<crate::model::WorkerSummary>,
    /// Where the dashboard is (`None`: there is none).
    pub(crate) dashboard: Option<super::dashboard::link::Link>,
}

impl State {
    pub(crate) fn new(server_url: String, config: &super::Config, clock: Clock) -> Self {
        State {
            server_url,
            durable: config.durable,
            clock,
            ops: Vec::new(),
            deferred: Vec::new(),
            auth: config.auth.clone(),
            secret_key: config.secret_key.clone(),
            secrets: HashMap::new(),
            volumes: HashMap::new(),
            image_store: config
                .images
                .as_ref()
                .map(|i| i.store.root().to_string_lossy().into_owned()),
            payloads: config.payloads.clone(),
            schedules: HashMap::new(),
            retention: config.retention,
            next_prune: clock.now,
            recreate_waiters: Vec::new(),
            variants: Vec::new(),
            apps: HashMap::new(),
            functions: HashMap::new(),
            calls: HashMap::new(),
            inputs: HashMap::new(),
            tasks: HashMap::new(),
            workers: HashMap::new(),
            timers: BTreeSet::new(),
            dirty: HashSet::new(),
            pilot_offer: config.pilots.as_ref().map(|p| p.offer()),
            pending_pilots: Vec::new(),
            dashboard: None,
        }
    }

    /// The dashboard page of app `app_id` (empty without a dashboard).
    pub(crate) fn dashboard_url(&self, app_id: &str) -> String {
        self.dashboard
            .as_ref()
            .map(|d| d.app(app_id))
            .unwrap_or_default()
    }

    /// Moves the state's clock forward (the event loop calls it before each step).
    pub(crate) fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    /// Removes the deadline timer of an input's running attempt, if it has one.
    pub(crate) fn clear_deadline(&mut self, input_id: &str) {
        let Some(input) = self.inputs.get_mut(input_id) else {
            return;
        };
        if let Some(at) = input.deadline.take() {
            let timer = Timer::InputDeadline {
                input_id: input_id.to_owned(),
                attempt: input.attempt,
            };
            self.timers.remove(&(at, timer));
        }
    }

    pub(crate) fn set_timer(&mut self, at: Instant, timer: Timer) {
        self.timers.insert((at, timer));
    }

    pub(crate) fn next_timer(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// Removes and returns every timer due at `now`.
    pub(crate) fn due_timers(&mut self, now: Instant) -> Vec<Timer> {
        let mut due = Vec::new();
        while self.timers.first().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, t)) = self.timers.pop_first() {
                due.push(t);
            }
        }
        due
    }

    /// Queues a write (a no-op for the embedded control plane, which keeps nothing).
    pub(crate) fn record(&mut self, op: Op) {
        if self.durable {
            self.ops.push(op);
        }
    }

    /// Sends `value` now, or once the writes queued so far are durable. A failed write answers
    /// `internal` (not `unavailable`: the client must not take it for a lost connection and
    /// send the request again).
    pub(crate) fn respond<T: Send + 'static>(
        &mut self,
        reply: oneshot::Sender<Result<T, tonic::Status>>,
        value: Result<T, tonic::Status>,
    ) {
        if self.ops.is_empty() && self.deferred.is_empty() {
            let _ = reply.send(value);
        } else {
            self.deferred.push(Box::new(move |err| {
                let _ = reply.send(match err {
                    None => value,
                    Some(e) => Err(tonic::Status::internal(format!(
                        "the control plane could not save the change: {e}"
                    ))),
                });
            }));
        }
    }

    /// Removes the stored ones among `payloads` (nothing holds them any more) once the writes
    /// queued so far are durable, off the event loop.
    pub(crate) fn release<'a>(&mut self, payloads: impl IntoIterator<Item = &'a Payload>) {
        self.let_go(payloads, crate::payloads::Store::remove);
    }

    /// [`State::release`] for a payload that nothing maps any more: its file may become a
    /// spare that a later payload is written into.
    pub(crate) fn recycle(&mut self, payload: &Payload) {
        self.let_go(std::iter::once(payload), crate::payloads::Store::recycle);
    }

    /// Applies `how` to the files of the stored ones among `payloads` once the writes queued so
    /// far are durable, off the event loop.
    fn let_go<'a>(
        &mut self,
        payloads: impl IntoIterator<Item = &'a Payload>,
        how: fn(&crate::payloads::Store, &[String]),
    ) {
        let handles: Vec<String> = payloads
            .into_iter()
            .filter_map(|p| Some(p.stored.as_ref()?.handle.clone()))
            .collect();
        let Some(store) = self.payloads.clone().filter(|_| !handles.is_empty()) else {
            return;
        };
        self.after_commit(move |_| match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(move || how(&store, &handles))),
            Err(_) => how(&store, &handles),
        });
    }

    /// Runs `f` once the writes queued so far are durable.
    pub(crate) fn after_commit(&mut self, f: impl FnOnce(Option<&StoreError>) + Send + 'static) {
        if self.ops.is_empty() && self.deferred.is_empty() {
            f(None);
        } else {
            self.deferred.push(Box::new(f));
        }
    }
}

/// The environment a request names; the empty name is `main`.
pub(crate) fn environment(name: &str) -> String {
    if name.is_empty() {
        "main".to_owned()
    } else {
        name.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::InputMapping::{self, Kept, LetGo, Unknown};

    #[test]
    fn only_an_input_every_container_let_go_of_is_reused() {
        // One attempt whose container let go.
        assert_eq!(Unknown.after_sending().after_output(false), LetGo);
        // A retry runs in a container that maps it again until it says.
        assert_eq!(LetGo.after_sending(), Unknown);
        // Once any container kept it, it stays kept, whatever the later attempts say.
        assert_eq!(Unknown.after_output(true), Kept);
        assert_eq!(Kept.after_sending().after_output(false), Kept);
        assert_eq!(InputMapping::default(), Unknown);
    }
}
