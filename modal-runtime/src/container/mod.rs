//! The container entrypoint: when the worker started this binary, run its one function's input
//! loop against the control plane instead of the user's program.

mod backtrace;
mod executor;
mod journal;
mod payloads;
pub(crate) mod runner;
mod sync_pool;
mod volumes;

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;

use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::registry::{self, FunctionRegistration, Identity, Invoker};
use crate::task_env::{self as env, is_container};
use crate::wire::{self, pb};
use executor::Executor;
use runner::Event;

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
                // The name in the code; a definition registered before it was sent has none.
                app: std::env::var(env::APP_IN_CODE)
                    .ok()
                    .filter(|a| !a.is_empty())
                    .map_or_else(|| var(env::APP_NAME), Ok)?,
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
    // A write past the container's file size limit fails with `EFBIG` instead of killing it.
    #[allow(unsafe_code)]
    // SAFETY: ignoring a signal installs no handler; nothing else in the process sets one for
    // SIGXFSZ.
    unsafe {
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGXFSZ,
            nix::sys::signal::SigHandler::SigIgn,
        );
    }
    watch_parent();
    crate::alloc_tuning::tune_for_payloads();
    let ctx = match Context::from_env() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("cannot start container: {e}");
            return Some(ExitCode::FAILURE);
        }
    };
    #[cfg(feature = "gpu")]
    if crate::gpu::container_has_gpus() {
        // Context creation (hundreds of milliseconds) overlaps the connection and the wait for
        // the first input.
        crate::gpu::warm_up();
    }
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
    // In a container of its own the worker is not its parent: the worker's pipe says when it
    // is gone (no byte is ever written to it; reading it ends when the worker's end closes).
    let pipe = std::env::var(crate::task_env::WORKER_PIPE)
        .ok()
        .and_then(|fd| fd.parse::<std::os::fd::RawFd>().ok())
        .filter(|fd| *fd > 2 && std::fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_ok())
        .map(|fd| {
            #[allow(unsafe_code)]
            // SAFETY: the worker passed this descriptor open (checked just above) for this
            // watch alone; nothing else in the process uses or closes it.
            unsafe {
                <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd)
            }
        });
    let spawned = std::thread::Builder::new()
        .name("modal-parent-watch".into())
        .spawn(move || {
            if let Some(mut pipe) = pipe {
                let _ = std::io::Read::read(&mut pipe, &mut [0u8; 1]);
                tracing::warn!("the worker that started this container is gone; exiting");
                exit_now(0);
            }
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
    // The worker says what to trust and, without a network, the socket to go through.
    let route = crate::credentials::Route::from_env();
    let channel = match wire::connect(&ctx.server_url, true, &route).await {
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
    // What the worker mounted, when it says (it computed the digest with its cache).
    let binary_hash = match std::env::var(crate::task_env::EXE_HASH) {
        Ok(h) if !h.is_empty() => h,
        _ => match crate::binhash::current_exe_hash() {
            Ok(h) => h.to_owned(),
            Err(e) => format!("unreadable ({e})"),
        },
    };
    let found = find_function(&ctx);
    let (out_tx, out_rx) = mpsc::unbounded_channel::<pb::ContainerMessage>();
    send(
        &out_tx,
        pb::container_message::Message::Hello(pb::ContainerHello {
            task_id: ctx.task_id.clone(),
            binary_hash,
            app_name: ctx.identity.app.clone(),
            function_tag: ctx.identity.tag.clone(),
            sends_ready: true,
            payload_store: payloads::store_id(),
        }),
    );
    // The worker passes the container's token in its environment; no config file is read.
    let credentials = crate::credentials::Credentials::from_env();
    let auth = wire::AuthHeaders::new(credentials.as_ref());
    let mut client = pb::container_api_client::ContainerApiClient::with_interceptor(
        channel.clone(),
        auth.clone(),
    )
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
                wire::status_text(&status)
            );
            return ExitCode::FAILURE;
        }
    };
    let function = match found {
        Ok(f) => f,
        Err(message) => return init_failed(out_tx, &mut inbound, message).await,
    };
    // The volumes are filled before user code runs (the `enter` hooks may read them).
    let filled = match volumes::mounts_from_env() {
        Ok(mounts) => volumes::populate(mounts, channel, auth).await,
        Err(e) => Err(e),
    };
    if let Err(message) = filled {
        return init_failed(out_tx, &mut inbound, message).await;
    }

    let Some(user) = user_runtime() else {
        let message = "the container could not start its runtime for user code".to_owned();
        return init_failed(out_tx, &mut inbound, message).await;
    };
    // A class: build the instance from its parameters and run its `enter` hooks before any input.
    let instance = match function.invoker {
        Invoker::Class(build) => {
            let params = std::env::var(env::CLASS_PARAMS)
                .ok()
                .and_then(|h| hex::decode(h).ok())
                .unwrap_or_default();
            let entered = match build(&params) {
                Ok(instance) => {
                    let enter = user.spawn(std::sync::Arc::clone(&instance).enter());
                    match enter.await {
                        Ok(Ok(())) => Ok(instance),
                        Ok(Err(e)) => Err(e),
                        Err(e) => Err(format!("the enter hook failed: {e}")),
                    }
                }
                Err(e) => Err(format!("cannot build the class from its parameters: {e}")),
            };
            match entered {
                Ok(instance) => Some(instance),
                Err(message) => return init_failed(out_tx, &mut inbound, message).await,
            }
        }
        _ => None,
    };

    // Inputs may come now: the start-up deadline (`startup_timeout`) covered the `enter` hooks;
    // each input's `timeout` counts from when it starts. The journal is open before.
    journal::open();
    send(
        &out_tx,
        pb::container_message::Message::Ready(pb::ContainerReady {}),
    );
    let (events_tx, mut events) = mpsc::unbounded_channel::<Event>();
    // The inputs mapped from payload files, by id, until their results go.
    let mut mapped: HashMap<String, std::sync::Weak<()>> = HashMap::new();
    // Without a store: how long each input's download took, and the inputs that lost a
    // generator item (see `payloads::upload_outputs`).
    let mut transfers: HashMap<String, std::time::Duration> = HashMap::new();
    let mut lost: HashMap<String, String> = HashMap::new();
    let mut exec = Executor::new(
        function,
        instance.clone(),
        ctx.concurrency,
        ctx.task_id.clone(),
        events_tx,
        user,
    );
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
                        let mut items = Vec::with_capacity(batch.items.len());
                        for item in batch.items {
                            let (item, watch) = payloads::load(item.into());
                            if let Some(watch) = watch {
                                mapped.insert(item.input_id.clone(), watch);
                            }
                            items.push(item);
                        }
                        payloads::download_stored(&client, &mut items, &mut transfers).await;
                        exec.push(items)
                    }
                    Some(pb::container_command::Command::Cancel(c)) => {
                        for id in &c.input_ids {
                            mapped.remove(id);
                            transfers.remove(id);
                            lost.remove(id);
                        }
                        if let Some(reason) = exec.cancel(&c.input_ids) {
                            // Told before exiting, so that no input is sent here meanwhile; the
                            // control plane stops this container once it heard.
                            send(
                                &out_tx,
                                pb::container_message::Message::Leaving(pb::ContainerLeaving {
                                    reason,
                                }),
                            );
                        }
                    }
                    Some(pb::container_command::Command::Shutdown(_)) => {
                        if let Some(instance) = &instance {
                            // The exit hooks get a bounded time; the worker kills after its grace anyway.
                            let exit = user.spawn(std::sync::Arc::clone(instance).exit());
                            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), exit).await;
                        }
                        // A clean exit commits what the exit hooks and the inputs wrote.
                        volumes::commit_all().await;
                        exit_now(0);
                    }
                    None => {}
                }
            }
            Some(first) = events.recv() => {
                let mut outputs = Vec::new();
                let mut items: Vec<(String, Vec<pb::Payload>)> = Vec::new();
                for event in std::iter::once(first).chain(std::iter::from_fn(|| events.try_recv().ok())) {
                    match event {
                        Event::Item { input_id, item } => {
                            // Items go out before the result that follows them.
                            if !outputs.is_empty() {
                                send_outputs(&client, &out_tx, &mut items, &mut outputs, &mut lost).await;
                            }
                            match items.last_mut() {
                                Some((id, list)) if *id == input_id => list.push(item.into()),
                                _ => items.push((input_id, vec![item.into()])),
                            }
                        }
                        Event::Done { input_id, result, run } => {
                            let run = run + transfers.remove(&input_id).unwrap_or_default();
                            // Its code returned and let go of its arguments: a mapped input
                            // still held is one that user code kept.
                            let input_kept = mapped
                                .remove(&input_id)
                                .is_some_and(|watch| watch.strong_count() > 0);
                            if exec.finished(&input_id) {
                                outputs.push(pb::OutputItem {
                                    input_id,
                                    result: Some(result.into()),
                                    run_us: run_us(run),
                                    input_kept,
                                });
                            }
                        }
                    }
                }
                send_outputs(&client, &out_tx, &mut items, &mut outputs, &mut lost).await;
                exec.start_ready();
            }
        }
    }
}

/// An input's run time for its output: 0 says "not measured" (it did not start), so a run
/// that started counts at least 1 µs.
fn run_us(run: std::time::Duration) -> u64 {
    if run.is_zero() {
        return 0;
    }
    u64::try_from(run.as_micros()).unwrap_or(u64::MAX).max(1)
}

fn send(tx: &mpsc::UnboundedSender<pb::ContainerMessage>, m: pb::container_message::Message) {
    let _ = tx.send(pb::ContainerMessage { message: Some(m) });
}

/// Reports an init failure and waits for the control plane to acknowledge it.
async fn init_failed(
    out_tx: mpsc::UnboundedSender<pb::ContainerMessage>,
    inbound: &mut tonic::Streaming<pb::ContainerCommand>,
    message: String,
) -> ExitCode {
    tracing::error!("{message}");
    send(
        &out_tx,
        pb::container_message::Message::InitFailure(pb::ContainerInitFailure { message }),
    );
    drop(out_tx);
    await_stop(inbound).await;
    ExitCode::FAILURE
}

/// After an init failure: waits (at most 5 s) for the control plane to stop this container, so
/// that the failure is delivered before the process exits; inputs sent meanwhile are ignored.
async fn await_stop(inbound: &mut tonic::Streaming<pb::ContainerCommand>) {
    let wait = async {
        while let Ok(Some(cmd)) = inbound.message().await {
            if matches!(
                cmd.command,
                Some(pb::container_command::Command::Shutdown(_))
            ) {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), wait).await;
}

/// Sends generator items, then outputs, their large values uploaded first when this container
/// reaches no payload store.
async fn send_outputs(
    client: &payloads::Stub,
    out: &mpsc::UnboundedSender<pb::ContainerMessage>,
    items: &mut Vec<(String, Vec<pb::Payload>)>,
    outputs: &mut Vec<pb::OutputItem>,
    lost: &mut HashMap<String, String>,
) {
    payloads::upload_outputs(client, items, outputs, lost).await;
    flush(out, items, outputs);
}

fn flush(
    out: &mpsc::UnboundedSender<pb::ContainerMessage>,
    items: &mut Vec<(String, Vec<pb::Payload>)>,
    outputs: &mut Vec<pb::OutputItem>,
) {
    for (input_id, list) in items.drain(..).filter(|(_, list)| !list.is_empty()) {
        send(
            out,
            pb::container_message::Message::GeneratorItems(pb::GeneratorItems {
                input_id,
                items: list,
            }),
        );
    }
    if !outputs.is_empty() {
        let items = std::mem::take(outputs);
        send(
            out,
            pb::container_message::Message::Outputs(pb::OutputBatch { items }),
        );
    }
}
