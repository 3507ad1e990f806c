//! `longhaul`: one binary for every role (see `cli`).

mod bench;
mod cli;
mod commands;
mod shutdown;
mod stub_llm;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("longhaul: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli.command)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("longhaul: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
