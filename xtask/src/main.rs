//! `cargo xtask`: the project's automation.
//!
//! - `cargo xtask ci`: formatting, lints, tidy checks, docs and every test: what CI runs.
//! - `cargo xtask bench [--json] [--quick]`: the benchmark, one JSON line.
//! - `cargo xtask bench --gpu [--json] [--quick]`: the GPU benchmark (needs an NVIDIA GPU).
//! - `cargo xtask bench --server [--json] [--quick]`: calls, maps, spawns and payloads through a
//!   `modal server` from a client in another process.
//! - `cargo xtask bench --images [--json] [--quick]`: image builds and container starts in them.
//! - `cargo xtask bench --dashboard [--json] [--quick]`: the dashboard's pages with 1,000 apps
//!   and 100,000 calls in a `modal server`, and a printed line's way to the live log.
//! - `cargo xtask bench --slurm [--json] [--quick]`: pilot jobs through Slurm against the built-in
//!   worker: the first input's round trip with no pilot running, and a map's throughput.
//! - `cargo xtask chaos [--json] [--quick]`: the chaos suite (faults injected into real
//!   servers, workers, containers and clients): a table, then one JSON line.
//! - `cargo xtask tidy`: the repository rules alone.
//! - `cargo xtask proto`: regenerates the protocol's code in `modal-proto/generated/`.

#![allow(clippy::print_stdout, clippy::print_stderr)] // A command-line tool.

mod components;
mod images;
mod layers;
mod proto;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    // The UI tests' own build (trybuild's project) does not read the workspace's profile:
    // line tables there too, instead of 200 MB per test program.
    if std::env::var_os("CARGO_PROFILE_DEV_DEBUG").is_none() {
        c.env("CARGO_PROFILE_DEV_DEBUG", "line-tables-only");
    }
    // A CI machine builds once from clean: incremental state would only fill its small disk.
    if std::env::var_os("CI").is_some_and(|v| v == "true")
        && std::env::var_os("CARGO_INCREMENTAL").is_none()
    {
        c.env("CARGO_INCREMENTAL", "0");
    }
    c
}

fn run(step: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("\n== {step}: {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {step}"))?;
    if !status.success() {
        bail!("{step} failed ({status})");
    }
    Ok(())
}

fn ci() -> Result<()> {
    components::crun()?;
    components::chromium()?;
    let postgres = components::Postgres::start()?;
    let slurm = components::Slurm::start()?;
    run("fmt", cargo().args(["fmt", "--all", "--", "--check"]))?;
    tidy::check(&root())?;
    eprintln!("\n== tidy: ok");
    run(
        "clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    // A user's program builds the runtime without the `modal` command's features, and with or
    // without GPU support: both must stay clean.
    for features in [&[][..], &["--no-default-features"][..]] {
        run(
            "clippy (runtime as a user's program links it)",
            cargo()
                .args(["clippy", "-p", "modal-runtime", "--all-targets", "--locked"])
                .args(features)
                .args(["--", "-D", "warnings"]),
        )?;
    }
    run(
        "doc",
        cargo()
            .args(["doc", "--workspace", "--no-deps", "--locked"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    run(
        "test",
        slurm.env(postgres.env(cargo().args(["test", "--workspace", "--locked"]))),
    )?;
    // The end-to-end suite ran on the default (oci) container runtime; it must pass on the
    // process runtime too. `--workspace` keeps the features of the build above, so nothing is
    // compiled a second time.
    run(
        "test (end-to-end, process runtime)",
        slurm.env(
            cargo()
                .args(["test", "--workspace", "--test", "e2e", "--locked"])
                .env("MODAL_RUNTIME", "process"),
        ),
    )?;
    run(
        "test (runtime without GPU support)",
        slurm.env(cargo().args([
            "test",
            "-p",
            "modal-runtime",
            "--no-default-features",
            "--lib",
            "--locked",
        ])),
    )?;
    eprintln!("\nci: all checks passed");
    Ok(())
}

fn bench(args: &[String]) -> Result<()> {
    let json = args.iter().any(|a| a == "--json");
    let quick = args.iter().any(|a| a == "--quick");
    if let Some(other) = args.iter().find(|a| {
        !matches!(
            a.as_str(),
            "--json" | "--quick" | "--gpu" | "--images" | "--server" | "--slurm" | "--dashboard"
        )
    }) {
        bail!(
            "unknown bench option `{other}`; expected --gpu, --images, --server, --slurm or --dashboard, --json and/or --quick"
        );
    }
    let kinds: Vec<&String> = args
        .iter()
        .filter(|a| {
            matches!(
                a.as_str(),
                "--gpu" | "--images" | "--server" | "--slurm" | "--dashboard"
            )
        })
        .collect();
    if kinds.len() > 1 {
        bail!("choose one of --gpu, --images, --server, --slurm and --dashboard (got {kinds:?})");
    }
    let value = if args.iter().any(|a| a == "--gpu") {
        gpu_bench(json, quick)?
    } else if args.iter().any(|a| a == "--images") {
        images::bench(json, quick)?
    } else if args.iter().any(|a| a == "--server") {
        server_bench(json, quick)?
    } else if args.iter().any(|a| a == "--slurm") {
        slurm_bench(json, quick)?
    } else if args.iter().any(|a| a == "--dashboard") {
        dashboard_bench(json, quick)?
    } else {
        cpu_bench(json, quick)?
    };
    if json {
        println!("{value}");
    } else {
        println!("{}", serde_json::to_string_pretty(&value)?);
    }
    Ok(())
}

/// Builds a release binary quietly when the output is JSON.
fn build_release(json: bool, target: &[&str]) -> Result<()> {
    let mut build = cargo();
    build.args(["build", "--release", "--locked"]).args(target);
    if json {
        build.arg("--quiet");
    }
    let status = build.status().context("cannot build the benchmark")?;
    if !status.success() {
        bail!("building the benchmark failed");
    }
    Ok(())
}

/// Runs `exe` on the embedded control plane and returns its standard output.
fn run_bench(exe: &Path, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Result<String> {
    let out = run_program(exe, args, env)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `exe` on the embedded control plane; its output, or the error with what it printed.
fn run_program(
    exe: &Path,
    args: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> Result<std::process::Output> {
    let out = Command::new(exe)
        .args(args)
        .envs(env.iter().copied())
        .env_remove("MODAL_SERVER_URL")
        .output()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    if !out.status.success() {
        bail!(
            "the benchmark failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// The GPU figures: `examples/gpu_matmul` at 8192³ (4096³ with `--quick`), in a function and
/// directly in a plain process.
fn gpu_bench(json: bool, quick: bool) -> Result<serde_json::Value> {
    build_release(json, &["-p", "modal-examples", "--example", "gpu_matmul"])?;
    let exe = root().join("target/release/examples/gpu_matmul");
    let size = if quick { "4096" } else { "8192" };
    let stdout = run_bench(
        &exe,
        &["--size", size, "--iterations", "10", "--direct"],
        &[],
    )?;
    let field = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
            .map(str::trim)
            .with_context(|| format!("the GPU benchmark printed no `{key}`"))
    };
    let number = |key: &str| -> Result<f64> {
        field(key)?
            .parse()
            .with_context(|| format!("`{key}` is not a number"))
    };
    let ratio = |a: f64, b: f64| (a / b * 1000.0).round() / 1000.0;
    let (s_in, s_direct) = (
        number("sgemm tflops in function")?,
        number("sgemm tflops direct")?,
    );
    let (h_in, h_direct) = (
        number("hgemm tflops in function")?,
        number("hgemm tflops direct")?,
    );
    Ok(serde_json::json!({
        "system": "modal-rs",
        "gpu": field("device")?,
        "matmul_size": number("size")?,
        "gpu_cold_start_ms": number("gpu cold start ms")?,
        "sgemm_tflops_in_function": s_in,
        "sgemm_tflops_direct": s_direct,
        "sgemm_in_function_over_direct": ratio(s_in, s_direct),
        "hgemm_tflops_in_function": h_in,
        "hgemm_tflops_direct": h_direct,
        "hgemm_in_function_over_direct": ratio(h_in, h_direct),
        "sgemm_matches_cpu": field("sgemm matches the CPU")? == "true",
        "hgemm_matches_cpu": field("hgemm matches the CPU")? == "true",
    }))
}

/// The CPU figures: the `bench` program's JSON line.
fn cpu_bench(json: bool, quick: bool) -> Result<serde_json::Value> {
    build_release(json, &["-p", "modal-tests", "--bin", "bench"])?;
    let exe = root().join("target/release/bench");
    let args: &[&str] = if quick { &["--quick"] } else { &[] };
    // The default container runtime where it works (oci), and the process runtime's starts.
    let mut value = json_line(&run_bench(&exe, args, &[])?)?;
    let mut starts_args = args.to_vec();
    starts_args.push("--container-starts");
    let process = json_line(&run_bench(
        &exe,
        &starts_args,
        &[("MODAL_RUNTIME", std::ffi::OsStr::new("process"))],
    )?)?;
    let server = server_memory(json, quick, &exe)?;
    if let Some(all) = value.as_object_mut() {
        all.insert(
            "container_start_ms_process".into(),
            process["container_start_ms"].clone(),
        );
        if let Some(more) = server.as_object() {
            all.extend(more.clone());
        }
    }
    Ok(value)
}

fn json_line(stdout: &str) -> Result<serde_json::Value> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("the benchmark printed no JSON")?;
    serde_json::from_str(line).context("the benchmark's JSON does not parse")
}

/// A `modal server` (release build) in a fresh directory, killed when dropped.
struct BenchServer {
    child: std::process::Child,
    dir: PathBuf,
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        // SIGTERM first: a server with pilot jobs cancels them as it stops.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The figures a user of `modal server` sees: calls, a map, spawns read back, payloads, from a
/// client in another process (the benchmark's `--server-figures` mode).
fn server_bench(json: bool, quick: bool) -> Result<serde_json::Value> {
    build_release(json, &["-p", "modal-tests", "--bin", "bench"])?;
    let exe = root().join("target/release/bench");
    let mut value = with_bench_server(json, |_, config| {
        let mut args = vec!["--server-figures"];
        if quick {
            args.push("--quick");
        }
        json_line(&run_bench(
            &exe,
            &args,
            &[("MODAL_CONFIG_PATH", config.as_os_str())],
        )?)
    })?;
    if let Some(all) = value.as_object_mut() {
        all.insert("system".into(), "modal-rs".into());
        all.insert("control_plane".into(), "modal server".into());
    }
    Ok(value)
}

/// Pilot jobs against a built-in worker: the first input's round trip with no pilot running
/// (a `modal server --backend slurm --no-worker` started for each sample, so each starts a
/// pilot job), and a map's throughput through a warm pilot against the built-in worker's.
fn slurm_bench(json: bool, quick: bool) -> Result<serde_json::Value> {
    build_release(json, &["-p", "modal-tests", "--bin", "bench"])?;
    let exe = root().join("target/release/bench");
    let slurm = components::Slurm::start()?;
    if !slurm.is_there() {
        bail!("the Slurm benchmark needs a Slurm cluster: .ci/slurm.sh could not start one");
    }
    let figures = |server_args: &[&str]| -> Result<serde_json::Value> {
        with_bench_server_args(json, server_args, &slurm, |_, config| {
            let mut args = vec!["--slurm-figures"];
            if quick {
                args.push("--quick");
            }
            let mut env: Vec<(&str, &std::ffi::OsStr)> =
                vec![("MODAL_CONFIG_PATH", config.as_os_str())];
            let vars = slurm.vars();
            env.extend(
                vars.iter()
                    .map(|(k, v)| (k.as_str(), std::ffi::OsStr::new(v))),
            );
            json_line(&run_bench(&exe, &args, &env)?)
        })
    };
    let number = |v: &serde_json::Value, key: &str| -> Result<f64> {
        v[key]
            .as_f64()
            .with_context(|| format!("the benchmark printed no {key}: {v}"))
    };
    let local = figures(&[])?;
    let samples = if quick { 1 } else { 3 };
    let mut firsts = Vec::new();
    let mut maps = Vec::new();
    for _ in 0..samples {
        let pilot = figures(&["--no-worker", "--backend", "slurm"])?;
        firsts.push(number(&pilot, "first_result_ms")?);
        maps.push(number(&pilot, "map_throughput_per_s")?);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let local_map = number(&local, "map_throughput_per_s")?;
    let pilot_map = median(&mut maps);
    Ok(serde_json::json!({
        "system": "modal-rs",
        "control_plane": "modal server --backend slurm --no-worker",
        "samples": samples,
        "slurm_first_result_ms": median(&mut firsts),
        "slurm_first_result_ms_all": firsts,
        "local_first_result_ms": number(&local, "first_result_ms")?,
        "map_inputs": number(&local, "map_inputs")?,
        "slurm_map_throughput_per_s": pilot_map,
        "local_map_throughput_per_s": local_map,
        "slurm_map_vs_local": (pilot_map / local_map * 100.0).round() / 100.0,
    }))
}

/// The dashboard's pages with 1,000 apps and 100,000 spawned calls in a `modal server` (100 and
/// 10,000 with `--quick`), and a printed line's way to the live log.
fn dashboard_bench(json: bool, quick: bool) -> Result<serde_json::Value> {
    build_release(json, &["-p", "modal-tests", "--bin", "bench_dashboard"])?;
    let exe = root().join("target/release/bench_dashboard");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut value = with_bench_server_args(
        json,
        &["--dashboard-listen", &listen],
        &components::Slurm::absent(),
        |_, config| {
            let text = std::fs::read_to_string(config)?;
            let value = |key: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(&format!("{key} = ")))
                    .map(|v| v.trim_matches('"').to_owned())
                    .unwrap_or_default()
            };
            let (apps, calls) = if quick {
                ("100", "10000")
            } else {
                ("1000", "100000")
            };
            let base = format!("http://{listen}");
            let url = value("server_url");
            let id = value("token_id");
            let secret = value("token_secret");
            let env = [
                ("MODAL_CONFIG_PATH", config.as_os_str()),
                ("BENCH_SERVER_URL", std::ffi::OsStr::new(&url)),
                ("BENCH_TOKEN_ID", std::ffi::OsStr::new(&id)),
                ("BENCH_TOKEN_SECRET", std::ffi::OsStr::new(&secret)),
                ("BENCH_DASHBOARD", std::ffi::OsStr::new(&base)),
            ];
            json_line(&run_bench(&exe, &["--apps", apps, "--calls", calls], &env)?)
        },
    )?;
    if let Some(all) = value.as_object_mut() {
        all.insert("system".into(), "modal-rs".into());
        all.insert("control_plane".into(), "modal server".into());
    }
    Ok(value)
}

/// The server's memory over many calls through it: the benchmark's `--server-memory` mode.
fn server_memory(json: bool, quick: bool, bench: &Path) -> Result<serde_json::Value> {
    with_bench_server(json, |pid, config| {
        let pid = pid.to_string();
        let mut args = vec!["--server-memory", pid.as_str()];
        if quick {
            args.push("--quick");
        }
        json_line(&run_bench(
            bench,
            &args,
            &[("MODAL_CONFIG_PATH", config.as_os_str())],
        )?)
    })
}

/// Runs `f(server pid, config file)` against a `modal server` (release build, built-in worker,
/// fresh data directory) with a token made the way a user makes the first one.
fn with_bench_server<T>(json: bool, f: impl FnOnce(u32, &Path) -> Result<T>) -> Result<T> {
    with_bench_server_args(json, &[], &components::Slurm::absent(), f)
}

/// Like [`with_bench_server`], with more `modal server` arguments and the Slurm cluster's
/// variables; the server is stopped with SIGTERM (it cancels its pilot jobs).
fn with_bench_server_args<T>(
    json: bool,
    server_args: &[&str],
    slurm: &components::Slurm,
    f: impl FnOnce(u32, &Path) -> Result<T>,
) -> Result<T> {
    build_release(
        json,
        &["-p", "modal-runtime", "--features", "cli", "--bin", "modal"],
    )?;
    let modal = root().join("target/release/modal");
    let dir = std::env::temp_dir().join(format!(
        "modal-bench-server-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = Command::new(&modal);
    server
        .args([
            "server",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.join("data"))
        .args(server_args);
    let child = slurm
        .env(&mut server)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("cannot start modal server")?;
    let server = BenchServer { child, dir };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if std::time::Instant::now() > deadline {
            bail!("modal server did not listen on {port}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let config = server.dir.join("config.toml");
    let token = Command::new(&modal)
        .args(["token", "new", "--server", &url, "--data-dir"])
        .arg(server.dir.join("data"))
        .env("MODAL_CONFIG_PATH", &config)
        .output()?;
    if !token.status.success() {
        bail!(
            "modal token new failed: {}",
            String::from_utf8_lossy(&token.stderr)
        );
    }
    f(server.child.id(), &config)
}

/// Builds the test programs and runs the chaos suite (`tests/src/chaos/`), which prints its
/// table and JSON line itself and fails when a zero column is not zero.
fn chaos(args: &[String]) -> Result<()> {
    if let Some(other) = args
        .iter()
        .find(|a| !matches!(a.as_str(), "--json" | "--quick"))
    {
        bail!("unknown chaos option `{other}`; expected --json and/or --quick");
    }
    let mut build = cargo();
    build.args(["build", "--locked", "-p", "modal-tests", "--bins"]);
    if args.iter().any(|a| a == "--json") {
        build.arg("--quiet");
    }
    let status = build.status().context("cannot build the chaos suite")?;
    if !status.success() {
        bail!("building the chaos suite failed");
    }
    components::crun()?;
    let postgres = components::Postgres::start()?;
    run(
        "chaos",
        postgres.env(Command::new(root().join("target/debug/chaos_suite")).args(args)),
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench(&args[1..]),
        Some("chaos") => chaos(&args[1..]),
        Some("tidy") => tidy::check(&root()).map(|()| eprintln!("tidy: ok")),
        Some("proto") => proto::write(&root()).map(|()| eprintln!("wrote {}", proto::GENERATED)),
        _ => {
            eprintln!(
                "usage: cargo xtask ci | bench [--gpu|--server|--images|--slurm|--dashboard] [--json] [--quick] | chaos [--json] [--quick] | tidy | proto"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
