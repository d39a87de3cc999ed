//! Runs a container's inputs in arrival order, at most `concurrency` at once: sync functions on
//! input threads (`sync_pool`), async ones, generators, batches and class methods on the user
//! runtime. Every event (a generator item, a result) goes out through one ordered channel.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::runner::{self, Event};
use super::sync_pool::{SyncJob, SyncPool};
use super::{journal, payloads};
use crate::model::{CallResult, InputItem, ResultStatus};
use crate::registry::{self, ClassInstance, FunctionRegistration, GeneratorSink, Invoker, Outcome};
use crate::task_env;

enum Running {
    /// On the user runtime (every input of a batch holds the batch's handle).
    Task(tokio::task::AbortHandle),
    /// Failed before it started: its result is on the way.
    Failed,
}

pub(super) struct Executor {
    function: &'static FunctionRegistration,
    /// The class instance, when the function is a class.
    instance: Option<Arc<dyn ClassInstance>>,
    concurrency: usize,
    task_id: String,
    queue: VecDeque<InputItem>,
    /// Inputs started, by id; a batch counts its inputs under one slot.
    running: HashMap<String, (Running, String)>,
    events: mpsc::UnboundedSender<Event>,
    /// A sync function's input threads, once started.
    sync: Option<Arc<SyncPool>>,
    /// Sync inputs cancelled while running: their results are not sent.
    cancelled_running: HashSet<String>,
    user: &'static tokio::runtime::Runtime,
    /// A class's generator methods.
    generators: Vec<String>,
    /// The container must exit: nothing more starts.
    leaving: bool,
}

fn sink(events: &mpsc::UnboundedSender<Event>, input_id: &str) -> GeneratorSink {
    let events = events.clone();
    let input_id = input_id.to_owned();
    GeneratorSink {
        send: Arc::new(move |item| {
            let item = payloads::item(item)?;
            events
                .send(Event::Item {
                    input_id: input_id.clone(),
                    item,
                })
                .map_err(|_| "the generator's caller went away".to_owned())
        }),
    }
}

impl Executor {
    pub(super) fn new(
        function: &'static FunctionRegistration,
        instance: Option<Arc<dyn ClassInstance>>,
        concurrency: usize,
        task_id: String,
        events: mpsc::UnboundedSender<Event>,
        user: &'static tokio::runtime::Runtime,
    ) -> Self {
        Executor {
            function,
            instance,
            concurrency,
            task_id,
            queue: VecDeque::new(),
            running: HashMap::new(),
            events,
            sync: None,
            cancelled_running: HashSet::new(),
            user,
            generators: (function.spec)().generator_methods,
            leaving: false,
        }
    }

    pub(super) fn push(&mut self, items: Vec<InputItem>) {
        if self.leaving {
            // The control plane runs them elsewhere once it hears that this container leaves.
            return;
        }
        if let Invoker::Sync(f) = self.function.invoker {
            // The input threads take them in order, `concurrency` at once.
            let jobs: Vec<SyncJob> = items
                .into_iter()
                .map(|item| SyncJob {
                    key: task_env::journal_key(&item.input_id, item.attempt),
                    input: item.input.readable().cloned(),
                    input_id: item.input_id,
                })
                .collect();
            self.sync_pool(f).push(jobs);
            return;
        }
        self.queue.extend(items);
        self.start_ready();
    }

    /// Forgets a finished input; true if its result is to be sent.
    pub(super) fn finished(&mut self, input_id: &str) -> bool {
        if self.running.remove(input_id).is_some() {
            return true;
        }
        // The input threads' inputs are not tracked here.
        self.sync.is_some() && !self.cancelled_running.remove(input_id)
    }

    fn slots_used(&self) -> usize {
        let mut batches = std::collections::HashSet::new();
        self.running
            .values()
            .filter(|(_, batch)| batch.is_empty() || batches.insert(batch.as_str()))
            .count()
    }

    fn fail(&mut self, input_id: String, batch: &str, message: String) {
        let result = CallResult::failure(ResultStatus::InternalFailure, message, &self.task_id);
        self.running
            .insert(input_id.clone(), (Running::Failed, batch.to_owned()));
        let _ = self.events.send(Event::Done {
            input_id,
            result,
            run: Duration::ZERO,
        });
    }

    pub(super) fn start_ready(&mut self) {
        while !self.leaving && self.slots_used() < self.concurrency {
            let Some(first) = self.queue.pop_front() else {
                return;
            };
            if !first.batch_id.is_empty() {
                let mut batch = vec![first];
                while self
                    .queue
                    .front()
                    .is_some_and(|i| i.batch_id == batch[0].batch_id)
                {
                    if let Some(i) = self.queue.pop_front() {
                        batch.push(i);
                    }
                }
                self.start_batch(batch);
                continue;
            }
            self.start_one(first);
        }
    }

    fn start_one(&mut self, item: InputItem) {
        let input = match item.input.readable() {
            Ok(b) => b.clone(),
            Err(e) => return self.fail(item.input_id, "", e),
        };
        let key = task_env::journal_key(&item.input_id, item.attempt);
        let input_id = item.input_id;
        let task_id = self.task_id.clone();
        let events = self.events.clone();
        let finish = move |input_id: String, result: CallResult, run: Duration| {
            let result = payloads::fit(result);
            let _ = events.send(Event::Done {
                input_id,
                result,
                run,
            });
        };
        let future = match (self.function.invoker, &self.instance) {
            (Invoker::Async(f), _) => runner::catch(f(input)),
            (Invoker::Generator(f), _) => runner::catch(f(input, sink(&self.events, &input_id))),
            (Invoker::Class(_), Some(instance)) => {
                let is_generator = self.generators.contains(&item.method);
                let sink = is_generator.then(|| sink(&self.events, &input_id));
                runner::catch(Arc::clone(instance).call(item.method, input, sink))
            }
            (Invoker::Sync(_) | Invoker::Batched(_), _) | (Invoker::Class(_), None) => {
                return self.fail(
                    input_id,
                    "",
                    format!("`{}` cannot run a single input this way", self.function.tag),
                );
            }
        };
        let id = input_id.clone();
        let handle = self.user.spawn(async move {
            journal::started(&[&key]);
            let began = Instant::now();
            let result = CallResult::from_outcome(future.await, &task_id);
            journal::ended(&key, &result);
            finish(id, result, began.elapsed());
        });
        self.running.insert(
            input_id,
            (Running::Task(handle.abort_handle()), String::new()),
        );
    }

    fn start_batch(&mut self, items: Vec<InputItem>) {
        let batch_id = items[0].batch_id.clone();
        let method = items[0].method.clone();
        let mut ids = Vec::with_capacity(items.len());
        let mut keys = Vec::with_capacity(items.len());
        let mut inputs = Vec::with_capacity(items.len());
        for item in items {
            match item.input.readable() {
                Ok(b) => {
                    inputs.push(b.clone());
                    keys.push(task_env::journal_key(&item.input_id, item.attempt));
                    ids.push(item.input_id);
                }
                Err(e) => self.fail(item.input_id, &batch_id, e),
            }
        }
        let future = match (self.function.invoker, &self.instance) {
            (Invoker::Batched(f), _) => f(inputs),
            (Invoker::Class(_), Some(instance)) => Arc::clone(instance).call_batch(method, inputs),
            _ => {
                for id in ids {
                    self.fail(
                        id,
                        &batch_id,
                        format!("`{}` is not batched", self.function.tag),
                    );
                }
                return;
            }
        };
        let events = self.events.clone();
        let task_id = self.task_id.clone();
        let n = ids.len();
        let batch_ids = ids.clone();
        let handle = self.user.spawn(async move {
            let started: Vec<&str> = keys.iter().map(String::as_str).collect();
            journal::started(&started);
            let began = Instant::now();
            let outcomes = match runner::catch_batch(future).await {
                Ok(o) if o.len() == n => o,
                Ok(o) => {
                    let msg = format!(
                        "the batched function returned {} results for a batch of {n} inputs",
                        o.len()
                    );
                    crate::registry::outcome::batch_failed(n, &Outcome::BadOutput(msg))
                }
                Err(panic) => crate::registry::outcome::batch_failed(n, &panic.0),
            };
            // Each input of the batch ran for the batch's time.
            let run = began.elapsed();
            for ((input_id, key), outcome) in batch_ids.into_iter().zip(&keys).zip(outcomes) {
                let result = CallResult::from_outcome(outcome, &task_id);
                journal::ended(key, &result);
                let result = payloads::fit(result);
                let _ = events.send(Event::Done {
                    input_id,
                    result,
                    run,
                });
            }
        });
        // The batch is aborted once every one of its inputs is cancelled.
        let handle = handle.abort_handle();
        for id in ids {
            self.running
                .insert(id, (Running::Task(handle.clone()), batch_id.clone()));
        }
    }

    /// The input threads of a sync function: `concurrency` of them. User code never runs on the
    /// runtime's threads, which keep serving the control-plane stream (and notice at once when it
    /// breaks).
    fn sync_pool(&mut self, f: fn(bytes::Bytes) -> registry::Outcome) -> Arc<SyncPool> {
        let pool = self.sync.get_or_insert_with(|| {
            SyncPool::start(f, self.concurrency, &self.task_id, &self.events)
        });
        Arc::clone(pool)
    }

    /// Drops cancelled inputs; a running task is aborted (a batch when none of its inputs is
    /// left). A running sync input cannot be interrupted: then the container must exit, and the
    /// reason is returned (the caller announces it and starts nothing more).
    pub(super) fn cancel(&mut self, ids: &[String]) -> Option<String> {
        self.queue.retain(|i| !ids.contains(&i.input_id));
        let mut leave = None;
        let running = self
            .sync
            .as_ref()
            .map(|pool| pool.cancel(ids))
            .unwrap_or_default();
        for id in running {
            tracing::warn!(
                "input {id} was cancelled while running; the container stops to interrupt it"
            );
            leave.get_or_insert_with(|| {
                format!("input {id} was cancelled while running on one of its threads")
            });
            self.cancelled_running.insert(id);
        }
        for id in ids {
            match self.running.remove(id) {
                Some((Running::Task(handle), batch))
                    if batch.is_empty() || !self.running.values().any(|(_, b)| *b == batch) =>
                {
                    handle.abort()
                }
                _ => {}
            }
        }
        if leave.is_some() {
            self.leaving = true;
            self.queue.clear();
            if let Some(pool) = &self.sync {
                pool.close();
            }
        }
        leave
    }
}
