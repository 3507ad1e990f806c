//! One module per subcommand; `main.rs` only parses and dispatches.

mod api;
mod keys;
mod migrate;
mod scheduler;
mod up;
mod worker;

use anyhow::Context;
use longhaul_jobs::Config;

use crate::cli::Command;

/// Runs a subcommand.
pub async fn run(command: Command) -> anyhow::Result<()> {
    if let Command::StubLlm(args) = command {
        return crate::stub_llm::run(args).await;
    }
    if let Command::Bench(args) = command {
        return crate::bench::run(args).await;
    }
    let config = Config::from_env().context("invalid configuration")?;
    longhaul_jobs::telemetry::init(config.log_format);
    match command {
        Command::Api => api::run(config).await,
        Command::Worker { child: None } => worker::supervise(config).await,
        Command::Worker { child: Some(index) } => worker::child(config, index).await,
        Command::Scheduler => scheduler::run(config).await,
        Command::Up => up::run(config).await,
        Command::Migrate => migrate::run(config).await,
        Command::Keys { command } => keys::run(config, command).await,
        Command::StubLlm(_) | Command::Bench(_) => unreachable!("handled above"),
    }
}
