//! The attempts this process holds, and the heartbeat that renews their leases.
//!
//! Leases are per attempt, not per process, and they are decoupled from how long a job may
//! run: a job runs as long as its timeout allows while its process keeps beating. A process
//! that dies stops beating, and its jobs are rescued about one lease later. The heartbeat
//! keeps going during a drain, so a long drain never lets a running job be rescued and run
//! twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use longhaul_jobs::JobId;
use longhaul_jobs::job::JobKind;
use longhaul_jobs::store::{ClaimedJob, RedisStore};
use tokio::sync::Notify;

#[derive(Debug)]
struct Held {
    kind: JobKind,
    token: i64,
    lost: Arc<Notify>,
}

/// The attempts one process holds.
#[derive(Debug, Clone, Default)]
pub(crate) struct Leases {
    held: Arc<Mutex<HashMap<JobId, Held>>>,
}

/// Held while an attempt runs; dropping it stops renewing the lease.
#[derive(Debug)]
pub(crate) struct LeaseGuard {
    leases: Leases,
    id: JobId,
    lost: Arc<Notify>,
}

impl LeaseGuard {
    /// Resolves if the lease was lost (rescued elsewhere, or the job was cancelled).
    pub(crate) async fn lost(&self) {
        self.lost.notified().await;
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.leases.lock().remove(&self.id);
    }
}

impl Leases {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Held>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts renewing the lease of `job`.
    pub(crate) fn hold(&self, job: &ClaimedJob) -> LeaseGuard {
        let lost = Arc::new(Notify::new());
        self.lock().insert(
            job.id,
            Held {
                kind: job.kind,
                token: job.token,
                lost: lost.clone(),
            },
        );
        LeaseGuard {
            leases: self.clone(),
            id: job.id,
            lost,
        }
    }

    /// Number of attempts held.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn snapshot(&self, kind: JobKind) -> Vec<(JobId, i64)> {
        self.lock()
            .iter()
            .filter(|(_, h)| h.kind == kind)
            .map(|(id, h)| (*id, h.token))
            .collect()
    }

    /// Tells the attempts of `ids` to stop (their lease is gone, or the job was cancelled).
    pub(crate) fn mark_lost(&self, ids: &[JobId]) {
        let held = self.lock();
        for id in ids {
            if let Some(h) = held.get(id) {
                h.lost.notify_one();
            }
        }
    }

    /// Renews every held lease each third of `lease`, until `stop` resolves. An attempt whose
    /// lease Redis no longer grants is told to stop.
    pub(crate) async fn heartbeat(
        &self,
        store: RedisStore,
        lease: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) {
        let mut tick = tokio::time::interval(lease / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tick.tick() => {}
            }
            for kind in JobKind::ALL {
                let held = self.snapshot(kind);
                if held.is_empty() {
                    continue;
                }
                match store.heartbeat(kind, lease, &held).await {
                    Ok(lost) if !lost.is_empty() => {
                        tracing::warn!(count = lost.len(), %kind, "leases lost; stopping those attempts");
                        self.mark_lost(&lost);
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, %kind, "heartbeat failed; will retry"),
                }
            }
        }
    }
}
