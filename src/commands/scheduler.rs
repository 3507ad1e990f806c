//! `longhaul scheduler`.

use longhaul_jobs::Config;

/// Runs the scheduler until SIGTERM/SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    longhaul_scheduler::run(config, crate::shutdown::signal()).await;
    Ok(())
}
