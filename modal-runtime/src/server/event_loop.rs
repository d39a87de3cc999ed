//! The control plane's event loop: the sole owner of `State`. API handlers send it commands;
//! after each batch it runs one scheduling pass and hands the batch's writes to the store, whose
//! task sends the replies that waited for them; timers drive timeouts, retries and schedules.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::auth::Principal;
use super::state::{Deferred, State, Timer};
use super::store::{Op, Store};
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
        principal: Principal,
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
    AppDeploy {
        req: pb::AppDeployRequest,
        reply: Reply<pb::AppDeployResponse>,
    },
    AppLookup {
        req: pb::AppLookupRequest,
        reply: Reply<pb::AppLookupResponse>,
    },
    AppStop {
        req: pb::AppStopRequest,
        reply: Reply<(pb::AppStopResponse, Option<oneshot::Receiver<()>>)>,
    },
    AppList {
        req: pb::AppListRequest,
        reply: Reply<pb::AppListResponse>,
    },
    AppHistory {
        req: pb::AppHistoryRequest,
        reply: Reply<pb::AppHistoryResponse>,
    },
    AppSetTags {
        req: pb::AppSetTagsRequest,
        reply: Reply<()>,
    },
    AppGetTags {
        req: pb::AppGetTagsRequest,
        reply: Reply<pb::AppGetTagsResponse>,
    },
    /// The id of an app given by id or name.
    ResolveApp {
        app: String,
        environment_name: String,
        reply: Reply<String>,
    },
    FunctionGet {
        req: pb::FunctionGetRequest,
        principal: Principal,
        reply: Reply<pb::FunctionGetResponse>,
    },
    Invoke {
        function_id: String,
        method: String,
        input: pb::Payload,
        wait: bool,
        principal: Principal,
        reply: Reply<(String, Option<oneshot::Receiver<pb::CallResult>>)>,
    },
    CallGet {
        call_id: String,
        principal: Principal,
        reply: Reply<Result<pb::CallResult, oneshot::Receiver<pb::CallResult>>>,
    },
    CallFromId {
        call_id: String,
        principal: Principal,
        reply: Reply<pb::FunctionCallFromIdResponse>,
    },
    CallCancel {
        call_id: String,
        terminate_containers: bool,
        principal: Principal,
        reply: Reply<()>,
    },
    InvokeGenerator {
        function_id: String,
        method: String,
        input: pb::Payload,
        principal: Principal,
        out: mpsc::UnboundedSender<pb::GeneratorEvent>,
        reply: Reply<String>,
    },
    FunctionBind {
        req: pb::FunctionBindRequest,
        principal: Principal,
        reply: Reply<String>,
    },
    MapStart {
        function_id: String,
        method: String,
        principal: Principal,
        out: mpsc::UnboundedSender<pb::MapOutput>,
        reply: Reply<String>,
    },
    MapInputs {
        call_id: String,
        inputs: Vec<pb::MapInput>,
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
    SecretCreate {
        req: pb::SecretCreateRequest,
        reply: Reply<()>,
    },
    SecretList {
        req: pb::SecretListRequest,
        reply: Reply<pb::SecretListResponse>,
    },
    SecretDelete {
        req: pb::SecretDeleteRequest,
        reply: Reply<()>,
    },
    TokenCreate {
        label: String,
        reply: Reply<pb::TokenCreateResponse>,
    },
    ContainerList {
        req: pb::ContainerListRequest,
        reply: Reply<pb::ContainerListResponse>,
    },
    ContainerStop {
        req: pb::ContainerStopRequest,
        reply: Reply<()>,
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
    GeneratorItems {
        task_id: String,
        input_id: String,
        items: Vec<pb::Payload>,
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

/// How often housekeeping (scale-down, reaping apps without heartbeats, pruning) runs.
const HOUSEKEEPING: Duration = Duration::from_millis(500);
/// Commands handled before a scheduling pass.
const BATCH: usize = 512;

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
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let (writes, write_rx) = mpsc::unbounded_channel();
    tokio::spawn(store_writer(store, write_rx));
    let mut buf = Vec::with_capacity(BATCH);
    let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
    housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    state.resume(Instant::now());
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
        let ops = std::mem::take(&mut state.ops);
        let deferred = std::mem::take(&mut state.deferred);
        if !ops.is_empty() || !deferred.is_empty() {
            let _ = writes.send((ops, deferred));
        }
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
                let r = self.app_create(req);
                self.respond(reply, r);
            }
            Command::AppPublish {
                req,
                principal,
                reply,
            } => {
                let r = principal
                    .require_user()
                    .and_then(|()| self.app_publish(req));
                self.respond(reply, r);
            }
            Command::AppDisconnect { app_id, reply } => {
                let r = self.app_stop(&app_id, "the app's client disconnected");
                self.respond(reply, r);
            }
            Command::AppHeartbeat { app_id, reply } => {
                let r = self.app_heartbeat(&app_id);
                self.respond(reply, r);
            }
            Command::SubscribeLogs { app_id, tx, reply } => {
                let r = self.subscribe_logs(&app_id, tx);
                self.respond(reply, r);
            }
            Command::AppDeploy { req, reply } => self.app_deploy(req, reply),
            Command::AppLookup { req, reply } => {
                let r = self.app_lookup(req);
                self.respond(reply, r);
            }
            Command::AppStop { req, reply } => {
                let r = self.app_stop_request(req);
                self.respond(reply, r);
            }
            Command::AppList { req, reply } => {
                let r = Ok(self.app_list(&req.environment_name));
                self.respond(reply, r);
            }
            Command::AppHistory { req, reply } => {
                let r = self.app_history(&req);
                self.respond(reply, r);
            }
            Command::AppSetTags { req, reply } => {
                let r = self.app_set_tags(req);
                self.respond(reply, r);
            }
            Command::AppGetTags { req, reply } => {
                let r = self.app_get_tags(&req.app_id);
                self.respond(reply, r);
            }
            Command::ResolveApp {
                app,
                environment_name,
                reply,
            } => {
                let r = self.find_app_any_state(&app, &environment_name);
                self.respond(reply, r);
            }
            Command::FunctionGet {
                req,
                principal,
                reply,
            } => {
                let r = self.function_get(&req, &principal);
                self.respond(reply, r);
            }
            Command::Invoke {
                function_id,
                method,
                input,
                wait,
                principal,
                reply,
            } => {
                let r = self.invoke(&function_id, &method, input, wait, &principal);
                self.respond(reply, r);
            }
            Command::InvokeGenerator {
                function_id,
                method,
                input,
                principal,
                out,
                reply,
            } => {
                let r = self.invoke_generator(&function_id, &method, input, &principal, out);
                self.respond(reply, r);
            }
            Command::FunctionBind {
                req,
                principal,
                reply,
            } => {
                let r = self.function_bind(req, &principal);
                self.respond(reply, r);
            }
            Command::CallGet {
                call_id,
                principal,
                reply,
            } => {
                let r = self.call_get(&call_id, &principal);
                self.respond(reply, r);
            }
            Command::CallFromId {
                call_id,
                principal,
                reply,
            } => {
                let r = self.call_from_id(&call_id, &principal);
                self.respond(reply, r);
            }
            Command::CallCancel {
                call_id,
                terminate_containers,
                principal,
                reply,
            } => {
                let r = self
                    .call_app(&call_id)
                    .and_then(|app| principal.require_app(&app))
                    .and_then(|()| {
                        self.call_cancel(&call_id, terminate_containers, "the call was cancelled")
                    });
                self.respond(reply, r);
            }
            Command::MapStart {
                function_id,
                method,
                principal,
                out,
                reply,
            } => {
                let r = self.map_start(&function_id, &method, &principal, out);
                self.respond(reply, r);
            }
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
            Command::SecretCreate { req, reply } => {
                let r = self.secret_create(req);
                self.respond(reply, r);
            }
            Command::SecretList { req, reply } => {
                let r = Ok(self.secret_list(&req.environment_name));
                self.respond(reply, r);
            }
            Command::SecretDelete { req, reply } => {
                let r = self.secret_delete(&req);
                self.respond(reply, r);
            }
            Command::TokenCreate { label, reply } => {
                let r = Ok(self.token_create(label));
                self.respond(reply, r);
            }
            Command::ContainerList { req, reply } => {
                let r = Ok(self.container_list(&req));
                self.respond(reply, r);
            }
            Command::ContainerStop { req, reply } => {
                let r = self.container_stop(&req);
                self.respond(reply, r);
            }
            Command::ContainerHello { hello, tx, reply } => {
                let r = self.container_hello(hello, tx);
                self.respond(reply, r);
            }
            Command::ContainerOutputs { task_id, items } => self.container_outputs(&task_id, items),
            Command::ContainerInitFailure { task_id, message } => {
                self.container_init_failure(&task_id, &message);
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
            Timer::ScheduleDue { function_id } => self.schedule_due(&function_id, now),
            Timer::BatchDue { function_id } => {
                self.dirty.insert(function_id);
            }
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
