//! The `tokend` binary: parse the command line, set up logging, run.

use std::process::ExitCode;

use clap::Parser;
use tokend::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or(cli.command.default_log_level()),
    )
    .init();
    cli::run(cli.command)
}
