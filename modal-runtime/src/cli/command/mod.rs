//! The `modal` command: parses its command line (`args.rs`) and runs the subcommand: the
//! standalone control plane and workers (`standalone.rs`), or the admin commands (`admin.rs`,
//! `volume.rs`, `image.rs`, `workers.rs`, `function.rs`).

#![allow(clippy::print_stdout, clippy::print_stderr)] // A command-line tool.

mod admin;
mod args;
mod function;
mod image;
mod standalone;
mod volume;
mod workers;

use std::process::ExitCode;

use clap::Parser;

use crate::error::Result;
use args::{Cli, Command, TokenCommand};

/// Runs the `modal` command.
pub fn run() -> ExitCode {
    crate::telemetry::init();
    let cli = Cli::parse();
    let Some(runtime) = super::runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> Result<()> {
    match command {
        Command::Server(args) => standalone::server(args).await,
        Command::Worker(args) => standalone::worker(args).await,
        Command::Token(TokenCommand::New {
            server,
            label,
            print,
            worker,
            data_dir,
            server_cert,
        }) => admin::token_new(server, label, print, worker, data_dir, server_cert).await,
        Command::App(cmd) => admin::app(cmd).await,
        Command::Secret(cmd) => admin::secret(cmd).await,
        Command::Container(cmd) => admin::container(cmd).await,
        Command::Function(cmd) => function::run(cmd).await,
        Command::Volume(cmd) => volume::run(cmd).await,
        Command::Image(cmd) => image::run(cmd).await,
    }
}
