//! The embedded default: a program with no control plane configured starts one in its own
//! process on a loopback port, with a local worker (oci containers where crun runs, child processes
//! otherwise), and calls its service in-process. The one place that puts the control plane, the
//! worker and the client together.

use std::sync::Arc;

use tower_service::Service;

use crate::client::{Client, EmbeddedFuture, EmbeddedStart};
use crate::error::{Error, Result};

inventory::submit! {
    EmbeddedStart(start)
}

/// Starts the control plane and the worker on a thread of their own, with a single-threaded
/// runtime: the program's runtime may be blocked by its own code without stalling them (or the
/// containers' streams), and a call crosses fewer threads than on a shared multi-threaded one.
fn start() -> EmbeddedFuture {
    Box::pin(async {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("modal-control-plane".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(Error::Connect {
                            url: "127.0.0.1:0".into(),
                            message: format!(
                                "cannot start the embedded control plane's runtime: {e}"
                            ),
                        }));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let _ = tx.send(embedded().await);
                    std::future::pending::<()>().await
                });
            });
        if let Err(e) = spawned {
            return Err(Error::Connect {
                url: "127.0.0.1:0".into(),
                message: format!("cannot start the embedded control plane's thread: {e}"),
            });
        }
        rx.await.map_err(|_| Error::Connect {
            url: "127.0.0.1:0".into(),
            message: "the embedded control plane's thread ended".into(),
        })?
    })
}

async fn embedded() -> Result<Client> {
    // This process now relays payloads between the program and its containers.
    crate::alloc_tuning::tune_for_payloads();
    // The driver's start-up costs a GPU machine a few hundred milliseconds: only a program
    // with GPU functions pays it, while the control plane starts.
    let gpus = crate::worker::gpus(if crate::registry::any_gpu_function() {
        crate::worker::GpuSource::DeclaredOrDiscovered
    } else {
        crate::worker::GpuSource::DeclaredOnly
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| Error::Connect {
            url: "127.0.0.1:0".into(),
            message: format!("cannot bind the embedded control plane: {e}"),
        })?;
    let mut config = crate::server::Config::embedded();
    // Large payloads go through files in /dev/shm that the program and its containers share.
    config.payloads = crate::server::hosted_payloads(crate::payloads::Store::for_this_process());
    // The program and its worker hold a token made for this run; nothing else on the machine
    // can use the control plane's port.
    let token = config.auth.process_token();
    let plane = crate::server::serve(listener, config)
        .await
        .map_err(|message| Error::Connect {
            url: "127.0.0.1:0".into(),
            message,
        })?;
    let url = plane.url();
    let gpus = gpus.await.map_err(Error::Invalid)?;
    let choice = crate::worker::runtime::Choice::from_flags_or_env(None, None, true)
        .map_err(Error::Invalid)?;
    let worker = crate::worker::WorkerConfig::local(url, Some(token.clone()), gpus, &choice)
        .map_err(|e| Error::Invalid(format!("cannot run containers: {e}")))?;
    tokio::spawn(async move {
        if let Err(e) = crate::worker::run(worker).await {
            tracing::error!("local worker stopped: {e}");
        }
    });
    // This program's own calls skip the network: the service is called in-process.
    let service = plane.client_service;
    let call = move |mut req: http::Request<tonic::body::Body>| {
        req.extensions_mut().insert(crate::payloads::InProcess);
        let mut service = service.clone();
        Box::pin(async move {
            let response = service.call(req).await?;
            Ok(response.map(tonic::body::Body::new))
        }) as crate::client::LocalResponse
    };
    Ok(Client::in_process(Arc::new(call), &token))
}
