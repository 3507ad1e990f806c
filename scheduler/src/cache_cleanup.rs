//! `cache_cleanup`: keeps the result cache (`{P}:cache:*`) within its budget.
//!
//! The cache itself arrives with issue 5; its contract with this task is that each entry is
//! one key under `{P}:cache:` carrying a Redis TTL (Redis drops expired entries by itself).
//! The sweep walks the keys with `SCAN` in batches of 1000, gives an entry with no TTL (or a
//! longer one than `LONGHAUL_CACHE_TTL_SECS`, after the TTL was lowered) that TTL, and when
//! more than `LONGHAUL_CACHE_MAX_ENTRIES` exist, evicts those closest to expiry, 500 per
//! `UNLINK`.

use crate::task::{Report, TaskContext, TaskError};

/// Runs one sweep.
pub(crate) async fn run(ctx: &TaskContext) -> Result<Report, TaskError> {
    let sweep = ctx
        .store
        .sweep_cache(ctx.scheduler.cache_max_entries, ctx.cache_ttl)
        .await?;
    Ok(serde_json::json!({
        "entries": sweep.entries,
        "ttl_set": sweep.ttl_set,
        "evicted": sweep.evicted,
    }))
}

#[cfg(test)]
mod tests {
    use redis::AsyncCommands;

    use super::*;
    use crate::test_support::TestRedis;

    #[tokio::test]
    async fn entries_without_a_ttl_get_one_and_the_soonest_to_expire_are_evicted_over_budget() {
        let redis = TestRedis::new().await;
        let mut ctx = redis.context_without_db();
        ctx.cache_ttl = std::time::Duration::from_secs(3600);
        ctx.scheduler.cache_max_entries = 8;
        let mut conn = redis.store.connection();
        let key = |name: &str| redis.key(&format!("cache:{name}"));
        // Ten entries expiring in 1..=10 minutes, one without a TTL, one with too long a TTL.
        for i in 1..=10u64 {
            let _: () = conn
                .set_ex(key(&format!("e{i}")), "answer", i * 60)
                .await
                .unwrap();
        }
        let _: () = conn.set(key("forever"), "answer").await.unwrap();
        let _: () = conn.set_ex(key("long"), "answer", 7200).await.unwrap();
        let _: () = conn
            .set(redis.key("job:not-a-cache-entry"), "x")
            .await
            .unwrap();

        let report = run(&ctx).await.unwrap();
        assert_eq!(report["entries"], 12, "{report}");
        assert_eq!(report["ttl_set"], 2, "{report}");
        assert_eq!(report["evicted"], 4, "{report}");
        for i in 1..=4 {
            let exists: bool = conn.exists(key(&format!("e{i}"))).await.unwrap();
            assert!(!exists, "e{i} expires soonest and is evicted");
        }
        for name in ["e5", "e10", "forever", "long"] {
            let ttl: i64 = conn.ttl(key(name)).await.unwrap();
            assert!(
                ttl > 0 && ttl <= 3600,
                "{name} keeps a TTL within the cache TTL: {ttl}"
            );
        }
        let other: i64 = conn.ttl(redis.key("job:not-a-cache-entry")).await.unwrap();
        assert_eq!(other, -1, "keys outside the cache are not touched");

        let again = run(&ctx).await.unwrap();
        assert_eq!(
            (again["entries"].as_u64(), again["evicted"].as_u64()),
            (Some(8), Some(0))
        );
    }
}
