//! The client API: apps, calls, maps and generators, deploys and lookups, secrets, tokens and
//! containers, each request converted at this edge and run as one `State` method.

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{AbandonGuard, Api, BoxStream, stored};
use crate::model::{CallResult, FunctionDef, FunctionOptions, GeneratorEvent, Payload};
use crate::server::apps::NewApp;
use crate::server::calls::Wait;
use crate::server::deploy::DeployRequest;
use crate::server::objects::NewSecret;
use crate::wire::{self, Reader, pb};

/// Longest a single request waits for a result before answering "not yet".
const MAX_WAIT: Duration = Duration::from_secs(55);
/// How long a stop waits for the last container to exit.
const STOP_WAIT: Duration = Duration::from_secs(15);

/// The result, if it comes within `wait`. A result that comes just as the wait ends is not lost:
/// the receiver is closed first (the control plane then keeps the result for `call_get`), and
/// what arrived before that is returned.
async fn wait_result(mut rx: oneshot::Receiver<CallResult>, wait: Duration) -> Option<CallResult> {
    match tokio::time::timeout(wait.min(MAX_WAIT), &mut rx).await {
        Ok(Ok(r)) => Some(r),
        Ok(Err(_)) => None,
        Err(_) => {
            rx.close();
            rx.try_recv().ok()
        }
    }
}

impl Api {
    /// A client's input as the control plane keeps it (see [`stored::client_input`]; `call`:
    /// the id of a call that may be sent again).
    fn input(
        &self,
        p: Option<pb::Payload>,
        caller: stored::Caller,
        call: Option<&str>,
    ) -> Result<Payload, Status> {
        let p = p
            .map(Into::into)
            .ok_or_else(|| Status::invalid_argument("missing input"))?;
        stored::client_input(self.payloads.as_deref(), &self.transfers, caller, call, p)
    }

    /// A result as its client receives it (see [`stored::for_client`]).
    fn for_client(&self, r: CallResult, caller: stored::Caller, reader: Reader) -> pb::CallResult {
        stored::for_client(self.payloads.as_deref(), &self.transfers, caller, r, reader).into()
    }
}

fn definitions(defs: Vec<pb::FunctionDefinition>) -> Result<Vec<FunctionDef>, Status> {
    defs.into_iter()
        .map(|d| FunctionDef::try_from(d).map_err(Status::invalid_argument))
        .collect()
}

#[tonic::async_trait]
impl pb::client_api_server::ClientApi for Api {
    async fn app_create(
        &self,
        req: Request<pb::AppCreateRequest>,
    ) -> Result<Response<pb::AppCreateResponse>, Status> {
        self.user(&req)?;
        let req = req.into_inner();
        let new = NewApp {
            name: req.name,
            description: req.description,
            environment: req.environment_name,
            state: wire::app_state_of(req.state),
            tags: req.tags.into_iter().collect(),
        };
        let (app_id, dashboard_url) = self
            .ask(move |s| {
                let id = s.app_create(new)?;
                let url = s.dashboard_url(&id);
                Ok((id, url))
            })
            .await?;
        Ok(Response::new(pb::AppCreateResponse {
            app_id,
            dashboard_url,
        }))
    }

    async fn app_publish(
        &self,
        req: Request<pb::AppPublishRequest>,
    ) -> Result<Response<pb::AppPublishResponse>, Status> {
        self.user(&req)?;
        let req = req.into_inner();
        let defs = definitions(req.functions)?;
        let app_id = req.app_id;
        let function_ids = self.ask(move |s| s.app_publish(&app_id, defs)).await?;
        Ok(Response::new(pb::AppPublishResponse { function_ids }))
    }

    async fn app_client_disconnect(
        &self,
        req: Request<pb::AppClientDisconnectRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.user(&req)?;
        let app_id = req.into_inner().app_id;
        let done = self
            .ask(move |s| s.app_stop(&app_id, "the app's client disconnected"))
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
        self.ask(move |s| s.app_heartbeat(&app_id)).await?;
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
        self.ask(move |s| s.subscribe_logs(&app_id, tx)).await?;
        Ok(Response::new(Box::pin(
            UnboundedReceiverStream::new(rx).map(|b| Ok(b.into())),
        )))
    }

    async fn function_call(
        &self,
        req: Request<pb::FunctionCallRequest>,
    ) -> Result<Response<pb::FunctionCallResponse>, Status> {
        let principal = self.caller(&req)?;
        let local = stored::caller(&req);
        let req = req.into_inner();
        let call = Some(req.call_id.as_str()).filter(|id| !id.is_empty());
        let input = self.input(req.input, local, call)?;
        let wait = if req.wait {
            Wait::Caller
        } else {
            Wait::Spawned
        };
        let (function_id, method) = (req.function_id, req.method_name);
        let chosen = Some(req.call_id).filter(|id| !id.is_empty());
        let (call_id, rx) = self
            .ask(move |s| s.invoke_as(chosen, &function_id, &method, input, wait, &principal))
            .await?;
        let result = match rx {
            Some(rx) => wait_result(rx, Duration::from_millis(u64::from(req.wait_ms))).await,
            None => None,
        };
        // A result that comes back here is a `remote` call's: handed over.
        let result = result.map(|r| self.for_client(r, local, Reader::Only));
        Ok(Response::new(pb::FunctionCallResponse { call_id, result }))
    }

    async fn function_call_get(
        &self,
        req: Request<pb::FunctionCallGetRequest>,
    ) -> Result<Response<pb::FunctionCallGetResponse>, Status> {
        let principal = self.caller(&req)?;
        let local = stored::caller(&req);
        let req = req.into_inner();
        let call_id = req.call_id;
        let (reader, result) = self.ask(move |s| s.call_get(&call_id, &principal)).await?;
        let result = match result {
            Ok(r) => Some(r),
            Err(rx) => wait_result(rx, Duration::from_millis(u64::from(req.timeout_ms))).await,
        };
        let result = result.map(|r| self.for_client(r, local, reader));
        Ok(Response::new(pb::FunctionCallGetResponse { result }))
    }

    async fn function_call_cancel(
        &self,
        req: Request<pb::FunctionCallCancelRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let principal = self.caller(&req)?;
        let req = req.into_inner();
        let (call_id, terminate) = (req.call_id, req.terminate_containers);
        self.ask(move |s| s.call_cancel_request(&call_id, terminate, &principal))
            .await?;
        Ok(Response::new(pb::Empty {}))
    }

    type FunctionMapStream = BoxStream<pb::MapResponse>;

    async fn function_map(
        &self,
        req: Request<Streaming<pb::MapRequest>>,
    ) -> Result<Response<Self::FunctionMapStream>, Status> {
        let principal = self.caller(&req)?;
        let local = stored::caller(&req);
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
        let (function_id, method) = (start.function_id, start.method_name);
        let call_id = self
            .ask(move |s| s.map_start(&function_id, &method, &principal, out_tx))
            .await?;
        let api = self.clone();
        let id = call_id.clone();
        tokio::spawn(async move {
            loop {
                match inbound.message().await {
                    Ok(Some(pb::MapRequest {
                        request: Some(pb::map_request::Request::Inputs(batch)),
                    })) => {
                        let mut inputs = Vec::with_capacity(batch.inputs.len());
                        let mut refused = None;
                        for i in batch.inputs {
                            match api.input(i.input, local, None) {
                                Ok(p) => inputs.push((i.idx, p)),
                                Err(status) => {
                                    refused = Some(status);
                                    break;
                                }
                            }
                        }
                        let inputs = match refused {
                            None => inputs,
                            Some(status) => {
                                // Those accepted before are nobody's now.
                                if let Some(store) = &api.payloads {
                                    let handles: Vec<String> = inputs
                                        .iter()
                                        .filter_map(|(_, p)| {
                                            Some(p.stored.as_ref()?.handle.clone())
                                        })
                                        .collect();
                                    store.remove(&handles);
                                }
                                tracing::warn!("a map's inputs refused: {}", status.message());
                                let abandoned = crate::server::event_loop::Command::CallAbandoned {
                                    call_id: id.clone(),
                                };
                                let _ = api.send(abandoned).await;
                                return;
                            }
                        };
                        let cmd = crate::server::event_loop::Command::MapInputs {
                            call_id: id.clone(),
                            inputs,
                            last: batch.last,
                        };
                        if api.send(cmd).await.is_err() {
                            return;
                        }
                    }
                    Ok(Some(_)) => {}
                    // The client half-closed: inputs are done; outputs keep flowing.
                    Ok(None) => return,
                    Err(_) => {
                        let abandoned = crate::server::event_loop::Command::CallAbandoned {
                            call_id: id.clone(),
                        };
                        let _ = api.send(abandoned).await;
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
        let api = self.clone();
        let outputs = UnboundedReceiverStream::new(out_rx)
            .ready_chunks(1024)
            .map(move |outputs| {
                let _keep = &guard;
                Ok(pb::MapResponse {
                    call_id: String::new(),
                    outputs: outputs
                        .into_iter()
                        .map(|o| pb::MapOutput {
                            idx: o.idx,
                            result: Some(api.for_client(o.result, local, Reader::Only)),
                        })
                        .collect(),
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
        let function_id = req.function_id;
        let params: Option<Payload> = req.params.map(Into::into);
        let options: Option<FunctionOptions> = req.options.map(Into::into);
        let bound_function_id = self
            .ask(move |s| s.function_bind(&function_id, params, options, &principal))
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
        let local = stored::caller(&req);
        let req = req.into_inner();
        let input = self.input(req.input, local, None)?;
        let (out, rx) = mpsc::unbounded_channel();
        let (function_id, method) = (req.function_id, req.method_name);
        let call_id = self
            .ask(move |s| s.invoke_generator(&function_id, &method, input, &principal, out))
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
        let api = self.clone();
        let events = UnboundedReceiverStream::new(rx).map(move |e| {
            let _keep = &guard;
            Ok(match e {
                GeneratorEvent::Item(mut p) => {
                    stored::load_for_client(
                        api.payloads.as_deref(),
                        &api.transfers,
                        local,
                        &mut p,
                        Reader::Only,
                    );
                    GeneratorEvent::Item(p)
                }
                GeneratorEvent::Done(r) => GeneratorEvent::Done(stored::for_client(
                    api.payloads.as_deref(),
                    &api.transfers,
                    local,
                    r,
                    Reader::Only,
                )),
            }
            .into())
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
        let deploy = DeployRequest {
            name: req.name,
            environment: req.environment_name,
            tag: req.tag,
            strategy: wire::strategy_of(req.strategy),
            functions: definitions(req.functions)?,
            tags: req.tags.into_iter().collect(),
            client: req.client,
        };
        let d = self
            .ask_with(move |s, reply| s.app_deploy(deploy, reply))
            .await?;
        let id = d.app_id.clone();
        let dashboard_url = self.ask(move |s| Ok(s.dashboard_url(&id))).await?;
        Ok(Response::new(pb::AppDeployResponse {
            app_id: d.app_id,
            version: d.version,
            function_ids: d.function_ids,
            dashboard_url,
        }))
    }

    async fn app_lookup(
        &self,
        req: Request<pb::AppLookupRequest>,
    ) -> Result<Response<pb::AppLookupResponse>, Status> {
        self.user(&req)?;
        let req = req.into_inner();
        let found = self
            .ask(move |s| s.app_lookup(&req.name, &req.environment_name, req.create_if_missing))
            .await?;
        Ok(Response::new(pb::AppLookupResponse {
            app_id: found.app_id,
            state: wire::app_state_code(found.state),
            name: found.name,
        }))
    }

    async fn app_stop(
        &self,
        req: Request<pb::AppStopRequest>,
    ) -> Result<Response<pb::AppStopResponse>, Status> {
        self.user(&req)?;
        let req = req.into_inner();
        let (stopped, done) = self
            .ask(move |s| s.app_stop_request(&req.app, &req.environment_name))
            .await?;
        if let Some(done) = done
            && tokio::time::timeout(STOP_WAIT, done).await.is_err()
        {
            return Err(Status::deadline_exceeded(format!(
                "app {} is stopping but containers are still running after {STOP_WAIT:?}",
                stopped.app_id
            )));
        }
        Ok(Response::new(pb::AppStopResponse {
            app_id: stopped.app_id,
            stopped_containers: stopped.stopped_containers,
            already_stopped: stopped.already_stopped,
        }))
    }

    async fn app_list(
        &self,
        req: Request<pb::AppListRequest>,
    ) -> Result<Response<pb::AppListResponse>, Status> {
        self.user(&req)?;
        let env = req.into_inner().environment_name;
        let apps = self.ask(move |s| Ok(s.app_list(&env))).await?;
        Ok(Response::new(pb::AppListResponse {
            apps: apps.into_iter().map(Into::into).collect(),
        }))
    }

    async fn app_history(
        &self,
        req: Request<pb::AppHistoryRequest>,
    ) -> Result<Response<pb::AppHistoryResponse>, Status> {
        self.user(&req)?;
        let req = req.into_inner();
        let (app_id, deployments) = self
            .ask(move |s| s.app_history(&req.app, &req.environment_name))
            .await?;
        Ok(Response::new(pb::AppHistoryResponse {
            app_id,
            deployments: deployments.into_iter().map(Into::into).collect(),
        }))
    }

    async fn app_set_tags(
        &self,
        req: Request<pb::AppSetTagsRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.user(&req)?;
        let req = req.into_inner();
        let tags = req.tags.into_iter().collect();
        self.ask(move |s| s.app_set_tags(&req.app_id, tags)).await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn app_get_tags(
        &self,
        req: Request<pb::AppGetTagsRequest>,
    ) -> Result<Response<pb::AppGetTagsResponse>, Status> {
        self.user(&req)?;
        let app_id = req.into_inner().app_id;
        let tags = self.ask(move |s| s.app_get_tags(&app_id)).await?;
        Ok(Response::new(pb::AppGetTagsResponse {
            tags: tags.into_iter().collect(),
        }))
    }

    async fn app_fetch_logs(
        &self,
        req: Request<pb::AppFetchLogsRequest>,
    ) -> Result<Response<pb::LogBatch>, Status> {
        self.user(&req)?;
        let req = req.into_inner();
        let (app, environment_name) = (req.app, req.environment_name);
        let app_id = self
            .ask(move |s| s.find_app_any_state(&app, &environment_name))
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
        let (function_id, app_id, def) = self
            .ask(move |s| {
                s.function_get(&req.app_name, &req.tag, &req.environment_name, &principal)
            })
            .await?;
        Ok(Response::new(pb::FunctionGetResponse {
            function_id,
            app_id,
            definition: Some((&def).into()),
        }))
    }

    async fn function_get_current_stats(
        &self,
        req: Request<pb::FunctionStatsRequest>,
    ) -> Result<Response<pb::FunctionCurrentStats>, Status> {
        let principal = self.caller(&req)?;
        let id = req.into_inner().function_id;
        let s = self
            .ask(move |s| s.function_current_stats(&id, &principal))
            .await?;
        Ok(Response::new(pb::FunctionCurrentStats {
            backlog: s.backlog,
            num_total_runners: s.runners,
            num_running_inputs: s.running_inputs,
            input_headroom: s.headroom,
            succeeded: s.succeeded,
            failed: s.failed,
        }))
    }

    async fn function_update_autoscaler(
        &self,
        req: Request<pb::FunctionUpdateAutoscalerRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let principal = self.caller(&req)?;
        let req = req.into_inner();
        let update = crate::server::tuning::AutoscalerUpdate {
            min_containers: req.min_containers,
            max_containers: req.max_containers,
            buffer_containers: req.buffer_containers,
            scaledown_window_secs: req.scaledown_window,
        };
        self.ask(move |s| s.function_update_autoscaler(&req.function_id, update, &principal))
            .await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn function_call_from_id(
        &self,
        req: Request<pb::FunctionCallFromIdRequest>,
    ) -> Result<Response<pb::FunctionCallFromIdResponse>, Status> {
        let principal = self.caller(&req)?;
        let call_id = req.into_inner().call_id;
        let (function_id, function_tag) = self
            .ask(move |s| s.call_from_id(&call_id, &principal))
            .await?;
        Ok(Response::new(pb::FunctionCallFromIdResponse {
            function_id,
            function_tag,
        }))
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
        self.send(crate::server::event_loop::Command::BinaryStored { hash, size })
            .await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn secret_create(
        &self,
        req: Request<pb::SecretCreateRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.user(&req)?;
        let req = req.into_inner();
        let new = NewSecret {
            name: req.name,
            environment: req.environment_name,
            values: req.values.into_iter().collect(),
            overwrite: req.overwrite,
        };
        self.ask(move |s| s.secret_create(new)).await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn secret_list(
        &self,
        req: Request<pb::SecretListRequest>,
    ) -> Result<Response<pb::SecretListResponse>, Status> {
        self.user(&req)?;
        let env = req.into_inner().environment_name;
        let secrets = self.ask(move |s| Ok(s.secret_list(&env))).await?;
        Ok(Response::new(pb::SecretListResponse {
            secrets: secrets.into_iter().map(Into::into).collect(),
        }))
    }

    async fn secret_delete(
        &self,
        req: Request<pb::SecretDeleteRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.user(&req)?;
        let req = req.into_inner();
        self.ask(move |s| s.secret_delete(&req.name, &req.environment_name))
            .await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn token_create(
        &self,
        req: Request<pb::TokenCreateRequest>,
    ) -> Result<Response<pb::TokenCreateResponse>, Status> {
        // The first token comes from the bootstrap secret in the server's data directory.
        let principal = self.caller(&req)?;
        principal.require_token_creator()?;
        let req = req.into_inner();
        let (token_id, token_secret) = self
            .ask(move |s| s.token_create(req.label, req.worker, &principal))
            .await?;
        Ok(Response::new(pb::TokenCreateResponse {
            token_id,
            token_secret,
        }))
    }

    async fn container_list(
        &self,
        req: Request<pb::ContainerListRequest>,
    ) -> Result<Response<pb::ContainerListResponse>, Status> {
        self.user(&req)?;
        let req = req.into_inner();
        let containers = self
            .ask(move |s| Ok(s.container_list(&req.app_id, &req.environment_name)))
            .await?;
        Ok(Response::new(pb::ContainerListResponse {
            containers: containers.into_iter().map(Into::into).collect(),
        }))
    }

    async fn app_dashboard_url(
        &self,
        req: Request<pb::AppLookupRequest>,
    ) -> Result<Response<pb::AppDashboardUrlResponse>, Status> {
        self.user(&req)?;
        let req = req.into_inner();
        let (app_id, url) = self
            .ask(move |s| {
                let id = s.find_app_any_state(&req.name, &req.environment_name)?;
                let url = s.dashboard_url(&id);
                if url.is_empty() {
                    return Err(Status::failed_precondition(
                        "this control plane serves no dashboard (it was started with --no-dashboard)",
                    ));
                }
                Ok((id, url))
            })
            .await?;
        Ok(Response::new(pb::AppDashboardUrlResponse { app_id, url }))
    }

    async fn worker_list(
        &self,
        req: Request<pb::WorkerListRequest>,
    ) -> Result<Response<pb::WorkerListResponse>, Status> {
        self.user(&req)?;
        let workers = self.ask(|s| Ok(s.worker_list())).await?;
        Ok(Response::new(pb::WorkerListResponse {
            workers: workers.into_iter().map(Into::into).collect(),
        }))
    }

    async fn volume_get_or_create(
        &self,
        req: Request<pb::VolumeGetOrCreateRequest>,
    ) -> Result<Response<pb::VolumeGetOrCreateResponse>, Status> {
        Api::volume_get_or_create(self, req).await
    }

    async fn volume_list(
        &self,
        req: Request<pb::VolumeListRequest>,
    ) -> Result<Response<pb::VolumeListResponse>, Status> {
        Api::volume_list(self, req).await
    }

    async fn volume_delete(
        &self,
        req: Request<pb::VolumeDeleteRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        Api::volume_delete(self, req).await
    }

    async fn volume_manifest(
        &self,
        req: Request<pb::VolumeManifestRequest>,
    ) -> Result<Response<pb::VolumeManifestResponse>, Status> {
        Api::volume_manifest(self, req).await
    }

    async fn volume_blob_check(
        &self,
        req: Request<pb::VolumeBlobCheckRequest>,
    ) -> Result<Response<pb::VolumeBlobCheckResponse>, Status> {
        Api::volume_blob_check(self, req).await
    }

    async fn volume_blob_upload(
        &self,
        req: Request<Streaming<pb::BinaryChunk>>,
    ) -> Result<Response<pb::Empty>, Status> {
        Api::volume_blob_upload(self, req).await
    }

    type VolumeBlobDownloadStream = BoxStream<pb::BinaryChunk>;

    async fn payload_upload(
        &self,
        req: Request<Streaming<pb::BinaryChunk>>,
    ) -> Result<Response<pb::StoredPayload>, Status> {
        self.caller(&req)?;
        Api::payload_upload(self, req).await
    }

    type PayloadDownloadStream = BoxStream<pb::BinaryChunk>;

    async fn payload_download(
        &self,
        req: Request<pb::PayloadDownloadRequest>,
    ) -> Result<Response<Self::PayloadDownloadStream>, Status> {
        self.caller(&req)?;
        Api::payload_download(self, req).await
    }

    async fn volume_blob_download(
        &self,
        req: Request<pb::VolumeBlobDownloadRequest>,
    ) -> Result<Response<Self::VolumeBlobDownloadStream>, Status> {
        Api::volume_blob_download(self, req).await
    }

    async fn volume_commit(
        &self,
        req: Request<pb::VolumeCommitRequest>,
    ) -> Result<Response<pb::VolumeCommitResponse>, Status> {
        Api::volume_commit(self, req).await
    }

    type ImageBuildStream = BoxStream<pb::ImageBuildEvent>;

    async fn image_build(
        &self,
        req: Request<pb::ImageBuildRequest>,
    ) -> Result<Response<Self::ImageBuildStream>, Status> {
        Api::image_build(self, req).await
    }

    async fn image_file_check(
        &self,
        req: Request<pb::VolumeBlobCheckRequest>,
    ) -> Result<Response<pb::VolumeBlobCheckResponse>, Status> {
        Api::image_file_check(self, req).await
    }

    async fn image_file_upload(
        &self,
        req: Request<Streaming<pb::BinaryChunk>>,
    ) -> Result<Response<pb::Empty>, Status> {
        Api::image_file_upload(self, req).await
    }

    async fn image_list(
        &self,
        req: Request<pb::ImageListRequest>,
    ) -> Result<Response<pb::ImageListResponse>, Status> {
        Api::image_list(self, req).await
    }

    async fn image_remove(
        &self,
        req: Request<pb::ImageRemoveRequest>,
    ) -> Result<Response<pb::ImageRemoveResponse>, Status> {
        Api::image_remove(self, req).await
    }

    async fn container_stop(
        &self,
        req: Request<pb::ContainerStopRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.user(&req)?;
        let req = req.into_inner();
        self.ask(move |s| s.container_stop(&req.task_id, req.graceful))
            .await?;
        Ok(Response::new(pb::Empty {}))
    }
}
