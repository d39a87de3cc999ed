//! The chaos suite's app and the clients it runs (`modal_tests::chaos` drives them): each input
//! notes every run of itself in `DIR/runs.log` (`KEY UNIX_MS`, one line per run) through the
//! suite's run log (`MODAL_CHAOS_RUNLOG`, see `modal_tests::runlog`), so the suite counts how
//! often each input ran whatever happened to the processes around it.
//!
//! `chaos map N DIR MS` maps N inputs; `chaos spawn N DIR MS PER_SECOND` spawns N calls at that
//! rate, writing `KEY CALL_ID` to `DIR/calls.txt` as each is acknowledged, then reads every
//! result. Each prints one JSON line: what it sent, what came back, and what was wrong.

use std::collections::HashMap;
use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use serde_json::json;

modal::app!(APP = modal::App::new("e2e-chaos"));

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// The suite's run log (`host:port`).
fn run_log() -> String {
    std::env::var("MODAL_CHAOS_RUNLOG").unwrap_or_default()
}

/// The result an input must give: anything else was mixed up on the way.
fn expected(key: &str) -> String {
    format!("done {key}")
}

#[modal::function(
    app = APP,
    retries = modal::Retries::new(3).initial_delay(Duration::from_millis(200)),
    max_containers = 4,
    timeout = 120
)]
fn work(key: String, ms: u64, dir: String, log: String) -> String {
    let _ = modal_tests::runlog::append(&log, &dir, &format!("{key} {}", unix_ms()));
    std::thread::sleep(Duration::from_millis(ms));
    expected(&key)
}

#[derive(Default)]
struct Tally {
    ok: u64,
    wrong: u64,
    failed: u64,
    errors: Vec<String>,
}

impl Tally {
    fn add(&mut self, key: &str, r: modal::Result<String>) {
        match r {
            Ok(v) if v == expected(key) => self.ok += 1,
            Ok(_) => self.wrong += 1,
            Err(e) => {
                self.failed += 1;
                if self.errors.len() < 5 {
                    self.errors.push(e.to_string());
                }
            }
        }
    }
}

/// Maps N inputs, taking results as they finish: each result names its input, so a result
/// delivered twice or given to the wrong input shows.
async fn map(n: u64, dir: String, ms: u64) -> serde_json::Value {
    let mut results = work
        .starmap((0..n).map(move |i| (format!("m{i}"), ms, dir.clone(), run_log())))
        .order_outputs(false)
        .return_exceptions(true);
    let mut seen: HashMap<String, u64> = HashMap::new();
    let (mut items, mut failed, mut wrong) = (0u64, 0u64, 0u64);
    let mut errors = Vec::new();
    while let Some(r) = results.next().await {
        items += 1;
        match r {
            Ok(v) => match v.strip_prefix("done m").and_then(|i| i.parse::<u64>().ok()) {
                Some(i) if i < n => *seen.entry(v).or_default() += 1,
                _ => wrong += 1,
            },
            Err(e) => {
                failed += 1;
                if errors.len() < 5 {
                    errors.push(e.to_string());
                }
            }
        }
    }
    let distinct = seen.len() as u64;
    let duplicates: u64 = seen.values().map(|c| c - 1).sum();
    json!({"sent": n, "accepted": n, "items": items, "ok": distinct, "wrong": wrong,
           "failed": failed, "duplicates": duplicates, "errors": errors})
}

async fn spawn(n: u64, dir: String, ms: u64, per_second: f64) -> serde_json::Value {
    let calls_path = std::path::Path::new(&dir).join("calls.txt");
    let mut calls_file = std::fs::File::create(&calls_path).ok();
    let gap = Duration::from_secs_f64(1.0 / per_second.max(0.1));
    let mut calls = Vec::new();
    let mut refused = Vec::new();
    for i in 0..n {
        let key = format!("s{i}");
        match work.spawn(key.clone(), ms, dir.clone(), run_log()).await {
            Ok(call) => {
                if let Some(f) = calls_file.as_mut() {
                    let _ = writeln!(f, "{key} {}", call.object_id());
                }
                calls.push((key, call));
            }
            Err(e) => refused.push(e.to_string()),
        }
        tokio::time::sleep(gap).await;
    }
    let mut tally = Tally::default();
    for (key, call) in &calls {
        tally.add(key, call.get(Duration::from_secs(180)).await);
    }
    refused.truncate(5);
    json!({"sent": n, "accepted": calls.len(), "items": calls.len(), "ok": tally.ok,
           "wrong": tally.wrong, "failed": tally.failed, "duplicates": 0,
           "errors": tally.errors, "refused": refused})
}

#[modal::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let number = |i: usize| {
        arg(i)
            .parse::<u64>()
            .map_err(|e| format!("argument {i}: {e}"))
    };
    let run = APP.run().output(false).await.map_err(|e| e.to_string())?;
    let report = match arg(0).as_str() {
        "map" => map(number(1)?, arg(2), number(3)?).await,
        "spawn" => {
            let rate = arg(4).parse::<f64>().map_err(|e| format!("rate: {e}"))?;
            spawn(number(1)?, arg(2), number(3)?, rate).await
        }
        other => return Err(format!("unknown command `{other}`: map or spawn")),
    };
    println!("{report}");
    run.stop().await.map_err(|e| e.to_string())
}
