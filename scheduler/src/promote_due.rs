//! `promote_due`: retries whose time has come move from the delayed set to `ready`.
//!
//! Worker processes run the same idempotent, bounded script on their own 500 ms tick; the
//! scheduler covers the time when no worker runs.

use longhaul_jobs::job::JobKind;
use longhaul_jobs::store::MaintainSteps;
use serde_json::json;

use crate::rescue_leases::{CHUNK, MAX_CHUNKS};
use crate::task::{Report, TaskContext, TaskError};

/// Runs one pass over every kind.
pub(crate) async fn run(ctx: &TaskContext) -> Result<Report, TaskError> {
    let mut promoted = 0;
    for kind in JobKind::ALL {
        let m = ctx
            .store
            .maintain_steps(
                kind,
                MaintainSteps::PromoteDue,
                CHUNK,
                MAX_CHUNKS,
                ctx.result_ttl,
            )
            .await?;
        promoted += m.promoted;
    }
    Ok(json!({"promoted": promoted}))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::test_support::{TestRedis, spec};

    #[tokio::test]
    async fn a_due_retry_moves_to_ready_and_an_expired_lease_is_left_alone() {
        let redis = TestRedis::new().await;
        let ctx = redis.context_without_db();
        let store = &redis.store;
        let tenant = longhaul_jobs::TenantId::parse("acme").unwrap();
        let kind = JobKind::Generation;
        for _ in 0..3 {
            store
                .enqueue(longhaul_jobs::JobId::new(), &tenant, &spec(3), None)
                .await
                .unwrap();
        }
        let error = longhaul_jobs::job::JobError {
            code: longhaul_jobs::job::ErrorCode::ProviderUnavailable,
            message: "502".into(),
        };
        // Two retries due at once, one due in an hour; no lease expires.
        for delay in [Duration::ZERO, Duration::ZERO, Duration::from_secs(3600)] {
            let job = store
                .claim(kind, Duration::from_millis(1), "w")
                .await
                .unwrap()
                .unwrap();
            store
                .fail(&job, &error, true, delay, ctx.result_ttl)
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;

        let report = run(&ctx).await.unwrap();
        assert_eq!(report["promoted"], 2, "{report}");
        assert_eq!(store.depth(kind).await.unwrap(), (2, 1, 0));
        assert_eq!(run(&ctx).await.unwrap()["promoted"], 0, "idempotent");
    }
}
