//! The gRPC services: each handler finds out who is calling, checks its request, hands a command
//! to the event loop and turns the reply into a response.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::auth::{Auth, Principal};
use super::binaries::Binaries;
use super::event_loop::{Command, Reply};
use super::store::Store;
use crate::wire::pb;

/// Longest a single request waits for a result before answering "not yet".
const MAX_WAIT: Duration = Duration::from_secs(55);
/// How long a stop waits for the last container to exit.
const STOP_WAIT: Duration = Duration::from_secs(15);

#[derive(Clone)]
pub(crate) struct Api {
    commands: mpsc::UnboundedSender<Command>,
    auth: Auth,
    store: Arc<dyn Store>,
    binaries: Option<Binaries>,
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

impl Api {
    pub(crate) fn new(
        commands: mpsc::UnboundedSender<Command>,
        auth: Auth,
        store: Arc<dyn Store>,
        binaries: Option<Binaries>,
    ) -> Self {
        Api {
            commands,
            auth,
            store,
            binaries,
        }
    }

    fn send(&self, cmd: Command) -> Result<(), Status> {
        self.commands
            .send(cmd)
            .map_err(|_| Status::unavailable("the control plane is shutting down"))
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, Status> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx))?;
        rx.await
            .map_err(|_| Status::unavailable("the control plane is shutting down"))?
    }

    fn user<T>(&self, req: &Request<T>) -> Result<Principal, Status> {
        let p = self.auth.principal(req);
        p.require_user()?;
        Ok(p)
    }

    /// Anyone with a valid token (a container's is checked against the app later).
    fn caller<T>(&self, req: &Request<T>) -> Result<Principal, Status> {
        let p = self.auth.principal(req);
        if let Principal::Anonymous { .. } = p {
            p.require_user()?;
        }
        Ok(p)
    }

    fn binaries(&self) -> Result<&Binaries, Status> {
        self.binaries.as_ref().ok_or_else(|| {
            Status::failed_precondition(
                "this control plane stores no binaries (it is embedded in a program)",
            )
        })
    }
}

async fn wait_result(
    rx: oneshot::Receiver<pb::CallResult>,
    wait: Duration,
) -> Option<pb::CallResult> {
    match tokio::time::timeout(wait.min(MAX_WAIT), rx).await {
        Ok(Ok(r)) => Some(r),
        _ => None,
    }
}

#[tonic::async_trait]
impl pb::client_api_server::ClientApi for Api {
    async fn app_create(
        &self,
        req: Request<pb::AppCreateRequest>,
    ) -> Result<Response<pb::AppCreateResponse>, Status> {
        self.user(&req)?;
        let req = req.into_inner();
        let app_id = self.ask(|reply| Command::AppCreate { req, reply }).await?;
        Ok(Response::new(pb::AppCreateResponse { app_id }))
    }

    async fn app_publish(
        &self,
        req: Request<pb::AppPublishRequest>,
    ) -> Result<Response<pb::AppPublishResponse>, Status> {
        let principal = self.user(&req)?;
        let req = req.into_inner();
        Ok(Response::new(
            self.ask(|reply| Command::AppPublish {
                req,
                principal,
                reply,
            })
            .await?,
        ))
    }

    async fn app_client_disconnect(
        &self,
        req: Request<pb::AppClientDisconnectRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.user(&req)?;
        let app_id = req.into_inner().app_id;
        let done = self
            .ask(|reply| Command::AppDisconnect { app_id, reply })
            .await?;
        // Containers get a grace period, then are killed: this returns once all are gone.
        let _ = tokio::time::timeout(STOP_WAIT, done).await;
        Ok(Response::new(pb::Empty {}))
    }

    async fn app_heartbeat(
        &self,
        req: Request<pb::AppHeartbeatRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.user(&req)?;
        let app_id = req.into_inner().app_id;
        self.ask(|reply| Command::AppHeartbeat { app_id, reply })
            .await?;
        Ok(Response::new(pb::Empty {}))
    }

    type AppGetLogsStream = BoxStream<pb::LogBatch>;

    async fn app_get_logs(
        &self,
        req: Request<pb::AppGetLogsRequest>,
    ) -> Result<Response<Self::AppGetLogsStream>, Status> {
        self.user(&req)?;
        let app_id = req.into_inner().app_id;
        let (tx, rx) = mpsc::unbounded_channel();
        self.ask(|reply| Command::SubscribeLogs { app_id, tx, reply })
            .await?;
        Ok(Response::new(Box::pin(
            UnboundedReceiverStream::new(rx).map(Ok),
        )))
    }

    async fn function_call(
        &self,
        req: Request<pb::FunctionCallRequest>,
    ) -> Result<Response<pb::FunctionCallResponse>, Status> {
        let principal = self.caller(&req)?;
        let req = req.into_inner();
        let input = req
            .input
            .ok_or_else(|| Status::invalid_argument("missing input"))?;
        let (call_id, rx) = self
            .ask(|reply| Command::Invoke {
                function_id: req.function_id,
                method: req.method_name,
                input,
                wait: req.wait,
                principal,
                reply,
            })
            .await?;
        let result = match rx {
            Some(rx) => wait_result(rx, Duration::from_millis(u64::from(req.wait_ms))).await,
            None => None,
        };
        Ok(Response::new(pb::FunctionCallResponse { call_id, result }))
    }

    async fn function_call_get(
        &self,
        req: Request<pb::FunctionCallGetRequest>,
    ) -> Result<Response<pb::FunctionCallGetResponse>, Status> {
        let principal = self.caller(&req)?;
        let req = req.into_inner();
        let call_id = req.call_id;
        let result = match self
            .ask(|reply| Command::CallGet {
                call_id,
                principal,
                reply,
            })
            .await?
        {
            Ok(r) => Some(r),
            Err(rx) => wait_result(rx, Duration::from_millis(u64::from(req.timeout_ms))).await,
        };
        Ok(Response::new(pb::FunctionCallGetResponse { result }))
    }

    async fn function_call_cancel(
        &self,
        req: Request<pb::FunctionCallCancelRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let principal = self.caller(&req)?;
        let req = req.into_inner();
        self.ask(|reply| Command::CallCancel {
            call_id: req.call_id,
            terminate_containers: req.terminate_containers,
            principal,
            reply,
        })
        .await?;
        Ok(Response::new(pb::Empty {}))
    }

    type FunctionMapStream = BoxStream<pb::MapResponse>;

    async fn function_map(
        &self,
        req: Request<Streaming<pb::MapRequest>>,
    ) -> Result<Response<Self::FunctionMapStream>, Status> {
        let principal = self.caller(&req)?;
        let mut inbound = req.into_inner();
        let start = match inbound.message().await? {
            Some(pb::MapRequest {
                request: Some(pb::map_request::Request::Start(s)),
            }) => s,
            _ => {
                return Err(Status::invalid_argument(
                    "a map stream starts with MapStart",
                ));
            }
        };
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let function_id = start.function_id;
        let call_id = self
            .ask(|reply| Command::MapStart {
                function_id,
                method: start.method_name,
                principal,
                out: out_tx,
                reply,
            })
            .await?;
        let api = self.clone();
        let id = call_id.clone();
        tokio::spawn(async move {
            loop {
                match inbound.message().await {
                    Ok(Some(pb::MapRequest {
                        request: Some(pb::map_request::Request::Inputs(batch)),
                    })) => {
                        let last = batch.last;
                        if api
                            .send(Command::MapInputs {
                                call_id: id.clone(),
                                inputs: batch.inputs,
                                last,
                            })
                            .is_err()
                        {
                            return;
                        }
                    }
                    Ok(Some(_)) => {}
                    // The client half-closed: inputs are done; outputs keep flowing.
                    Ok(None) => return,
                    Err(_) => {
                        let _ = api.send(Command::CallAbandoned {
                            call_id: id.clone(),
                        });
                        return;
                    }
                }
            }
        });
        let guard = AbandonGuard {
            api: self.clone(),
            call_id: call_id.clone(),
        };
        let first = futures::stream::once(async move {
            Ok(pb::MapResponse {
                call_id,
                outputs: Vec::new(),
            })
        });
        let outputs = UnboundedReceiverStream::new(out_rx)
            .ready_chunks(1024)
            .map(move |outputs| {
                let _keep = &guard;
                Ok(pb::MapResponse {
                    call_id: String::new(),
                    outputs,
                })
            });
        Ok(Response::new(Box::pin(first.chain(outputs))))
    }

    async fn function_bind(
        &self,
        req: Request<pb::FunctionBindRequest>,
    ) -> Result<Response<pb::FunctionBindResponse>, Status> {
        let principal = self.caller(&req)?;
        let req = req.into_inner();
        let bound_function_id = self
            .ask(|reply| Command::FunctionBind {
                req,
                principal,
                reply,
            })
            .await?;
        Ok(Response::new(pb::FunctionBindResponse {
            bound_function_id,
        }))
    }

    type FunctionCallGeneratorStream = BoxStream<pb::GeneratorEvent>;

    async fn function_call_generator(
        &self,
        req: Request<pb::FunctionCallRequest>,
    ) -> Result<Response<Self::FunctionCallGeneratorStream>, Status> {
        let principal = self.caller(&req)?;
        let req = req.into_inner();
        let input = req
            .input
            .ok_or_else(|| Status::invalid_argument("missing input"))?;
        let (out, rx) = mpsc::unbounded_channel();
        let call_id = self
            .ask(|reply| Command::InvokeGenerator {
                function_id: req.function_id,
                method: req.method_name,
                input,
                principal,
                out,
                reply,
            })
            .await?;
        let guard = AbandonGuard {
            api: self.clone(),
            call_id: call_id.clone(),
        };
        let first = futures::stream::once(async move {
            Ok(pb::GeneratorEvent {
                event: Some(pb::generator_event::Event::CallId(call_id)),
            })
        });
        let events = UnboundedReceiverStream::new(rx).map(move |e| {
            let _keep = &guard;
            Ok(e)
        });
        Ok(Response::new(Box::pin(first.chain(events))))
    }

    async fn app_deploy(
        &self,
        req: Request<pb::AppDeployRequest>,
    ) -> Result<Response<pb::AppDeployResponse>, Status> {
        self.user(&req)?;
        let req = req.into_inner();
        if let Some(binaries) = &self.binaries
            && let Some(def) = req.functions.iter().find(|d| !binaries.has(&d.binary_hash))
        {
            return Err(Status::failed_precondition(format!(
                "binary {} of function `{}` has not been uploaded",
                def.binary_hash, def.tag
            )));
        }
        Ok(Response::new(
            self.ask(|reply| Command::AppDeploy { req, reply }).await?,
        ))
    }

    async fn app_lookup(
        &self,
        req: Request<pb::AppLookupRequest>,
    ) -> Result<Response<pb::AppLookupResponse>, Status> {
        self.user(&req)?;
        let req = req.into_inner();
        Ok(Response::new(
            self.ask(|reply| Command::AppLookup { req, reply }).await?,
        ))
    }

    async fn app_stop(
        &self,
        req: Request<pb::AppStopRequest>,
    ) -> Result<Response<pb::AppStopResponse>, Status> {
        self.user(&req)?;
        let req = req.into_inner();
        let (resp, done) = self.ask(|reply| Command::AppStop { req, reply }).await?;
        if let Some(done) = done
            && tokio::time::timeout(STOP_WAIT, done).await.is_err()
        {
            return Err(Status::deadline_exceeded(format!(
                "app {} is stopping but containers are still running after {STOP_WAIT:?}",
                resp.app_id
            )));
        }
        Ok(Response::new(resp))
    }

    async fn app_list(
        &self,
        req: Request<pb::AppListRequest>,
    ) -> Result<Response<pb::AppListResponse>, Status> {
        self.user(&req)?;
        let req = req.into_inner();
        Ok(Response::new(
            self.ask(|reply| Command::AppList { req, reply }).await?,
        ))
    }

    async fn app_history(
        &self,
        req: Request<pb::AppHistoryRequest>,
    ) -> Result<Response<pb::AppHistoryResponse>, Status> {
        self.user(&req)?;
        let req = req.into_inner();
        Ok(Response::new(
            self.ask(|reply| Command::AppHistory { req, reply }).await?,
        ))
    }

    async fn app_set_tags(
        &self,
        req: Request<pb::AppSetTagsRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.user(&req)?;
        let req = req.into_inner();
        self.ask(|reply| Command::AppSetTags { req, reply }).await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn app_get_tags(
        &self,
        req: Request<pb::AppGetTagsRequest>,
    ) -> Result<Response<pb::AppGetTagsResponse>, Status> {
        self.user(&req)?;
        let req = req.into_inner();
        Ok(Response::new(
            self.ask(|reply| Command::AppGetTags { req, reply }).await?,
        ))
    }

    async fn app_fetch_logs(
        &self,
        req: Request<pb::AppFetchLogsRequest>,
    ) -> Result<Response<pb::LogBatch>, Status> {
        self.user(&req)?;
        let req = req.into_inner();
        let (app, environment_name) = (req.app, req.environment_name);
        let app_id = self
            .ask(|reply| Command::ResolveApp {
                app,
                environment_name,
                reply,
            })
            .await?;
        // `-n 0` asks for no past lines (with `--follow`: only new ones).
        let tail = usize::try_from(req.tail.min(20_000)).unwrap_or(100);
        let rows = self
            .store
            .logs(&app_id, tail)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        let entries = rows
            .into_iter()
            .map(|r| pb::LogEntry {
                function_id: r.function_id,
                function_tag: r.function_tag,
                task_id: r.task_id,
                input_id: r.input_id,
                source: r.source,
                data: r.data,
                timestamp_ms: r.timestamp_ms,
            })
            .collect();
        Ok(Response::new(pb::LogBatch {
            entries,
            app_done: false,
        }))
    }

    async fn function_get(
        &self,
        req: Request<pb::FunctionGetRequest>,
    ) -> Result<Response<pb::FunctionGetResponse>, Status> {
        let principal = self.caller(&req)?;
        let req = req.into_inner();
        Ok(Response::new(
            self.ask(|reply| Command::FunctionGet {
                req,
                principal,
                reply,
            })
            .await?,
        ))
    }

    async fn function_call_from_id(
        &self,
        req: Request<pb::FunctionCallFromIdRequest>,
    ) -> Result<Response<pb::FunctionCallFromIdResponse>, Status> {
        let principal = self.caller(&req)?;
        let call_id = req.into_inner().call_id;
        Ok(Response::new(
            self.ask(|reply| Command::CallFromId {
                call_id,
                principal,
                reply,
            })
            .await?,
        ))
    }

    async fn binary_check(
        &self,
        req: Request<pb::BinaryCheckRequest>,
    ) -> Result<Response<pb::BinaryCheckResponse>, Status> {
        self.user(&req)?;
        let present = self.binaries()?.has(&req.into_inner().hash);
        Ok(Response::new(pb::BinaryCheckResponse { present }))
    }

    async fn binary_upload(
        &self,
        req: Request<Streaming<pb::BinaryChunk>>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.user(&req)?;
        let (hash, size) = self.binaries()?.receive(req.into_inner()).await?;
        tracing::info!(%hash, size, "binary stored");
        self.send(Command::BinaryStored { hash, size })?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn secret_create(
        &self,
        req: Request<pb::SecretCreateRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.user(&req)?;
        let req = req.into_inner();
        self.ask(|reply| Command::SecretCreate { req, reply })
            .await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn secret_list(
        &self,
        req: Request<pb::SecretListRequest>,
    ) -> Result<Response<pb::SecretListResponse>, Status> {
        self.user(&req)?;
        let req = req.into_inner();
        Ok(Response::new(
            self.ask(|reply| Command::SecretList { req, reply }).await?,
        ))
    }

    async fn secret_delete(
        &self,
        req: Request<pb::SecretDeleteRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.user(&req)?;
        let req = req.into_inner();
        self.ask(|reply| Command::SecretDelete { req, reply })
            .await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn token_create(
        &self,
        req: Request<pb::TokenCreateRequest>,
    ) -> Result<Response<pb::TokenCreateResponse>, Status> {
        // The server's operator bootstraps the first token from the server's own host.
        match self.auth.principal(&req) {
            Principal::Anonymous { loopback: true, .. } => {}
            p => p.require_user()?,
        }
        let label = req.into_inner().label;
        Ok(Response::new(
            self.ask(|reply| Command::TokenCreate { label, reply })
                .await?,
        ))
    }

    async fn container_list(
        &self,
        req: Request<pb::ContainerListRequest>,
    ) -> Result<Response<pb::ContainerListResponse>, Status> {
        self.user(&req)?;
        let req = req.into_inner();
        Ok(Response::new(
            self.ask(|reply| Command::ContainerList { req, reply })
                .await?,
        ))
    }

    async fn container_stop(
        &self,
        req: Request<pb::ContainerStopRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.user(&req)?;
        let req = req.into_inner();
        self.ask(|reply| Command::ContainerStop { req, reply })
            .await?;
        Ok(Response::new(pb::Empty {}))
    }
}

/// Cancels a map's remaining inputs when its response stream is dropped before the end (a
/// no-op for a map that finished: the event loop no longer knows it).
struct AbandonGuard {
    api: Api,
    call_id: String,
}

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        let _ = self.api.send(Command::CallAbandoned {
            call_id: std::mem::take(&mut self.call_id),
        });
    }
}

#[tonic::async_trait]
impl pb::container_api_server::ContainerApi for Api {
    type ContainerConnectStream = BoxStream<pb::ContainerCommand>;

    async fn container_connect(
        &self,
        req: Request<Streaming<pb::ContainerMessage>>,
    ) -> Result<Response<Self::ContainerConnectStream>, Status> {
        let principal = self.auth.principal(&req);
        let mut inbound = req.into_inner();
        use pb::container_message::Message;
        let hello = match inbound.message().await? {
            Some(pb::ContainerMessage {
                message: Some(Message::Hello(h)),
            }) => h,
            Some(pb::ContainerMessage {
                message: Some(Message::InitFailure(f)),
            }) => {
                return Err(Status::invalid_argument(format!(
                    "a container stream starts with its hello, got an init failure: {}",
                    f.message
                )));
            }
            _ => {
                return Err(Status::invalid_argument(
                    "a container stream starts with its hello",
                ));
            }
        };
        principal.require_task(&hello.task_id)?;
        let task_id = hello.task_id.clone();
        let (tx, rx) = mpsc::unbounded_channel();
        self.ask(|reply| Command::ContainerHello { hello, tx, reply })
            .await?;
        let api = self.clone();
        tokio::spawn(async move {
            loop {
                let msg = match inbound.message().await {
                    Ok(Some(m)) => m.message,
                    Ok(None) | Err(_) => break,
                };
                let cmd = match msg {
                    Some(Message::Outputs(batch)) => Command::ContainerOutputs {
                        task_id: task_id.clone(),
                        items: batch.items,
                    },
                    Some(Message::InitFailure(f)) => Command::ContainerInitFailure {
                        task_id: task_id.clone(),
                        message: f.message,
                    },
                    Some(Message::GeneratorItems(g)) => Command::GeneratorItems {
                        task_id: task_id.clone(),
                        input_id: g.input_id,
                        items: g.items,
                    },
                    Some(Message::Hello(_)) | None => continue,
                };
                if api.send(cmd).is_err() {
                    return;
                }
            }
            let _ = api.send(Command::ContainerDisconnected { task_id });
        });
        Ok(Response::new(Box::pin(
            UnboundedReceiverStream::new(rx).map(Ok),
        )))
    }
}

#[tonic::async_trait]
impl pb::worker_api_server::WorkerApi for Api {
    type WorkerConnectStream = BoxStream<pb::WorkerCommand>;

    async fn worker_connect(
        &self,
        req: Request<Streaming<pb::WorkerMessage>>,
    ) -> Result<Response<Self::WorkerConnectStream>, Status> {
        self.user(&req)?;
        let mut inbound = req.into_inner();
        let info = match inbound.message().await? {
            Some(pb::WorkerMessage {
                message: Some(pb::worker_message::Message::Register(r)),
            }) => r,
            _ => {
                return Err(Status::invalid_argument(
                    "a worker stream starts with its registration",
                ));
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let worker_id = self
            .ask(|reply| Command::WorkerRegister { info, tx, reply })
            .await?;
        let api = self.clone();
        tokio::spawn(async move {
            loop {
                match inbound.message().await {
                    Ok(Some(pb::WorkerMessage {
                        message: Some(message),
                    })) => {
                        if api
                            .send(Command::WorkerMessage {
                                worker_id: worker_id.clone(),
                                message,
                            })
                            .is_err()
                        {
                            return;
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            let _ = api.send(Command::WorkerDisconnected { worker_id });
        });
        Ok(Response::new(Box::pin(
            UnboundedReceiverStream::new(rx).map(Ok),
        )))
    }

    type BinaryDownloadStream = BoxStream<pb::BinaryChunk>;

    async fn binary_download(
        &self,
        req: Request<pb::BinaryDownloadRequest>,
    ) -> Result<Response<Self::BinaryDownloadStream>, Status> {
        self.user(&req)?;
        let hash = req.into_inner().hash;
        let stream = self.binaries()?.send(&hash).await?;
        Ok(Response::new(Box::pin(stream)))
    }
}
