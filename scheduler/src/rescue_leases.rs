//! `rescue_leases`: attempts whose lease expired (their process died) go back to `ready`, or
//! end `failed` with `worker_lost` when that was their last attempt.
//!
//! Worker processes run the same idempotent, bounded script on their own 500 ms tick; the
//! scheduler covers the time when no worker runs, so the jobs of a dead fleet are already
//! queued again when one starts.

use longhaul_jobs::job::JobKind;
use longhaul_jobs::metrics::{self, JobOutcome};
use longhaul_jobs::store::MaintainSteps;
use serde_json::json;

use crate::task::{Report, TaskContext, TaskError};

/// Ids per script call: small enough to keep Redis responsive.
pub(crate) const CHUNK: u32 = 500;
/// Script calls per kind per run, at most.
pub(crate) const MAX_CHUNKS: u32 = 20;

/// Runs one pass over every kind.
pub(crate) async fn run(ctx: &TaskContext) -> Result<Report, TaskError> {
    let (mut rescued, mut failed) = (0, 0);
    for kind in JobKind::ALL {
        let m = ctx
            .store
            .maintain_steps(
                kind,
                MaintainSteps::RescueLeases,
                CHUNK,
                MAX_CHUNKS,
                ctx.result_ttl,
            )
            .await?;
        metrics::get().jobs_by(kind, JobOutcome::Rescued, m.rescued);
        metrics::get().jobs_by(kind, JobOutcome::Failed, m.failed);
        if m.rescued + m.failed > 0 {
            tracing::info!(%kind, rescued = m.rescued, failed_worker_lost = m.failed, "scheduler rescued expired leases");
        }
        rescued += m.rescued;
        failed += m.failed;
    }
    Ok(json!({"rescued": rescued, "failed_worker_lost": failed}))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::test_support::{TestRedis, job_status, spec};

    #[tokio::test]
    async fn an_expired_lease_goes_back_to_ready_and_a_due_retry_is_left_alone() {
        let redis = TestRedis::new().await;
        let ctx = redis.context_without_db();
        let store = &redis.store;
        let tenant = longhaul_jobs::TenantId::parse("acme").unwrap();
        let (lost, retrying) = (longhaul_jobs::JobId::new(), longhaul_jobs::JobId::new());
        store.enqueue(lost, &tenant, &spec(3), None).await.unwrap();
        store
            .enqueue(retrying, &tenant, &spec(3), None)
            .await
            .unwrap();
        let kind = JobKind::Generation;
        // `retrying` fails and is due at once; `lost` holds a lease that expires at once.
        let first = store
            .claim(kind, Duration::from_secs(600), "w")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.id, lost);
        let second = store
            .claim(kind, Duration::from_secs(600), "w")
            .await
            .unwrap()
            .unwrap();
        let error = longhaul_jobs::job::JobError {
            code: longhaul_jobs::job::ErrorCode::ProviderUnavailable,
            message: "502".into(),
        };
        store
            .fail(&second, &error, true, Duration::ZERO, ctx.result_ttl)
            .await
            .unwrap();
        store
            .heartbeat(kind, Duration::from_millis(1), &[(first.id, first.token)])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;

        let report = run(&ctx).await.unwrap();
        assert_eq!(report["rescued"], 1, "{report}");
        assert_eq!(job_status(store, lost).await, "queued");
        let (ready, delayed, inflight) = store.depth(kind).await.unwrap();
        assert_eq!(
            (ready, delayed, inflight),
            (1, 1, 0),
            "the retry waits for promote_due"
        );
    }
}
