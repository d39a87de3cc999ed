//! The container entrypoint: when the worker started this binary, run its one function's input
//! loop against the control plane instead of the user's program.

mod runner;

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::registry::{self, FunctionRegistration, Identity, Invoker};
use crate::wire::{self, pb};

/// Environment variables the worker sets for a container.
pub(crate) mod env {
    pub(crate) const TASK_ID: &str = "MODAL_TASK_ID";
    pub(crate) const SERVER_URL: &str = "MODAL_SERVER_URL";
    pub(crate) const APP_ID: &str = "MODAL_APP_ID";
    pub(crate) const APP_NAME: &str = "MODAL_APP_NAME";
    pub(crate) const FUNCTION_ID: &str = "MODAL_FUNCTION_ID";
    pub(crate) const FUNCTION_TAG: &str = "MODAL_FUNCTION_TAG";
    pub(crate) const BINARY_HASH: &str = "MODAL_BINARY_HASH";
    pub(crate) const MAX_INPUTS: &str = "MODAL_MAX_INPUTS";
    pub(crate) const SINGLE_USE: &str = "MODAL_SINGLE_USE";
    pub(crate) const IS_REMOTE: &str = "MODAL_IS_REMOTE";
}

/// Whether this process is a container.
pub(crate) fn is_container() -> bool {
    std::env::var_os(env::TASK_ID).is_some()
}

struct Context {
    task_id: String,
    server_url: String,
    identity: Identity,
    concurrency: usize,
}

impl Context {
    fn from_env() -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
        Ok(Context {
            task_id: var(env::TASK_ID)?,
            server_url: var(env::SERVER_URL)?,
            identity: Identity {
                app: var(env::APP_NAME)?,
                tag: var(env::FUNCTION_TAG)?,
            },
            concurrency: std::env::var(env::MAX_INPUTS)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(1usize)
                .max(1),
        })
    }
}

/// Runs the container and returns its exit code, when this process is one; `None` otherwise.
pub(crate) fn run_if_container() -> Option<ExitCode> {
    if !is_container() {
        return None;
    }
    crate::telemetry::init();
    runner::install_panic_hook();
    watch_parent();
    crate::alloc_tuning::tune_for_payloads();
    let ctx = match Context::from_env() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("cannot start container: {e}");
            return Some(ExitCode::FAILURE);
        }
    };
    // The control-plane stream lives on its own single-threaded runtime: user code (on input
    // threads, or on the user runtime for async functions) can never stall it.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the container's runtime: {e}");
            return Some(ExitCode::FAILURE);
        }
    };
    let code = runtime.block_on(serve(ctx));
    let _ = std::io::stdout().flush();
    Some(code)
}

/// Exits when the worker that started this container is gone, whatever the container is doing:
/// a second line of defence beside the control-plane stream, on a plain thread so that user code
/// blocking the async runtime cannot delay it.
fn watch_parent() {
    let parent = std::os::unix::process::parent_id();
    let spawned = std::thread::Builder::new()
        .name("modal-parent-watch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_millis(250));
                if std::os::unix::process::parent_id() != parent {
                    tracing::warn!("the worker that started this container is gone; exiting");
                    exit_now(0);
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot watch the worker process: {e}");
    }
}

/// The runtime async user functions run on (multi-threaded, as `#[tokio::main]` would give
/// them), started on first use.
fn user_runtime() -> Option<&'static tokio::runtime::Runtime> {
    static RUNTIME: std::sync::OnceLock<Option<tokio::runtime::Runtime>> =
        std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .thread_name("modal-user")
                .enable_all()
                .build()
                .map_err(|e| tracing::error!("cannot start the runtime for async functions: {e}"))
                .ok()
        })
        .as_ref()
}

/// Looks up the function this container is for.
fn find_function(ctx: &Context) -> Result<&'static FunctionRegistration, String> {
    registry::lookup(&ctx.identity)
        .map_err(|e| format!("function `{}` is unknown to this binary: {e}", ctx.identity))
}

fn exit_now(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    std::process::exit(code)
}

async fn serve(ctx: Context) -> ExitCode {
    let channel = match wire::connect(&ctx.server_url, true).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(
                "container {} cannot reach the control plane at {}: {e}",
                ctx.task_id,
                ctx.server_url
            );
            return ExitCode::FAILURE;
        }
    };
    let binary_hash = match crate::binhash::current_exe_hash() {
        Ok(h) => h.to_owned(),
        Err(e) => format!("unreadable ({e})"),
    };
    let found = find_function(&ctx);
    let (out_tx, out_rx) = mpsc::unbounded_channel::<pb::ContainerMessage>();
    let send = |tx: &mpsc::UnboundedSender<pb::ContainerMessage>,
                m: pb::container_message::Message| {
        let _ = tx.send(pb::ContainerMessage { message: Some(m) });
    };
    send(
        &out_tx,
        pb::container_message::Message::Hello(pb::ContainerHello {
            task_id: ctx.task_id.clone(),
            binary_hash,
            app_name: ctx.identity.app.clone(),
            function_tag: ctx.identity.tag.clone(),
        }),
    );
    let credentials = crate::client::credentials::Settings::load().credentials;
    let auth = crate::client::credentials::AuthHeaders::new(credentials.as_ref());
    let mut client = pb::container_api_client::ContainerApiClient::with_interceptor(channel, auth)
        .max_decoding_message_size(wire::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(wire::MAX_MESSAGE_BYTES);
    let mut inbound = match client
        .container_connect(UnboundedReceiverStream::new(out_rx))
        .await
    {
        Ok(r) => r.into_inner(),
        Err(status) => {
            tracing::error!(
                "container {} was refused: {}",
                ctx.task_id,
                status.message()
            );
            return ExitCode::FAILURE;
        }
    };
    let function = match found {
        Ok(f) => f,
        Err(message) => {
            tracing::error!("{message}");
            send(
                &out_tx,
                pb::container_message::Message::InitFailure(pb::ContainerInitFailure { message }),
            );
            drop(out_tx);
            // Wait for the control plane to acknowledge by closing or stopping us.
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(5), inbound.message()).await;
            return ExitCode::FAILURE;
        }
    };

    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(String, pb::CallResult)>();
    let mut exec = Executor::new(function, ctx.concurrency, ctx.task_id.clone(), done_tx);
    loop {
        tokio::select! {
            msg = inbound.message() => {
                let cmd = match msg {
                    Ok(Some(c)) => c.command,
                    Ok(None) | Err(_) => {
                        tracing::warn!("container {} lost the control plane; exiting", ctx.task_id);
                        exit_now(0);
                    }
                };
                match cmd {
                    Some(pb::container_command::Command::Inputs(batch)) => {
                        exec.queue.extend(batch.items);
                        exec.start_ready();
                    }
                    Some(pb::container_command::Command::Cancel(c)) => exec.cancel(&c.input_ids),
                    Some(pb::container_command::Command::Shutdown(_)) => exit_now(0),
                    None => {}
                }
            }
            Some(first) = done_rx.recv() => {
                let mut items = Vec::new();
                for (input_id, result) in std::iter::once(first).chain(std::iter::from_fn(|| done_rx.try_recv().ok())) {
                    if exec.running.remove(&input_id).is_some() {
                        items.push(pb::OutputItem { input_id, result: Some(result) });
                    }
                }
                exec.start_ready();
                if !items.is_empty() {
                    send(&out_tx, pb::container_message::Message::Outputs(pb::OutputBatch { items }));
                }
            }
        }
    }
}

type SyncJob = (String, bytes::Bytes);

enum Running {
    Async(tokio::task::JoinHandle<()>),
    Sync,
}

/// Runs inputs in arrival order, at most `concurrency` at once.
struct Executor {
    function: &'static FunctionRegistration,
    concurrency: usize,
    task_id: String,
    queue: VecDeque<pb::InputItem>,
    running: HashMap<String, Running>,
    done: mpsc::UnboundedSender<(String, pb::CallResult)>,
    sync_jobs: Option<std::sync::mpsc::Sender<SyncJob>>,
}

impl Executor {
    fn new(
        function: &'static FunctionRegistration,
        concurrency: usize,
        task_id: String,
        done: mpsc::UnboundedSender<(String, pb::CallResult)>,
    ) -> Self {
        Executor {
            function,
            concurrency,
            task_id,
            queue: VecDeque::new(),
            running: HashMap::new(),
            done,
            sync_jobs: None,
        }
    }

    fn start_ready(&mut self) {
        while self.running.len() < self.concurrency {
            let Some(item) = self.queue.pop_front() else {
                return;
            };
            let input = match wire::payload_bytes(item.input.as_ref()) {
                Ok(b) => b,
                Err(e) => {
                    let r = wire::failure(pb::ResultStatus::InternalFailure, e, &self.task_id);
                    self.running.insert(item.input_id.clone(), Running::Sync);
                    let _ = self.done.send((item.input_id, r));
                    continue;
                }
            };
            match self.function.invoker {
                Invoker::Async(f) => {
                    let done = self.done.clone();
                    let task_id = self.task_id.clone();
                    let input_id = item.input_id.clone();
                    let Some(user) = user_runtime() else {
                        let r = wire::failure(
                            pb::ResultStatus::InternalFailure,
                            "the container could not start a runtime for async functions",
                            &self.task_id,
                        );
                        self.running.insert(item.input_id.clone(), Running::Sync);
                        let _ = self.done.send((item.input_id, r));
                        continue;
                    };
                    let handle = user.spawn(async move {
                        let result = runner::run_async(f, input, task_id).await;
                        let _ = done.send((input_id, result));
                    });
                    self.running.insert(item.input_id, Running::Async(handle));
                }
                Invoker::Sync(f) => {
                    let jobs = self.sync_pool(f);
                    self.running.insert(item.input_id.clone(), Running::Sync);
                    let _ = jobs.send((item.input_id, input));
                }
            }
        }
    }

    /// Threads for a sync function: `concurrency` of them, fed from one queue. User code never
    /// runs on the runtime's threads, which keep serving the control-plane stream (and notice
    /// at once when it breaks).
    fn sync_pool(&mut self, f: fn(&[u8]) -> registry::Outcome) -> std::sync::mpsc::Sender<SyncJob> {
        if let Some(tx) = &self.sync_jobs {
            return tx.clone();
        }
        let (tx, rx) = std::sync::mpsc::channel::<SyncJob>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..self.concurrency {
            let rx = Arc::clone(&rx);
            let done = self.done.clone();
            let task_id = self.task_id.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("modal-input-{i}"))
                .spawn(move || {
                    loop {
                        let job = match rx.lock() {
                            Ok(guard) => guard.recv(),
                            Err(_) => return,
                        };
                        let Ok((input_id, input)) = job else { return };
                        let result = runner::run_sync(f, &input, &task_id);
                        if done.send((input_id, result)).is_err() {
                            return;
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!("cannot start an input thread: {e}");
            }
        }
        self.sync_jobs = Some(tx.clone());
        tx
    }

    /// Drops cancelled inputs; a running async input is aborted. A running sync input cannot
    /// be interrupted, so the container exits (the control plane already recorded the
    /// cancellation).
    fn cancel(&mut self, ids: &[String]) {
        self.queue.retain(|i| !ids.contains(&i.input_id));
        for id in ids {
            match self.running.remove(id) {
                Some(Running::Async(handle)) => handle.abort(),
                Some(Running::Sync) => {
                    tracing::warn!(
                        "input {id} was cancelled while running; stopping the container to interrupt it"
                    );
                    exit_now(0);
                }
                None => {}
            }
        }
    }
}
