//! Runs one attempt (the "processor"): calls the provider under the attempt's timeout and
//! records the outcome, every write fenced by the attempt token.
//!
//! An attempt ends in one of four ways:
//! - finished: the result or the failure is written (a stale attempt writes nothing);
//! - lease lost: the job was rescued or cancelled elsewhere; the provider call is dropped;
//! - interrupted: the drain's grace is over; the job goes back to the queue, attempt unspent;
//! - bad payload: the stored job cannot be read; it fails for good instead of killing the worker.
//!
//! Before the provider call, a cacheable job goes through the result cache: answered from
//! this process's L1 or from Redis, joined to an identical job computing the answer
//! (single-flight: it waits, and that job's completion completes it), or made the one that
//! computes it, whose completion then fills the cache.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{BoxDynError, Data};
use longhaul_jobs::cache::CacheKey;
use longhaul_jobs::job::{ErrorCode, JobError, JobResult, JobSpec, Usage};
use longhaul_jobs::metrics::{self, JobOutcome};
use longhaul_jobs::provider::{Completion, ProviderError};
use longhaul_jobs::store::{CacheJoin, ClaimedJob, FailOutcome, Requeue, StoreError};
use tracing::Instrument;

use crate::breaker::Verdict;
use crate::lease::LeaseGuard;
use crate::pool::PoolState;
use crate::retry;

/// How an attempt ended, before its outcome is written.
enum Ending {
    Finished(Result<Completion, ProviderError>),
    LeaseLost,
    Interrupted,
}

/// The apalis handler: one attempt of one job.
pub(crate) async fn run_job(
    job: ClaimedJob,
    state: Data<Arc<PoolState>>,
) -> Result<(), BoxDynError> {
    let span = tracing::info_span!(
        "job",
        job_id = %job.id,
        tenant = %job.tenant,
        kind = %job.kind,
        attempt = job.attempt,
    );
    attempt(job, &state).instrument(span).await;
    Ok(())
}

async fn attempt(job: ClaimedJob, state: &PoolState) {
    let spec = match &job.spec {
        Ok(spec) => spec,
        Err(reason) => {
            tracing::error!(%reason, "stored job cannot be read; failing it");
            let error = JobError {
                code: ErrorCode::InvalidPayload,
                message: "the stored job could not be read by this worker version".into(),
            };
            write(state, "fail", || {
                state
                    .store
                    .fail(&job, &error, false, Duration::ZERO, state.result_ttl)
            })
            .await;
            metrics::get().job(job.kind, JobOutcome::Failed);
            return;
        }
    };
    let lease = state.leases.hold(&job);
    let cache_key = state.cache.key(spec, &job.tenant);
    if let Some(key) = &cache_key
        && single_flight(state, &job, spec, key, &lease).await == Flight::Done
    {
        return;
    }
    tracing::info!("attempt started");
    let _running = metrics::get().attempt_running(job.kind);
    let started = std::time::Instant::now();
    let ended = |outcome: JobOutcome| record(&job, outcome, started);
    metrics::get().job(job.kind, JobOutcome::Started);
    if job.attempt == 1 {
        let waited = longhaul_jobs::time::now_millis().saturating_sub(job.created_at);
        metrics::get()
            .queue_wait
            .with_label_values(&[job.kind.as_str()])
            .observe(waited.max(0) as f64 / 1000.0);
    }
    let timeout = Duration::from_secs(u64::from(spec.timeout_secs));
    let ending = tokio::select! {
        result = state.provider.complete(job.id, job.attempt, spec, timeout) => Ending::Finished(result),
        _ = lease.lost() => Ending::LeaseLost,
        _ = state.shutdown.aborted() => Ending::Interrupted,
    };
    match ending {
        Ending::Finished(Ok(done)) => {
            state.breaker.on_success();
            let cache = cache_key.as_ref().map(|key| (key, state.cache.ttl));
            let written = write(state, "complete", || {
                state.store.complete_caching(
                    &job,
                    &done.result,
                    &done.usage,
                    false,
                    state.result_ttl,
                    cache,
                )
            })
            .await;
            match written {
                Some(true) => {
                    if let Some(key) = &cache_key
                        && let Ok(answer) = serde_json::to_string(&done.result)
                    {
                        state.cache.local.insert(key, answer.into());
                    }
                    ended(JobOutcome::Succeeded);
                    tracing::info!(tokens = done.usage.total_tokens, "attempt succeeded")
                }
                Some(false) => {
                    tracing::warn!("attempt finished after losing its lease; result discarded")
                }
                None => {}
            }
        }
        Ending::Finished(Err(error))
            if error.is_retryable()
                && state.breaker.on_provider_failure(job.id) == Verdict::Release =>
        {
            if let Some(true) = write(state, "release", || {
                state.store.release(&job, Requeue::Back)
            })
            .await
            {
                ended(JobOutcome::Released);
                tracing::warn!(error = %error, "provider failing while the circuit breaker is open; job put back unspent");
            }
        }
        Ending::Finished(Err(error)) => {
            if !error.is_retryable() {
                state.breaker.on_inconclusive(job.id);
            }
            let decision = retry::decide(&state.retry, job.attempt, &error);
            let outcome = write(state, "fail", || {
                state.store.fail(
                    &job,
                    &decision.error,
                    decision.retryable,
                    decision.delay,
                    state.result_ttl,
                )
            })
            .await;
            match outcome {
                Some(FailOutcome::RetryAt(due)) => {
                    ended(JobOutcome::Retried);
                    tracing::warn!(error = %error, code = decision.error.code.as_str(), retry_at_ms = due, "attempt failed; retry scheduled")
                }
                Some(FailOutcome::Failed) => {
                    ended(JobOutcome::Failed);
                    tracing::warn!(error = %error, code = decision.error.code.as_str(), "job failed")
                }
                Some(FailOutcome::Stale) => {
                    tracing::warn!("attempt failed after losing its lease; nothing written")
                }
                None => {}
            }
        }
        Ending::LeaseLost => {
            tracing::warn!("lease lost (rescued or cancelled elsewhere); attempt stopped")
        }
        Ending::Interrupted => {
            state.breaker.on_inconclusive(job.id);
            if let Some(true) = write(state, "release", || {
                state.store.release(&job, Requeue::Front)
            })
            .await
            {
                ended(JobOutcome::Released);
                tracing::info!("shutdown grace over; job put back in the queue");
            }
        }
    }
    drop(lease);
}

/// How the cache phase of an attempt ended.
#[derive(Debug, PartialEq, Eq)]
enum Flight {
    /// The job is answered (or no longer this attempt's): nothing more to do.
    Done,
    /// This attempt computes the answer: call the provider.
    Lead,
}

/// How often a joined attempt asks whether the job it waits for still runs (the lead
/// passes on when it stops): the wait for a failed leader, not for a completed one, which
/// wakes the attempt at once.
const JOIN_RECHECK: Duration = Duration::from_millis(500);

/// The single-flight lock outlives the leader's provider call by this much.
const LOCK_MARGIN: Duration = Duration::from_secs(60);

/// The cache phase of a cacheable attempt: L1, then one script call that answers it from
/// Redis, joins it to an identical running job, or gives it the lead.
#[tracing::instrument(skip_all, fields(cache_key = %key))]
async fn single_flight(
    state: &PoolState,
    job: &ClaimedJob,
    spec: &JobSpec,
    key: &CacheKey,
    lease: &LeaseGuard,
) -> Flight {
    let m = metrics::get();
    if let Some(result) = state
        .cache
        .local
        .get(key)
        .and_then(|answer| serde_json::from_str::<JobResult>(&answer).ok())
    {
        let zero = Usage::default();
        let written = write(state, "complete", || {
            state
                .store
                .complete(job, &result, &zero, true, state.result_ttl)
        })
        .await;
        if written == Some(true) {
            m.cache_lookups.with_label_values(&["hit"]).inc();
            m.job(job.kind, JobOutcome::Succeeded);
            tracing::info!("answered from the in-process cache");
        }
        return Flight::Done;
    }
    let lock_ttl = Duration::from_secs(u64::from(spec.timeout_secs)) + LOCK_MARGIN;
    let mut first = true;
    loop {
        let joined = write(state, "cache_join", || {
            state
                .store
                .cache_join(job, key, lock_ttl, state.result_ttl, first)
        })
        .await;
        match joined {
            None | Some(CacheJoin::Stale) => return Flight::Done,
            Some(CacheJoin::Hit(answer)) => {
                state.cache.local.insert(key, answer.into());
                m.cache_lookups.with_label_values(&["hit"]).inc();
                m.job(job.kind, JobOutcome::Succeeded);
                tracing::info!("answered from the cache");
                return Flight::Done;
            }
            Some(CacheJoin::Lead) => {
                m.cache_lookups.with_label_values(&["miss"]).inc();
                return Flight::Lead;
            }
            Some(CacheJoin::Joined(leader)) => {
                if first {
                    m.cache_lookups.with_label_values(&["join"]).inc();
                    tracing::info!(leader = %leader, "joined an identical job computing the answer");
                }
                first = false;
                tokio::select! {
                    // Completed by the job it joined (or cancelled).
                    _ = lease.lost() => return Flight::Done,
                    _ = tokio::time::sleep(JOIN_RECHECK) => {}
                    _ = state.shutdown.aborted() => {
                        if let Some(true) = write(state, "release", || {
                            state.store.release(job, Requeue::Front)
                        })
                        .await
                        {
                            m.job(job.kind, JobOutcome::Released);
                        }
                        return Flight::Done;
                    }
                }
            }
        }
    }
}

/// Counts how an attempt ended, and its duration.
fn record(job: &ClaimedJob, outcome: JobOutcome, started: std::time::Instant) {
    let m = metrics::get();
    m.job(job.kind, outcome);
    m.job_duration
        .with_label_values(&[job.kind.as_str(), outcome.as_str()])
        .observe(started.elapsed().as_secs_f64());
}

/// Writes an outcome, retrying through short Redis outages: a result is worth waiting for.
/// Gives up when the process must stop now; the lease then expires and the job is rescued.
async fn write<T, F, Fut>(state: &PoolState, what: &str, op: F) -> Option<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut delay = Duration::from_millis(100);
    loop {
        match op().await {
            Ok(v) => return Some(v),
            Err(e) => {
                tracing::warn!(error = %e, op = what, "writing the outcome failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = state.shutdown.aborted() => {
                        tracing::error!(op = what, "gave up writing the outcome at shutdown; the lease will expire and the job be rescued");
                        return None;
                    }
                }
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}
