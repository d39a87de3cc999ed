//! The scheduling pass and autoscaling: queued inputs go to ready containers (least loaded
//! first, prefetching a few, in batches for a batched function); containers are started as the
//! autoscaler asks and the workers can hold, idle ones of other functions give way, and idle
//! containers past their scale-down window stop.

use std::collections::HashMap;
use std::time::Duration;

use super::scheduler::{self, Load, Placement, Request};
use super::state::{FunctionRec, InputState, State, StopReason, TaskRec, TaskState, Timer};
use crate::ids::new_id;
use crate::model::{BatchConfig, ContainerCommand, InputItem, ResultStatus};

impl State {
    /// One scheduling pass over the functions whose queues or containers changed.
    pub(crate) fn schedule(&mut self) {
        if self.dirty.is_empty() {
            return;
        }
        let mut dirty: Vec<String> = self.dirty.drain().collect();
        // A stable order, so that a pass is reproducible.
        dirty.sort();
        for function_id in dirty {
            self.dispatch(&function_id);
            self.autoscale(&function_id);
        }
    }

    /// Sends queued inputs to the function's ready containers, least loaded first.
    fn dispatch(&mut self, function_id: &str) {
        let Some(f) = self.functions.get_mut(function_id) else {
            return;
        };
        if f.queue.is_empty() {
            return;
        }
        if let Some(batch) = f.def.batch {
            self.dispatch_batches(function_id, batch);
            return;
        }
        let concurrency = f.def.concurrency();
        let version = f.version;
        let single_use = f.def.single_use_containers;
        let slots = if single_use {
            1
        } else {
            concurrency + scheduler::prefetch_depth(f.exec_ewma)
        };
        let mut sent: HashMap<String, Vec<InputItem>> = HashMap::new();
        let mut started = Vec::new();
        loop {
            let best = f
                .tasks
                .iter()
                .filter_map(|id| self.tasks.get(id).map(|t| (id, t)))
                .filter(|(_, t)| t.accepting() && t.version == version && t.load() < slots)
                .min_by_key(|(_, t)| t.load())
                .map(|(id, _)| id.clone());
            let Some(task_id) = best else { break };
            let Some(input_id) = f.queue.pop_front() else {
                break;
            };
            let Some(input) = self.inputs.get_mut(&input_id) else {
                continue;
            };
            if input.state != InputState::Queued {
                continue;
            }
            let Some(task) = self.tasks.get_mut(&task_id) else {
                continue;
            };
            if task.running.len() < concurrency {
                task.running.push(input_id.clone());
                started.push((input_id.clone(), task_id.clone()));
            } else {
                task.prefetched.push_back(input_id.clone());
                input.state = InputState::Prefetched(task_id.clone());
            }
            if single_use {
                task.stop = Some(StopReason::SingleUse);
            }
            // Its container maps it on arrival, prefetched or not.
            input.mapping = input.mapping.after_sending();
            sent.entry(task_id).or_default().push(InputItem {
                input_id,
                input: input.payload.clone(),
                attempt: input.attempt,
                method: input.method.clone(),
                batch_id: String::new(),
            });
        }
        for (input_id, task_id) in started {
            self.input_started(&input_id, &task_id);
        }
        for (task_id, items) in sent {
            if let Some(task) = self.tasks.get(&task_id) {
                task.send(ContainerCommand::Inputs(items));
            }
        }
    }

    /// A batched function: a batch goes to an idle container once `max_batch_size` inputs wait,
    /// or once the oldest has waited `wait_ms`.
    fn dispatch_batches(&mut self, function_id: &str, cfg: BatchConfig) {
        let now = self.clock.now;
        let size = usize::try_from(cfg.max_batch_size.max(1)).unwrap_or(1);
        let wait = Duration::from_millis(u64::from(cfg.wait_ms));
        loop {
            let Some(f) = self.functions.get_mut(function_id) else {
                return;
            };
            while let Some(front) = f.queue.front() {
                if self
                    .inputs
                    .get(front)
                    .is_some_and(|i| i.state == InputState::Queued)
                {
                    break;
                }
                f.queue.pop_front();
            }
            let Some(oldest) = f
                .queue
                .front()
                .and_then(|id| self.inputs.get(id))
                .map(|i| i.queued_at)
            else {
                return;
            };
            if f.queue.len() < size && now.duration_since(oldest) < wait {
                self.set_timer(
                    oldest + wait,
                    Timer::BatchDue {
                        function_id: function_id.to_owned(),
                    },
                );
                return;
            }
            let version = f.version;
            let idle = f
                .tasks
                .iter()
                .find(|id| {
                    self.tasks
                        .get(*id)
                        .is_some_and(|t| t.accepting() && t.version == version && t.load() == 0)
                })
                .cloned();
            let Some(task_id) = idle else { return };
            let batch_id = new_id("bt-");
            let mut items = Vec::new();
            while items.len() < size {
                let Some(input_id) = f.queue.pop_front() else {
                    break;
                };
                let Some(input) = self.inputs.get_mut(&input_id) else {
                    continue;
                };
                if input.state != InputState::Queued {
                    continue;
                }
                input.mapping = input.mapping.after_sending();
                items.push(InputItem {
                    input_id,
                    input: input.payload.clone(),
                    attempt: input.attempt,
                    method: input.method.clone(),
                    batch_id: batch_id.clone(),
                });
            }
            if let Some(task) = self.tasks.get_mut(&task_id) {
                task.running
                    .extend(items.iter().map(|i| i.input_id.clone()));
            }
            for item in &items {
                self.input_started(&item.input_id, &task_id);
            }
            if let Some(task) = self.tasks.get(&task_id) {
                task.send(ContainerCommand::Inputs(items));
            }
        }
    }

    /// What the autoscaler sees of a function now: its queue, its containers and its settings.
    pub(crate) fn load_of(&self, f: &FunctionRec) -> Load {
        let a = f.def.autoscaler;
        let mut load = Load {
            queued: f.queue.len(),
            in_containers: 0,
            ready: 0,
            starting: 0,
            concurrency: f.def.planned_per_container(),
            exec: f.exec_ewma,
            run: f.run_ewma,
            startup: f.startup_ewma,
            min_containers: usize::try_from(a.min_containers).unwrap_or(0),
            max_containers: a.max_containers.and_then(|m| usize::try_from(m).ok()),
            buffer_containers: usize::try_from(a.buffer_containers).unwrap_or(0),
        };
        for t in f.tasks.iter().filter_map(|id| self.tasks.get(id)) {
            // Prefetched inputs stay with their container: no new container could take them.
            load.in_containers += t.running.len();
            if t.stop.is_some() {
                continue;
            }
            match t.state {
                TaskState::Ready => load.ready += 1,
                TaskState::Starting | TaskState::Entering => load.starting += 1,
            }
        }
        load
    }

    /// Starts as many containers as the autoscaler asks for and the workers can hold.
    fn autoscale(&mut self, function_id: &str) {
        let Some(f) = self.functions.get(function_id) else {
            return;
        };
        if !self.apps.get(&f.app_id).is_some_and(|a| a.is_live()) {
            return;
        }
        let wanted = scheduler::containers_to_start(&self.load_of(f));
        if wanted == 0 {
            return;
        }
        if let Some(why) = self.unmeetable(&f.def.constraints) {
            self.fail_queued(function_id, ResultStatus::InternalFailure, &why, "", false);
            return;
        }
        let request = request_of(&f.def);
        let constraints = f.def.constraints.clone();
        for _ in 0..wanted {
            match scheduler::place(&request, &self.worker_views(&constraints)) {
                Placement::On { worker, gpus } => {
                    self.start_task(function_id, &worker, &request, gpus)
                }
                Placement::Wait => {
                    // Idle containers of other functions give way to waiting work.
                    if let Some(victim) = self.idle_victim(function_id, !request.gpu.is_empty()) {
                        tracing::debug!(task_id = %victim, %function_id, "stopping an idle container to make room");
                        self.stop_task(&victim, StopReason::Idle, 500);
                    }
                    break;
                }
                // A cluster backend may start a worker that can: the pilots see the demand.
                Placement::Never(_)
                    if self
                        .pilot_offer
                        .as_ref()
                        .is_some_and(|o| o.meeting(&constraints).is_some()) =>
                {
                    break;
                }
                Placement::Never(why) => {
                    self.fail_queued(function_id, ResultStatus::InternalFailure, &why, "", false);
                    break;
                }
            }
        }
    }

    /// The longest-idle container of another function that can go without dropping below that
    /// function's `min_containers`; one holding GPUs when GPUs are what is missing.
    fn idle_victim(&self, for_function: &str, needs_gpus: bool) -> Option<String> {
        self.tasks
            .iter()
            .filter(|(_, t)| {
                t.function_id != for_function
                    && (!needs_gpus || !t.reservation.gpus.is_empty())
                    && t.state == TaskState::Ready
                    && t.stop.is_none()
                    && t.load() == 0
            })
            .filter(|(_, t)| {
                self.functions
                    .get(&t.function_id)
                    .is_some_and(|f| self.live_tasks(f) > f.def.autoscaler.min_containers as usize)
            })
            .min_by_key(|(id, t)| (t.idle_since, (*id).clone()))
            .map(|(id, _)| id.clone())
    }

    fn live_tasks(&self, f: &super::state::FunctionRec) -> usize {
        f.tasks
            .iter()
            .filter(|id| self.tasks.get(*id).is_some_and(|t| t.stop.is_none()))
            .count()
    }

    /// Stops containers idle past their scale-down window, keeping `min_containers`.
    pub(crate) fn scale_down(&mut self) {
        let now = self.clock.now;
        let mut to_stop = Vec::new();
        for f in self.functions.values() {
            let window = f.def.autoscaler.scaledown_window();
            let min = usize::try_from(f.def.autoscaler.min_containers).unwrap_or(0);
            let mut remaining = self.live_tasks(f);
            let mut idle: Vec<(&String, &TaskRec)> = f
                .tasks
                .iter()
                .filter_map(|id| self.tasks.get(id).map(|t| (id, t)))
                .filter(|(_, t)| {
                    t.stop.is_none()
                        && t.state == TaskState::Ready
                        && t.load() == 0
                        && now.duration_since(t.idle_since) >= window
                })
                .collect();
            idle.sort_by_key(|(id, t)| (t.idle_since, (*id).clone()));
            for (id, _) in idle {
                if remaining <= min {
                    break;
                }
                remaining -= 1;
                to_stop.push(id.clone());
            }
        }
        for id in to_stop {
            tracing::debug!(task_id = %id, "scaling down idle container");
            self.stop_task(&id, StopReason::Idle, 2000);
        }
    }

    /// Puts every function with queued inputs into the next scheduling pass.
    pub(crate) fn recheck_waiting(&mut self) {
        let waiting = self
            .functions
            .iter()
            .filter(|(_, f)| !f.queue.is_empty())
            .map(|(id, _)| id.clone());
        self.dirty.extend(waiting);
    }
}

/// What one container of a function asks of a worker (the defaults where it asks nothing).
pub(crate) fn request_of(def: &crate::model::FunctionDef) -> Request {
    let resources = def.resources;
    Request {
        milli_cpu: if resources.milli_cpu == 0 {
            scheduler::DEFAULT_MILLI_CPU
        } else {
            resources.milli_cpu
        },
        memory_mb: if resources.memory_mb == 0 {
            scheduler::DEFAULT_MEMORY_MB
        } else {
            resources.memory_mb
        },
        gpu: def.gpu.iter().map(|g| (g.kind.clone(), g.count)).collect(),
    }
}
