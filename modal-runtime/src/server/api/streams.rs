//! The container and worker streams: each opens with a hello (a registration), then its
//! messages become explicit events of the event loop, and the loop's commands flow back down.

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{Api, BoxStream, stored};
use crate::server::event_loop::Command;
use crate::wire::{self, pb};

#[tonic::async_trait]
impl pb::container_api_server::ContainerApi for Api {
    type ContainerConnectStream = BoxStream<pb::ContainerCommand>;

    async fn container_connect(
        &self,
        req: Request<Streaming<pb::ContainerMessage>>,
    ) -> Result<Response<Self::ContainerConnectStream>, Status> {
        // A restricted container too: its own stream is what it may use.
        let principal = super::guard::principal_of(&req)?;
        let downloads = stored::caller(&req) == stored::Caller::Downloads;
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
        // A container that reaches this control plane's payload store is sent stored payloads
        // and sends large results through its outbox; one elsewhere that downloads is sent
        // their handles (and uploads its large results); any other gets them inline.
        let store = self
            .payloads
            .clone()
            .filter(|s| !hello.payload_store.is_empty() && s.id() == hello.payload_store);
        let inline_from = self
            .payloads
            .clone()
            .filter(|_| store.is_none() && !downloads);
        let (tx, rx) = mpsc::unbounded_channel();
        let hello = hello.into();
        self.event(|reply| Command::ContainerHello { hello, tx, reply })
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
                        items: batch
                            .items
                            .into_iter()
                            .map(|i| {
                                stored::take_output(
                                    store.as_deref(),
                                    &api.transfers,
                                    &task_id,
                                    i.into(),
                                )
                            })
                            .collect(),
                    },
                    Some(Message::InitFailure(f)) => Command::ContainerInitFailure {
                        task_id: task_id.clone(),
                        message: f.message,
                    },
                    Some(Message::Ready(_)) => Command::ContainerReady {
                        task_id: task_id.clone(),
                    },
                    Some(Message::Leaving(l)) => Command::ContainerLeaving {
                        task_id: task_id.clone(),
                        reason: l.reason,
                    },
                    Some(Message::GeneratorItems(g)) => Command::GeneratorItems {
                        task_id: task_id.clone(),
                        input_id: g.input_id,
                        items: g
                            .items
                            .into_iter()
                            .map(|p| {
                                stored::take_item(
                                    store.as_deref(),
                                    &api.transfers,
                                    &task_id,
                                    p.into(),
                                )
                            })
                            .collect(),
                    },
                    Some(Message::Hello(_)) | None => continue,
                };
                if api.send(cmd).await.is_err() {
                    return;
                }
            }
            // Nothing more comes from this container: what its outbox holds is no one's.
            if let Some(store) = &store {
                store.remove_outbox(&task_id);
            }
            let _ = api.send(Command::ContainerDisconnected { task_id }).await;
        });
        Ok(Response::new(Box::pin(
            UnboundedReceiverStream::new(rx)
                .map(move |c| Ok(stored::inline_inputs(inline_from.as_deref(), c).into())),
        )))
    }

    async fn payload_upload(
        &self,
        req: Request<Streaming<pb::BinaryChunk>>,
    ) -> Result<Response<pb::StoredPayload>, Status> {
        Api::payload_upload(self, req).await
    }

    type PayloadDownloadStream = BoxStream<pb::BinaryChunk>;

    async fn payload_download(
        &self,
        req: Request<pb::PayloadDownloadRequest>,
    ) -> Result<Response<Self::PayloadDownloadStream>, Status> {
        Api::payload_download(self, req).await
    }
}

#[tonic::async_trait]
impl pb::worker_api_server::WorkerApi for Api {
    type WorkerConnectStream = BoxStream<pb::WorkerCommand>;

    async fn worker_connect(
        &self,
        req: Request<Streaming<pb::WorkerMessage>>,
    ) -> Result<Response<Self::WorkerConnectStream>, Status> {
        super::guard::principal_of(&req)?.require_worker()?;
        let mut inbound = req.into_inner();
        let info = match inbound.message().await? {
            Some(pb::WorkerMessage {
                message: Some(pb::worker_message::Message::Register(r)),
            }) => r.into(),
            _ => {
                return Err(Status::invalid_argument(
                    "a worker stream starts with its registration",
                ));
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let worker_id = self
            .event(|reply| Command::WorkerRegister { info, tx, reply })
            .await?;
        let api = self.clone();
        tokio::spawn(async move {
            loop {
                match inbound.message().await {
                    Ok(Some(pb::WorkerMessage {
                        message: Some(message),
                    })) => {
                        let Some(event) = wire::worker_event(message) else {
                            continue;
                        };
                        let cmd = Command::WorkerEvent {
                            worker_id: worker_id.clone(),
                            event,
                        };
                        if api.send(cmd).await.is_err() {
                            return;
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            let _ = api.send(Command::WorkerDisconnected { worker_id }).await;
        });
        Ok(Response::new(Box::pin(
            UnboundedReceiverStream::new(rx).map(|c| Ok(c.into())),
        )))
    }

    type BinaryDownloadStream = BoxStream<pb::BinaryChunk>;

    async fn binary_download(
        &self,
        req: Request<pb::BinaryDownloadRequest>,
    ) -> Result<Response<Self::BinaryDownloadStream>, Status> {
        super::guard::principal_of(&req)?.require_worker()?;
        let hash = req.into_inner().hash;
        let stream = self.binaries()?.send(&hash).await?;
        Ok(Response::new(Box::pin(stream)))
    }
}
