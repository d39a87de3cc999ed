//! Calls and inputs on the control plane: accepting inputs, ending each attempt, retries, and
//! delivering exactly one final result per input.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tonic::Status;

use super::auth::Principal;
use super::retry::{self, Next};
use super::state::{CallKind, CallRec, InputRec, InputState, State, StopReason, Timer, now_ms};
use super::store::{CallRow, Op};
use crate::ids::new_id;
use crate::wire::{self, pb};

impl State {
    fn accepting_function(&self, function_id: &str) -> Result<&str, Status> {
        let f = self
            .functions
            .get(function_id)
            .ok_or_else(|| Status::not_found(format!("function {function_id} not found")))?;
        if f.retired {
            return Err(Status::failed_precondition(format!(
                "function `{}` is no longer part of its app (a later deploy removed it)",
                f.def.tag
            )));
        }
        let app = self
            .apps
            .get(&f.app_id)
            .ok_or_else(|| Status::not_found(format!("app {} not found", f.app_id)))?;
        if matches!(app.state, pb::AppState::Stopping | pb::AppState::Stopped) {
            return Err(Status::failed_precondition(format!(
                "app `{}` ({}) is stopped; function `{}` takes no more inputs",
                app.name, f.app_id, f.def.tag
            )));
        }
        Ok(&f.app_id)
    }

    /// Checks that `method` can be called on the function the way asked (`generator`: with
    /// `remote_gen`).
    fn check_method(&self, function_id: &str, method: &str, generator: bool) -> Result<(), Status> {
        let Some(f) = self.functions.get(function_id) else {
            return Ok(());
        };
        let def = &f.def;
        if def.is_class && !def.methods.iter().any(|m| m == method) {
            return Err(Status::invalid_argument(format!(
                "class `{}` has no method `{method}` (methods: {})",
                def.tag,
                def.methods.join(", ")
            )));
        }
        if !def.is_class && !method.is_empty() {
            return Err(Status::invalid_argument(format!(
                "`{}` is a function, not a class",
                def.tag
            )));
        }
        let is_generator = def.generator_methods.iter().any(|m| m == method);
        let what = if method.is_empty() {
            format!("`{}`", def.tag)
        } else {
            format!("`{}.{method}`", def.tag)
        };
        match (is_generator, generator) {
            (true, false) => Err(Status::failed_precondition(format!(
                "{what} is a generator: call it with `remote_gen`"
            ))),
            (false, true) => Err(Status::failed_precondition(format!(
                "{what} is not a generator: call it with `remote`"
            ))),
            _ => Ok(()),
        }
    }

    pub(super) fn invoke(
        &mut self,
        function_id: &str,
        method: &str,
        input: pb::Payload,
        wait: bool,
        principal: &Principal,
    ) -> Result<(String, Option<oneshot::Receiver<pb::CallResult>>), Status> {
        let app_id = self.accepting_function(function_id)?.to_owned();
        principal.require_app(&app_id)?;
        self.check_method(function_id, method, false)?;
        let call_id = new_id("fc-");
        let input_id = new_id("in-");
        let (waiters, rx) = if wait {
            let (tx, rx) = oneshot::channel();
            (vec![tx], Some(rx))
        } else {
            (Vec::new(), None)
        };
        // A spawned call outlives its caller: it is kept until its result expires.
        let persisted = !wait && self.durable;
        let created_at_ms = now_ms();
        if persisted {
            self.record(Op::UpsertCall(CallRow {
                id: call_id.clone(),
                function_id: function_id.to_owned(),
                app_id: app_id.clone(),
                input: prost::Message::encode_to_vec(&input),
                attempt: 0,
                created_at: created_at_ms,
                result: None,
                finished_at: None,
            }));
        }
        self.calls.insert(
            call_id.clone(),
            CallRec {
                function_id: function_id.to_owned(),
                app_id,
                kind: CallKind::Unary {
                    result: None,
                    waiters,
                },
                persisted,
                created_at_ms,
                finished_at_ms: None,
                unfinished: HashSet::from([input_id.clone()]),
            },
        );
        self.enqueue(input_id, call_id.clone(), function_id, method, 0, input);
        Ok((call_id, rx))
    }

    /// A call of a generator: its items and its end go to `out`.
    pub(super) fn invoke_generator(
        &mut self,
        function_id: &str,
        method: &str,
        input: pb::Payload,
        principal: &Principal,
        out: mpsc::UnboundedSender<pb::GeneratorEvent>,
    ) -> Result<String, Status> {
        let app_id = self.accepting_function(function_id)?.to_owned();
        principal.require_app(&app_id)?;
        self.check_method(function_id, method, true)?;
        let call_id = new_id("fc-");
        let input_id = new_id("in-");
        self.calls.insert(
            call_id.clone(),
            CallRec {
                function_id: function_id.to_owned(),
                app_id,
                kind: CallKind::Generator { out },
                persisted: false,
                created_at_ms: now_ms(),
                finished_at_ms: None,
                unfinished: HashSet::from([input_id.clone()]),
            },
        );
        self.enqueue(input_id, call_id.clone(), function_id, method, 0, input);
        Ok(call_id)
    }

    /// Items a generator produced: straight to its caller.
    pub(super) fn generator_items(
        &mut self,
        task_id: &str,
        input_id: &str,
        items: Vec<pb::Payload>,
    ) {
        let Some(input) = self.inputs.get(input_id) else {
            return;
        };
        if !matches!(&input.state, InputState::Running { task, .. } if task == task_id) {
            return;
        }
        let call_id = input.call_id.clone();
        let Some(CallRec {
            kind: CallKind::Generator { out },
            ..
        }) = self.calls.get(&call_id)
        else {
            return;
        };
        let gone = items.into_iter().any(|item| {
            out.send(pb::GeneratorEvent {
                event: Some(pb::generator_event::Event::Item(item)),
            })
            .is_err()
        });
        if gone {
            let _ = self.call_cancel(&call_id, false, "the caller stopped reading the generator");
        }
    }

    /// The app a call belongs to.
    pub(super) fn call_app(&self, call_id: &str) -> Result<String, Status> {
        self.calls
            .get(call_id)
            .map(|c| c.app_id.clone())
            .ok_or_else(|| {
                Status::not_found(format!(
                    "call {call_id} not found: its result expired or it never existed"
                ))
            })
    }

    pub(super) fn call_from_id(
        &self,
        call_id: &str,
        principal: &Principal,
    ) -> Result<pb::FunctionCallFromIdResponse, Status> {
        let call = self.calls.get(call_id).ok_or_else(|| {
            Status::not_found(format!(
                "call {call_id} not found: its result expired or it never existed"
            ))
        })?;
        principal.require_app(&call.app_id)?;
        let tag = self
            .functions
            .get(&call.function_id)
            .map(|f| f.def.tag.clone())
            .unwrap_or_default();
        Ok(pb::FunctionCallFromIdResponse {
            function_id: call.function_id.clone(),
            function_tag: tag,
        })
    }

    fn enqueue(
        &mut self,
        input_id: String,
        call_id: String,
        function_id: &str,
        method: &str,
        idx: u64,
        payload: pb::Payload,
    ) {
        self.inputs.insert(
            input_id.clone(),
            InputRec {
                call_id,
                function_id: function_id.to_owned(),
                idx,
                payload,
                attempt: 0,
                state: InputState::Queued,
                method: method.to_owned(),
                queued_at: Instant::now(),
            },
        );
        if let Some(f) = self.functions.get_mut(function_id) {
            f.queue.push_back(input_id);
        }
        self.dirty.insert(function_id.to_owned());
    }

    pub(super) fn call_get(
        &mut self,
        call_id: &str,
        principal: &Principal,
    ) -> Result<Result<pb::CallResult, oneshot::Receiver<pb::CallResult>>, Status> {
        let app_id = self.call_app(call_id)?;
        principal.require_app(&app_id)?;
        let call = self.calls.get_mut(call_id).ok_or_else(|| {
            Status::not_found(format!(
                "call {call_id} not found: its result expired or it never existed"
            ))
        })?;
        match &mut call.kind {
            CallKind::Unary {
                result: Some(r), ..
            } => Ok(Ok(r.clone())),
            CallKind::Unary {
                result: None,
                waiters,
            } => {
                let (tx, rx) = oneshot::channel();
                waiters.push(tx);
                Ok(Err(rx))
            }
            CallKind::Map { .. } | CallKind::Generator { .. } => Err(Status::invalid_argument(
                format!("call {call_id} is a map; its results stream to the caller"),
            )),
        }
    }

    /// Ends every unfinished input of the call as cancelled.
    pub(super) fn call_cancel(
        &mut self,
        call_id: &str,
        terminate_containers: bool,
        why: &str,
    ) -> Result<(), Status> {
        let call = self
            .calls
            .get(call_id)
            .ok_or_else(|| Status::not_found(format!("call {call_id} not found")))?;
        let function_id = call.function_id.clone();
        let inputs: Vec<String> = call.unfinished.iter().cloned().collect();
        let cancelled: HashSet<&String> = inputs.iter().collect();
        if let Some(f) = self.functions.get_mut(&function_id) {
            f.queue.retain(|id| !cancelled.contains(id));
        }
        let mut per_task: std::collections::HashMap<String, Vec<String>> = Default::default();
        for input_id in &inputs {
            let Some(input) = self.inputs.get(input_id) else {
                continue;
            };
            match &input.state {
                InputState::Running { task, .. } | InputState::Prefetched(task) => {
                    per_task
                        .entry(task.clone())
                        .or_default()
                        .push(input_id.clone());
                }
                InputState::Queued | InputState::RetryWait => {}
            }
            let result = wire::failure(pb::ResultStatus::Terminated, why, "");
            self.finish_input(input_id, result);
        }
        for (task_id, ids) in per_task {
            if let Some(task) = self.tasks.get(&task_id)
                && let Some(tx) = &task.tx
            {
                let _ = tx.send(pb::ContainerCommand {
                    command: Some(pb::container_command::Command::Cancel(pb::CancelInputs {
                        input_ids: ids,
                    })),
                });
            }
            if terminate_containers {
                self.stop_task(&task_id, StopReason::Cancelled, 0);
            }
        }
        Ok(())
    }

    pub(super) fn map_start(
        &mut self,
        function_id: &str,
        method: &str,
        principal: &Principal,
        out: mpsc::UnboundedSender<pb::MapOutput>,
    ) -> Result<String, Status> {
        let app_id = self.accepting_function(function_id)?.to_owned();
        principal.require_app(&app_id)?;
        self.check_method(function_id, method, false)?;
        let call_id = new_id("fc-");
        self.calls.insert(
            call_id.clone(),
            CallRec {
                function_id: function_id.to_owned(),
                app_id,
                kind: CallKind::Map {
                    out,
                    inputs_closed: false,
                    method: method.to_owned(),
                },
                persisted: false,
                created_at_ms: now_ms(),
                finished_at_ms: None,
                unfinished: HashSet::new(),
            },
        );
        Ok(call_id)
    }

    pub(super) fn map_inputs(&mut self, call_id: &str, inputs: Vec<pb::MapInput>, last: bool) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        let function_id = call.function_id.clone();
        let method = match &call.kind {
            CallKind::Map { method, .. } => method.clone(),
            _ => String::new(),
        };
        let accepting = self.accepting_function(&function_id).is_ok();
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        if last && let CallKind::Map { inputs_closed, .. } = &mut call.kind {
            *inputs_closed = true;
        }
        if !accepting {
            if let CallKind::Map { out, .. } = &call.kind {
                for input in inputs {
                    let result =
                        wire::failure(pb::ResultStatus::Terminated, "the app was stopped", "");
                    let _ = out.send(pb::MapOutput {
                        idx: input.idx,
                        result: Some(result),
                    });
                }
            }
        } else {
            let mut accepted = Vec::with_capacity(inputs.len());
            for input in inputs {
                let input_id = new_id("in-");
                call.unfinished.insert(input_id.clone());
                accepted.push((input_id, input));
            }
            for (input_id, input) in accepted {
                let payload = input.input.unwrap_or_default();
                self.enqueue(
                    input_id,
                    call_id.to_owned(),
                    &function_id,
                    &method,
                    input.idx,
                    payload,
                );
            }
        }
        self.maybe_close_map(call_id);
    }

    fn maybe_close_map(&mut self, call_id: &str) {
        let done = self.calls.get(call_id).is_some_and(|c| {
            c.unfinished.is_empty()
                && matches!(
                    c.kind,
                    CallKind::Map {
                        inputs_closed: true,
                        ..
                    }
                )
        });
        if done {
            // Dropping the sender ends the caller's output stream.
            self.calls.remove(call_id);
        }
    }

    /// An attempt of `input_id` ended with `result`: retry it, or make the result final.
    pub(super) fn attempt_ended(
        &mut self,
        input_id: &str,
        mut result: pb::CallResult,
        now: Instant,
    ) {
        let Some(input) = self.inputs.get_mut(input_id) else {
            return;
        };
        result.attempt = input.attempt;
        let status =
            pb::ResultStatus::try_from(result.status).unwrap_or(pb::ResultStatus::InternalFailure);
        let function_id = input.function_id.clone();
        let policy = self
            .functions
            .get(&function_id)
            .and_then(|f| f.def.retry_policy);
        match retry::after_attempt(status, input.attempt, policy.as_ref()) {
            Next::Retry(delay) => {
                input.attempt += 1;
                input.state = InputState::RetryWait;
                let attempt = input.attempt;
                let call_id = input.call_id.clone();
                if let Some(call) = self.calls.get(&call_id).filter(|c| c.persisted) {
                    let row = CallRow {
                        id: call_id.clone(),
                        function_id: call.function_id.clone(),
                        app_id: call.app_id.clone(),
                        input: prost::Message::encode_to_vec(&input.payload),
                        attempt: i64::from(attempt),
                        created_at: call.created_at_ms,
                        result: None,
                        finished_at: None,
                    };
                    self.record(Op::UpsertCall(row));
                }
                let max = policy.map(|p| p.max_retries).unwrap_or(0);
                let what = if result.message.is_empty() {
                    status_word(status).to_owned()
                } else {
                    result.message.clone()
                };
                self.system_log(
                    &function_id,
                    &result.task_id,
                    format!(
                        "input {input_id} failed ({what}); retry {attempt}/{max} in {:.1}s",
                        delay.as_secs_f64()
                    ),
                );
                self.set_timer(
                    now + delay,
                    Timer::RetryDue {
                        input_id: input_id.to_owned(),
                    },
                );
            }
            Next::Final => self.finish_input(input_id, result),
        }
    }

    pub(super) fn retry_due(&mut self, input_id: &str) {
        let Some(input) = self.inputs.get_mut(input_id) else {
            return;
        };
        if input.state != InputState::RetryWait {
            return;
        }
        input.state = InputState::Queued;
        input.queued_at = Instant::now();
        let function_id = input.function_id.clone();
        if let Some(f) = self.functions.get_mut(&function_id) {
            f.queue.push_back(input_id.to_owned());
        }
        self.dirty.insert(function_id);
    }

    /// Delivers the final result of an input to its call and forgets the input.
    pub(super) fn finish_input(&mut self, input_id: &str, mut result: pb::CallResult) {
        let Some(input) = self.inputs.remove(input_id) else {
            return;
        };
        result.attempt = result.attempt.max(input.attempt);
        if let InputState::Running { task, .. } | InputState::Prefetched(task) = &input.state
            && let Some(t) = self.tasks.get_mut(task)
        {
            t.running.retain(|i| i != input_id);
            t.prefetched.retain(|i| i != input_id);
        }
        let Some(call) = self.calls.get_mut(&input.call_id) else {
            return;
        };
        call.unfinished.remove(input_id);
        let persist = call
            .persisted
            .then(|| (prost::Message::encode_to_vec(&result), now_ms()));
        if let Some((_, at)) = persist {
            call.finished_at_ms = Some(at);
        }
        match &mut call.kind {
            CallKind::Unary {
                result: slot,
                waiters,
            } => {
                for w in waiters.drain(..) {
                    let _ = w.send(result.clone());
                }
                *slot = Some(result);
            }
            CallKind::Map { out, .. } => {
                let _ = out.send(pb::MapOutput {
                    idx: input.idx,
                    result: Some(result),
                });
            }
            CallKind::Generator { out } => {
                let _ = out.send(pb::GeneratorEvent {
                    event: Some(pb::generator_event::Event::Done(result)),
                });
            }
        }
        let call_id = input.call_id;
        if matches!(
            self.calls.get(&call_id).map(|c| &c.kind),
            Some(CallKind::Generator { .. })
        ) {
            // Dropping the sender ends the caller's stream.
            self.calls.remove(&call_id);
        }
        if let Some((bytes, finished_at)) = persist {
            self.record(Op::FinishCall {
                id: call_id.clone(),
                result: bytes,
                finished_at,
            });
        }
        self.maybe_close_map(&call_id);
    }

    /// The attempt's time is up: the result is a timeout and its container is stopped.
    pub(super) fn input_deadline(&mut self, input_id: &str, attempt: u32, now: Instant) {
        let Some(input) = self.inputs.get(input_id) else {
            return;
        };
        let InputState::Running { task, .. } = &input.state else {
            return;
        };
        if input.attempt != attempt {
            return;
        }
        let task_id = task.clone();
        let function_id = input.function_id.clone();
        let timeout = self
            .functions
            .get(&function_id)
            .map(|f| f.def.timeout_secs)
            .unwrap_or(0);
        if let Some(t) = self.tasks.get_mut(&task_id) {
            t.running.retain(|i| i != input_id);
        }
        let msg = format!(
            "the input ran longer than the function's timeout of {timeout} s; its container was stopped"
        );
        self.system_log(
            &function_id,
            &task_id,
            format!("input {input_id} timed out after {timeout} s; stopping container {task_id}"),
        );
        self.stop_task(&task_id, StopReason::Timeout, 0);
        let result = wire::failure(pb::ResultStatus::Timeout, msg, &task_id);
        self.attempt_ended(input_id, result, now);
    }

    /// Starts the deadline of an input that just began running.
    pub(super) fn input_started(&mut self, input_id: &str, task_id: &str, now: Instant) {
        let Some(input) = self.inputs.get_mut(input_id) else {
            return;
        };
        input.state = InputState::Running {
            task: task_id.to_owned(),
            started: now,
        };
        let attempt = input.attempt;
        let timeout = self
            .functions
            .get(&input.function_id)
            .map(|f| f.def.timeout_secs)
            .unwrap_or(crate::app::rules::DEFAULT_TIMEOUT_SECS as u32);
        self.set_timer(
            now + Duration::from_secs(u64::from(timeout)),
            Timer::InputDeadline {
                input_id: input_id.to_owned(),
                attempt,
            },
        );
    }
}

fn status_word(s: pb::ResultStatus) -> &'static str {
    match s {
        pb::ResultStatus::UserError => "user error",
        pb::ResultStatus::Panic => "panic",
        pb::ResultStatus::Timeout => "timeout",
        pb::ResultStatus::InitFailure => "init failure",
        pb::ResultStatus::InternalFailure => "internal failure",
        pb::ResultStatus::Terminated => "cancelled",
        _ => "failure",
    }
}
