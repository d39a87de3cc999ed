//! The program's command line: container mode first, then `run [NAME] [--flags]` (the default),
//! `deploy` and `--help`, with entrypoint parameters as flags.

#![allow(clippy::print_stdout, clippy::print_stderr)] // The CLI's own messages.

pub(crate) mod args;
#[cfg(feature = "cli")]
pub(crate) mod command;

use std::future::Future;
use std::process::{ExitCode, Termination};

use clap::{Arg, ArgAction, ArgGroup};

use crate::registry::{
    self, EntrypointArgs, EntrypointRegistration, FunctionRegistration, ParamKind,
};

/// What the command line asked for.
#[derive(Debug, PartialEq, Eq)]
enum Invocation {
    Run {
        name: Option<String>,
        rest: Vec<String>,
        detach: bool,
    },
    Deploy(Vec<String>),
    Help,
}

/// `deploy`'s flags.
#[derive(clap::Parser, Debug)]
#[command(
    name = "deploy",
    no_binary_name = true,
    about = "Deploy the app to the control plane at MODAL_SERVER_URL"
)]
struct DeployArgs {
    /// Which app of this program (needed when it declares several).
    app: Option<String>,
    /// Deploy under this name instead of the app's.
    #[arg(long)]
    name: Option<String>,
    /// Metadata of this deployment.
    #[arg(long, default_value = "")]
    tag: String,
    /// Environment.
    #[arg(short = 'e', long = "env")]
    env: Option<String>,
    /// rolling (default) or recreate.
    #[arg(long, default_value = "rolling")]
    strategy: String,
}

fn parse_invocation(args: &[String]) -> Invocation {
    match args.first().map(String::as_str) {
        Some("-h" | "--help" | "help") => Invocation::Help,
        Some("deploy") => Invocation::Deploy(args[1..].to_vec()),
        Some("run") => {
            let mut rest = &args[1..];
            let detach = matches!(rest.first().map(String::as_str), Some("--detach" | "-d"));
            if detach {
                rest = &rest[1..];
            }
            match rest.first() {
                Some(n) if !n.starts_with('-') => Invocation::Run {
                    name: Some(n.clone()),
                    rest: rest[1..].to_vec(),
                    detach,
                },
                _ => Invocation::Run {
                    name: None,
                    rest: rest.to_vec(),
                    detach,
                },
            }
        }
        _ => Invocation::Run {
            name: None,
            rest: args.to_vec(),
            detach: false,
        },
    }
}

/// The program's `main`: runs the container when the worker started this binary; otherwise
/// parses the command line and runs the selected entrypoint (or function) as an ephemeral app.
///
/// `#[modal::local_entrypoint]` on a function named `main` generates a `main` that calls this;
/// call it yourself from `main` when your entrypoints have other names.
pub fn main() -> ExitCode {
    if let Some(code) = crate::container::run_if_container() {
        return code;
    }
    crate::telemetry::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let invocation = parse_invocation(&args);
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    let code = match invocation {
        Invocation::Help => {
            print!("{}", help());
            ExitCode::SUCCESS
        }
        Invocation::Deploy(rest) => runtime.block_on(deploy(&rest)),
        Invocation::Run { name, rest, detach } => {
            runtime.block_on(run(name.as_deref(), &rest, detach))
        }
    };
    crate::payloads::discard_hosted();
    code
}

/// `main` for programs that run apps themselves (`#[modal::main]` generates the call): runs the
/// container when the worker started this binary, otherwise `body` on a tokio runtime.
#[doc(hidden)]
pub fn main_with<F, Fut, T>(body: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = T>,
    T: Termination,
{
    if let Some(code) = crate::container::run_if_container() {
        return code;
    }
    crate::telemetry::init();
    let code = match runtime() {
        Some(rt) => rt.block_on(body()).report(),
        None => ExitCode::FAILURE,
    };
    crate::payloads::discard_hosted();
    code
}

enum Target {
    Entrypoint(&'static EntrypointRegistration),
    Function(&'static crate::app::App, &'static FunctionRegistration),
}

fn all_functions() -> Vec<(&'static crate::app::App, &'static FunctionRegistration)> {
    let mut out = Vec::new();
    for app in registry::apps() {
        if let Ok(fs) = registry::functions_of(app) {
            out.extend(
                fs.into_iter()
                    .filter(|f| std::ptr::eq((f.app)(), app))
                    .map(|f| (app, f)),
            );
        }
    }
    out
}

/// Modal's selection: an exact name, entrypoints before functions; without a name, the only
/// entrypoint, else the one called `main`, else the only function.
fn select(name: Option<&str>) -> Result<Target, String> {
    let entrypoints = registry::entrypoints();
    let functions = all_functions();
    let listing = || {
        let mut names: Vec<String> = entrypoints
            .iter()
            .map(|e| format!("{} (entrypoint)", e.name))
            .collect();
        names.extend(
            functions
                .iter()
                .map(|(_, f)| format!("{} (function)", f.tag)),
        );
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    };
    let mut dup = entrypoints.windows(2).filter(|w| w[0].name == w[1].name);
    if let Some(w) = dup.next() {
        return Err(format!(
            "two local entrypoints are named `{}`; entrypoint names must be unique",
            w[0].name
        ));
    }
    match name {
        Some(n) => {
            if let Some(e) = entrypoints.iter().find(|e| e.name == n) {
                return Ok(Target::Entrypoint(e));
            }
            if let Some((app, f)) = functions.iter().find(|(_, f)| f.tag == n) {
                return Ok(Target::Function(app, f));
            }
            Err(format!(
                "nothing named `{n}` to run; available: {}",
                listing()
            ))
        }
        None => {
            if entrypoints.len() == 1 {
                return Ok(Target::Entrypoint(entrypoints[0]));
            }
            if let Some(e) = entrypoints.iter().find(|e| e.name == "main") {
                return Ok(Target::Entrypoint(e));
            }
            if entrypoints.is_empty() && functions.len() == 1 {
                return Ok(Target::Function(functions[0].0, functions[0].1));
            }
            Err(format!(
                "choose what to run with `run NAME`; available: {}",
                listing()
            ))
        }
    }
}

fn flag(name: &str) -> String {
    name.replace('_', "-")
}

fn command(name: &str, params: &[registry::ParamSpec]) -> clap::Command {
    let mut cmd = clap::Command::new(name.to_owned())
        .no_binary_name(true)
        .disable_version_flag(true);
    for p in params {
        let long = flag(p.name);
        match p.kind {
            ParamKind::Value => {
                cmd = cmd.arg(
                    Arg::new(p.name)
                        .long(long)
                        .value_name(p.value_hint)
                        .required(p.required)
                        .num_args(1)
                        .allow_hyphen_values(true),
                );
            }
            ParamKind::Flag => {
                let no_id = format!("no-{}", p.name);
                cmd = cmd
                    .arg(
                        Arg::new(p.name)
                            .long(long.clone())
                            .action(ArgAction::SetTrue)
                            .overrides_with(no_id.clone()),
                    )
                    .arg(
                        Arg::new(no_id.clone())
                            .long(format!("no-{long}"))
                            .action(ArgAction::SetTrue)
                            .overrides_with(p.name),
                    )
                    .group(
                        ArgGroup::new(format!("{}-flag", p.name))
                            .args([p.name.to_owned(), no_id])
                            .required(p.required),
                    );
            }
        }
    }
    cmd
}

/// Parses an entrypoint's flags into values by parameter name.
fn parse_flags(
    name: &str,
    params: &[registry::ParamSpec],
    args: &[String],
) -> Result<EntrypointArgs, clap::Error> {
    let matches = command(name, params).try_get_matches_from(args)?;
    let mut out = EntrypointArgs::new();
    for p in params {
        match p.kind {
            ParamKind::Value => {
                if let Some(v) = matches.get_one::<String>(p.name) {
                    out.insert(p.name, v.clone());
                }
            }
            ParamKind::Flag => {
                if matches.get_flag(p.name) {
                    out.insert(p.name, "true".into());
                } else if matches.get_flag(&format!("no-{}", p.name)) {
                    out.insert(p.name, "false".into());
                }
            }
        }
    }
    Ok(out)
}

async fn deploy(rest: &[String]) -> ExitCode {
    use clap::Parser;
    let args = match DeployArgs::try_parse_from(rest) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(2);
        }
    };
    let strategy = match args.strategy.parse::<crate::client::Strategy>() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(2);
        }
    };
    let functions = all_functions();
    let with_functions: Vec<&'static crate::app::App> = registry::apps()
        .filter(|a| functions.iter().any(|(home, _)| std::ptr::eq(*home, *a)))
        .collect();
    let app = match &args.app {
        Some(n) => registry::apps().find(|a| a.name() == n),
        None if with_functions.len() == 1 => with_functions.first().copied(),
        None => None,
    };
    let Some(app) = app else {
        let names: Vec<&str> = registry::apps().map(crate::app::App::name).collect();
        eprintln!(
            "Error: choose the app to deploy: `deploy APP` (apps: {})",
            names.join(", ")
        );
        return ExitCode::from(2);
    };
    let started = std::time::Instant::now();
    let mut builder = app.deploy().tag(args.tag).strategy(strategy);
    if let Some(n) = args.name {
        builder = builder.name(n);
    }
    if let Some(e) = args.env {
        builder = builder.environment_name(e);
    }
    match builder.await {
        Ok(d) => {
            eprintln!(
                "✓ App deployed in {:.3}s! 🎉 `{}` is {} at version v{}.",
                started.elapsed().as_secs_f64(),
                d.name,
                d.app_id,
                d.version
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(name: Option<&str>, rest: &[String], detach: bool) -> ExitCode {
    let target = match select(name) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(2);
        }
    };
    match target {
        Target::Entrypoint(ep) => run_entrypoint(ep, rest, detach).await,
        Target::Function(app, f) => run_function(app, f, rest, detach).await,
    }
}

async fn run_entrypoint(
    ep: &'static EntrypointRegistration,
    rest: &[String],
    detach: bool,
) -> ExitCode {
    let args = match parse_flags(ep.name, ep.params, rest) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(2);
        }
    };
    let body = match (ep.run)(&args) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(2);
        }
    };
    let app = (ep.app)();
    let run = match app.run().detach(detach).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match body.await {
        Ok(()) if detach => {
            run.leave_running();
            ExitCode::SUCCESS
        }
        Ok(()) => match run.stop().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("Error: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            let text = e.to_string();
            let _ = run.fail(&text).await;
            eprintln!("Error: {text}");
            if let Some(bt) = e.remote().and_then(|r| r.backtrace.as_deref()) {
                eprintln!("Remote backtrace:\n{bt}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Runs a function that takes no arguments as the entrypoint and prints its result.
async fn run_function(
    app: &'static crate::app::App,
    f: &'static FunctionRegistration,
    rest: &[String],
    detach: bool,
) -> ExitCode {
    if !rest.is_empty() {
        eprintln!(
            "Error: `{}` is run without flags; functions with arguments are called from a `#[modal::local_entrypoint]`",
            f.tag
        );
        return ExitCode::from(2);
    }
    if !(f.spec)().takes_arguments {
        let run = match app.run().detach(detach).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("Error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let handle = crate::client::Function::<(), ()>::__new(f);
        let result = handle.remote_raw(()).await;
        return match result {
            Ok(value) => {
                if let Some(describe) = (f.describe_result)() {
                    println!("{}", describe(&value));
                }
                if detach {
                    run.leave_running();
                } else {
                    let _ = run.stop().await;
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                let text = e.to_string();
                let _ = run.fail(&text).await;
                eprintln!("Error: {text}");
                ExitCode::FAILURE
            }
        };
    }
    eprintln!(
        "Error: `{}` takes arguments; call it from a `#[modal::local_entrypoint]` (functions run from the command line take none)",
        f.tag
    );
    ExitCode::from(2)
}

fn help() -> String {
    let exe = std::env::args().next().unwrap_or_else(|| "program".into());
    let mut text = format!(
        "Usage: {exe} [run [NAME]] [--FLAGS]   run an entrypoint (or a function without arguments) as an ephemeral app\n       {exe} deploy                   deploy the app (needs a standalone control plane)\n\n"
    );
    let entrypoints = registry::entrypoints();
    if !entrypoints.is_empty() {
        text.push_str("Entrypoints:\n");
        for e in entrypoints {
            let flags: Vec<String> = e
                .params
                .iter()
                .map(|p| {
                    let f = flag(p.name);
                    let s = match p.kind {
                        ParamKind::Value => format!("--{f} {}", p.value_hint),
                        ParamKind::Flag => format!("--{f}/--no-{f}"),
                    };
                    if p.required { s } else { format!("[{s}]") }
                })
                .collect();
            text.push_str(&format!("  {} {}\n", e.name, flags.join(" ")));
        }
    }
    let functions = all_functions();
    if !functions.is_empty() {
        text.push_str("Functions:\n");
        for (app, f) in functions {
            text.push_str(&format!("  {} (app {})\n", f.tag, app.name()));
        }
    }
    text
}

/// The multi-threaded runtime a program's command line runs on (`None`, said on stderr, when it
/// cannot start).
pub(crate) fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use registry::ParamSpec;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn invocation() {
        let run = |name: Option<&str>, rest: &[&str], detach: bool| Invocation::Run {
            name: name.map(str::to_owned),
            rest: s(rest),
            detach,
        };
        assert_eq!(parse_invocation(&s(&[])), run(None, &[], false));
        assert_eq!(
            parse_invocation(&s(&["--n", "3"])),
            run(None, &["--n", "3"], false)
        );
        assert_eq!(
            parse_invocation(&s(&["run", "other", "--x"])),
            run(Some("other"), &["--x"], false)
        );
        assert_eq!(
            parse_invocation(&s(&["run", "--x"])),
            run(None, &["--x"], false)
        );
        assert_eq!(
            parse_invocation(&s(&["run", "--detach", "job", "--x"])),
            run(Some("job"), &["--x"], true)
        );
        assert_eq!(
            parse_invocation(&s(&["deploy", "--tag", "v1"])),
            Invocation::Deploy(s(&["--tag", "v1"]))
        );
        assert_eq!(parse_invocation(&s(&["--help"])), Invocation::Help);
    }

    const PARAMS: &[ParamSpec] = &[
        ParamSpec {
            name: "max_count",
            kind: ParamKind::Value,
            required: true,
            value_hint: "INTEGER",
        },
        ParamSpec {
            name: "verbose",
            kind: ParamKind::Flag,
            required: true,
            value_hint: "",
        },
        ParamSpec {
            name: "label",
            kind: ParamKind::Value,
            required: false,
            value_hint: "TEXT",
        },
        ParamSpec {
            name: "dry_run",
            kind: ParamKind::Flag,
            required: false,
            value_hint: "",
        },
    ];

    #[test]
    fn flags() {
        let a = parse_flags("main", PARAMS, &s(&["--max-count", "-5", "--verbose"])).unwrap();
        assert_eq!(a.get("max_count").map(String::as_str), Some("-5"));
        assert_eq!(a.get("verbose").map(String::as_str), Some("true"));
        assert_eq!(a.get("label"), None);
        assert_eq!(a.get("dry_run"), None);
        let a = parse_flags(
            "main",
            PARAMS,
            &s(&[
                "--max-count",
                "1",
                "--no-verbose",
                "--dry-run",
                "--label",
                "x",
            ]),
        )
        .unwrap();
        assert_eq!(a.get("verbose").map(String::as_str), Some("false"));
        assert_eq!(a.get("dry_run").map(String::as_str), Some("true"));
        assert_eq!(a.get("label").map(String::as_str), Some("x"));
        // The last of --x/--no-x wins.
        let a = parse_flags(
            "main",
            PARAMS,
            &s(&["--max-count", "1", "--verbose", "--no-verbose"]),
        )
        .unwrap();
        assert_eq!(a.get("verbose").map(String::as_str), Some("false"));
        // Required flags.
        assert!(parse_flags("main", PARAMS, &s(&["--verbose"])).is_err());
        assert!(parse_flags("main", PARAMS, &s(&["--max-count", "1"])).is_err());
        assert!(
            parse_flags(
                "main",
                PARAMS,
                &s(&["--max-count", "1", "--verbose", "--bogus"])
            )
            .is_err()
        );
    }
}
