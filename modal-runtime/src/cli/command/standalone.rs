//! `modal server` and `modal worker`: a standalone control plane with its built-in worker, and
//! a worker for another machine. Assembly: the one place besides `crate::embedded` that puts a
//! control plane and a worker together.

#![allow(clippy::print_stdout, clippy::print_stderr)] // A command-line tool.

use std::time::Duration;

use super::args::{ServerArgs, WorkerArgs};
use crate::credentials::{BOOTSTRAP_ENV, Settings};
use crate::error::{Error, Result};
use crate::server::standalone;

pub(super) async fn server(args: ServerArgs) -> Result<()> {
    let choice = args.containers.choice()?;
    let opts = standalone::Options {
        listen: args.listen,
        data_dir: args.data_dir.unwrap_or_else(standalone::default_data_dir),
        store_url: args.store,
        advertise_url: args.advertise_url,
        retention: Duration::from_secs(args.retention_days.max(1) * 24 * 3600),
        new_bootstrap_secret: args.new_bootstrap_secret,
    };
    let data_dir = opts.data_dir.clone();
    let running = standalone::start(opts).await.map_err(Error::Invalid)?;
    if !args.no_worker {
        start_builtin_worker(&running, &choice).await?;
    }
    println!(
        "modal server listening on {} (state: {}, data: {})",
        running.url,
        running.store,
        data_dir.display()
    );
    // `modal token new` finds the bootstrap secret in the default data directory by itself.
    let data_dir_flag = if data_dir == standalone::default_data_dir() {
        String::new()
    } else {
        format!(" --data-dir {}", data_dir.display())
    };
    match &running.bootstrap {
        standalone::Bootstrap::InDataDir => println!(
            "create the first token (as this user, on this host) with: modal token new --server {}{data_dir_flag}",
            running.url
        ),
        standalone::Bootstrap::Printed(secret) => println!(
            "a one-time bootstrap secret (kept off the disk, where containers could read it); create a token with:\n  {BOOTSTRAP_ENV}={secret} modal token new --server {}",
            running.url
        ),
        standalone::Bootstrap::None => {}
    }
    wait_for_shutdown().await;
    println!("modal server stopping");
    Ok(())
}

async fn wait_for_shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let terminated = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminated => {}
    }
}

pub(super) async fn worker(args: WorkerArgs) -> Result<()> {
    let settings = Settings::load();
    let url = args.server.or(settings.server_url).ok_or_else(|| {
        Error::Invalid("no control plane: pass --server URL or set MODAL_SERVER_URL".into())
    })?;
    let gpus = crate::worker::gpus(crate::worker::GpuSource::DeclaredOrDiscovered)
        .await
        .map_err(Error::Invalid)?;
    let choice = args.containers.choice()?;
    let config =
        crate::worker::WorkerConfig::local(url.clone(), settings.credentials, gpus, &choice)
            .map_err(|e| Error::Invalid(format!("cannot run containers: {e}")))?;
    println!(
        "worker connecting to {url} ({} runtime)",
        config.runtime.describe()
    );
    crate::worker::run_reconnecting(config)
        .await
        .map_err(|e| Error::Connect { url, message: e })
}

/// The built-in worker of `modal server`: this machine's CPUs, memory and GPUs, with a token
/// that lives as long as the server, reading uploaded executables straight from the server's
/// binary store.
async fn start_builtin_worker(
    running: &standalone::Running,
    choice: &crate::worker::runtime::Choice,
) -> Result<()> {
    // A malformed `MODAL_WORKER_GPUS` stops the server here rather than leaving it without its
    // worker.
    let gpus = crate::worker::gpus(crate::worker::GpuSource::DeclaredOrDiscovered)
        .await
        .map_err(Error::Invalid)?;
    let mut worker = crate::worker::WorkerConfig::local(
        running.url.clone(),
        Some(running.process_token()),
        gpus,
        choice,
    )
    .map_err(|e| {
        Error::Invalid(format!(
            "the built-in worker cannot run containers: {e} (or start the server with --no-worker and run `modal worker` elsewhere)"
        ))
    })?;
    println!("built-in worker: {} runtime", worker.runtime.describe());
    worker.binary_cache = running.binaries_dir.clone();
    tokio::spawn(async move {
        if let Err(e) = crate::worker::run(worker).await {
            tracing::error!("built-in worker stopped: {e}");
        }
    });
    Ok(())
}
