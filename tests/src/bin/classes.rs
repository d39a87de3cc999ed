//! The app the class, generator, concurrency and batching tests run.

use std::time::{Duration, Instant};

use modal::prelude::*;

modal::app!(APP = App::new("e2e-classes"));

fn task() -> String {
    std::env::var("MODAL_TASK_ID").unwrap_or_default()
}

#[modal::cls(app = APP, scaledown_window = 2)]
struct Counter {
    #[modal::parameter(default = "small")]
    size: String,
    calls: u64,
}

#[modal::methods]
impl Counter {
    #[modal::enter]
    fn load(&mut self) {
        println!("enter {}", self.size);
    }

    #[modal::method]
    fn bump(&mut self) -> u64 {
        self.calls += 1;
        self.calls
    }

    #[modal::method]
    async fn whoami(&self) -> String {
        task()
    }

    #[modal::exit]
    fn close(&mut self) {
        println!("exit after {} calls", self.calls);
    }
}

#[modal::cls(app = APP)]
struct Broken {}

#[modal::methods]
impl Broken {
    #[modal::enter]
    fn load(&mut self) {
        panic!("weights missing");
    }

    #[modal::method]
    fn hello(&self) -> u32 {
        1
    }
}

/// Loads for 4 s, longer than its start-up timeout allows.
#[modal::cls(app = APP, startup_timeout = 2)]
struct SlowToStart {}

#[modal::methods]
impl SlowToStart {
    #[modal::enter]
    fn load(&mut self) {
        std::thread::sleep(Duration::from_secs(4));
    }

    #[modal::method]
    fn hello(&self) -> u32 {
        1
    }
}

/// Loads for 4 s, within its start-up timeout; each input has 2 s.
#[modal::cls(app = APP, startup_timeout = 30, timeout = 2)]
struct SlowButAllowed {}

#[modal::methods]
impl SlowButAllowed {
    #[modal::enter]
    fn load(&mut self) {
        std::thread::sleep(Duration::from_secs(4));
    }

    #[modal::method]
    fn hello(&self) -> u32 {
        1
    }
}

#[modal::function(app = APP)]
fn countdown(n: u32) -> impl Iterator<Item = u32> {
    (0..n)
        .rev()
        .inspect(|_| std::thread::sleep(Duration::from_millis(300)))
}

#[modal::function(app = APP)]
#[modal::concurrent(max_inputs = 4)]
fn nap(ms: u64) -> String {
    std::thread::sleep(Duration::from_millis(ms));
    task()
}

#[modal::function(app = APP)]
#[modal::batched(max_batch_size = 4, wait_ms = 300)]
fn batch_sizes(xs: Vec<u32>) -> Vec<usize> {
    let n = xs.len();
    xs.iter().map(|_| n).collect()
}

#[modal::local_entrypoint(app = APP)]
async fn lifecycle() -> modal::Result<()> {
    let counter = Counter::cls();
    let mut last = 0;
    for _ in 0..50 {
        last = counter.bump().remote().await?;
    }
    println!("count: {last}");
    let app_id = APP.app_id().unwrap_or_default();
    let gone = modal_tests::wait_until(Duration::from_secs(10), || {
        modal_tests::containers_of_app(&app_id).is_empty()
    });
    println!("scaled down: {gone}");
    Ok(())
}

#[modal::local_entrypoint(app = APP)]
async fn params() -> modal::Result<()> {
    let small = Counter::cls().whoami().remote().await?;
    let large = Counter::cls().size("large").whoami().remote().await?;
    let small_again = Counter::cls().size("small").whoami().remote().await?;
    println!("distinct: {}", small != large);
    println!("same pool: {}", small == small_again);
    Ok(())
}

#[modal::local_entrypoint(app = APP)]
async fn broken() -> modal::Result<()> {
    let err = Broken::cls()
        .hello()
        .remote()
        .await
        .expect_err("enter panics");
    println!("kind: {:?}", err.failure_kind());
    println!("display: {err}");
    Ok(())
}

#[modal::local_entrypoint(app = APP)]
async fn slow_enter() -> modal::Result<()> {
    match SlowToStart::cls().hello().remote().await {
        Ok(v) => println!("too slow: ok {v}"),
        Err(e) => {
            println!("too slow kind: {:?}", e.failure_kind());
            println!("too slow: {e}");
        }
    }
    let allowed = SlowButAllowed::cls().hello().remote().await;
    println!("allowed: {:?}", allowed.map_err(|e| e.to_string()));
    Ok(())
}

#[modal::local_entrypoint(app = APP)]
async fn generator() -> modal::Result<()> {
    let t0 = Instant::now();
    let mut items = countdown.remote_gen(5);
    let mut got = Vec::new();
    let mut first_at = None;
    while let Some(item) = items.next().await {
        got.push(item?);
        first_at.get_or_insert(t0.elapsed());
    }
    let done_at = t0.elapsed();
    println!("items: {got:?}");
    let first_at = first_at.unwrap_or_default();
    println!(
        "first before end: {}",
        first_at + Duration::from_millis(600) < done_at
    );
    Ok(())
}

#[modal::local_entrypoint(app = APP)]
async fn concurrent() -> modal::Result<()> {
    // Warm one container first, so the timing is about running inputs, not starting processes.
    nap.remote(1).await?;
    let t0 = Instant::now();
    let tasks: Vec<String> = nap.map([1000u64; 4]).try_collect().await?;
    let secs = t0.elapsed().as_secs_f64();
    let mut distinct = tasks.clone();
    distinct.sort();
    distinct.dedup();
    println!("seconds: {secs:.2}");
    println!("containers: {}", distinct.len());
    Ok(())
}

#[modal::local_entrypoint(app = APP)]
async fn batching() -> modal::Result<()> {
    let sizes: Vec<usize> = batch_sizes.map(0..10u32).try_collect().await?;
    println!("max batch: {}", sizes.iter().max().copied().unwrap_or(0));
    println!("sizes: {sizes:?}");
    Ok(())
}

fn main() -> std::process::ExitCode {
    modal::main()
}
