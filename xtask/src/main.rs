//! `cargo xtask`: the project's automation.
//!
//! - `cargo xtask ci`: formatting, lints, tidy checks, docs and every test: what CI runs.
//! - `cargo xtask bench [--json] [--quick]`: the benchmark, one JSON line.
//! - `cargo xtask bench --gpu [--json] [--quick]`: the GPU benchmark (needs an NVIDIA GPU).
//! - `cargo xtask chaos [--json] [--quick]`: the chaos suite (faults injected into real
//!   servers, workers, containers and clients): a table, then one JSON line.
//! - `cargo xtask tidy`: the repository rules alone.
//! - `cargo xtask proto`: regenerates the protocol's code in `modal-proto/generated/`.

#![allow(clippy::print_stdout, clippy::print_stderr)] // A command-line tool.

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
    run("test", cargo().args(["test", "--workspace", "--locked"]))?;
    run(
        "test (runtime without GPU support)",
        cargo().args([
            "test",
            "-p",
            "modal-runtime",
            "--no-default-features",
            "--lib",
            "--locked",
        ]),
    )?;
    eprintln!("\nci: all checks passed");
    Ok(())
}

fn bench(args: &[String]) -> Result<()> {
    let json = args.iter().any(|a| a == "--json");
    let quick = args.iter().any(|a| a == "--quick");
    if let Some(other) = args
        .iter()
        .find(|a| !matches!(a.as_str(), "--json" | "--quick" | "--gpu"))
    {
        bail!("unknown bench option `{other}`; expected --gpu, --json and/or --quick");
    }
    let value = if args.iter().any(|a| a == "--gpu") {
        gpu_bench(json, quick)?
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
fn run_bench(exe: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(exe)
        .args(args)
        .env_remove("MODAL_SERVER_URL")
        .output()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    if !out.status.success() {
        bail!(
            "the benchmark failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The GPU figures: `examples/gpu_matmul` at 8192³ (4096³ with `--quick`), in a function and
/// directly in a plain process.
fn gpu_bench(json: bool, quick: bool) -> Result<serde_json::Value> {
    build_release(json, &["-p", "modal-examples", "--example", "gpu_matmul"])?;
    let exe = root().join("target/release/examples/gpu_matmul");
    let size = if quick { "4096" } else { "8192" };
    let stdout = run_bench(&exe, &["--size", size, "--iterations", "10", "--direct"])?;
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
    let stdout = run_bench(&exe, args)?;
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("the benchmark printed no JSON")?;
    serde_json::from_str(line).context("the benchmark's JSON does not parse")
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
    run(
        "chaos",
        Command::new(root().join("target/debug/chaos_suite")).args(args),
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
                "usage: cargo xtask ci | bench [--gpu] [--json] [--quick] | chaos [--json] [--quick] | tidy | proto"
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
