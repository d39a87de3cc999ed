//! The app the end-to-end tests run: one entrypoint per scenario, each printing `key: value`
//! lines that the tests check.

use std::time::Duration;

use modal::prelude::*;

modal::app!(OTHER = App::new("fixture-other").tags([("team", "other"), ("shared", "theirs")]));
modal::app!(
    APP = App::new("fixture")
        .tags([("shared", "ours")])
        .include(&OTHER, true)
);

/// Declared on another app; runs as part of `fixture` because that app includes it.
#[modal::function(app = OTHER)]
fn triple(x: i64) -> i64 {
    3 * x
}

#[modal::function(app = APP)]
fn square(x: i64) -> i64 {
    x * x
}

#[modal::function(app = APP)]
fn boom(message: String) -> i64 {
    panic!("boom: {message}");
}

/// Fails on its first two attempts (counted by the run log at `log` in `dir`, whatever
/// container runs it), then succeeds.
#[modal::function(app = APP, retries = modal::Retries::new(2).initial_delay(Duration::from_millis(100)))]
fn flaky(log: String, dir: String) -> Result<String, String> {
    let n = modal_tests::runlog::append(&log, &dir, "flaky").map_err(|e| e.to_string())?;
    if n < 3 {
        Err(format!("attempt {n} failed"))
    } else {
        Ok(format!("attempt {n} succeeded"))
    }
}

#[modal::function(app = APP, timeout = 1)]
fn sleeper(secs: u64) -> u64 {
    std::thread::sleep(Duration::from_secs(secs));
    secs
}

/// Returns `x` after `ms` milliseconds (an async function, to cover that path).
#[modal::function(app = APP)]
async fn delayed(x: u64, ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    x
}

#[modal::function(app = APP, timeout = 600)]
fn linger(secs: u64) -> u64 {
    std::thread::sleep(Duration::from_secs(secs));
    secs
}

/// Notes each run of `x` in the run log at `log` (in `dir`); inputs ending in 7 exit the
/// container. Quick, so that containers hold several inputs ahead (prefetched) when one
/// crashes.
#[modal::function(app = APP)]
fn crashy(x: u64, log: String, dir: String) -> u64 {
    let _ = modal_tests::runlog::append(&log, &dir, &x.to_string());
    if x % 10 == 7 {
        std::process::exit(3);
    }
    x
}

/// 40 inputs of `crashy`: how each ended and how often each ran.
#[modal::local_entrypoint(app = APP)]
async fn crashes() -> modal::Result<()> {
    let (log, dir) = run_log("crashy")?;
    let inputs: Vec<(u64, String, String)> =
        (0..40).map(|x| (x, log.addr(), dir.clone())).collect();
    let mut results = crashy.starmap(inputs).return_exceptions(true);
    let mut i = 0u64;
    let (mut ok, mut crashed_here, mut lost, mut wrong) = (0, 0, 0, Vec::new());
    while let Some(r) = results.next().await {
        match r {
            Ok(_) => ok += 1,
            Err(e)
                if e.to_string()
                    .contains("(exit code 3) while running the input") =>
            {
                if i % 10 == 7 {
                    crashed_here += 1;
                } else {
                    wrong.push(i);
                }
            }
            Err(e) if e.to_string().contains("after the input returned") => lost += 1,
            Err(e) => {
                println!("unexpected: {i}: {e}");
                wrong.push(i);
            }
        }
        i += 1;
    }
    let path = std::path::Path::new(&dir).join("runs.log");
    let runs = std::fs::read_to_string(&path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let mut counts = std::collections::HashMap::<&str, usize>::new();
    for line in runs.lines() {
        *counts.entry(line).or_default() += 1;
    }
    println!("ok: {ok}");
    println!("crashed where they crashed: {crashed_here}");
    println!("lost after returning: {lost}");
    println!("blamed wrongly: {wrong:?}");
    println!(
        "most runs of one input: {}",
        counts.values().max().copied().unwrap_or(0)
    );
    Ok(())
}

/// Takes 300 ms; every fifth input fails.
#[modal::function(app = APP)]
fn picky(x: u64) -> Result<u64, String> {
    std::thread::sleep(Duration::from_millis(300));
    if x % 5 == 4 {
        Err(format!("{x} is not welcome"))
    } else {
        Ok(x)
    }
}

/// Two `for_each` rounds that stop at their first failure (cancelling the inputs still
/// running, which makes their containers leave), then a map that must see every input.
#[modal::local_entrypoint(app = APP)]
async fn for_each_rounds() -> modal::Result<()> {
    for round in 1..=2 {
        let r = picky.for_each(0..15u64).await;
        println!(
            "round {round}: {:?}",
            r.err().and_then(|e| e.failure_kind())
        );
    }
    let mut results = picky.map(0..15u64).return_exceptions(true);
    let (mut ok, mut refused, mut other) = (0, 0, 0);
    while let Some(r) = results.next().await {
        match r {
            Ok(_) => ok += 1,
            Err(e) if e.failure_kind() == Some(modal::FailureKind::UserError) => refused += 1,
            Err(e) => {
                other += 1;
                println!("other failure: {e}");
            }
        }
    }
    println!("ok: {ok}");
    println!("refused: {refused}");
    println!("other: {other}");
    Ok(())
}

#[modal::local_entrypoint(app = APP)]
async fn hello_sum() -> modal::Result<()> {
    let squares: Vec<i64> = square.map(0..1000).try_collect().await?;
    println!("sum: {}", squares.iter().sum::<i64>());
    Ok(())
}

#[modal::function(app = APP, scaledown_window = 2)]
fn brief(x: i64) -> i64 {
    x + 1
}

#[modal::local_entrypoint(app = APP)]
async fn scaledown() -> modal::Result<()> {
    let app_id = APP.app_id().unwrap_or_default();
    brief.remote(1).await?;
    let warm = modal_tests::containers_of_app(&app_id).len();
    brief.remote(2).await?;
    println!(
        "warm reuse: {}",
        modal_tests::containers_of_app(&app_id).len() == warm
    );
    let gone = modal_tests::wait_until(Duration::from_secs(6), || {
        modal_tests::containers_of_app(&app_id).is_empty()
    });
    println!("scaled down: {gone}");
    Ok(())
}

#[modal::local_entrypoint(app = APP)]
async fn included() -> modal::Result<()> {
    println!("triple: {}", triple.remote(3).await?);
    let tags: Vec<String> = APP
        .tag_map()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!("tags: {}", tags.join(","));
    Ok(())
}

#[modal::local_entrypoint(app = APP)]
async fn panics() -> modal::Result<()> {
    let err = boom.remote("kaboom".into()).await.expect_err("boom panics");
    let r = err.remote().expect("a remote failure");
    println!("kind: {:?}", r.kind);
    println!("message: {}", r.message);
    println!("location: {}", r.location.clone().unwrap_or_default());
    println!(
        "backtrace: {}",
        r.backtrace.as_deref().is_some_and(|b| b.contains("boom"))
    );
    println!("display: {err}");
    Ok(())
}

#[modal::local_entrypoint(app = APP)]
async fn retries() -> modal::Result<()> {
    let (log, dir) = run_log("flaky")?;
    println!("result: {}", flaky.remote(log.addr(), dir.clone()).await?);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A run log and a fresh directory for it, named by `what` and this process.
fn run_log(what: &str) -> modal::Result<(modal_tests::runlog::RunLog, String)> {
    let dir = std::env::temp_dir().join(format!("modal-e2e-{what}-{}", std::process::id()));
    let made = std::fs::create_dir_all(&dir).and_then(|()| modal_tests::runlog::RunLog::start());
    let log = made.map_err(|e| modal::Error::Other(format!("cannot start the run log: {e}")))?;
    Ok((log, dir.to_string_lossy().into_owned()))
}

#[modal::local_entrypoint(app = APP)]
async fn timeout() -> modal::Result<()> {
    let err = sleeper.remote(10).await.expect_err("sleeper times out");
    let r = err.remote().expect("a remote failure");
    println!("kind: {:?}", r.kind);
    println!("display: {err}");
    let task = r.task_id.clone().unwrap_or_default();
    let gone = modal_tests::wait_until(Duration::from_secs(5), || {
        modal_tests::container(&task).is_none()
    });
    println!("container gone: {gone}");
    Ok(())
}

#[modal::local_entrypoint(app = APP)]
async fn map_order() -> modal::Result<()> {
    let ordered: Vec<i64> = square.map(0..1000).try_collect().await?;
    let want: Vec<i64> = (0..1000).map(|x| x * x).collect();
    println!("ordered: {}", ordered == want);
    // Earlier inputs take longer, so they finish last.
    let inputs: Vec<(u64, u64)> = (0..8).map(|i| (i, (8 - i) * 150)).collect();
    let unordered: Vec<u64> = delayed
        .starmap(inputs)
        .order_outputs(false)
        .try_collect()
        .await?;
    let mut sorted = unordered.clone();
    sorted.sort_unstable();
    println!(
        "unordered complete: {}",
        sorted == (0..8).collect::<Vec<u64>>()
    );
    println!("unordered differs: {}", unordered != sorted);
    Ok(())
}

#[modal::local_entrypoint(app = APP)]
async fn long(containers: u64) -> modal::Result<()> {
    println!("app: {}", APP.app_id().unwrap_or_default());
    let mut calls = Vec::new();
    for _ in 0..containers {
        calls.push(linger.spawn(300).await?);
    }
    println!("spawned: {}", calls.len());
    for c in &calls {
        let _ = c.get(None).await;
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    modal::main()
}
