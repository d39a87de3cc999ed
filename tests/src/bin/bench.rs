//! The benchmark `cargo xtask bench` runs: an ephemeral app on the embedded control plane,
//! measured end to end. Prints one JSON line with the same metric names as the Ray peer
//! benchmark. With `--server-memory PID` (and a server configured) it only makes many calls
//! through that `modal server` and reports the server's memory along the way; with
//! `--container-starts` it only measures container starts (on the runtime `MODAL_RUNTIME` picks).
//!
//! With `--calls-only` it makes 10,000 calls and a map of 100,000 inputs (for a profiler).
//! With `--slurm-figures` (and a server configured) it measures the first input's round trip
//! and a map's throughput (what `cargo xtask bench --slurm` compares between pilot jobs and a
//! built-in worker).
//! With `--server-figures` (and a server configured) it measures calls, maps, spawns and
//! payloads through that `modal server` from this process, a client of its own.
//!
//! `container_start_ms`: how long a call spends starting its container, from the control plane's
//! request to the container's first request: the median of calls that each start a new
//! container (`single_use_containers`) less the median of calls on a warm one.
//! `idle_container_pss_mb` / `idle_container_uss_mb`: an idle container's proportional memory
//! (the pages of the executable it shares with the program and other containers split between
//! them) and its unique memory (what one more such container costs: its heap, stacks, journal and
//! the relocated read-only data of a position-independent executable).
//! `tree_pss_peak_mb`: the peak of the proportional memory of this process and all its
//! descendants (containers, crun), sampled every 50 ms from the payload phase on (memory peaks
//! there; reading every process's page tables during the small-call phases would slow them).

use std::time::{Duration, Instant};

use modal::prelude::*;

modal::app!(APP = App::new("bench"));

#[modal::function(app = APP)]
fn trivial(x: u64) -> u64 {
    x
}

/// A new container for every call.
#[modal::function(app = APP, single_use_containers = true)]
fn fresh(x: u64) -> u64 {
    x
}

#[modal::function(app = APP)]
fn echo(payload: modal::ByteBuf) -> modal::ByteBuf {
    payload
}

#[modal::function(app = APP)]
fn echo_vec(payload: Vec<u8>) -> Vec<u8> {
    payload
}

#[modal::function(app = APP)]
fn echo_bytes(payload: modal::Bytes) -> modal::Bytes {
    payload
}

/// The container's own proportional memory (KiB) while it holds `payload`.
#[modal::function(app = APP)]
fn hold(payload: modal::ByteBuf) -> u64 {
    let pss = modal_tests::pss_kib(std::process::id());
    std::hint::black_box(&payload);
    pss
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1e6
}

fn rss_mb() -> f64 {
    rss_mb_of("self")
}

/// The resident memory of process `pid` (`self`: this one), in MiB.
fn rss_mb_of(pid: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The median of `starts` calls that each start a container, less the median warm call (ms).
async fn container_start_ms(starts: u64) -> modal::Result<f64> {
    let mut warm = Vec::new();
    for i in 0..50 {
        let t = Instant::now();
        trivial.remote(i).await?;
        warm.push(t.elapsed());
    }
    warm.sort_unstable();
    let mut cold = Vec::new();
    for i in 0..starts {
        let t = Instant::now();
        fresh.remote(i).await?;
        cold.push(t.elapsed());
    }
    cold.sort_unstable();
    Ok((percentile(&cold, 50.0) - percentile(&warm, 50.0)) / 1e3)
}

/// The container runtime this program's embedded worker uses.
fn runtime() -> String {
    std::env::var("MODAL_RUNTIME").unwrap_or_else(|_| {
        if modal_tests::oci_usable() {
            "oci"
        } else {
            "process"
        }
        .to_owned()
    })
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Memory over `n` calls: `rss` read after a tenth of them, then after all; a control plane
/// that keeps what it delivered grows between the two readings.
async fn memory_over_calls(n: u64, rss: impl Fn() -> f64) -> modal::Result<(f64, f64)> {
    let calls = |range: std::ops::Range<u64>| {
        futures::stream::iter(range)
            .map(|i| trivial.remote(i))
            .buffer_unordered(64)
            .try_for_each(|_| async { Ok(()) })
    };
    calls(0..n / 10).await?;
    let tenth = rss();
    calls(n / 10..n).await?;
    Ok((tenth, rss()))
}

/// The peak of this process tree's proportional memory (MiB), sampled every 50 ms from now on.
fn sample_tree_pss() -> impl Fn() -> f64 {
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = std::sync::Arc::clone(&peak);
    std::thread::spawn(move || {
        loop {
            let now = modal_tests::tree_pss_kib(std::process::id());
            seen.fetch_max(now, std::sync::atomic::Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    move || peak.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1024.0
}

/// The proportional memory of the idle containers of this app (MiB, the largest).
/// The largest proportional and unique memory (MiB) of the app's containers, now.
fn idle_container_memory_mb() -> (f64, f64) {
    let app_id = APP.app_id().unwrap_or_default();
    let containers = modal_tests::containers_of_app(&app_id);
    let max_mb = |of: fn(u32) -> u64| {
        containers
            .iter()
            .map(|c| of(c.pid as u32))
            .max()
            .unwrap_or(0) as f64
            / 1024.0
    };
    (max_mb(modal_tests::pss_kib), max_mb(modal_tests::uss_kib))
}

/// Echo rounds of `size` bytes through `through` (`wrap` makes its argument): MB/s moved, both
/// ways. The inputs are built before the clock starts, as the peer benchmark does.
async fn echo_mb_per_s<T>(
    through: &modal::Function<(T,), T>,
    wrap: impl Fn(Vec<u8>) -> T,
    rounds: usize,
    size: usize,
) -> modal::Result<f64>
where
    T: serde::Serialize + serde::de::DeserializeOwned + AsRef<[u8]> + Send + 'static,
{
    let moved_mb = (2 * rounds * size) as f64 / (1 << 20) as f64;
    let mut inputs = (0..=rounds)
        .map(|_| wrap(vec![7u8; size]))
        .collect::<Vec<T>>()
        .into_iter();
    if let Some(warm) = inputs.next() {
        through.remote_args((warm,)).await?;
    }
    let t = Instant::now();
    for payload in inputs {
        let back = through.remote_args((payload,)).await?;
        assert_eq!(back.as_ref().len(), size);
    }
    Ok(moved_mb / t.elapsed().as_secs_f64())
}

/// The figures through a `modal server` from a client in this process: calls, a map, spawns
/// read back with `get`, payloads.
async fn server_figures(n_calls: u64, n_map: u64, rounds: usize) -> modal::Result<String> {
    for i in 0..n_calls / 10 {
        trivial.remote(i).await?;
    }
    let mut samples = Vec::with_capacity(n_calls as usize);
    for i in 0..n_calls {
        let t = Instant::now();
        trivial.remote(i).await?;
        samples.push(t.elapsed());
    }
    samples.sort_unstable();
    let t = Instant::now();
    let out: Vec<u64> = trivial.map(0..n_map).try_collect().await?;
    let map_secs = t.elapsed().as_secs_f64();
    assert_eq!(out.len() as u64, n_map);
    let mut spawns = Vec::with_capacity(n_calls as usize / 10);
    for i in 0..n_calls / 10 {
        let t = Instant::now();
        let call = trivial.spawn(i).await?;
        assert_eq!(call.get(None).await?, i);
        spawns.push(t.elapsed());
    }
    spawns.sort_unstable();
    let payload = echo_mb_per_s(&echo, modal::ByteBuf::from, rounds, 16 << 20).await?;
    Ok(format!(
        concat!(
            "{{\"server_call_p50_us\": {}, \"server_call_p99_us\": {}, \"server_map_inputs\": {}, ",
            "\"server_map_throughput_per_s\": {}, \"server_spawn_get_p50_us\": {}, ",
            "\"server_payload_mb_per_s\": {}}}"
        ),
        round(percentile(&samples, 50.0)),
        round(percentile(&samples, 99.0)),
        n_map,
        round(n_map as f64 / map_secs),
        round(percentile(&spawns, 50.0)),
        round(payload),
    ))
}

#[modal::main]
async fn main() -> modal::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let k = if quick { 10 } else { 1 };
    let (n_calls, n_warm, n_map) = (2000 / k, 200 / k, 20_000 / k);

    let t0 = Instant::now();
    let run = APP.run().output(false).await?;
    let app_start = t0.elapsed();

    let server_pid = std::env::args()
        .skip_while(|a| a != "--server-memory")
        .nth(1);
    if let Some(pid) = server_pid {
        let n: u64 = 200_000 / k;
        let (tenth, all) = memory_over_calls(n, || rss_mb_of(&pid)).await?;
        run.stop().await?;
        println!(
            "{{\"server_memory_calls\": {n}, \"server_rss_after_tenth_of_calls_mb\": {}, \"server_rss_after_all_calls_mb\": {}}}",
            round(tenth),
            round(all)
        );
        return Ok(());
    }

    if std::env::args().any(|a| a == "--server-figures") {
        let json = server_figures(n_calls, n_map, 10).await?;
        run.stop().await?;
        println!("{json}");
        return Ok(());
    }

    if std::env::args().any(|a| a == "--slurm-figures") {
        // The first input's round trip (no container, no worker yet: on `--backend slurm
        // --no-worker`, a pilot job starts for it), then a map through the warm worker.
        let t = Instant::now();
        trivial.remote(0).await?;
        let first_ms = t.elapsed().as_secs_f64() * 1000.0;
        let t = Instant::now();
        let out: Vec<u64> = trivial.map(0..n_map).try_collect().await?;
        let per_s = out.len() as f64 / t.elapsed().as_secs_f64();
        run.stop().await?;
        println!(
            "{{\"first_result_ms\": {}, \"map_inputs\": {n_map}, \"map_throughput_per_s\": {}}}",
            round(first_ms),
            round(per_s)
        );
        return Ok(());
    }

    if std::env::args().any(|a| a == "--calls-only") {
        // For a profiler: warm calls, then a map, nothing else.
        for i in 0..n_calls * 5 {
            trivial.remote(i).await?;
        }
        let t = Instant::now();
        let out: Vec<u64> = trivial.map(0..n_map * 5).try_collect().await?;
        let per_s = out.len() as f64 / t.elapsed().as_secs_f64();
        run.stop().await?;
        println!("{{\"map_throughput_per_s\": {}}}", round(per_s));
        return Ok(());
    }

    let starts: u64 = 40 / k;
    if std::env::args().any(|a| a == "--container-starts") {
        let ms = container_start_ms(starts).await?;
        run.stop().await?;
        println!("{{\"container_start_ms\": {}}}", round(ms));
        return Ok(());
    }

    let payload_only = std::env::args().any(|a| a == "--payload-only");
    if payload_only {
        let payload = modal::ByteBuf::from(vec![7u8; 16 << 20]);
        for _ in 0..20 {
            let t = Instant::now();
            echo.remote(payload.clone()).await?;
            println!("echo: {:?}", t.elapsed());
        }
        run.stop().await?;
        return Ok(());
    }

    let t1 = Instant::now();
    trivial.remote(0).await?;
    let first_call = t1.elapsed();

    for i in 0..n_warm {
        trivial.remote(i).await?;
    }
    let mut samples = Vec::with_capacity(n_calls as usize);
    for i in 0..n_calls {
        let t = Instant::now();
        let v = trivial.remote(i).await?;
        samples.push(t.elapsed());
        assert_eq!(v, i);
    }
    samples.sort_unstable();
    let (idle_pss, idle_uss) = idle_container_memory_mb();
    let start_ms = container_start_ms(starts).await?;

    let t2 = Instant::now();
    let out: Vec<u64> = trivial.map(0..n_map).try_collect().await?;
    let map_secs = t2.elapsed().as_secs_f64();
    assert_eq!(out.len() as u64, n_map);
    assert!(out.iter().enumerate().all(|(i, v)| *v == i as u64));

    // The embedded control plane shares this process with the client: measured before the
    // payload phase allocates its own input buffers.
    let rss = rss_mb();

    let n_memory: u64 = 200_000 / k;
    let (rss_tenth, rss_all) = memory_over_calls(n_memory, rss_mb).await?;

    let rounds = 10;
    let size = 16 << 20;
    let tree_pss = sample_tree_pss();
    let payload = echo_mb_per_s(&echo, modal::ByteBuf::from, rounds, size).await?;
    let holding = hold.remote(modal::ByteBuf::from(vec![7u8; size])).await? as f64 / 1024.0;
    let payload_vec = echo_mb_per_s(&echo_vec, |v| v, rounds, size).await?;
    let payload_bytes = echo_mb_per_s(&echo_bytes, modal::Bytes::from, rounds, size).await?;
    run.stop().await?;
    let tree_pss_peak = tree_pss();

    let json = format!(
        concat!(
            "{{\"system\": \"modal-rs\", \"control_plane\": \"embedded\", \"app_start_ms\": {}, \"first_call_ms\": {}, ",
            "\"call_p50_us\": {}, \"call_p99_us\": {}, \"map_inputs\": {}, \"map_throughput_per_s\": {}, ",
            "\"payload_mb_per_s\": {}, \"payload_vec_u8_mb_per_s\": {}, \"payload_bytes_mb_per_s\": {}, \"control_plane_rss_mb\": {}, ",
            "\"memory_calls\": {}, \"rss_after_tenth_of_calls_mb\": {}, \"rss_after_all_calls_mb\": {}, ",
            "\"idle_container_pss_mb\": {}, \"idle_container_uss_mb\": {}, \"container_pss_holding_16_mib_mb\": {}, \"tree_pss_peak_mb\": {}, ",
            "\"container_start_ms\": {}, \"runtime\": \"{}\"}}"
        ),
        round(app_start.as_secs_f64() * 1e3),
        round(first_call.as_secs_f64() * 1e3),
        round(percentile(&samples, 50.0)),
        round(percentile(&samples, 99.0)),
        n_map,
        round(n_map as f64 / map_secs),
        round(payload),
        round(payload_vec),
        round(payload_bytes),
        round(rss),
        n_memory,
        round(rss_tenth),
        round(rss_all),
        round(idle_pss),
        round(idle_uss),
        round(holding),
        round(tree_pss_peak),
        round(start_ms),
        runtime(),
    );
    println!("{json}");
    Ok(())
}
