//! Runs the chaos suite (`modal_tests::chaos`) with the `modal` and `chaos` programs built next
//! to it; prints the table, then one JSON line. `cargo xtask chaos` builds and runs it.
//!
//! `chaos_suite [--quick] [--json]`: `--quick` runs the small sizes of the end-to-end test;
//! `--json` prints only the JSON line. Exits non-zero when a zero column is not zero.

use std::process::ExitCode;

use modal_tests::chaos::{self, Exes, Sizes};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(other) = args
        .iter()
        .find(|a| !matches!(a.as_str(), "--quick" | "--json"))
    {
        eprintln!("unknown option `{other}`; expected --quick and/or --json");
        return ExitCode::FAILURE;
    }
    let sizes = if args.iter().any(|a| a == "--quick") {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    let exe = std::env::current_exe().unwrap_or_default();
    let rows = chaos::run_suite(&Exes::beside(&exe), &sizes);
    if !args.iter().any(|a| a == "--json") {
        print!("{}", chaos::table(&rows));
    }
    println!("{}", chaos::json_line(&rows));
    if rows.iter().all(chaos::Row::clean) {
        ExitCode::SUCCESS
    } else {
        eprintln!("chaos: a zero column is not zero (see the table)");
        ExitCode::FAILURE
    }
}
