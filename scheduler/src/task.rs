//! [`Task`]: the maintenance tasks, what each shares ([`TaskContext`]), and how a run ends.

use std::time::Duration;

use longhaul_jobs::Config;
use longhaul_jobs::archive::{Archive, ArchiveError};
use longhaul_jobs::store::{RedisStore, StoreError};

use crate::{
    cache_cleanup, key_expiry, metrics_rollup, promote_due, rescue_leases, result_retention,
};

/// What a task did, as a JSON object (logged, and kept as the task's last report in Redis).
pub type Report = serde_json::Value;

/// Why a task run failed. The scheduler logs it, records it, and runs the task again at its
/// next tick.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// Redis refused or could not be reached.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Postgres refused or could not be reached.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
}

/// What every task run can use.
#[derive(Debug, Clone)]
pub struct TaskContext {
    /// The Redis side.
    pub store: RedisStore,
    /// The Postgres side.
    pub archive: Archive,
    /// How long Redis keeps a finished job.
    pub result_ttl: Duration,
    /// How long a cached answer lives.
    pub cache_ttl: Duration,
    /// Retention windows and budgets.
    pub scheduler: longhaul_jobs::config::SchedulerConfig,
}

impl TaskContext {
    /// A context over connected stores, with the configuration's windows.
    pub fn new(store: RedisStore, archive: Archive, config: &Config) -> Self {
        Self {
            store,
            archive,
            result_ttl: config.result_ttl,
            cache_ttl: config.cache_ttl,
            scheduler: config.scheduler.clone(),
        }
    }
}

/// One maintenance task (one file each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    /// Expired leases back to ready.
    RescueLeases,
    /// Due retries to ready.
    PromoteDue,
    /// Result-cache entries without a TTL or over budget.
    CacheCleanup,
    /// Expired API keys disabled, old revoked ones purged, tenant indexes trimmed.
    KeyExpiry,
    /// Archived jobs past their retention deleted.
    ResultRetention,
    /// Hourly usage rows.
    MetricsRollup,
}

impl Task {
    /// Every task, in the order of [`longhaul_jobs::config::SCHEDULED_TASKS`].
    pub const ALL: [Task; 6] = [
        Task::RescueLeases,
        Task::PromoteDue,
        Task::CacheCleanup,
        Task::KeyExpiry,
        Task::ResultRetention,
        Task::MetricsRollup,
    ];

    /// Its name (in logs, Redis, metrics, and `LONGHAUL_SCHEDULE_<NAME>`).
    pub fn name(self) -> &'static str {
        match self {
            Task::RescueLeases => "rescue_leases",
            Task::PromoteDue => "promote_due",
            Task::CacheCleanup => "cache_cleanup",
            Task::KeyExpiry => "key_expiry",
            Task::ResultRetention => "result_retention",
            Task::MetricsRollup => "metrics_rollup",
        }
    }

    /// Runs it once.
    pub async fn run(self, ctx: &TaskContext) -> Result<Report, TaskError> {
        match self {
            Task::RescueLeases => rescue_leases::run(ctx).await,
            Task::PromoteDue => promote_due::run(ctx).await,
            Task::CacheCleanup => cache_cleanup::run(ctx).await,
            Task::KeyExpiry => key_expiry::run(ctx).await,
            Task::ResultRetention => result_retention::run(ctx).await,
            Task::MetricsRollup => metrics_rollup::run(ctx).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_has_a_schedule_variable() {
        let names: Vec<&str> = Task::ALL.iter().map(|t| t.name()).collect();
        let configured: Vec<&str> = longhaul_jobs::config::SCHEDULED_TASKS
            .iter()
            .map(|(name, _)| *name)
            .collect();
        assert_eq!(names, configured);
        for (name, var) in longhaul_jobs::config::SCHEDULED_TASKS {
            assert_eq!(var, format!("LONGHAUL_SCHEDULE_{}", name.to_uppercase()));
        }
    }
}
