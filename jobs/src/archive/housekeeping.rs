//! Housekeeping of the Postgres side, for the scheduler's tasks: expiring and purging API
//! keys, deleting archived jobs past their retention, and rolling jobs up into hourly usage.
//!
//! Deletes go in batches of [`BATCH`] rows, one short statement each (`DELETE ... WHERE id IN
//! (SELECT id ... LIMIT n)`), so no statement holds locks for long however much is due.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::{Archive, ArchiveError};
use crate::ids::TenantId;

/// Rows per delete statement.
const BATCH: i64 = 1000;
/// Rows `GET /v1/admin/usage` answers at most.
const MAX_USAGE_ROWS: i64 = 10_000;

/// Recomputes, in one statement, every hour of `finished_at` that holds a job archived since
/// the watermark, per tenant and kind: an idempotent upsert. Jobs archived up to 5 minutes
/// before the watermark are looked at again, so a batch whose transaction began before the
/// last rollup but committed after it is not missed.
const ROLLUP: &str = r#"
WITH touched AS (
    SELECT DISTINCT date_trunc('hour', finished_at, 'UTC') AS hour
    FROM jobs
    WHERE archived_at > (SELECT watermark - interval '5 minutes' FROM usage_rollup_state
                         WHERE singleton)
      AND finished_at IS NOT NULL
)
INSERT INTO usage_hourly AS u (tenant, kind, hour, jobs, succeeded, failed, cancelled, attempts,
                               latency_p50_secs, latency_p95_secs, latency_p99_secs,
                               prompt_tokens, completion_tokens, total_tokens, cache_hits,
                               updated_at)
SELECT j.tenant, j.kind, t.hour,
       count(*),
       count(*) FILTER (WHERE j.status = 'succeeded'),
       count(*) FILTER (WHERE j.status = 'failed'),
       count(*) FILTER (WHERE j.status = 'cancelled'),
       COALESCE(sum(j.attempts), 0),
       percentile_cont(0.50) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM j.finished_at - j.created_at)::float8)
           FILTER (WHERE j.status = 'succeeded'),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM j.finished_at - j.created_at)::float8)
           FILTER (WHERE j.status = 'succeeded'),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM j.finished_at - j.created_at)::float8)
           FILTER (WHERE j.status = 'succeeded'),
       COALESCE(sum((j.usage->>'prompt_tokens')::bigint), 0),
       COALESCE(sum((j.usage->>'completion_tokens')::bigint), 0),
       COALESCE(sum((j.usage->>'total_tokens')::bigint), 0),
       count(*) FILTER (WHERE j.cached),
       now()
FROM touched t
JOIN jobs j ON j.finished_at >= t.hour AND j.finished_at < t.hour + interval '1 hour'
GROUP BY j.tenant, j.kind, t.hour
ON CONFLICT (tenant, kind, hour) DO UPDATE SET
    jobs = EXCLUDED.jobs,
    succeeded = EXCLUDED.succeeded,
    failed = EXCLUDED.failed,
    cancelled = EXCLUDED.cancelled,
    attempts = EXCLUDED.attempts,
    latency_p50_secs = EXCLUDED.latency_p50_secs,
    latency_p95_secs = EXCLUDED.latency_p95_secs,
    latency_p99_secs = EXCLUDED.latency_p99_secs,
    prompt_tokens = EXCLUDED.prompt_tokens,
    completion_tokens = EXCLUDED.completion_tokens,
    total_tokens = EXCLUDED.total_tokens,
    cache_hits = EXCLUDED.cache_hits,
    updated_at = EXCLUDED.updated_at
"#;

/// What one rollup did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Rollup {
    /// Hour rows written (inserted or recomputed).
    pub rows: u64,
}

/// One tenant's use of one kind in one hour.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageRow {
    /// The tenant.
    pub tenant: String,
    /// The job kind.
    pub kind: String,
    /// The hour (UTC) the jobs finished in.
    pub hour: DateTime<Utc>,
    /// Jobs finished.
    pub jobs: i64,
    /// Of which succeeded.
    pub succeeded: i64,
    /// Of which failed.
    pub failed: i64,
    /// Of which cancelled.
    pub cancelled: i64,
    /// Attempts they took.
    pub attempts: i64,
    /// Median submit-to-finish time of the succeeded ones, in seconds.
    pub latency_p50_secs: Option<f64>,
    /// 95th percentile of the same.
    pub latency_p95_secs: Option<f64>,
    /// 99th percentile of the same.
    pub latency_p99_secs: Option<f64>,
    /// Prompt tokens billed.
    pub prompt_tokens: i64,
    /// Completion tokens billed.
    pub completion_tokens: i64,
    /// All tokens billed.
    pub total_tokens: i64,
    /// Jobs answered from the result cache.
    pub cache_hits: i64,
}

impl Archive {
    /// Marks keys past their `expires_at` as disabled (`disabled_at`); returns how many.
    pub async fn disable_expired_api_keys(&self) -> Result<u64, ArchiveError> {
        let done = sqlx::query(
            "UPDATE api_keys SET disabled_at = now() \
             WHERE disabled_at IS NULL AND revoked_at IS NULL AND expires_at <= now()",
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Deletes keys revoked or disabled before `cutoff`, in batches; returns how many.
    pub async fn purge_api_keys(&self, cutoff: DateTime<Utc>) -> Result<u64, ArchiveError> {
        self.delete_in_batches(
            "DELETE FROM api_keys WHERE id IN (SELECT id FROM api_keys \
             WHERE COALESCE(revoked_at, disabled_at) < $1 LIMIT $2)",
            cutoff,
            u32::MAX,
        )
        .await
    }

    /// Deletes archived jobs that finished before `cutoff`, at most `max_batches` batches of
    /// 1000; returns how many.
    pub async fn delete_jobs_finished_before(
        &self,
        cutoff: DateTime<Utc>,
        max_batches: u32,
    ) -> Result<u64, ArchiveError> {
        self.delete_in_batches(
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE finished_at < $1 LIMIT $2)",
            cutoff,
            max_batches,
        )
        .await
    }

    async fn delete_in_batches(
        &self,
        sql: &'static str,
        cutoff: DateTime<Utc>,
        max_batches: u32,
    ) -> Result<u64, ArchiveError> {
        let mut total = 0;
        for _ in 0..max_batches {
            let done = sqlx::query(sql)
                .bind(cutoff)
                .bind(BATCH)
                .execute(&self.pool)
                .await?;
            total += done.rows_affected();
            if done.rows_affected() < BATCH as u64 {
                break;
            }
            // Let other statements in between batches.
            tokio::task::yield_now().await;
        }
        Ok(total)
    }

    /// Rolls up every hour that gained or changed an archived job since the last rollup into
    /// `usage_hourly`. Idempotent, and serialised by a row lock when two run at once.
    pub async fn rollup_usage(&self) -> Result<Rollup, ArchiveError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO usage_rollup_state (singleton, watermark) VALUES (true, '-infinity') \
             ON CONFLICT (singleton) DO NOTHING",
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query("SELECT 1 FROM usage_rollup_state WHERE singleton FOR UPDATE")
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query(ROLLUP).execute(&mut *tx).await?;
        // now(): the transaction's start, before any job this rollup could not see.
        sqlx::query("UPDATE usage_rollup_state SET watermark = now() WHERE singleton")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Rollup {
            rows: done.rows_affected(),
        })
    }

    /// Hourly usage rows with `from <= hour < to`, of one tenant or all, by hour, tenant, kind
    /// (at most 10 000).
    pub async fn usage(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<UsageRow>, ArchiveError> {
        let rows = sqlx::query(
            "SELECT tenant, kind, hour, jobs, succeeded, failed, cancelled, attempts, \
                    latency_p50_secs, latency_p95_secs, latency_p99_secs, prompt_tokens, \
                    completion_tokens, total_tokens, cache_hits \
             FROM usage_hourly \
             WHERE hour >= $1 AND hour < $2 AND ($3::text IS NULL OR tenant = $3) \
             ORDER BY hour, tenant, kind LIMIT $4",
        )
        .bind(from)
        .bind(to)
        .bind(tenant.map(TenantId::as_str))
        .bind(MAX_USAGE_ROWS)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UsageRow {
                    tenant: r.try_get("tenant")?,
                    kind: r.try_get("kind")?,
                    hour: r.try_get("hour")?,
                    jobs: r.try_get("jobs")?,
                    succeeded: r.try_get("succeeded")?,
                    failed: r.try_get("failed")?,
                    cancelled: r.try_get("cancelled")?,
                    attempts: r.try_get("attempts")?,
                    latency_p50_secs: r.try_get("latency_p50_secs")?,
                    latency_p95_secs: r.try_get("latency_p95_secs")?,
                    latency_p99_secs: r.try_get("latency_p99_secs")?,
                    prompt_tokens: r.try_get("prompt_tokens")?,
                    completion_tokens: r.try_get("completion_tokens")?,
                    total_tokens: r.try_get("total_tokens")?,
                    cache_hits: r.try_get("cache_hits")?,
                })
            })
            .collect()
    }
}
