//! The Redis key layout. Every key starts with the hash tag `{prefix}`, so a deployment's keys
//! share one Redis Cluster slot and several deployments (or tests) can share one Redis.

use crate::cache::CacheKey;
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

    /// Hash of tenant -> number of its jobs whose status is `queued` (see `enqueue.lua`).
    pub fn tenant_queued(&self) -> String {
        format!("{}:tenant_queued", self.tag)
    }

    /// Rate-limit bucket (GCRA) of one tenant for one class of requests.
    pub fn rate(&self, class: &str, tenant: &TenantId) -> String {
        format!("{}:rate:{class}:{tenant}", self.tag)
    }

    /// One result-cache entry (L2): the answer's `result` JSON, with a TTL. Every entry is
    /// its own key under `{P}:cache:`, and nothing else lives there (see `cache_cleanup`).
    pub fn cache_entry(&self, key: &CacheKey) -> String {
        format!("{}:cache:{key}", self.tag)
    }

    /// Single-flight lock of one answer being computed: a hash with `leader` -> the job id
    /// computing it, and one field per joined job (id -> attempt token).
    pub fn cache_inflight(&self, key: &CacheKey) -> String {
        format!("{}:inflight_cache:{key}", self.tag)
    }

    /// Hash of the cache's counters (`hits`, `misses`, `joins`), for `GET /v1/cache/stats`.
    pub fn cache_stats(&self) -> String {
        format!("{}:cache_stats", self.tag)
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

    /// Hash of the scheduler's task runs (last run, duration, outcome, run counts per task).
    pub fn scheduler_tasks(&self) -> String {
        format!("{}:scheduler:tasks", self.tag)
    }

    /// Guard of one tick of one scheduler task (`SET NX`): the tick runs once.
    pub fn scheduler_tick(&self, task: &str, tick_secs: i64) -> String {
        format!("{}:scheduler:tick:{task}:{tick_secs}", self.tag)
    }

    /// `SCAN` pattern of every tenant index ([`Self::tenant_index`]).
    pub fn tenant_index_pattern(&self) -> String {
        format!("{}:tenant:*", glob_escape(&self.tag))
    }

    /// `SCAN` pattern of every result-cache entry (`{P}:cache:*`).
    pub fn cache_pattern(&self) -> String {
        format!("{}:cache:*", glob_escape(&self.tag))
    }
}

/// Escapes the glob characters of a Redis `MATCH` pattern.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
