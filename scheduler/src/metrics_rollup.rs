//! `metrics_rollup`: per tenant, kind and hour (of finishing, UTC), the archived jobs' counts
//! by status, latency p50/p95/p99 of the succeeded ones (finished − created), attempts,
//! tokens and cache hits, upserted into `usage_hourly` (read by `GET /v1/admin/usage`).
//!
//! Each run recomputes every hour that gained or changed a job since the last run (a
//! watermark on `archived_at`, with a 5-minute overlap), so it is idempotent and cheap.

use serde_json::json;

use crate::task::{Report, TaskContext, TaskError};

/// Runs one rollup.
pub(crate) async fn run(ctx: &TaskContext) -> Result<Report, TaskError> {
    let rollup = ctx.archive.rollup_usage().await?;
    Ok(json!({"rows": rollup.rows}))
}

#[cfg(test)]
mod tests {
    use chrono::{DurationRound, Utc};

    use super::*;
    use crate::test_support::{TestDb, TestRedis};

    /// Inserts one archived job that finished `latency_ms` after it was created, at `minute`
    /// minutes into the hour three hours ago.
    #[allow(clippy::too_many_arguments)]
    async fn job(
        db: &TestDb,
        tenant: &str,
        kind: &str,
        status: &str,
        attempts: i32,
        latency_ms: i64,
        tokens: Option<(i64, i64)>,
        cached: bool,
    ) {
        let hour = Utc::now()
            .duration_trunc(chrono::Duration::hours(1))
            .unwrap()
            - chrono::Duration::hours(3);
        let finished = hour + chrono::Duration::minutes(30);
        let created = finished - chrono::Duration::milliseconds(latency_ms);
        let usage = tokens.map(
            |(p, c)| json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}),
        );
        sqlx::query(
            "INSERT INTO jobs (id, tenant, kind, status, attempts, max_attempts, spec, usage, \
             cached, created_at, finished_at) VALUES ($1, $2, $3, $4, $5, 5, '{}', $6, $7, $8, $9)",
        )
        .bind(uuid::Uuid::now_v7())
        .bind(tenant)
        .bind(kind)
        .bind(status)
        .bind(attempts)
        .bind(usage)
        .bind(cached)
        .bind(created)
        .bind(finished)
        .execute(db.archive.pool())
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn a_known_set_of_jobs_rolls_up_into_the_right_counts_latencies_and_tokens() {
        let (db, redis) = (TestDb::new().await, TestRedis::new().await);
        let ctx = redis.context(&db);
        let t = Some((5, 7));
        job(&db, "acme", "generation", "succeeded", 1, 1_000, t, false).await;
        job(&db, "acme", "generation", "succeeded", 2, 2_000, t, true).await;
        job(&db, "acme", "generation", "succeeded", 1, 10_000, t, false).await;
        job(&db, "acme", "generation", "failed", 3, 60_000, None, false).await;
        job(
            &db,
            "acme",
            "interpretation",
            "cancelled",
            0,
            500,
            None,
            false,
        )
        .await;
        job(
            &db,
            "globex",
            "generation",
            "succeeded",
            1,
            4_000,
            Some((1, 1)),
            false,
        )
        .await;

        assert_eq!(run(&ctx).await.unwrap()["rows"], 3);
        let hour = Utc::now()
            .duration_trunc(chrono::Duration::hours(1))
            .unwrap()
            - chrono::Duration::hours(3);
        let rows = db
            .archive
            .usage(hour, hour + chrono::Duration::hours(1), None)
            .await
            .unwrap();
        assert_eq!(rows.len(), 3);
        let acme = &rows[0];
        assert_eq!(
            (acme.tenant.as_str(), acme.kind.as_str(), acme.hour),
            ("acme", "generation", hour)
        );
        assert_eq!(
            (acme.jobs, acme.succeeded, acme.failed, acme.cancelled),
            (4, 3, 1, 0)
        );
        assert_eq!(acme.attempts, 7);
        assert_eq!(
            (
                acme.prompt_tokens,
                acme.completion_tokens,
                acme.total_tokens
            ),
            (15, 21, 36)
        );
        assert_eq!(acme.cache_hits, 1);
        // percentile_cont over the succeeded jobs' 1 s, 2 s, 10 s.
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-6);
        assert!(close(acme.latency_p50_secs, 2.0), "{acme:?}");
        assert!(close(acme.latency_p95_secs, 9.2), "{acme:?}");
        assert!(close(acme.latency_p99_secs, 9.84), "{acme:?}");
        let cancelled = &rows[1];
        assert_eq!(
            (
                cancelled.kind.as_str(),
                cancelled.cancelled,
                cancelled.latency_p50_secs
            ),
            ("interpretation", 1, None)
        );
        assert_eq!(
            (rows[2].tenant.as_str(), rows[2].total_tokens),
            ("globex", 2)
        );

        // Idempotent; a job archived later recomputes its hour.
        run(&ctx).await.unwrap();
        job(&db, "acme", "generation", "succeeded", 1, 3_000, t, false).await;
        run(&ctx).await.unwrap();
        let acme = db
            .archive
            .usage(
                hour,
                hour + chrono::Duration::hours(1),
                Some(&longhaul_jobs::TenantId::parse("acme").unwrap()),
            )
            .await
            .unwrap();
        assert_eq!(acme.len(), 2);
        assert_eq!(
            (acme[0].jobs, acme[0].succeeded, acme[0].prompt_tokens),
            (5, 4, 20)
        );
    }
}
