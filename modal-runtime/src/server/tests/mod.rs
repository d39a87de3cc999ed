//! Table tests of the control plane's state machine: sequences of commands and clock ticks fed
//! to `State` (no network, no threads, time given by the test), with assertions on what it
//! sends to containers, workers and callers.

mod calls;
mod dashboard;
mod lifecycle;
mod placement;
mod scheduling;
mod secrets;
mod volumes;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::Config;
use super::auth::Principal;
use super::calls::Wait;
use super::state::{Clock, State};
use super::store::{Op, Snapshot};
use crate::app::FunctionSpec;
use crate::model::function::Origin;
use crate::model::{
    AppState, CallResult, ContainerCommand, ContainerHello, ContainerSpec, FunctionDef, GpuDevice,
    InputItem, OutputItem, Payload, ResultStatus, WorkerCommand, WorkerInfo,
};

pub(super) const HASH: &str = "0123456789abcdef0123456789abcdef";

/// A definition as a client would register it, for tweaking.
pub(super) fn def(tag: &str) -> FunctionDef {
    FunctionDef::new(
        &FunctionSpec::new(tag),
        Origin {
            app: "app",
            implementation: "tests::f",
            binary_hash: HASH,
            binary_path: "/bin/app",
            types: ("(u8,)", "u8"),
        },
        Vec::new(),
        &[],
    )
}

/// What the worker was asked, in order.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Asked {
    Start {
        task_id: String,
        function_tag: String,
        gpus: Vec<u32>,
    },
    Stop {
        task_id: String,
        grace_ms: u32,
    },
}

/// A caller waiting for one result.
pub(super) struct Caller {
    pub(super) call_id: String,
    rx: oneshot::Receiver<CallResult>,
}

impl Caller {
    /// The result, if the call has one by now.
    pub(super) fn result(&mut self) -> Option<CallResult> {
        self.rx.try_recv().ok()
    }

    pub(super) fn status(&mut self) -> Option<ResultStatus> {
        self.result().map(|r| r.status)
    }
}

/// A control plane with one test worker and a clock the test moves.
pub(super) struct Plane {
    pub(super) state: State,
    worker: Option<(String, mpsc::UnboundedReceiver<WorkerCommand>)>,
    streams: HashMap<String, mpsc::UnboundedReceiver<ContainerCommand>>,
    /// Containers the worker was asked to start, by task id.
    pub(super) specs: HashMap<String, ContainerSpec>,
}

impl Plane {
    /// An embedded control plane (nothing kept) with no worker yet.
    pub(super) fn new() -> Self {
        Plane::with_config(&Config::embedded())
    }

    /// A control plane that records its writes (as `modal server` does).
    pub(super) fn durable() -> Self {
        let mut config = Config::embedded();
        config.durable = true;
        Plane::with_config(&config)
    }

    fn with_config(config: &Config) -> Self {
        let t0 = Instant::now();
        let clock = Clock {
            now: t0,
            unix_ms: 1_700_000_000_000,
        };
        let mut state = State::new("http://127.0.0.1:1".into(), config, clock);
        state.resume();
        Plane::around(state)
    }

    fn around(state: State) -> Plane {
        Plane {
            state,
            worker: None,
            streams: HashMap::new(),
            specs: HashMap::new(),
        }
    }

    /// The control plane after a crash and a restart: a new one restored from what this one
    /// wrote (its containers and its worker are gone with it).
    pub(super) fn restarted(&self) -> Plane {
        let mut snap = Snapshot::default();
        for op in &self.state.ops {
            match op.clone() {
                Op::UpsertApp(row) => {
                    snap.apps.retain(|a| a.id != row.id);
                    snap.apps.push(row);
                }
                Op::UpsertFunction(row) => {
                    snap.functions.retain(|f| f.id != row.id);
                    snap.functions.push(row);
                }
                Op::UpsertCall(row) => {
                    snap.calls.retain(|c| c.id != row.id);
                    snap.calls.push(row);
                }
                Op::FinishCall {
                    id,
                    result,
                    finished_at,
                } => {
                    if let Some(c) = snap.calls.iter_mut().find(|c| c.id == id) {
                        c.result = Some(result);
                        c.finished_at = Some(finished_at);
                    }
                }
                Op::UpsertVolume(row) => {
                    snap.volumes.retain(|v| v.id != row.id);
                    snap.volumes.push(row);
                }
                Op::InsertVolumeVersion(row) => {
                    snap.volume_heads.retain(|v| v.volume_id != row.volume_id);
                    snap.volume_heads.push(row);
                }
                Op::DeleteVolume { id } => {
                    snap.volumes.retain(|v| v.id != id);
                    snap.volume_heads.retain(|v| v.volume_id != id);
                }
                _ => {}
            }
        }
        let mut config = Config::embedded();
        config.durable = true;
        let mut state = State::new("http://127.0.0.1:1".into(), &config, self.state.clock);
        state.restore(snap);
        state.resume();
        Plane::around(state)
    }

    /// A plane with a worker of 8 cores and 16 GiB.
    pub(super) fn with_worker() -> Self {
        let mut p = Plane::new();
        p.worker(8000, 16_384, Vec::new());
        p
    }

    pub(super) fn worker(&mut self, milli_cpu: u32, memory_mb: u32, gpus: Vec<GpuDevice>) {
        self.worker_with(WorkerInfo {
            hostname: "test".into(),
            milli_cpu,
            memory_mb,
            gpus,
            runtime: "test".into(),
            ..WorkerInfo::default()
        });
    }

    /// Registers a worker that offers `info` (the plane then watches its commands only): its id.
    pub(super) fn worker_with(&mut self, info: WorkerInfo) -> String {
        let (tx, rx) = mpsc::unbounded_channel();
        let id = self.state.worker_register(info, tx);
        self.worker = Some((id.clone(), rx));
        self.state.schedule();
        id
    }

    /// Moves the clock forward, fires due timers and runs a scheduling pass.
    pub(super) fn advance(&mut self, d: Duration) {
        let now = self.state.clock.now + d;
        let unix_ms = self.state.clock.unix_ms + i64::try_from(d.as_millis()).unwrap_or(0);
        self.state.set_clock(Clock { now, unix_ms });
        self.state.fire_due_timers();
        self.state.schedule();
    }

    /// Housekeeping as the event loop runs it every half second.
    pub(super) fn housekeeping(&mut self) {
        self.state.housekeeping();
        self.state.schedule();
    }

    pub(super) fn app(&mut self, name: &str) -> String {
        let new = super::apps::NewApp {
            name: name.into(),
            description: String::new(),
            environment: String::new(),
            state: Some(AppState::Ephemeral),
            tags: Default::default(),
        };
        self.state.app_create(new).unwrap()
    }

    /// Registers one function on a new app; returns the function id.
    pub(super) fn function(&mut self, def: FunctionDef) -> String {
        let app = self.app("app");
        self.publish(&app, def)
    }

    pub(super) fn publish(&mut self, app_id: &str, def: FunctionDef) -> String {
        let tag = def.tag.clone();
        let ids = self.state.app_publish(app_id, vec![def]).unwrap();
        self.state.schedule();
        ids[&tag].clone()
    }

    /// `remote`: a caller waiting for the result.
    pub(super) fn call(&mut self, function_id: &str) -> Caller {
        let (call_id, rx) = self
            .state
            .invoke(
                function_id,
                "",
                Payload::new(vec![7]),
                Wait::Caller,
                &Principal::Local,
            )
            .unwrap();
        self.state.schedule();
        Caller {
            call_id,
            rx: rx.unwrap(),
        }
    }

    /// A `remote` by `principal` that the control plane must refuse: its error.
    pub(super) fn refused(&mut self, function_id: &str, principal: &Principal) -> tonic::Status {
        self.state
            .invoke(
                function_id,
                "",
                Payload::new(vec![]),
                Wait::Caller,
                principal,
            )
            .expect_err("the call is refused")
    }

    /// `spawn`: the call id.
    pub(super) fn spawn(&mut self, function_id: &str) -> String {
        let (call_id, _) = self
            .state
            .invoke(
                function_id,
                "",
                Payload::new(vec![7]),
                Wait::Spawned,
                &Principal::Local,
            )
            .unwrap();
        self.state.schedule();
        call_id
    }

    /// Everything asked of the worker since the last look.
    pub(super) fn asked(&mut self) -> Vec<Asked> {
        let mut out = Vec::new();
        let Some((_, rx)) = &mut self.worker else {
            return out;
        };
        while let Ok(cmd) = rx.try_recv() {
            out.push(match cmd {
                WorkerCommand::Start(spec) => {
                    let a = Asked::Start {
                        task_id: spec.task_id.clone(),
                        function_tag: spec.definition.tag.clone(),
                        gpus: spec.gpu_indices.clone(),
                    };
                    self.specs.insert(spec.task_id.clone(), *spec);
                    a
                }
                WorkerCommand::Stop { task_id, grace_ms } => Asked::Stop { task_id, grace_ms },
            });
        }
        out
    }

    /// The containers started since the last look (other requests are dropped).
    pub(super) fn started(&mut self) -> Vec<String> {
        self.asked()
            .into_iter()
            .filter_map(|a| match a {
                Asked::Start { task_id, .. } => Some(task_id),
                Asked::Stop { .. } => None,
            })
            .collect()
    }

    /// The one container started since the last look.
    pub(super) fn started_one(&mut self) -> String {
        let started = self.started();
        assert_eq!(
            started.len(),
            1,
            "expected one container to start: {started:?}"
        );
        started[0].clone()
    }

    /// The container connects with the registered binary.
    pub(super) fn hello(&mut self, task_id: &str) {
        self.hello_with(task_id, HASH).unwrap();
    }

    /// The container connects, then runs its `enter` hooks (it says when they ran: [`ready`]).
    pub(super) fn hello_entering(&mut self, task_id: &str) {
        self.connect(task_id, HASH, true).unwrap();
    }

    /// The container's `enter` hooks ran.
    pub(super) fn ready(&mut self, task_id: &str) {
        self.state.container_ready(task_id);
        self.state.schedule();
    }

    /// A hello from a build that is ready at once (no `enter` hooks to wait for).
    pub(super) fn hello_with(&mut self, task_id: &str, hash: &str) -> Result<(), tonic::Status> {
        self.connect(task_id, hash, false)
    }

    fn connect(
        &mut self,
        task_id: &str,
        hash: &str,
        sends_ready: bool,
    ) -> Result<(), tonic::Status> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.streams.insert(task_id.to_owned(), rx);
        let r = self.state.container_hello(
            ContainerHello {
                task_id: task_id.into(),
                binary_hash: hash.into(),
                app_name: "app".into(),
                function_tag: "f".into(),
                sends_ready,
            },
            tx,
        );
        self.state.schedule();
        r
    }

    /// A container started and connected: its task id.
    pub(super) fn ready_container(&mut self) -> String {
        let task = self.started_one();
        self.hello(&task);
        task
    }

    /// Everything sent down a container's stream since the last look.
    pub(super) fn sent(&mut self, task_id: &str) -> Vec<ContainerCommand> {
        let mut out = Vec::new();
        if let Some(rx) = self.streams.get_mut(task_id) {
            while let Ok(c) = rx.try_recv() {
                out.push(c);
            }
        }
        out
    }

    /// The inputs sent to a container since the last look (other commands are dropped).
    pub(super) fn inputs(&mut self, task_id: &str) -> Vec<InputItem> {
        self.sent(task_id)
            .into_iter()
            .flat_map(|c| match c {
                ContainerCommand::Inputs(items) => items,
                _ => Vec::new(),
            })
            .collect()
    }

    /// The container reports a result for an input.
    pub(super) fn output(&mut self, task_id: &str, input_id: &str, status: ResultStatus) {
        let result = if status == ResultStatus::Success {
            CallResult::success(Payload::new(vec![1]))
        } else {
            CallResult::failure(status, format!("{status:?}"), "")
        };
        self.state.container_outputs(
            task_id,
            vec![OutputItem {
                input_id: input_id.into(),
                result,
                run: None,
                input_kept: false,
            }],
        );
        self.state.schedule();
    }

    /// The container's process is gone.
    pub(super) fn exited(&mut self, task_id: &str, code: Option<i32>, signal: Option<i32>) {
        self.state.task_exited(task_id, code, signal, None, None);
        self.state.schedule();
    }

    /// The attempt number the control plane holds for an input (`None` once it is finished).
    pub(super) fn attempt(&self, input_id: &str) -> Option<u32> {
        self.state.inputs.get(input_id).map(|i| i.attempt)
    }
}

/// Whether `sent` holds a shutdown.
pub(super) fn has_shutdown(sent: &[ContainerCommand]) -> bool {
    sent.iter()
        .any(|c| matches!(c, ContainerCommand::Shutdown(_)))
}
