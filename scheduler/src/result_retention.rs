//! `result_retention`: archived jobs that finished more than `LONGHAUL_ARCHIVE_RETENTION_DAYS`
//! ago are deleted from Postgres, 1000 rows per statement (no long locks), at most
//! [`MAX_BATCHES`] statements per run; a larger backlog goes on at the next tick. Hourly
//! usage rollups are kept.

use serde_json::json;

use crate::task::{Report, TaskContext, TaskError};

/// Delete statements per run: 100 000 rows.
const MAX_BATCHES: u32 = 100;

/// Runs one pass.
pub(crate) async fn run(ctx: &TaskContext) -> Result<Report, TaskError> {
    let cutoff = chrono::Utc::now()
        - chrono::Duration::from_std(ctx.scheduler.archive_retention)
            .unwrap_or(chrono::Duration::MAX);
    let deleted = ctx
        .archive
        .delete_jobs_finished_before(cutoff, MAX_BATCHES)
        .await?;
    if deleted > 0 {
        tracing::info!(deleted, %cutoff, "archived jobs past their retention deleted");
    }
    Ok(json!({"deleted": deleted}))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::test_support::{TestDb, TestRedis, insert_jobs};

    #[tokio::test]
    async fn jobs_older_than_the_retention_are_deleted_in_batches_and_newer_ones_kept() {
        let (db, redis) = (TestDb::new().await, TestRedis::new().await);
        let mut ctx = redis.context(&db);
        ctx.scheduler.archive_retention = Duration::from_secs(30 * 24 * 3600);
        insert_jobs(&db, "acme", "generation", "succeeded", 2500, "40 days").await;
        insert_jobs(&db, "acme", "generation", "failed", 3, "29 days").await;
        insert_jobs(&db, "globex", "interpretation", "succeeded", 4, "1 hour").await;

        let report = run(&ctx).await.unwrap();
        assert_eq!(report["deleted"], 2500, "{report}");
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
            .fetch_one(db.archive.pool())
            .await
            .unwrap();
        assert_eq!(left, 7);
        assert_eq!(run(&ctx).await.unwrap()["deleted"], 0);
    }
}
