//! Shared helpers of the end-to-end tests: finding container processes and waiting with bounds.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A container process: its pid and environment.
#[derive(Debug, Clone)]
pub struct ContainerProcess {
    /// Process id.
    pub pid: i32,
    /// Its environment variables.
    pub env: HashMap<String, String>,
}

/// Every live process that is a modal container (it has `MODAL_TASK_ID` in its environment).
pub fn containers() -> Vec<ContainerProcess> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if is_zombie(pid) {
            continue;
        }
        let env: HashMap<String, String> = raw
            .split(|b| *b == 0)
            .filter_map(|kv| {
                let kv = String::from_utf8_lossy(kv);
                kv.split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
            })
            .collect();
        if env.contains_key("MODAL_TASK_ID") {
            out.push(ContainerProcess { pid, env });
        }
    }
    out
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// Containers of the app with id `app_id`.
pub fn containers_of_app(app_id: &str) -> Vec<ContainerProcess> {
    containers()
        .into_iter()
        .filter(|c| c.env.get("MODAL_APP_ID").map(String::as_str) == Some(app_id))
        .collect()
}

/// The container with task id `task_id`, if its process is alive.
pub fn container(task_id: &str) -> Option<ContainerProcess> {
    containers()
        .into_iter()
        .find(|c| c.env.get("MODAL_TASK_ID").map(String::as_str) == Some(task_id))
}

/// Polls `cond` every 50 ms until it holds or `limit` passes; returns whether it held.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
