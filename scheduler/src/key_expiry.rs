//! `key_expiry`: API keys and the Redis indexes that would otherwise grow forever.
//!
//! - API keys past `expires_at` are disabled (`disabled_at`; they stopped authenticating at
//!   `expires_at` already, this makes it visible in `keys list`).
//! - Keys revoked or disabled more than `LONGHAUL_KEY_RETENTION_DAYS` ago are deleted, in
//!   batches of 1000.
//! - Each tenant's job index (`{P}:tenant:<t>`, walked with `SCAN`) loses the ids of jobs
//!   created more than `LONGHAUL_RESULT_TTL_SECS` ago whose hash Redis no longer holds, 500
//!   per script call. The job list reads those jobs from Postgres.
//!
//! Idempotency keys need nothing here: Redis expires them itself (`SET ... EX`, 24 h).

use std::time::Duration;

use longhaul_jobs::time::now_millis;
use serde_json::json;

use crate::task::{Report, TaskContext, TaskError};

/// Runs one pass. The Postgres and Redis halves both run even if the other fails.
pub(crate) async fn run(ctx: &TaskContext) -> Result<Report, TaskError> {
    let keys = async {
        let disabled = ctx.archive.disable_expired_api_keys().await?;
        let cutoff = chrono::Utc::now()
            - chrono::Duration::from_std(ctx.scheduler.key_retention)
                .unwrap_or(chrono::Duration::MAX);
        let purged = ctx.archive.purge_api_keys(cutoff).await?;
        Ok::<_, TaskError>((disabled, purged))
    }
    .await;
    let ttl_ms =
        i64::try_from(ctx.result_ttl.max(Duration::from_secs(1)).as_millis()).unwrap_or(i64::MAX);
    let trim = ctx
        .store
        .trim_tenant_indexes(now_millis().saturating_sub(ttl_ms))
        .await;
    let (disabled, purged) = keys?;
    let trim = trim?;
    if disabled + purged + trim.removed > 0 {
        tracing::info!(
            disabled,
            purged,
            index_ids_removed = trim.removed,
            "expired keys and index entries cleaned up"
        );
    }
    Ok(json!({
        "keys_disabled": disabled,
        "keys_purged": purged,
        "tenant_indexes": trim.indexes,
        "index_ids_removed": trim.removed,
    }))
}

#[cfg(test)]
mod tests {
    use longhaul_jobs::api_key::Scope;
    use longhaul_jobs::time::now_millis;
    use longhaul_jobs::{JobId, TenantId};
    use redis::AsyncCommands;
    use uuid::Uuid;

    use super::*;
    use crate::test_support::{TestDb, TestRedis};

    #[tokio::test]
    async fn expired_keys_are_disabled_old_revoked_ones_purged_and_tenant_indexes_trimmed() {
        let (db, redis) = (TestDb::new().await, TestRedis::new().await);
        let mut ctx = redis.context(&db);
        ctx.result_ttl = Duration::from_secs(24 * 3600);
        ctx.scheduler.key_retention = Duration::from_secs(30 * 24 * 3600);
        let archive = &db.archive;
        let acme = TenantId::parse("acme").unwrap();
        let hour = chrono::Duration::hours(1);
        let now = chrono::Utc::now();
        let (_, expired) = archive
            .create_api_key(&acme, &[Scope::JobsRead], Some(now - hour))
            .await
            .unwrap();
        let (_, valid) = archive
            .create_api_key(&acme, &[Scope::JobsRead], Some(now + hour))
            .await
            .unwrap();
        let (_, old_revoked) = archive
            .create_api_key(&acme, &[Scope::JobsRead], None)
            .await
            .unwrap();
        let (_, new_revoked) = archive
            .create_api_key(&acme, &[Scope::JobsRead], None)
            .await
            .unwrap();
        let (_, old_disabled) = archive
            .create_api_key(&acme, &[Scope::JobsRead], Some(now - hour * 24 * 41))
            .await
            .unwrap();
        let set = |sql: &'static str, id: Uuid| {
            let pool = archive.pool().clone();
            async move { sqlx::query(sql).bind(id).execute(&pool).await.unwrap() }
        };
        set(
            "UPDATE api_keys SET revoked_at = now() - interval '40 days' WHERE id = $1",
            old_revoked.id,
        )
        .await;
        set(
            "UPDATE api_keys SET revoked_at = now() - interval '1 day' WHERE id = $1",
            new_revoked.id,
        )
        .await;
        set(
            "UPDATE api_keys SET disabled_at = now() - interval '40 days' WHERE id = $1",
            old_disabled.id,
        )
        .await;

        // One tenant index: 1200 old ids whose jobs left Redis, one old id whose job is still
        // there (in the middle of them), and one recent id without a hash.
        let index = redis.key("tenant:acme");
        let two_days_ago = now_millis() - 2 * 24 * 3600 * 1000;
        let mut conn = redis.store.connection();
        let gone: Vec<(i64, String)> = (0..1200)
            .map(|i| (two_days_ago + i, JobId::new().to_string()))
            .collect();
        let _: () = conn.zadd_multiple(&index, &gone).await.unwrap();
        let (live, recent) = (JobId::new().to_string(), JobId::new().to_string());
        let _: () = conn.zadd(&index, &live, two_days_ago + 600).await.unwrap();
        let _: () = conn
            .hset(redis.key(&format!("job:{live}")), "status", "queued")
            .await
            .unwrap();
        let _: () = conn.zadd(&index, &recent, now_millis()).await.unwrap();

        let report = run(&ctx).await.unwrap();
        assert_eq!(report["keys_disabled"], 1, "{report}");
        assert_eq!(report["keys_purged"], 2, "{report}");
        assert_eq!(report["index_ids_removed"], 1200, "{report}");

        let rows = archive.list_api_keys(Some(&acme)).await.unwrap();
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        assert_eq!(ids, [expired.id, valid.id, new_revoked.id]);
        assert!(rows[0].disabled_at.is_some() && !rows[0].is_usable(chrono::Utc::now()));
        assert!(rows[1].disabled_at.is_none() && rows[1].is_usable(chrono::Utc::now()));
        let left: Vec<String> = conn.zrange(&index, 0, -1).await.unwrap();
        assert_eq!(left, [live, recent]);

        let again = run(&ctx).await.unwrap();
        assert_eq!(
            (
                again["keys_disabled"].as_u64(),
                again["index_ids_removed"].as_u64()
            ),
            (Some(0), Some(0))
        );
    }
}
