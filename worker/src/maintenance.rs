//! The maintenance tick every worker process runs: promote due retries and rescue expired
//! leases. The scripts are idempotent and bounded, so many processes running them is safe,
//! and jobs never wait on a scheduler being up.

use std::time::Duration;

use longhaul_jobs::job::JobKind;
use longhaul_jobs::metrics::{self, JobOutcome};
use longhaul_jobs::store::RedisStore;

use crate::drain::Shutdown;

/// Ids moved per script call: small enough to keep Redis responsive.
const CHUNK: u32 = 500;
/// Script calls per kind per tick, at most.
const MAX_CHUNKS: u32 = 20;

/// Runs every `interval` until draining begins.
pub(crate) async fn run(
    store: RedisStore,
    interval: Duration,
    result_ttl: Duration,
    shutdown: Shutdown,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.draining() => return,
            _ = tick.tick() => {}
        }
        for kind in JobKind::ALL {
            match store.maintain(kind, CHUNK, MAX_CHUNKS, result_ttl).await {
                Ok(m) if m.promoted + m.rescued + m.failed > 0 => {
                    metrics::get().jobs_by(kind, JobOutcome::Rescued, m.rescued);
                    metrics::get().jobs_by(kind, JobOutcome::Failed, m.failed);
                    tracing::info!(
                        %kind, promoted = m.promoted, rescued = m.rescued, failed_worker_lost = m.failed,
                        "maintenance moved jobs"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, %kind, "maintenance failed; will retry"),
            }
        }
    }
}
