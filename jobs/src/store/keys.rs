//! The Redis key layout. Every key starts with the hash tag `{prefix}`, so a deployment's keys
//! share one Redis Cluster slot and several deployments (or tests) can share one Redis.

use crate::ids::{JobId, TenantId};
use crate::job::JobKind;

/// Builds every key of one deployment.
#[derive(Debug, Clone)]
pub struct Keys {
    tag: String,
}

impl Keys {
    /// Keys under `prefix` (`LONGHAUL_REDIS_PREFIX`).
    pub fn new(prefix: &str) -> Self {
        Self {
            tag: format!("{{{prefix}}}"),
        }
    }

    /// The hash tag, `{prefix}`.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Prefix of job hashes, for scripts that address jobs by id.
    pub fn job_prefix(&self) -> String {
        format!("{}:job:", self.tag)
    }

    /// Hash of one job.
    pub fn job(&self, id: JobId) -> String {
        format!("{}:job:{id}", self.tag)
    }

    /// List of ids ready to run (pushed left, claimed right: oldest first).
    pub fn ready(&self, kind: JobKind) -> String {
        format!("{}:ready:{kind}", self.tag)
    }

    /// Sorted set of running attempts, scored by lease expiry (ms).
    pub fn inflight(&self, kind: JobKind) -> String {
        format!("{}:inflight:{kind}", self.tag)
    }

    /// Sorted set of retries, scored by due time (ms).
    pub fn delayed(&self, kind: JobKind) -> String {
        format!("{}:delayed:{kind}", self.tag)
    }

    /// List of wake-up tokens that idle workers block on.
    pub fn signal(&self, kind: JobKind) -> String {
        format!("{}:signal:{kind}", self.tag)
    }

    /// Sorted set of a tenant's job ids, scored by creation time (ms).
    pub fn tenant_index(&self, tenant: &TenantId) -> String {
        format!("{}:tenant:{tenant}", self.tag)
    }

    /// Idempotency key of a tenant.
    pub fn idempotency(&self, tenant: &TenantId, key: &str) -> String {
        format!("{}:idem:{tenant}:{key}", self.tag)
    }

    /// Stream of finished jobs, drained into Postgres.
    pub fn archive(&self) -> String {
        format!("{}:archive", self.tag)
    }

    /// Consumer group of the archivers.
    pub fn archive_group(&self) -> &'static str {
        "archivers"
    }

    /// Pub/sub channel announcing jobs that reached a terminal status.
    pub fn done_channel(&self) -> String {
        format!("{}:done", self.tag)
    }

    /// Pub/sub channel telling worker processes to abort a cancelled job's running attempt.
    pub fn cancel_channel(&self) -> String {
        format!("{}:cancel", self.tag)
    }

    /// Leader lease of the scheduler.
    pub fn scheduler_leader(&self) -> String {
        format!("{}:scheduler:leader", self.tag)
    }
}
