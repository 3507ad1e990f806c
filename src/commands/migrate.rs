//! `longhaul migrate`: applies `migrations/` (embedded in the binary) to DATABASE_URL.

use anyhow::Context;
use longhaul_jobs::Config;
use longhaul_jobs::archive::Archive;

/// Applies pending migrations; running it twice is harmless.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let archive = Archive::connect_lazy(&config.database_url)?;
    archive.migrate().await.context("migrating DATABASE_URL")?;
    tracing::info!("migrations applied");
    Ok(())
}
