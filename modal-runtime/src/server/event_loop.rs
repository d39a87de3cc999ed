//! The control plane's event loop: the sole owner of `State`. API handlers send it commands;
//! after each batch it runs one scheduling pass; timers drive timeouts, retries and scale-down.

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::state::{State, Timer};
use crate::wire::pb;

/// Reply channel of a command.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, tonic::Status>>;

/// Everything the API handlers ask of the event loop.
pub(crate) enum Command {
    AppCreate {
        req: pb::AppCreateRequest,
        reply: Reply<String>,
    },
    AppPublish {
        req: pb::AppPublishRequest,
        reply: Reply<pb::AppPublishResponse>,
    },
    AppDisconnect {
        app_id: String,
        reply: Reply<oneshot::Receiver<()>>,
    },
    AppHeartbeat {
        app_id: String,
        reply: Reply<()>,
    },
    SubscribeLogs {
        app_id: String,
        tx: mpsc::UnboundedSender<pb::LogBatch>,
        reply: Reply<()>,
    },
    Invoke {
        function_id: String,
        input: pb::Payload,
        wait: bool,
        reply: Reply<(String, Option<oneshot::Receiver<pb::CallResult>>)>,
    },
    CallGet {
        call_id: String,
        reply: Reply<Result<pb::CallResult, oneshot::Receiver<pb::CallResult>>>,
    },
    CallCancel {
        call_id: String,
        terminate_containers: bool,
        reply: Reply<()>,
    },
    MapStart {
        function_id: String,
        out: mpsc::UnboundedSender<pb::MapOutput>,
        reply: Reply<String>,
    },
    MapInputs {
        call_id: String,
        inputs: Vec<pb::MapInput>,
        last: bool,
    },
    /// The client went away before the map finished.
    MapAbandoned {
        call_id: String,
    },
    ContainerHello {
        hello: pb::ContainerHello,
        tx: mpsc::UnboundedSender<pb::ContainerCommand>,
        reply: Reply<()>,
    },
    ContainerOutputs {
        task_id: String,
        items: Vec<pb::OutputItem>,
    },
    ContainerInitFailure {
        task_id: String,
        message: String,
    },
    ContainerDisconnected {
        task_id: String,
    },
    WorkerRegister {
        info: pb::WorkerRegister,
        tx: mpsc::UnboundedSender<pb::WorkerCommand>,
        reply: Reply<String>,
    },
    WorkerMessage {
        worker_id: String,
        message: pb::worker_message::Message,
    },
    WorkerDisconnected {
        worker_id: String,
    },
}

/// How often housekeeping (scale-down, reaping apps without heartbeats) runs.
const HOUSEKEEPING: Duration = Duration::from_millis(500);
/// Commands handled before a scheduling pass.
const BATCH: usize = 512;

pub(crate) async fn run(mut state: State, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut buf = Vec::with_capacity(BATCH);
    let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
    housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let next_timer = state.next_timer();
        tokio::select! {
            n = commands.recv_many(&mut buf, BATCH) => {
                if n == 0 {
                    tracing::debug!("control plane event loop: all handles gone");
                    state.shutdown();
                    return;
                }
                for cmd in buf.drain(..) {
                    state.handle(cmd);
                }
            }
            () = sleep_until(next_timer) => {
                let now = Instant::now();
                for timer in state.due_timers(now) {
                    state.on_timer(timer, now);
                }
            }
            _ = housekeeping.tick() => {
                state.housekeeping(Instant::now());
            }
        }
        state.schedule(Instant::now());
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

impl State {
    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::AppCreate { req, reply } => {
                let _ = reply.send(self.app_create(req));
            }
            Command::AppPublish { req, reply } => {
                let _ = reply.send(self.app_publish(req));
            }
            Command::AppDisconnect { app_id, reply } => {
                let _ = reply.send(self.app_stop(&app_id, "the app's client disconnected"));
            }
            Command::AppHeartbeat { app_id, reply } => {
                let _ = reply.send(self.app_heartbeat(&app_id));
            }
            Command::SubscribeLogs { app_id, tx, reply } => {
                let _ = reply.send(self.subscribe_logs(&app_id, tx));
            }
            Command::Invoke {
                function_id,
                input,
                wait,
                reply,
            } => {
                let _ = reply.send(self.invoke(&function_id, input, wait));
            }
            Command::CallGet { call_id, reply } => {
                let _ = reply.send(self.call_get(&call_id));
            }
            Command::CallCancel {
                call_id,
                terminate_containers,
                reply,
            } => {
                let _ = reply.send(self.call_cancel(
                    &call_id,
                    terminate_containers,
                    "the call was cancelled",
                ));
            }
            Command::MapStart {
                function_id,
                out,
                reply,
            } => {
                let _ = reply.send(self.map_start(&function_id, out));
            }
            Command::MapInputs {
                call_id,
                inputs,
                last,
            } => self.map_inputs(&call_id, inputs, last),
            Command::MapAbandoned { call_id } => {
                if self.calls.contains_key(&call_id) {
                    let _ =
                        self.call_cancel(&call_id, false, "the caller stopped waiting for the map");
                }
            }
            Command::ContainerHello { hello, tx, reply } => {
                let _ = reply.send(self.container_hello(hello, tx));
            }
            Command::ContainerOutputs { task_id, items } => self.container_outputs(&task_id, items),
            Command::ContainerInitFailure { task_id, message } => {
                self.container_init_failure(&task_id, &message);
            }
            Command::ContainerDisconnected { task_id } => self.container_disconnected(&task_id),
            Command::WorkerRegister { info, tx, reply } => {
                let _ = reply.send(Ok(self.worker_register(info, tx)));
            }
            Command::WorkerMessage { worker_id, message } => {
                self.worker_message(&worker_id, message)
            }
            Command::WorkerDisconnected { worker_id } => self.worker_disconnected(&worker_id),
        }
    }

    fn on_timer(&mut self, timer: Timer, now: Instant) {
        match timer {
            Timer::InputDeadline { input_id, attempt } => {
                self.input_deadline(&input_id, attempt, now)
            }
            Timer::RetryDue { input_id } => self.retry_due(&input_id),
            Timer::StartupDeadline { task_id } => self.startup_deadline(&task_id),
        }
    }

    /// The last handle is gone: stop every container.
    fn shutdown(&mut self) {
        let ids: Vec<String> = self.tasks.keys().cloned().collect();
        for id in ids {
            self.stop_task(&id, super::state::StopReason::AppStopped, 0);
        }
    }
}
