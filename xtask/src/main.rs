//! `cargo xtask`: the project's automation.
//!
//! - `cargo xtask ci`: formatting, lints, tidy checks, docs and every test: what CI runs.
//! - `cargo xtask bench [--json] [--quick]`: the benchmark, one JSON line.
//! - `cargo xtask tidy`: the repository rules alone.

#![allow(clippy::print_stdout, clippy::print_stderr)] // A command-line tool.

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
    run(
        "doc",
        cargo()
            .args(["doc", "--workspace", "--no-deps", "--locked"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    run("test", cargo().args(["test", "--workspace", "--locked"]))?;
    eprintln!("\nci: all checks passed");
    Ok(())
}

fn bench(args: &[String]) -> Result<()> {
    let json = args.iter().any(|a| a == "--json");
    let quick = args.iter().any(|a| a == "--quick");
    if let Some(other) = args
        .iter()
        .find(|a| !matches!(a.as_str(), "--json" | "--quick"))
    {
        bail!("unknown bench option `{other}`; expected --json and/or --quick");
    }
    let mut build = cargo();
    build.args([
        "build",
        "--release",
        "--locked",
        "-p",
        "modal-tests",
        "--bin",
        "bench",
    ]);
    if json {
        build.arg("--quiet");
    }
    let status = build.status().context("cannot build the benchmark")?;
    if !status.success() {
        bail!("building the benchmark failed");
    }
    let exe = root().join("target/release/bench");
    let mut cmd = Command::new(&exe);
    if quick {
        cmd.arg("--quick");
    }
    cmd.env_remove("MODAL_SERVER_URL");
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    if !out.status.success() {
        bail!(
            "the benchmark failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("the benchmark printed no JSON")?;
    let value: serde_json::Value =
        serde_json::from_str(line).context("the benchmark's JSON does not parse")?;
    if json {
        println!("{value}");
    } else {
        println!("{}", serde_json::to_string_pretty(&value)?);
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench(&args[1..]),
        Some("tidy") => tidy::check(&root()).map(|()| eprintln!("tidy: ok")),
        _ => {
            eprintln!("usage: cargo xtask ci | bench [--json] [--quick] | tidy");
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
