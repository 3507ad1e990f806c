//! Promote due retries and rescue expired leases, for every kind. Worker processes run the
//! same (idempotent, bounded) script on their own tick; the scheduler covers the hours when
//! no worker runs, so that jobs of a dead fleet are already back in `ready` when one starts.

use std::time::Duration;

use longhaul_jobs::job::JobKind;
use longhaul_jobs::store::RedisStore;

/// Runs one pass.
pub async fn run(store: &RedisStore, result_ttl: Duration) {
    for kind in JobKind::ALL {
        match store.maintain(kind, 500, 20, result_ttl).await {
            Ok(m) if m.promoted + m.rescued + m.failed > 0 => tracing::info!(
                %kind, promoted = m.promoted, rescued = m.rescued, failed_worker_lost = m.failed,
                "scheduler moved jobs"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, %kind, "queue maintenance failed"),
        }
    }
}
