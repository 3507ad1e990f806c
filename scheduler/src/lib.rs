//! The longhaul scheduler (after River's queue maintainer): any number may run; the one that
//! holds the [`leader`] lease runs the maintenance tasks, one file each.
//!
//! - [`leader`]: leader election through a Redis lease with a fencing value.
//! - [`queue_maintenance`]: promote due retries and rescue expired leases (workers do this
//!   too; the scheduler covers the time when no worker runs).

pub mod leader;
pub mod queue_maintenance;

use std::time::Duration;

use longhaul_jobs::Config;
use longhaul_jobs::store::RedisStore;

use crate::leader::Leader;

/// How often the leader runs its tasks.
const TICK: Duration = Duration::from_secs(1);

/// Runs the scheduler until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    let store = loop {
        match RedisStore::connect(&config.redis_url, &config.redis_prefix).await {
            Ok(store) => break store,
            Err(e) => {
                tracing::warn!(error = %e, "scheduler cannot reach Redis yet; retrying");
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    let mut leader = Leader::new(store.clone(), Duration::from_secs(10));
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(id = %leader.id(), "scheduler started");
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => {}
        }
        match leader.try_lead().await {
            Ok(true) => queue_maintenance::run(&store, config.result_ttl).await,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "leader election failed; will retry"),
        }
    }
    leader.resign().await;
    tracing::info!("scheduler stopped");
}
