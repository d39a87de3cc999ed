//! Calls and inputs on the control plane: accepting inputs, ending each attempt, retries, and
//! delivering exactly one final result per input.

use std::collections::{HashMap, HashSet};

use tokio::sync::{mpsc, oneshot};
use tonic::Status;

use super::auth::Principal;
use super::retry::{self, Next};
use super::state::{
    CallKind, CallRec, InputMapping, InputRec, InputState, State, StopReason, Timer,
};
use super::store::{CallRow, Op};
use crate::ids::new_id;
use crate::model::{
    CallResult, ContainerCommand, GeneratorEvent, MapOutput, Payload, ResultStatus,
};
use crate::wire;

fn not_found(call_id: &str) -> Status {
    Status::not_found(format!(
        "call {call_id} not found: its result expired or it never existed"
    ))
}

/// Whether a call waits for its result or is spawned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// `remote`: the caller waits; the result is not kept once delivered.
    Caller,
    /// `spawn`: the result is kept (and, on a standalone control plane, stored) to be read later.
    Spawned,
}

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
        if !app.is_live() {
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
        let what = if method.is_empty() {
            format!("`{}`", def.tag)
        } else {
            format!("`{}.{method}`", def.tag)
        };
        match (def.is_generator(method), generator) {
            (true, false) => Err(Status::failed_precondition(format!(
                "{what} is a generator: call it with `remote_gen`"
            ))),
            (false, true) => Err(Status::failed_precondition(format!(
                "{what} is not a generator: call it with `remote`"
            ))),
            _ => Ok(()),
        }
    }

    /// Checks that the caller may call the function that way; returns its app.
    fn admit(
        &self,
        function_id: &str,
        method: &str,
        generator: bool,
        principal: &Principal,
    ) -> Result<String, Status> {
        let app_id = self.accepting_function(function_id)?.to_owned();
        principal.require_app(&app_id)?;
        self.check_method(function_id, method, generator)?;
        Ok(app_id)
    }

    fn new_call(&mut self, function_id: &str, app_id: String, kind: CallKind) -> String {
        self.insert_call(new_id("fc-"), function_id, app_id, kind)
    }

    fn insert_call(
        &mut self,
        call_id: String,
        function_id: &str,
        app_id: String,
        kind: CallKind,
    ) -> String {
        self.calls.insert(
            call_id.clone(),
            CallRec {
                function_id: function_id.to_owned(),
                app_id,
                kind,
                persisted: false,
                created_at_ms: self.clock.unix_ms,
                finished_at_ms: None,
                unfinished: HashSet::new(),
                inputs_total: 0,
                attempts: Vec::new(),
            },
        );
        call_id
    }

    /// `remote` (the caller gets a receiver for the result) or `spawn`.
    pub(crate) fn invoke(
        &mut self,
        function_id: &str,
        method: &str,
        input: Payload,
        wait: Wait,
        principal: &Principal,
    ) -> Result<(String, Option<oneshot::Receiver<CallResult>>), Status> {
        self.invoke_as(None, function_id, method, input, wait, principal)
    }

    /// [`invoke`](State::invoke) with the call id the client chose: a request sent again (after
    /// a lost connection) finds the call it made the first time while the control plane still
    /// has it, with no receiver (the caller reads the result with `call_get`). A `remote` call
    /// is forgotten once its result is delivered, so one whose answer was lost on the way back
    /// runs again when sent again (at least once).
    pub(crate) fn invoke_as(
        &mut self,
        call_id: Option<String>,
        function_id: &str,
        method: &str,
        input: Payload,
        wait: Wait,
        principal: &Principal,
    ) -> Result<(String, Option<oneshot::Receiver<CallResult>>), Status> {
        if let Some(id) = &call_id {
            if let Err(refused) = check_call_id(id) {
                return self.refuse(&input, refused);
            }
            if let Some(existing) = self.calls.get(id) {
                let answer = principal.require_app(&existing.app_id).and_then(|()| {
                    if existing.function_id == function_id {
                        Ok(())
                    } else {
                        Err(Status::already_exists(format!(
                            "call id {id} is taken by a call of another function"
                        )))
                    }
                });
                // The same call sent again names the input it holds, or a new upload of it,
                // which nobody needs.
                let holds = existing
                    .unfinished
                    .iter()
                    .filter_map(|i| self.inputs.get(i))
                    .any(|i| same_stored(&i.payload, &input));
                if !holds {
                    self.release(std::iter::once(&input));
                }
                answer?;
                return Ok((id.clone(), None));
            }
        }
        let app_id = match self.admit(function_id, method, false, principal) {
            Ok(app_id) => app_id,
            Err(refused) => return self.refuse(&input, refused),
        };
        let (waiters, rx) = match wait {
            Wait::Caller => {
                let (tx, rx) = oneshot::channel();
                (vec![tx], Some(rx))
            }
            Wait::Spawned => (Vec::new(), None),
        };
        let kind = CallKind::Unary {
            result: None,
            waiters,
            spawned: wait == Wait::Spawned,
        };
        let call_id = match call_id {
            Some(id) => self.insert_call(id, function_id, app_id.clone(), kind),
            None => self.new_call(function_id, app_id.clone(), kind),
        };
        // A spawned call outlives its caller: it is kept until its result expires.
        if wait == Wait::Spawned && self.durable {
            let created_at = self.clock.unix_ms;
            if let Some(c) = self.calls.get_mut(&call_id) {
                c.persisted = true;
            }
            self.record(Op::UpsertCall(CallRow {
                id: call_id.clone(),
                function_id: function_id.to_owned(),
                app_id,
                method: method.to_owned(),
                input: wire::encode_payload(&input),
                attempt: 0,
                created_at,
                result: None,
                finished_at: None,
            }));
        }
        self.enqueue(&call_id, function_id, method, 0, input);
        Ok((call_id, rx))
    }

    /// Refuses a call: nobody else holds its input.
    fn refuse<T>(&mut self, input: &Payload, refused: Status) -> Result<T, Status> {
        self.release(std::iter::once(input));
        Err(refused)
    }

    /// A call of a generator: its items and its end go to `out`.
    pub(crate) fn invoke_generator(
        &mut self,
        function_id: &str,
        method: &str,
        input: Payload,
        principal: &Principal,
        out: mpsc::UnboundedSender<GeneratorEvent>,
    ) -> Result<String, Status> {
        let app_id = match self.admit(function_id, method, true, principal) {
            Ok(app_id) => app_id,
            Err(refused) => return self.refuse(&input, refused),
        };
        let call_id = self.new_call(function_id, app_id, CallKind::Generator { out });
        self.enqueue(&call_id, function_id, method, 0, input);
        Ok(call_id)
    }

    /// Items a generator produced: straight to its caller.
    pub(crate) fn generator_items(&mut self, task_id: &str, input_id: &str, items: Vec<Payload>) {
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
        // Items the caller can no longer take are nobody's.
        let undelivered: Vec<Payload> = items
            .into_iter()
            .filter_map(|item| match out.send(GeneratorEvent::Item(item)) {
                Ok(()) => None,
                Err(e) => match e.0 {
                    GeneratorEvent::Item(p) => Some(p),
                    GeneratorEvent::Done(_) => None,
                },
            })
            .collect();
        let gone = !undelivered.is_empty();
        self.release(&undelivered);
        if gone {
            let _ = self.call_cancel(&call_id, false, "the caller stopped reading the generator");
        }
    }

    /// The app a call belongs to.
    pub(crate) fn call_app(&self, call_id: &str) -> Result<String, Status> {
        self.calls
            .get(call_id)
            .map(|c| c.app_id.clone())
            .ok_or_else(|| not_found(call_id))
    }

    /// A call's function: its id and tag.
    pub(crate) fn call_from_id(
        &self,
        call_id: &str,
        principal: &Principal,
    ) -> Result<(String, String), Status> {
        let call = self.calls.get(call_id).ok_or_else(|| not_found(call_id))?;
        principal.require_app(&call.app_id)?;
        let tag = self
            .functions
            .get(&call.function_id)
            .map(|f| f.def.tag.clone())
            .unwrap_or_default();
        Ok((call.function_id.clone(), tag))
    }

    fn enqueue(
        &mut self,
        call_id: &str,
        function_id: &str,
        method: &str,
        idx: u64,
        payload: Payload,
    ) {
        let input_id = new_id("in-");
        if let Some(call) = self.calls.get_mut(call_id) {
            call.unfinished.insert(input_id.clone());
            call.inputs_total += 1;
        }
        self.inputs.insert(
            input_id.clone(),
            InputRec {
                call_id: call_id.to_owned(),
                function_id: function_id.to_owned(),
                idx,
                payload,
                attempt: 0,
                deadline: None,
                state: InputState::Queued,
                method: method.to_owned(),
                queued_at: self.clock.now,
                accepted_at: self.clock.now,
                mapping: InputMapping::Unknown,
            },
        );
        if let Some(f) = self.functions.get_mut(function_id) {
            f.queue.push_back(input_id);
        }
        self.dirty.insert(function_id.to_owned());
    }

    /// The result of a unary call, or a receiver for it, and whether its reader is the only one
    /// (a `remote` call's result is handed over; a spawned call's is read by every `get`).
    pub(crate) fn call_get(
        &mut self,
        call_id: &str,
        principal: &Principal,
    ) -> Result<
        (
            wire::Reader,
            Result<CallResult, oneshot::Receiver<CallResult>>,
        ),
        Status,
    > {
        let app_id = self.call_app(call_id)?;
        principal.require_app(&app_id)?;
        let call = self
            .calls
            .get_mut(call_id)
            .ok_or_else(|| not_found(call_id))?;
        match &mut call.kind {
            CallKind::Unary {
                result: Some(r),
                spawned: true,
                ..
            } => Ok((wire::Reader::OneOfMany, Ok(r.clone()))),
            CallKind::Unary {
                result: Some(_),
                spawned: false,
                ..
            } => {
                // A `remote` call whose caller stopped waiting: read once, then forgotten.
                let r = match self.calls.remove(call_id).map(|c| c.kind) {
                    Some(CallKind::Unary {
                        result: Some(r), ..
                    }) => r,
                    _ => return Err(not_found(call_id)),
                };
                Ok((wire::Reader::Only, Ok(r)))
            }
            CallKind::Unary {
                result: None,
                waiters,
                spawned,
            } => {
                let (tx, rx) = oneshot::channel();
                waiters.push(tx);
                let reader = if *spawned {
                    wire::Reader::OneOfMany
                } else {
                    wire::Reader::Only
                };
                Ok((reader, Err(rx)))
            }
            CallKind::Map { .. } | CallKind::Generator { .. } => Err(Status::invalid_argument(
                format!("call {call_id} is a map; its results stream to the caller"),
            )),
        }
    }

    /// `FunctionCall::cancel`: checks the caller, then cancels.
    pub(crate) fn call_cancel_request(
        &mut self,
        call_id: &str,
        terminate_containers: bool,
        principal: &Principal,
    ) -> Result<(), Status> {
        let app = self.call_app(call_id)?;
        principal.require_app(&app)?;
        self.call_cancel(call_id, terminate_containers, "the call was cancelled")
    }

    /// Ends every unfinished input of the call as cancelled.
    pub(crate) fn call_cancel(
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
        let mut per_task: HashMap<String, Vec<String>> = HashMap::new();
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
            self.finish_input(
                input_id,
                CallResult::failure(ResultStatus::Cancelled, why, ""),
            );
        }
        for (task_id, ids) in per_task {
            if let Some(task) = self.tasks.get(&task_id) {
                task.send(ContainerCommand::Cancel(ids));
            }
            if terminate_containers {
                self.stop_task(&task_id, StopReason::Cancelled, 0);
            }
        }
        Ok(())
    }

    pub(crate) fn map_start(
        &mut self,
        function_id: &str,
        method: &str,
        principal: &Principal,
        out: mpsc::UnboundedSender<MapOutput>,
    ) -> Result<String, Status> {
        let app_id = self.admit(function_id, method, false, principal)?;
        Ok(self.new_call(
            function_id,
            app_id,
            CallKind::Map {
                out,
                inputs_closed: false,
                method: method.to_owned(),
            },
        ))
    }

    pub(crate) fn map_inputs(&mut self, call_id: &str, inputs: Vec<(u64, Payload)>, last: bool) {
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
        if accepting {
            for (idx, payload) in inputs {
                self.enqueue(call_id, &function_id, &method, idx, payload);
            }
        } else if let CallKind::Map { out, .. } = &call.kind {
            for (idx, _) in inputs {
                let result =
                    CallResult::failure(ResultStatus::Cancelled, "the app was stopped", "");
                let _ = out.send(MapOutput { idx, result });
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
    pub(crate) fn attempt_ended(&mut self, input_id: &str, mut result: CallResult) {
        let now = self.clock.now;
        self.clear_deadline(input_id);
        let Some(input) = self.inputs.get_mut(input_id) else {
            return;
        };
        result.attempt = input.attempt;
        let function_id = input.function_id.clone();
        let millis = u64::try_from(now.saturating_duration_since(input.queued_at).as_millis())
            .unwrap_or(u64::MAX);
        if let Some(call) = self.calls.get_mut(&input.call_id)
            && matches!(call.kind, CallKind::Unary { .. })
            && call.attempts.len() < 20
        {
            call.attempts.push(super::state::AttemptRec {
                attempt: result.attempt,
                task_id: result.task_id.clone(),
                status: result.status,
                ended_at_ms: self.clock.unix_ms,
                millis,
            });
        }
        let policy = self.functions.get(&function_id).and_then(|f| f.def.retries);
        match retry::after_attempt(result.status, input.attempt, policy.as_ref()) {
            Next::Retry(delay) => {
                input.attempt += 1;
                input.state = InputState::RetryWait;
                let attempt = input.attempt;
                let call_id = input.call_id.clone();
                let row = self
                    .calls
                    .get(&call_id)
                    .filter(|c| c.persisted)
                    .map(|call| CallRow {
                        id: call_id.clone(),
                        function_id: call.function_id.clone(),
                        app_id: call.app_id.clone(),
                        method: input.method.clone(),
                        input: wire::encode_payload(&input.payload),
                        attempt: i64::from(attempt),
                        created_at: call.created_at_ms,
                        result: None,
                        finished_at: None,
                    });
                if let Some(row) = row {
                    self.record(Op::UpsertCall(row));
                }
                let max = policy.map_or(0, |p| p.max_retries);
                let what = if result.message.is_empty() {
                    result.status.word().to_owned()
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

    pub(crate) fn retry_due(&mut self, input_id: &str) {
        let now = self.clock.now;
        let Some(input) = self.inputs.get_mut(input_id) else {
            return;
        };
        if input.state != InputState::RetryWait {
            return;
        }
        input.state = InputState::Queued;
        input.queued_at = now;
        let function_id = input.function_id.clone();
        if let Some(f) = self.functions.get_mut(&function_id) {
            f.queue.push_back(input_id.to_owned());
        }
        self.dirty.insert(function_id);
    }

    /// Delivers the final result of an input to its call and forgets the input.
    pub(crate) fn finish_input(&mut self, input_id: &str, mut result: CallResult) {
        self.clear_deadline(input_id);
        let Some(input) = self.inputs.remove(input_id) else {
            return;
        };
        // No attempt reads the input any more; only a file that no container still maps may be
        // written over.
        if input.mapping == InputMapping::LetGo {
            self.recycle(&input.payload);
        } else {
            self.release(std::iter::once(&input.payload));
        }
        result.attempt = result.attempt.max(input.attempt);
        if let Some(f) = self.functions.get_mut(&input.function_id) {
            let latency = self.clock.now.saturating_duration_since(input.accepted_at);
            f.stats.record(
                self.clock.now,
                latency,
                result.status == crate::model::ResultStatus::Success,
            );
        }
        if let InputState::Running { task, .. } | InputState::Prefetched(task) = &input.state
            && let Some(t) = self.tasks.get_mut(task)
        {
            t.running.retain(|i| i != input_id);
            t.prefetched.retain(|i| i != input_id);
        }
        let finished_at = self.clock.unix_ms;
        let Some(call) = self.calls.get_mut(&input.call_id) else {
            return;
        };
        call.unfinished.remove(input_id);
        let persist = call.persisted.then(|| wire::encode_result(&result));
        let mut undelivered = None;
        // Whether the call is done with: its stream ended, or a `remote` result delivered.
        let forget = match &mut call.kind {
            CallKind::Unary {
                result: slot,
                waiters,
                spawned,
            } => {
                let mut delivered = false;
                for w in waiters.drain(..) {
                    delivered |= w.send(result.clone()).is_ok();
                }
                if *spawned {
                    call.finished_at_ms = Some(finished_at);
                }
                *slot = Some(result);
                delivered && !*spawned
            }
            CallKind::Map { out, .. } => {
                if let Err(e) = out.send(MapOutput {
                    idx: input.idx,
                    result,
                }) {
                    undelivered = e.0.result.data;
                }
                false
            }
            CallKind::Generator { out } => {
                if let Err(e) = out.send(GeneratorEvent::Done(result))
                    && let GeneratorEvent::Done(r) = e.0
                {
                    undelivered = r.data;
                }
                true
            }
        };
        // A result its caller can no longer take is nobody's.
        self.release(undelivered.as_ref());
        let call_id = input.call_id;
        if forget {
            // For a generator, dropping the sender ends the caller's stream.
            self.calls.remove(&call_id);
        }
        if let Some(bytes) = persist {
            self.record(Op::FinishCall {
                id: call_id.clone(),
                result: bytes,
                finished_at,
            });
        }
        self.maybe_close_map(&call_id);
    }

    /// The attempt's time is up: the result is a timeout and its container is stopped.
    pub(crate) fn input_deadline(&mut self, input_id: &str, attempt: u32) {
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
            .map_or(0, |f| f.def.timeout_secs);
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
        self.attempt_ended(
            input_id,
            CallResult::failure(ResultStatus::Timeout, msg, &task_id),
        );
    }

    /// Marks an input running in a container and starts its deadline.
    pub(crate) fn input_started(&mut self, input_id: &str, task_id: &str) {
        let now = self.clock.now;
        self.clear_deadline(input_id);
        let Some(input) = self.inputs.get_mut(input_id) else {
            return;
        };
        input.state = InputState::Running {
            task: task_id.to_owned(),
            started: now,
        };
        let attempt = input.attempt;
        let Some(timeout) = self
            .functions
            .get(&input.function_id)
            .map(|f| f.def.timeout())
        else {
            return;
        };
        input.deadline = Some(now + timeout);
        self.set_timer(
            now + timeout,
            Timer::InputDeadline {
                input_id: input_id.to_owned(),
                attempt,
            },
        );
    }
}

/// Checks a call id a client chose: `fc-` and then 1 to 64 letters, digits, `-` or `_`.
/// Whether two payloads are the same stored file.
fn same_stored(a: &Payload, b: &Payload) -> bool {
    matches!((&a.stored, &b.stored), (Some(x), Some(y)) if x.handle == y.handle)
}

fn check_call_id(id: &str) -> Result<(), Status> {
    let rest = id.strip_prefix("fc-").unwrap_or("");
    let ok = (1..=64).contains(&rest.len())
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "call id `{id}` is malformed: `fc-` and then up to 64 letters, digits, `-` or `_`"
        )))
    }
}
