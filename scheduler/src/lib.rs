//! The longhaul scheduler (after River's queue maintainer): any number may run; the one that
//! holds the [`leader`] lease runs the maintenance tasks, each on its own cron schedule
//! (`LONGHAUL_SCHEDULE_<TASK>`), each tick exactly once across schedulers ([`maintainer`]).
//!
//! - [`leader`]: leader election through a Redis lease with a fencing value, and the per-tick
//!   guard.
//! - [`maintainer`]: the tick loop: which task is due, claim the tick, run it, record it.
//! - [`task`]: the tasks, what they share, how a run ends.
//! - One file per task: [`rescue_leases`], [`promote_due`], [`cache_cleanup`],
//!   [`key_expiry`], [`result_retention`], [`metrics_rollup`].
//!
//! Every run is recorded in the Redis hash `{P}:scheduler:tasks` (last run, duration,
//! outcome, report, run counts), which the API serves at `GET /v1/admin/scheduler` and in
//! its `/metrics`.

pub mod cache_cleanup;
pub mod key_expiry;
pub mod leader;
pub mod maintainer;
pub mod metrics_rollup;
pub mod promote_due;
pub mod rescue_leases;
pub mod result_retention;
pub mod task;
#[cfg(test)]
mod test_support;

use std::time::Duration;

use longhaul_jobs::Config;
use longhaul_jobs::archive::Archive;
use longhaul_jobs::store::RedisStore;

use crate::leader::Leader;
use crate::maintainer::Maintainer;
use crate::task::TaskContext;

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
    let archive = match Archive::connect_lazy(&config.database_url) {
        Ok(archive) => archive,
        Err(e) => {
            tracing::error!(error = %e, "scheduler cannot use DATABASE_URL; not starting");
            return;
        }
    };
    let leader = Leader::new(store.clone(), config.scheduler.lease);
    let ctx = TaskContext::new(store, archive, &config);
    Maintainer::new(leader, ctx).run(shutdown).await;
}
