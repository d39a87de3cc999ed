//! The control plane's event loop: the sole owner of `State`. Unary requests arrive as closures
//! run on the state (one hop: the gRPC handler names the `State` method it needs); container and
//! worker streams send explicit events. After each batch it runs one scheduling pass and hands
//! the batch's writes to the store, whose task sends the replies that waited for them; timers
//! drive timeouts, retries and schedules. The loop is the only place that reads the clock.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::state::{Clock, Deferred, State, Timer};
use super::store::{Op, Store};
use crate::model::{
    ContainerCommand, ContainerHello, OutputItem, Payload, WorkerCommand, WorkerEvent, WorkerInfo,
};

/// Reply channel of a request.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, tonic::Status>>;

/// A unary request: runs on the state and replies through [`State::respond`].
pub(crate) type Request = Box<dyn FnOnce(&mut State) + Send>;

/// Everything that reaches the event loop.
pub(crate) enum Command {
    /// A unary request of the client API.
    Request(Request),
    /// A container opened its stream.
    ContainerHello {
        hello: ContainerHello,
        tx: mpsc::UnboundedSender<ContainerCommand>,
        reply: Reply<()>,
    },
    ContainerOutputs {
        task_id: String,
        items: Vec<OutputItem>,
    },
    ContainerInitFailure {
        task_id: String,
        message: String,
    },
    /// A container's `enter` hooks ran: it takes inputs.
    ContainerReady {
        task_id: String,
    },
    /// A container must exit and takes no more input.
    ContainerLeaving {
        task_id: String,
        reason: String,
    },
    GeneratorItems {
        task_id: String,
        input_id: String,
        items: Vec<Payload>,
    },
    ContainerDisconnected {
        task_id: String,
    },
    /// A worker opened its stream.
    WorkerRegister {
        info: WorkerInfo,
        tx: mpsc::UnboundedSender<WorkerCommand>,
        reply: Reply<String>,
    },
    WorkerEvent {
        worker_id: String,
        event: WorkerEvent,
    },
    WorkerDisconnected {
        worker_id: String,
    },
    /// Inputs of a map, by position; `last` closes its input side.
    MapInputs {
        call_id: String,
        inputs: Vec<(u64, Payload)>,
        last: bool,
    },
    /// The client went away before the map or generator finished.
    CallAbandoned {
        call_id: String,
    },
    BinaryStored {
        hash: String,
        size: u64,
    },
}

/// How often housekeeping (scale-down, reaping apps without heartbeats, pruning) runs.
const HOUSEKEEPING: Duration = Duration::from_millis(500);
/// Commands handled before a scheduling pass.
const BATCH: usize = 512;
/// How many commands may wait for the loop; past that, senders wait (back-pressure).
pub(crate) const QUEUE: usize = 8 * BATCH;

/// Applies each batch of writes, then sends the replies that waited for it, in order.
async fn store_writer(
    store: Arc<dyn Store>,
    mut batches: mpsc::UnboundedReceiver<(Vec<Op>, Vec<Deferred>)>,
) {
    while let Some((ops, deferred)) = batches.recv().await {
        let result = if ops.is_empty() {
            Ok(())
        } else {
            store.apply(ops).await
        };
        if let Err(e) = &result {
            tracing::error!(store = %store.describe(), "cannot save state: {e}");
        }
        for d in deferred {
            d(result.as_ref().err());
        }
    }
}

pub(crate) async fn run(
    mut state: State,
    store: Arc<dyn Store>,
    mut commands: mpsc::Receiver<Command>,
) {
    let (writes, write_rx) = mpsc::unbounded_channel();
    tokio::spawn(store_writer(store, write_rx));
    let mut buf = Vec::with_capacity(BATCH);
    let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
    housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    state.set_clock(Clock::system());
    state.resume();
    loop {
        let next_timer = state.next_timer();
        tokio::select! {
            n = commands.recv_many(&mut buf, BATCH) => {
                state.set_clock(Clock::system());
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
                state.set_clock(Clock::system());
                state.fire_due_timers();
            }
            _ = housekeeping.tick() => {
                state.set_clock(Clock::system());
                state.housekeeping();
            }
        }
        state.schedule();
        let (ops, deferred) = state.take_writes();
        if !ops.is_empty() || !deferred.is_empty() {
            let _ = writes.send((ops, deferred));
        }
    }
}

async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

impl State {
    pub(crate) fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Request(run) => run(self),
            Command::ContainerHello { hello, tx, reply } => {
                let r = self.container_hello(hello, tx);
                self.respond(reply, r);
            }
            Command::ContainerOutputs { task_id, items } => self.container_outputs(&task_id, items),
            Command::ContainerInitFailure { task_id, message } => {
                self.container_init_failure(&task_id, &message);
            }
            Command::ContainerReady { task_id } => self.container_ready(&task_id),
            Command::ContainerLeaving { task_id, reason } => {
                self.container_leaving(&task_id, &reason);
            }
            Command::GeneratorItems {
                task_id,
                input_id,
                items,
            } => self.generator_items(&task_id, &input_id, items),
            Command::ContainerDisconnected { task_id } => self.container_disconnected(&task_id),
            Command::WorkerRegister { info, tx, reply } => {
                let r = Ok(self.worker_register(info, tx));
                self.respond(reply, r);
            }
            Command::WorkerEvent { worker_id, event } => self.worker_event(&worker_id, event),
            Command::WorkerDisconnected { worker_id } => self.worker_disconnected(&worker_id),
            Command::MapInputs {
                call_id,
                inputs,
                last,
            } => self.map_inputs(&call_id, inputs, last),
            Command::CallAbandoned { call_id } => {
                if self.calls.contains_key(&call_id) {
                    let _ = self.call_cancel(
                        &call_id,
                        false,
                        "the caller stopped waiting for the results",
                    );
                }
            }
            Command::BinaryStored { hash, size } => self.binary_stored(hash, size),
        }
    }

    /// Runs every timer due at the clock's time.
    pub(crate) fn fire_due_timers(&mut self) {
        let now = self.clock.now;
        for timer in self.due_timers(now) {
            self.on_timer(timer);
        }
    }

    fn on_timer(&mut self, timer: Timer) {
        match timer {
            Timer::InputDeadline { input_id, attempt } => self.input_deadline(&input_id, attempt),
            Timer::RetryDue { input_id } => self.retry_due(&input_id),
            Timer::StartupDeadline { task_id } => self.startup_deadline(&task_id),
            Timer::ScheduleDue { function_id } => self.schedule_due(&function_id),
            Timer::BatchDue { function_id } => {
                self.dirty.insert(function_id);
            }
        }
    }

    /// The writes queued since the last call, and the replies that wait for them.
    pub(crate) fn take_writes(&mut self) -> (Vec<Op>, Vec<Deferred>) {
        (
            std::mem::take(&mut self.ops),
            std::mem::take(&mut self.deferred),
        )
    }

    /// The last handle is gone: stop every container.
    fn shutdown(&mut self) {
        let ids: Vec<String> = self.tasks.keys().cloned().collect();
        for id in ids {
            self.stop_task(&id, super::state::StopReason::AppStopped, 0);
        }
    }
}
