//! The app of the isolation tests (`tests/walls.rs`): functions that look around their
//! container, use too much memory or CPU, dial the host, or look up other functions. Each
//! entrypoint prints `key: value` lines.

use std::io::Read;
use std::time::{Duration, Instant};

modal::app!(APP = modal::App::new("walls"));
modal::app!(HOLDER = modal::App::new("walls-holder"));

/// Holds a container of another app open, with a secret in its environment.
#[modal::function(app = HOLDER, env = [("HOLDER_SECRET", "holder-secret-value")], timeout = 120)]
fn hold(secs: u64) -> u64 {
    std::thread::sleep(Duration::from_secs(secs));
    secs
}

/// What a container sees: the processes, whether another's environment names `secret`,
/// whether `host_home` can be listed, and where it can write.
#[modal::function(app = APP)]
fn peek(secret: String, host_home: String) -> Vec<(String, String)> {
    let mut pids = Vec::new();
    let mut others_secret = false;
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            if let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() {
                pids.push(pid);
                let mut environ = Vec::new();
                if std::fs::File::open(format!("/proc/{pid}/environ"))
                    .and_then(|mut f| f.read_to_end(&mut environ))
                    .is_ok()
                    && String::from_utf8_lossy(&environ).contains(&secret)
                {
                    others_secret = true;
                }
            }
        }
    }
    let writes = |path: &str| std::fs::write(path, b"x").is_ok();
    vec![
        ("processes".into(), pids.len().to_string()),
        ("sees secret".into(), others_secret.to_string()),
        (
            "host home listed".into(),
            std::fs::read_dir(&host_home).is_ok().to_string(),
        ),
        ("home".into(), std::env::var("HOME").unwrap_or_default()),
        ("writes /tmp".into(), writes("/tmp/walls-probe").to_string()),
        ("writes /etc".into(), writes("/etc/walls-probe").to_string()),
        ("writes /usr".into(), writes("/usr/walls-probe").to_string()),
        (
            "writes cgroups".into(),
            // A new cgroup or a changed limit (v2: at the top; v1: under a controller).
            if std::fs::metadata("/sys/fs/cgroup/cgroup.controllers").is_ok() {
                std::fs::create_dir("/sys/fs/cgroup/walls-probe").is_ok()
                    || writes("/sys/fs/cgroup/memory.max")
            } else {
                std::fs::create_dir("/sys/fs/cgroup/memory/walls-probe").is_ok()
                    || writes("/sys/fs/cgroup/memory/memory.limit_in_bytes")
            }
            .to_string(),
        ),
        (
            "new user namespace".into(),
            std::process::Command::new("unshare")
                .args(["--user", "true"])
                .status()
                .is_ok_and(|s| s.success())
                .to_string(),
        ),
    ]
}

/// Touches `mb` MiB under a 256 MiB limit, noting each run in the run log first.
#[modal::function(app = APP, memory = (128, 256), retries = modal::Retries::new(1).initial_delay(Duration::from_millis(100)))]
fn hog(mb: usize, log: String, dir: String) -> usize {
    let _ = modal_tests::runlog::append(&log, &dir, "hog");
    let v = vec![1u8; mb << 20];
    std::hint::black_box(&v);
    v.len() >> 20
}

/// Spins two threads for `ms` milliseconds under half a core; returns the CPU time it got per
/// second of wall time, and the CPUs the program sees it may use.
#[modal::function(app = APP, cpu = (0.5, 0.5))]
fn spin(ms: u64) -> (f64, usize) {
    let start = Instant::now();
    let cpu_before = cpu_seconds();
    let spinners: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(move || {
                let mut x = 0u64;
                while start.elapsed() < Duration::from_millis(ms) {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            })
        })
        .collect();
    for s in spinners {
        let _ = s.join();
    }
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    (
        (cpu_seconds() - cpu_before) / start.elapsed().as_secs_f64(),
        cpus,
    )
}

/// This process's CPU time (user and system), from `/proc/self/stat`.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 (11 and 12 after the command); 100 ticks a second.
    (ticks(11) + ticks(12)) / 100.0
}

/// Writes `mb` MiB to `/tmp`, whose size is 64 MiB, in files of 16 MiB: what the writes said.
#[modal::function(app = APP, ephemeral_disk = 64)]
fn fill(mb: usize) -> String {
    for i in 0..mb.div_ceil(16) {
        let size = (mb - 16 * i).min(16) << 20;
        if let Err(e) = std::fs::write(format!("/tmp/fill-{i}"), vec![7u8; size]) {
            return e.to_string();
        }
    }
    "written".into()
}

/// Writes one file of `mb` MiB to `/tmp` (64 MiB): what the write said.
#[modal::function(app = APP, ephemeral_disk = 64)]
fn grow(mb: usize) -> String {
    match std::fs::write("/tmp/grow", vec![7u8; mb << 20]) {
        Ok(()) => "written".into(),
        Err(e) => e.to_string(),
    }
}

/// Connects to `addr` on the host's loopback, with no network of its own.
#[modal::function(app = APP, block_network = true)]
fn dial_blocked(addr: String) -> Result<String, String> {
    dial(&addr)
}

/// Connects to `addr` on the host's loopback, on the host's network.
#[modal::function(app = APP)]
fn dial_open(addr: String) -> Result<String, String> {
    dial(&addr)
}

fn dial(addr: &str) -> Result<String, String> {
    let addr: std::net::SocketAddr = addr.parse().map_err(|e| format!("{e}"))?;
    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map(|_| "connected".to_owned())
        .map_err(|e| e.to_string())
}

/// Looks up another function of its own app by name, from a container whose token is
/// restricted.
#[modal::function(app = APP, restrict_modal_access = true)]
async fn look_up() -> Result<String, String> {
    let f: modal::Function<(String,), String> = modal::Function::from_name("walls", "dial_open");
    match f.remote("127.0.0.1:9".into()).await {
        Ok(_) => Ok("called".into()),
        Err(e) => Err(e.to_string()),
    }
}

#[modal::local_entrypoint(app = HOLDER)]
async fn holder(secs: u64) -> modal::Result<()> {
    println!("app: {}", HOLDER.app_id().unwrap_or_default());
    println!("held: {}", hold.remote(secs).await?);
    Ok(())
}

#[modal::local_entrypoint(app = APP)]
async fn look(secret: String, host_home: String) -> modal::Result<()> {
    for (k, v) in peek.remote(secret, host_home).await? {
        println!("{k}: {v}");
    }
    Ok(())
}

#[modal::local_entrypoint(app = APP)]
async fn oom() -> modal::Result<()> {
    let dir = std::env::temp_dir().join(format!("modal-walls-oom-{}", std::process::id()));
    let log = std::fs::create_dir_all(&dir)
        .and_then(|()| modal_tests::runlog::RunLog::start())
        .map_err(|e| modal::Error::Other(format!("cannot start the run log: {e}")))?;
    let d = dir.to_string_lossy().into_owned();
    match hog.remote(512, log.addr(), d.clone()).await {
        Ok(mb) => println!("hog: allocated {mb} MiB"),
        Err(e) => {
            println!("hog kind: {:?}", e.failure_kind());
            println!("hog error: {e}");
        }
    }
    let runs = std::fs::read_to_string(dir.join("runs.log")).unwrap_or_default();
    println!("hog runs: {}", runs.lines().count());
    // The worker and the app's other containers are unaffected.
    let small = hog.remote(16, log.addr(), d).await;
    let _ = std::fs::remove_dir_all(&dir);
    println!("small hog: {}", small?);
    Ok(())
}

#[modal::local_entrypoint(app = APP)]
async fn disk() -> modal::Result<()> {
    println!("small: {}", fill.remote(16).await?);
    println!("large: {}", fill.remote(100).await?);
    println!("one file: {}", grow.remote(100).await?);
    Ok(())
}

#[modal::local_entrypoint(app = APP)]
async fn cpu() -> modal::Result<()> {
    let (cores, cpus) = spin.remote(2000).await?;
    println!("cores: {cores:.2}");
    println!("cpus: {cpus}");
    Ok(())
}

#[modal::local_entrypoint(app = APP)]
async fn network(addr: String) -> modal::Result<()> {
    let show = |r: modal::Result<String>| r.unwrap_or_else(|e| format!("refused: {e}"));
    println!("blocked: {}", show(dial_blocked.remote(addr.clone()).await));
    println!("open: {}", show(dial_open.remote(addr).await));
    Ok(())
}

#[modal::local_entrypoint(app = APP)]
async fn restricted() -> modal::Result<()> {
    match look_up.remote().await {
        Ok(v) => println!("lookup: {v}"),
        Err(e) => println!("lookup refused: {e}"),
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    modal::main()
}
