//! Scheduling decisions as pure functions of state: where a container goes, how many to start,
//! how far ahead to feed a container, and which GPU devices satisfy a request.

use std::time::Duration;

use crate::model::Constraints;

/// What one container of a function needs from a worker.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Request {
    pub(crate) milli_cpu: u32,
    pub(crate) memory_mb: u32,
    /// Ranked GPU alternatives `(kind, count)`; empty = no GPU.
    pub(crate) gpu: Vec<(String, u32)>,
}

/// A GPU device as the scheduler sees it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GpuView {
    pub(crate) index: u32,
    pub(crate) name: String,
    pub(crate) memory_mb: u64,
    pub(crate) busy: bool,
}

/// A worker's capacity and what is in use.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WorkerView {
    pub(crate) id: String,
    pub(crate) milli_cpu: u32,
    pub(crate) memory_mb: u32,
    pub(crate) used_milli_cpu: u32,
    pub(crate) used_memory_mb: u32,
    pub(crate) gpus: Vec<GpuView>,
}

/// Where a new container can go.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Placement {
    /// On this worker, with these GPU indices.
    On { worker: String, gpus: Vec<u32> },
    /// Not now: every worker that could run it is full.
    Wait,
    /// Never: no connected worker could ever run it.
    Never(String),
}

/// What a cluster backend could start workers in, when the control plane has one (`modal
/// server --backend slurm`): its partitions and their labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PilotOffer {
    pub(crate) partitions: Vec<PartitionOffer>,
}

/// A partition pilot jobs may be submitted to (`None`: the cluster's default partition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartitionOffer {
    pub(crate) name: Option<String>,
    pub(crate) labels: std::collections::BTreeMap<String, String>,
}

impl PilotOffer {
    /// The first partition whose labels meet `constraints`.
    pub(crate) fn meeting(&self, constraints: &Constraints) -> Option<&PartitionOffer> {
        self.partitions
            .iter()
            .find(|p| constraints.unmet(&p.labels).is_empty())
    }
}

/// Default CPU request in thousandths of a core (Modal: 0.125 cores).
pub(crate) const DEFAULT_MILLI_CPU: u32 = 125;
/// Default memory request in MiB (Modal: 128 MiB).
pub(crate) const DEFAULT_MEMORY_MB: u32 = 128;

/// Whether a device called `name` with `memory_mb` of memory satisfies a request for `kind`.
///
/// Rules: `ANY` takes any device; a type matches when the device name contains it as a word,
/// case-insensitively (`NVIDIA H100 80GB HBM3` and `NVIDIA H100 PCIe` are H100s; `A10` matches
/// `NVIDIA A10` and `NVIDIA A10G` but not an A100; `L40S` does not take an L40); `A100-40GB` and
/// `A100-80GB` need an A100 with at least 40 GB or 80 GB (10⁹ bytes) of memory; `H100` may be
/// served by an H200 unless written `H100!`; `B200+` also takes a B300.
pub(crate) fn gpu_matches(kind: &str, name: &str, memory_mb: u64) -> bool {
    let at_least_gb = |gb: u64| memory_mb.saturating_mul(1024 * 1024) >= gb * 1_000_000_000;
    let upper = name.to_ascii_uppercase();
    let words: Vec<&str> = upper
        .split(|c: char| c.is_whitespace() || c == '-' || c == '_')
        .filter(|w| !w.is_empty())
        .collect();
    let has = |w: &str| {
        words
            .iter()
            .any(|x| *x == w || (w == "A10" && *x == "A10G"))
    };
    match kind {
        "ANY" => true,
        "A100-40GB" => has("A100") && at_least_gb(40),
        "A100-80GB" => has("A100") && at_least_gb(80),
        "H100" => has("H100") || has("H200"),
        "H100!" => has("H100"),
        "B200+" => has("B200") || has("B300"),
        "RTX-PRO-6000" => upper.contains("RTX PRO 6000"),
        other => has(other),
    }
}

fn gpu_label(kind: &str, count: u32) -> String {
    if count == 1 {
        format!("\"{kind}\"")
    } else {
        format!("\"{kind}:{count}\"")
    }
}

/// Decides where a container with `req` can run.
pub(crate) fn place(req: &Request, workers: &[WorkerView]) -> Placement {
    if workers.is_empty() {
        return Placement::Wait;
    }
    let fits_total = |w: &WorkerView| w.milli_cpu >= req.milli_cpu && w.memory_mb >= req.memory_mb;
    let fits_now = |w: &WorkerView| {
        w.milli_cpu.saturating_sub(w.used_milli_cpu) >= req.milli_cpu
            && w.memory_mb.saturating_sub(w.used_memory_mb) >= req.memory_mb
    };
    if req.gpu.is_empty() {
        if let Some(w) = workers.iter().find(|w| fits_now(w)) {
            return Placement::On {
                worker: w.id.clone(),
                gpus: Vec::new(),
            };
        }
        if workers.iter().any(fits_total) {
            return Placement::Wait;
        }
        let largest = workers.iter().map(|w| w.milli_cpu).max().unwrap_or(0);
        let most_mem = workers.iter().map(|w| w.memory_mb).max().unwrap_or(0);
        return Placement::Never(format!(
            "no worker can hold a container needing {:.3} CPU and {} MiB; the largest offers {:.3} CPU and {} MiB",
            f64::from(req.milli_cpu) / 1000.0,
            req.memory_mb,
            f64::from(largest) / 1000.0,
            most_mem
        ));
    }
    let mut could_ever = false;
    for (kind, count) in &req.gpu {
        let count = usize::try_from(*count).unwrap_or(usize::MAX);
        for w in workers {
            let matching: Vec<&GpuView> = w
                .gpus
                .iter()
                .filter(|g| gpu_matches(kind, &g.name, g.memory_mb))
                .collect();
            if matching.len() >= count && fits_total(w) {
                could_ever = true;
                let free: Vec<u32> = matching
                    .iter()
                    .filter(|g| !g.busy)
                    .map(|g| g.index)
                    .take(count)
                    .collect();
                if free.len() == count && fits_now(w) {
                    return Placement::On {
                        worker: w.id.clone(),
                        gpus: free,
                    };
                }
            }
        }
    }
    if could_ever {
        return Placement::Wait;
    }
    let asked: Vec<String> = req.gpu.iter().map(|(k, c)| gpu_label(k, *c)).collect();
    Placement::Never(format!(
        "no worker offers gpu {}; available: {}",
        asked.join(" or "),
        available_gpus(workers)
    ))
}

/// "2× NVIDIA H100 80GB HBM3, 1× NVIDIA L4" or "none".
fn available_gpus(workers: &[WorkerView]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for g in workers.iter().flat_map(|w| &w.gpus) {
        match counts.iter_mut().find(|(n, _)| *n == g.name) {
            Some((_, c)) => *c += 1,
            None => counts.push((g.name.clone(), 1)),
        }
    }
    if counts.is_empty() {
        return "none".into();
    }
    counts
        .iter()
        .map(|(n, c)| format!("{c}× {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How many inputs beyond its concurrency a container may hold, so that fast functions are not
/// slowed by one round trip per input while slow ones are never queued behind each other.
pub(crate) fn prefetch_depth(exec: Option<Duration>) -> usize {
    match exec {
        Some(d) if d < Duration::from_millis(1) => 64,
        Some(d) if d < Duration::from_millis(10) => 4,
        _ => 0,
    }
}

/// The load on one function, for the autoscaler.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Load {
    /// Inputs waiting for a container (not those prefetched by one: they stay with it).
    pub(crate) queued: usize,
    /// Inputs running in containers.
    pub(crate) in_containers: usize,
    /// Containers connected and not stopping.
    pub(crate) ready: usize,
    /// Containers asked for and not connected yet.
    pub(crate) starting: usize,
    pub(crate) concurrency: usize,
    /// Average time an input takes, from the moment it may start in its container to its
    /// result reaching the control plane, once known.
    pub(crate) exec: Option<Duration>,
    /// Average time an input's code runs in its container, once containers have said.
    pub(crate) run: Option<Duration>,
    /// Average container start-up time, once known.
    pub(crate) startup: Option<Duration>,
    pub(crate) min_containers: usize,
    pub(crate) max_containers: Option<usize>,
    pub(crate) buffer_containers: usize,
}

/// How many more containers the function should have now.
///
/// Without a known run time, every waiting input gets a slot (Modal's behaviour). Once inputs
/// are known to be quick, a new container is only worth starting while the backlog would take
/// the running containers longer to clear than a new container takes to start, and while the
/// containers are busy: when their code runs less than half of each input's turn, the rest is
/// delivery (the control plane, the network), which more containers would only share.
pub(crate) fn containers_to_start(l: &Load) -> usize {
    let have = l.ready + l.starting;
    let c = l.concurrency.max(1);
    let mut wanted = match l.exec {
        None => (l.queued + l.in_containers).div_ceil(c),
        Some(exec) => {
            let startup = l
                .startup
                .unwrap_or(Duration::from_millis(50))
                .max(Duration::from_millis(1));
            // The backlog costs the containers its inputs' run time.
            let run = l.run.map_or(exec, |r| r.min(exec));
            let starved = run.saturating_mul(2) < exec;
            let backlog_work = run.saturating_mul(u32::try_from(l.queued).unwrap_or(u32::MAX));
            let busy = l.in_containers.div_ceil(c);
            // Containers needed so that the backlog clears within one start-up time.
            let for_backlog =
                (backlog_work.as_secs_f64() / startup.as_secs_f64() / c as f64).ceil() as usize;
            if l.queued == 0 || (starved && have > 0) {
                busy
            } else {
                busy.max(for_backlog).max(usize::from(have == 0))
            }
        }
    };
    if l.queued + l.in_containers > 0 {
        wanted += l.buffer_containers;
    }
    wanted = wanted.max(l.min_containers);
    if let Some(max) = l.max_containers {
        wanted = wanted.min(max);
    }
    let new = wanted.saturating_sub(have);
    // Beyond `min_containers`, containers start in waves: never more starting than are ready,
    // so a burst of quick inputs is measured before it fans out, and slow ones still double
    // their containers every start-up time.
    let below_min = l.min_containers.saturating_sub(have);
    let ramp_room = l.ready.max(1).saturating_sub(l.starting);
    new.min(below_min.max(ramp_room))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(id: &str, gpus: &[(&str, u64, bool)]) -> WorkerView {
        WorkerView {
            id: id.into(),
            milli_cpu: 2000,
            memory_mb: 16_000,
            used_milli_cpu: 0,
            used_memory_mb: 0,
            gpus: gpus
                .iter()
                .enumerate()
                .map(|(i, (n, m, b))| GpuView {
                    index: i as u32,
                    name: (*n).into(),
                    memory_mb: *m,
                    busy: *b,
                })
                .collect(),
        }
    }

    fn req(gpu: &[(&str, u32)]) -> Request {
        Request {
            milli_cpu: DEFAULT_MILLI_CPU,
            memory_mb: DEFAULT_MEMORY_MB,
            gpu: gpu.iter().map(|(k, c)| ((*k).into(), *c)).collect(),
        }
    }

    #[test]
    fn gpu_name_rules() {
        let table = [
            ("H100", "NVIDIA H100 80GB HBM3", 81_559, true),
            ("H100!", "NVIDIA H100 80GB HBM3", 81_559, true),
            ("H100", "NVIDIA H200", 143_771, true),
            ("H100!", "NVIDIA H200", 143_771, false),
            ("A10", "NVIDIA A100-SXM4-80GB", 81_920, false),
            ("A10", "NVIDIA A10G", 23_028, true),
            ("A100", "NVIDIA A100-SXM4-40GB", 40_960, true),
            ("A100-80GB", "NVIDIA A100-SXM4-40GB", 40_960, false),
            ("A100-80GB", "NVIDIA A100-SXM4-80GB", 81_920, true),
            ("A100-40GB", "NVIDIA A100-SXM4-80GB", 81_920, true),
            ("A100-80GB", "NVIDIA A100 80GB PCIe", 81_251, true),
            ("A100-80GB", "NVIDIA A100 80GB PCIe", 76_000, false),
            ("A100-40GB", "NVIDIA A100-PCIE-40GB", 40_536, true),
            ("H100", "NVIDIA H100 PCIe", 81_559, true),
            ("H100!", "NVIDIA H100 NVL", 95_830, true),
            ("H200", "NVIDIA H100 80GB HBM3", 81_559, false),
            ("H200", "NVIDIA GH200 480GB", 97_871, false),
            ("L4", "NVIDIA L4", 22_491, true),
            ("L40S", "NVIDIA L40", 46_068, false),
            ("A10", "NVIDIA A10", 22_731, true),
            ("L4", "NVIDIA L40S", 46_068, false),
            ("L40S", "NVIDIA L40S", 46_068, true),
            ("T4", "Tesla T4", 15_360, true),
            ("ANY", "Tesla T4", 15_360, true),
            ("B200+", "NVIDIA B300", 180_000, true),
        ];
        for (kind, name, mem, want) in table {
            assert_eq!(gpu_matches(kind, name, mem), want, "{kind} vs {name}");
        }
    }

    #[test]
    fn placement() {
        let none = [worker("w1", &[])];
        assert_eq!(
            place(&req(&[]), &none),
            Placement::On {
                worker: "w1".into(),
                gpus: vec![]
            }
        );
        assert_eq!(
            place(&req(&[("H100", 1)]), &none),
            Placement::Never("no worker offers gpu \"H100\"; available: none".into())
        );
        let two = [worker(
            "w1",
            &[
                ("NVIDIA H100 80GB HBM3", 81_559, true),
                ("NVIDIA H100 80GB HBM3", 81_559, false),
            ],
        )];
        assert_eq!(
            place(&req(&[("H100", 1)]), &two),
            Placement::On {
                worker: "w1".into(),
                gpus: vec![1]
            }
        );
        assert_eq!(place(&req(&[("H100", 2)]), &two), Placement::Wait);
        assert_eq!(
            place(&req(&[("H100", 4)]), &two),
            Placement::Never(
                "no worker offers gpu \"H100:4\"; available: 2× NVIDIA H100 80GB HBM3".into()
            )
        );
        // Ranked fallback: the first alternative that is free now wins.
        assert_eq!(
            place(&req(&[("A100", 1), ("H100", 1)]), &two),
            Placement::On {
                worker: "w1".into(),
                gpus: vec![1]
            }
        );
        assert_eq!(place(&req(&[]), &[]), Placement::Wait);
        let mut full = worker("w1", &[]);
        full.used_milli_cpu = 2000;
        assert_eq!(place(&req(&[]), &[full.clone()]), Placement::Wait);
        let mut big = req(&[]);
        big.milli_cpu = 8000;
        assert!(matches!(place(&big, &[full]), Placement::Never(m) if m.contains("8.000 CPU")));
    }

    fn load() -> Load {
        Load {
            queued: 0,
            in_containers: 0,
            ready: 0,
            starting: 0,
            concurrency: 1,
            exec: None,
            run: None,
            startup: None,
            min_containers: 0,
            max_containers: None,
            buffer_containers: 0,
        }
    }

    #[test]
    fn autoscaling() {
        // Unknown run time: one slot per input, started in waves (no more starting than ready).
        assert_eq!(
            containers_to_start(&Load {
                queued: 5,
                ..load()
            }),
            1
        );
        assert_eq!(
            containers_to_start(&Load {
                queued: 5,
                starting: 1,
                ..load()
            }),
            0
        );
        assert_eq!(
            containers_to_start(&Load {
                queued: 5,
                ready: 1,
                in_containers: 1,
                ..load()
            }),
            1
        );
        assert_eq!(
            containers_to_start(&Load {
                queued: 50,
                ready: 8,
                in_containers: 8,
                ..load()
            }),
            8
        );
        assert_eq!(
            containers_to_start(&Load {
                queued: 50,
                ready: 8,
                in_containers: 8,
                max_containers: Some(10),
                ..load()
            }),
            2
        );
        assert_eq!(
            containers_to_start(&Load {
                queued: 5,
                starting: 5,
                ..load()
            }),
            0
        );
        // Idle: only min_containers, all at once.
        assert_eq!(
            containers_to_start(&Load {
                min_containers: 3,
                ..load()
            }),
            3
        );
        assert_eq!(containers_to_start(&load()), 0);
        // Quick inputs: a backlog that clears before a new container could start needs none.
        let quick = Load {
            queued: 100,
            in_containers: 1,
            ready: 1,
            exec: Some(Duration::from_micros(20)),
            startup: Some(Duration::from_millis(20)),
            ..load()
        };
        assert_eq!(containers_to_start(&quick), 0);
        // Slow inputs: scale out, doubling.
        let slow = Load {
            exec: Some(Duration::from_secs(1)),
            ..quick.clone()
        };
        assert_eq!(containers_to_start(&slow), 1);
        assert_eq!(
            containers_to_start(&Load {
                ready: 4,
                in_containers: 4,
                ..slow.clone()
            }),
            4
        );
        // Buffer containers under load; concurrency divides the need.
        assert_eq!(
            containers_to_start(&Load {
                queued: 8,
                concurrency: 4,
                buffer_containers: 1,
                ready: 4,
                ..load()
            }),
            0
        );
        assert_eq!(
            containers_to_start(&Load {
                queued: 16,
                concurrency: 4,
                buffer_containers: 1,
                ready: 2,
                ..load()
            }),
            2
        );
        // Containers whose code runs a fraction of each input's turn are starved: a backlog
        // of quick inputs starts no more of them, however long.
        let starved = Load {
            queued: 100_000,
            in_containers: 1,
            ready: 1,
            exec: Some(Duration::from_micros(10)),
            run: Some(Duration::from_micros(2)),
            startup: Some(Duration::from_millis(20)),
            ..load()
        };
        assert_eq!(containers_to_start(&starved), 0);
        // The same backlog in busy containers scales out, measured by the run time.
        let busy = Load {
            run: Some(Duration::from_micros(8)),
            ..starved.clone()
        };
        assert_eq!(containers_to_start(&busy), 1);
        assert_eq!(
            containers_to_start(&Load {
                ready: 16,
                in_containers: 16,
                ..busy.clone()
            }),
            16
        );
        // Starved containers still get their first one, and slow inputs are never starved.
        assert_eq!(
            containers_to_start(&Load {
                ready: 0,
                in_containers: 0,
                ..starved.clone()
            }),
            1
        );
        assert_eq!(
            containers_to_start(&Load {
                exec: Some(Duration::from_secs(2)),
                run: Some(Duration::from_secs(1)),
                ..starved
            }),
            1
        );
        // Nothing running yet but quick inputs queued: start one.
        assert_eq!(
            containers_to_start(&Load {
                queued: 1,
                exec: Some(Duration::from_micros(5)),
                ..load()
            }),
            1
        );
    }

    #[test]
    fn prefetch_only_for_quick_functions() {
        assert_eq!(prefetch_depth(None), 0);
        assert_eq!(prefetch_depth(Some(Duration::from_micros(50))), 64);
        assert_eq!(prefetch_depth(Some(Duration::from_millis(5))), 4);
        assert_eq!(prefetch_depth(Some(Duration::from_secs(1))), 0);
    }
}
