//! The app the Slurm tests run against `modal server --backend slurm`: one entrypoint per
//! scenario, each printing `key: value` lines that the tests check.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;

modal::app!(APP = modal::App::new("pilots"));

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

/// Its input back, with the container it ran in.
#[modal::function(app = APP, retries = 3)]
fn square(x: u64) -> (u64, String) {
    (x * x, env("MODAL_TASK_ID"))
}

/// Slow inputs, retried when their pilot is killed under them.
#[modal::function(
    app = APP,
    retries = modal::Retries::new(3).initial_delay(Duration::from_millis(100)),
    max_containers = 4
)]
fn slow(x: u64, ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    x + 1
}

/// What this container's GPU environment is.
#[modal::function(app = APP, gpu = "any")]
fn visible(ms: u64) -> String {
    std::thread::sleep(Duration::from_millis(ms));
    env("CUDA_VISIBLE_DEVICES")
}

#[modal::function(app = APP, gpu = "any:5")]
fn five_gpus() -> u32 {
    5
}

#[modal::function(app = APP, region = "eu-west")]
fn in_europe() -> String {
    env("MODAL_TASK_ID")
}

#[modal::function(app = APP, nonpreemptible = true)]
fn steady() -> String {
    env("MODAL_TASK_ID")
}

/// Prints `key: ok VALUE` or `key: ERROR`.
fn outcome(key: &str, result: modal::Result<impl std::fmt::Display>) {
    match result {
        Ok(v) => println!("{key}: ok {v}"),
        Err(e) => println!("{key}: {e}"),
    }
}

/// What came back of a map: right, wrong, failed (each failure printed).
#[derive(Default)]
struct Tally {
    right: u64,
    wrong: u64,
    failed: u64,
}

impl Tally {
    fn add<T>(&mut self, r: modal::Result<T>, right: impl FnOnce(&T) -> bool) -> Option<T> {
        match r {
            Ok(v) if right(&v) => {
                self.right += 1;
                return Some(v);
            }
            Ok(_) => self.wrong += 1,
            Err(e) => {
                self.failed += 1;
                println!("failure: {e}");
            }
        }
        None
    }

    fn print(&self) {
        println!("right: {}", self.right);
        println!("wrong: {}", self.wrong);
        println!("failed: {}", self.failed);
    }
}

/// `n` squares through a map: how many came back right, and in how many containers.
#[modal::local_entrypoint(app = APP)]
async fn squares(n: u64) -> modal::Result<()> {
    let mut results = square.map(0..n).return_exceptions(true);
    let mut tally = Tally::default();
    let mut containers = BTreeSet::new();
    let mut i = 0u64;
    while let Some(r) = results.next().await {
        if let Some((_, task)) = tally.add(r, |(sq, _)| *sq == i * i) {
            containers.insert(task);
        }
        i += 1;
    }
    tally.print();
    println!("containers: {}", containers.len());
    Ok(())
}

/// `n` slow inputs: each must come back once, right.
#[modal::local_entrypoint(app = APP)]
async fn slow_map(n: u64, ms: u64) -> modal::Result<()> {
    let mut results = slow
        .map((0..n).map(move |x| (x, ms)))
        .return_exceptions(true);
    let mut tally = Tally::default();
    let mut i = 0u64;
    while let Some(r) = results.next().await {
        tally.add(r, |v| *v == i + 1);
        i += 1;
        println!("progress: {i}");
    }
    tally.print();
    Ok(())
}

/// Two GPU containers at once: what each saw.
#[modal::local_entrypoint(app = APP)]
async fn gpus(ms: u64) -> modal::Result<()> {
    let a = visible.spawn(ms).await?;
    let b = visible.spawn(ms).await?;
    outcome("first", a.get(None).await);
    outcome("second", b.get(None).await);
    Ok(())
}

/// Requests no partition can meet, each printed with its error.
#[modal::local_entrypoint(app = APP)]
async fn impossible() -> modal::Result<()> {
    outcome("five_gpus", five_gpus.remote().await);
    Ok(())
}

/// Functions with placement constraints.
#[modal::local_entrypoint(app = APP)]
async fn placed() -> modal::Result<()> {
    outcome("in_europe", in_europe.remote().await);
    outcome("steady", steady.remote().await);
    Ok(())
}

fn main() -> std::process::ExitCode {
    modal::main()
}
