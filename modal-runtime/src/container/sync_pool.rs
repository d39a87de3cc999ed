//! The input threads of a sync function: `concurrency` threads that take the container's queued
//! inputs themselves, one after another, so that a queue of quick inputs costs no hand-over to
//! the control-plane stream's thread and back between two of them.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use tokio::sync::mpsc;

use super::runner::{self, Event};
use super::{journal, payloads};
use crate::model::{CallResult, ResultStatus};
use crate::registry;

/// A sync input: its id, its journal key and its encoded arguments, or why they cannot be read
/// (it then fails in its turn, like any other input).
pub(super) struct SyncJob {
    pub(super) input_id: String,
    pub(super) key: String,
    pub(super) input: Result<bytes::Bytes, String>,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<SyncJob>,
    /// The inputs a thread is running, by id.
    running: HashSet<String>,
    /// Threads waiting for an input.
    idle: usize,
    /// Nothing more starts: the container is leaving.
    closed: bool,
}

/// The queue the input threads take from.
pub(super) struct SyncPool {
    queue: Mutex<Queue>,
    wake: Condvar,
}

impl SyncPool {
    /// Starts `threads` input threads running `f`; each result goes to `events`.
    pub(super) fn start(
        f: fn(bytes::Bytes) -> registry::Outcome,
        threads: usize,
        task_id: &str,
        events: &mpsc::UnboundedSender<Event>,
    ) -> Arc<SyncPool> {
        let pool = Arc::new(SyncPool {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        });
        for i in 0..threads {
            let pool = Arc::clone(&pool);
            let events = events.clone();
            let task_id = task_id.to_owned();
            let spawned = std::thread::Builder::new()
                .name(format!("modal-input-{i}"))
                .spawn(move || pool.serve(f, &task_id, &events));
            if let Err(e) = spawned {
                tracing::error!("cannot start an input thread: {e}");
            }
        }
        pool
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues inputs; an idle thread takes the first at once.
    pub(super) fn push(&self, jobs: impl IntoIterator<Item = SyncJob>) {
        let mut q = self.lock();
        if q.closed {
            return;
        }
        let before = q.waiting.len();
        q.waiting.extend(jobs);
        let added = q.waiting.len() - before;
        // A thread that is running an input takes the next one itself: only idle ones are woken
        // (a wake-up is a system call).
        let wake = q.idle.min(added);
        drop(q);
        for _ in 0..wake {
            self.wake.notify_one();
        }
    }

    /// Drops the cancelled inputs still waiting; returns those that threads are running (they
    /// cannot be interrupted).
    pub(super) fn cancel(&self, ids: &[String]) -> Vec<String> {
        let mut q = self.lock();
        q.waiting.retain(|j| !ids.contains(&j.input_id));
        ids.iter()
            .filter(|id| q.running.contains(*id))
            .cloned()
            .collect()
    }

    /// Nothing more starts; the threads end once their inputs return.
    pub(super) fn close(&self) {
        let mut q = self.lock();
        q.closed = true;
        q.waiting.clear();
        drop(q);
        self.wake.notify_all();
    }

    /// One input thread: takes inputs until the pool closes or the container's loop is gone.
    fn serve(
        &self,
        f: fn(bytes::Bytes) -> registry::Outcome,
        task_id: &str,
        events: &mpsc::UnboundedSender<Event>,
    ) {
        while let Some(job) = self.next() {
            let (result, run) = match job.input {
                Ok(input) => {
                    journal::started(&[&job.key]);
                    let began = std::time::Instant::now();
                    let result = runner::run_sync(f, input, task_id);
                    let run = began.elapsed();
                    journal::ended(&job.key, &result);
                    (payloads::fit(result), run)
                }
                Err(why) => (
                    CallResult::failure(ResultStatus::InternalFailure, why, task_id),
                    std::time::Duration::ZERO,
                ),
            };
            self.lock().running.remove(&job.input_id);
            let done = Event::Done {
                input_id: job.input_id,
                result,
                run,
            };
            if events.send(done).is_err() {
                return;
            }
        }
    }

    fn next(&self) -> Option<SyncJob> {
        let mut q = self.lock();
        loop {
            if q.closed {
                return None;
            }
            if let Some(job) = q.waiting.pop_front() {
                q.running.insert(job.input_id.clone());
                return Some(job);
            }
            q.idle += 1;
            q = self.wake.wait(q).unwrap_or_else(PoisonError::into_inner);
            q.idle -= 1;
        }
    }
}
