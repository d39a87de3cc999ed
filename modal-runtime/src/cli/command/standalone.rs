//! `modal server` and `modal worker`: a standalone control plane with its built-in worker, and
//! a worker for another machine. Assembly: the one place besides `crate::embedded` that puts a
//! control plane and a worker together.

#![allow(clippy::print_stdout, clippy::print_stderr)] // A command-line tool.

use std::time::Duration;

use super::args::{Backend, RuntimeArgs, ServerArgs, SlurmArgs, WorkerArgs, WorkerCommand};
use crate::credentials::{BOOTSTRAP_ENV, SERVER_CERT_ENV, Settings, Trust};
use crate::error::{Error, Result};
use crate::server::standalone;

pub(super) async fn server(args: ServerArgs) -> Result<()> {
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(standalone::default_data_dir);
    let pilots = pilot_settings(&args.slurm, &args.containers, &data_dir)?;
    let pilot_job_name = pilots.as_ref().map(|p| p.submission.job_name.clone());
    let choice = args.containers.choice()?;
    let opts = standalone::Options {
        listen: args.listen,
        data_dir,
        store_url: args.store,
        advertise_url: args.advertise_url,
        retention: Duration::from_secs(args.retention_days.max(1) * 24 * 3600),
        new_bootstrap_secret: args.new_bootstrap_secret,
        pilots: pilots.clone(),
        dashboard: (!args.no_dashboard).then(|| {
            args.dashboard_listen
                .unwrap_or_else(|| std::net::SocketAddr::new(args.listen.ip(), 0))
        }),
        tls: match (args.tls_cert, args.tls_key) {
            (Some(cert), Some(key)) => Some(crate::server::tls::Source::Files { cert, key }),
            _ if args.tls_self_signed => Some(crate::server::tls::Source::SelfSigned),
            _ => None,
        },
    };
    let data_dir = opts.data_dir.clone();
    let running = standalone::start(opts).await.map_err(Error::Invalid)?;
    if !args.no_worker {
        start_builtin_worker(&running, &choice).await?;
    }
    if let Some(pilots) = &pilots {
        println!(
            "pilot jobs: through Slurm (sbatch), named {}, at most {} at once{}",
            pilots.submission.job_name,
            pilots.max_jobs,
            if args.no_worker {
                "; all containers run in them"
            } else {
                ", when the built-in worker is full"
            }
        );
        let host = running
            .url
            .split("://")
            .nth(1)
            .and_then(|rest| rest.rsplit_once(':'))
            .map_or("", |(host, _)| host);
        if matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
            println!(
                "note: pilots reach this server at {}, which only works when Slurm runs them on this host; on a cluster listen on an address the nodes reach (--listen 0.0.0.0:PORT --advertise-url URL)",
                running.url
            );
        }
    }
    println!(
        "modal server listening on {} (state: {}, data: {})",
        running.url,
        running.store,
        data_dir.display()
    );
    if let Some(dashboard) = &running.dashboard {
        println!("dashboard at {dashboard} (log in with a token)");
    }
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
    let self_signed = crate::server::tls::self_signed_cert(&data_dir);
    if args.tls_self_signed {
        println!(
            "TLS: self-signed certificate {} (`modal token new` on this host saves it for clients; elsewhere copy it and pass --server-cert PATH to `modal token new`, or set {SERVER_CERT_ENV}=PATH)",
            self_signed.display()
        );
    }
    wait_for_shutdown().await;
    println!("modal server stopping");
    // Its pilots' workers would have no control plane: they go with it.
    if let Some(name) = pilot_job_name {
        match crate::server::pilots::cancel_all(&name).await {
            Ok(()) => println!("cancelled the pilot jobs named {name}"),
            Err(e) => eprintln!("cannot cancel the pilot jobs named {name}: {e}"),
        }
    }
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

/// The pilot settings `--backend slurm` and the `--slurm-…` flags ask for; the flags without
/// `--backend slurm` are an error naming them.
fn pilot_settings(
    args: &SlurmArgs,
    containers: &RuntimeArgs,
    data_dir: &std::path::Path,
) -> Result<Option<crate::server::pilots::Settings>> {
    use std::collections::BTreeMap;
    if args.backend != Backend::Slurm {
        let given: Vec<&str> = [
            ("--slurm-partition", !args.partitions.is_empty()),
            (
                "--slurm-partition-labels",
                !args.partition_labels.is_empty(),
            ),
            ("--slurm-account", args.account.is_some()),
            ("--slurm-time", args.time_limit.is_some()),
            ("--slurm-extra", args.extra.is_some()),
            ("--slurm-worker-exe", args.worker_exe.is_some()),
            ("--slurm-log-dir", args.log_dir.is_some()),
        ]
        .into_iter()
        .filter_map(|(flag, given)| given.then_some(flag))
        .collect();
        if !given.is_empty() {
            return Err(Error::Invalid(format!(
                "{} only apply with --backend slurm",
                given.join(", ")
            )));
        }
        return Ok(None);
    }
    let on_path = |name: &str| {
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .any(|d| d.join(name).is_file())
    };
    let missing: Vec<&str> = ["sbatch", "squeue", "scancel"]
        .into_iter()
        .filter(|c| !on_path(c))
        .collect();
    if !missing.is_empty() {
        return Err(Error::Invalid(format!(
            "--backend slurm submits pilot jobs with sbatch, squeue and scancel, but {} is not on PATH: run the server on a host of the Slurm cluster (a login node), with Slurm's commands installed",
            missing.join(", ")
        )));
    }
    let mut partitions: Vec<crate::server::scheduler::PartitionOffer> = args
        .partitions
        .iter()
        .map(|p| crate::server::scheduler::PartitionOffer {
            name: Some(p.clone()),
            labels: BTreeMap::new(),
        })
        .collect();
    for spec in &args.partition_labels {
        let (name, labels) = spec.split_once('=').ok_or_else(|| {
            Error::Invalid(format!(
                "--slurm-partition-labels `{spec}`: expected PARTITION=KEY=VALUE[,KEY=VALUE…], e.g. gpu-spot=preemptible=true"
            ))
        })?;
        let mut parsed = BTreeMap::new();
        for label in labels.split(',').filter(|l| !l.trim().is_empty()) {
            let (k, v) = crate::model::parse_label(label)
                .map_err(|e| Error::Invalid(format!("--slurm-partition-labels `{spec}`: {e}")))?;
            parsed.insert(k, v);
        }
        match partitions
            .iter_mut()
            .find(|p| p.name.as_deref() == Some(name))
        {
            Some(p) => p.labels.extend(parsed),
            None => partitions.push(crate::server::scheduler::PartitionOffer {
                name: Some(name.to_owned()),
                labels: parsed,
            }),
        }
    }
    let worker_exe = match &args.worker_exe {
        Some(p) => p.clone(),
        None => std::env::current_exe().map_err(|e| {
            Error::Invalid(format!(
                "cannot find this executable for pilot jobs to run: {e}; pass --slurm-worker-exe PATH"
            ))
        })?,
    };
    let mut worker_args = Vec::new();
    if let Some(r) = &containers.runtime {
        worker_args.extend(["--runtime".to_owned(), r.clone()]);
    }
    if let Some(r) = &containers.oci_runtime {
        worker_args.extend(["--oci-runtime".to_owned(), r.display().to_string()]);
    }
    // One job name per control plane (its host and data directory), so that a restarted one
    // finds its pilots and two never mix theirs.
    std::fs::create_dir_all(data_dir)
        .map_err(|e| Error::Invalid(format!("cannot create {}: {e}", data_dir.display())))?;
    let canonical = data_dir
        .canonicalize()
        .unwrap_or_else(|_| data_dir.to_path_buf());
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tag = blake3::hash(format!("{host}:{}", canonical.display()).as_bytes()).to_hex();
    let log_dir = args
        .log_dir
        .clone()
        .unwrap_or_else(|| canonical.join("pilots"));
    std::fs::create_dir_all(&log_dir).map_err(|e| {
        Error::Invalid(format!(
            "cannot create the pilot jobs' output directory {}: {e} (--slurm-log-dir)",
            log_dir.display()
        ))
    })?;
    Ok(Some(crate::server::pilots::Settings {
        partitions,
        submission: crate::server::pilots::Submission {
            job_name: format!("modal-pilot-{}", &tag.as_str()[..8]),
            account: args.account.clone(),
            time_limit: args.time_limit.clone(),
            extra: args
                .extra
                .as_deref()
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
        },
        max_jobs: args.max_jobs,
        cpus_per_job: args.cpus_per_job,
        idle_window: Duration::from_secs(args.idle_secs),
        worker_exe,
        worker_args,
        worker_env: BTreeMap::new(),
        log_dir,
    }))
}

pub(super) async fn worker(args: WorkerArgs) -> Result<()> {
    if let Some(WorkerCommand::List { json }) = args.action {
        return super::workers::list(json).await;
    }
    let mut labels = std::collections::BTreeMap::new();
    for label in &args.labels {
        let (k, v) = crate::model::parse_label(label).map_err(Error::Invalid)?;
        labels.insert(k, v);
    }
    let settings = Settings::load();
    // The config file's certificate is for the server it was saved with.
    let trust = if args.server.is_none() || args.server == settings.server_url {
        settings.route.trust
    } else {
        Trust::from_env().unwrap_or_default()
    };
    let url = args.server.or(settings.server_url).ok_or_else(|| {
        Error::Invalid("no control plane: pass --server URL or set MODAL_SERVER_URL".into())
    })?;
    let gpus = crate::worker::gpus(crate::worker::GpuSource::DeclaredOrDiscovered)
        .await
        .map_err(Error::Invalid)?;
    let choice = args.containers.choice()?;
    let mut config =
        crate::worker::WorkerConfig::local(url.clone(), settings.credentials, gpus, &choice)
            .map_err(|e| Error::Invalid(format!("cannot run containers: {e}")))?;
    config.labels = labels;
    config.trust = trust;
    let activity = std::sync::Arc::clone(&config.activity);
    println!(
        "worker connecting to {url} ({} runtime, {:.1} CPU, {} MiB, {} GPU{}{})",
        config.runtime.describe(),
        f64::from(config.milli_cpu) / 1000.0,
        config.memory_mb,
        config.gpus.len(),
        config
            .slurm_job_id
            .as_deref()
            .map(|j| format!(", Slurm job {j}"))
            .unwrap_or_default(),
        if config.labels.is_empty() {
            String::new()
        } else {
            format!(", {}", crate::model::describe_labels(&config.labels))
        }
    );
    let idle_exit = args.idle_exit.map(Duration::from_secs);
    let idle = async move {
        let Some(window) = idle_exit else {
            return std::future::pending().await;
        };
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if activity.idle_for().is_some_and(|d| d >= window) {
                return window;
            }
        }
    };
    tokio::select! {
        done = crate::worker::run_reconnecting(config) => {
            done.map_err(|e| Error::Connect { url, message: e })
        }
        window = idle => {
            println!("worker leaving: no container for {} s (--idle-exit)", window.as_secs());
            Ok(())
        }
    }
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
    // Not a pilot, even in a Slurm allocation: only the pilots' own jobs are let go when idle.
    worker.slurm_job_id = None;
    worker.binary_cache = running.binaries_dir.clone();
    // Over TLS it trusts what MODAL_SERVER_CERT names (a CA, for a certificate a CA issued
    // without its chain), else the server's own certificate.
    worker.trust = Trust::from_env()
        .or_else(|| {
            running.server_cert.clone().map(|pem| Trust::Cert {
                pem,
                source: "the server's own certificate".to_owned(),
            })
        })
        .unwrap_or_default();
    tokio::spawn(async move {
        if let Err(e) = crate::worker::run(worker).await {
            tracing::error!("built-in worker stopped: {e}");
        }
    });
    Ok(())
}
