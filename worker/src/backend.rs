//! [`ClaimBackend`]: the apalis `Backend` over our own claim script.
//!
//! apalis asks for a task only when a concurrency slot is free, so each claim is for one
//! slot: no prefetch, and an idle process never sits while another hoards queued work.
//! When nothing is ready, the fetch blocks on the kind's wake-up list (see
//! [`longhaul_jobs::store::WakeListener`]): a new job is picked up within a round trip, and an
//! idle queue costs one blocking call per second per process.
//!
//! Redis errors never end the worker: they are logged and the fetch retries with backoff,
//! so a Redis restart leaves the process running and it recovers by itself.

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

use apalis::prelude::{Backend, Task, TaskBuilder, WorkerContext};
use apalis_core::backend::BackendConfig;
use apalis_core::backend::finalize::Ephemeral;
use apalis_core::task::task_id::RandomId;
use futures::FutureExt;
use futures::future::BoxFuture;
use longhaul_jobs::job::JobKind;
use longhaul_jobs::store::{ClaimedJob, RedisStore, Requeue, WakeListener};
use std::sync::Arc;

use crate::breaker::{Admission, Breaker};
use tower::layer::util::Identity;

/// How long an idle fetch blocks before claiming again (also bounds a missed wake-up).
const IDLE_WAIT: Duration = Duration::from_secs(1);

/// One step of fetching: either a claimed job, or a wait that ended (woken or timed out).
enum Step {
    Claimed(Box<ClaimedJob>),
    Waited,
}

type StepFuture = BoxFuture<'static, (WakeListener, Step)>;

/// Claims jobs of one kind for one apalis worker.
pub(crate) struct ClaimBackend {
    store: RedisStore,
    kind: JobKind,
    lease: Duration,
    worker_id: String,
    breaker: Arc<Breaker>,
    listener: Option<WakeListener>,
    step: Option<StepFuture>,
    release: Option<BoxFuture<'static, ()>>,
}

impl ClaimBackend {
    pub(crate) fn new(
        store: RedisStore,
        kind: JobKind,
        lease: Duration,
        worker_id: String,
        breaker: Arc<Breaker>,
    ) -> Self {
        let listener = store.wake_listener(kind);
        Self {
            store,
            kind,
            lease,
            worker_id,
            breaker,
            listener: Some(listener),
            step: None,
            release: None,
        }
    }

    fn start_step(&mut self) -> StepFuture {
        let store = self.store.clone();
        let kind = self.kind;
        let lease = self.lease;
        let worker_id = self.worker_id.clone();
        let breaker = self.breaker.clone();
        let mut listener = self
            .listener
            .take()
            .unwrap_or_else(|| store.wake_listener(kind));
        async move {
            // An open breaker pauses claiming; bounded so a drain is never held up by it.
            let Ok(admission) = tokio::time::timeout(IDLE_WAIT, breaker.admit()).await else {
                return (listener, Step::Waited);
            };
            let claimed = store.claim(kind, lease, &worker_id).await;
            if admission == Admission::Probe {
                breaker.probe_claimed(claimed.as_ref().ok().and_then(|j| j.as_ref().map(|j| j.id)));
            }
            match claimed {
                Ok(Some(job)) => return (listener, Step::Claimed(Box::new(job))),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, %kind, "claim failed; retrying");
                    tokio::time::sleep(IDLE_WAIT).await;
                    return (listener, Step::Waited);
                }
            }
            if let Err(e) = listener.wait(IDLE_WAIT).await {
                tracing::warn!(error = %e, %kind, "waiting for work failed; retrying");
                tokio::time::sleep(IDLE_WAIT).await;
            }
            (listener, Step::Waited)
        }
        .boxed()
    }
}

impl Backend for ClaimBackend {
    type Task = Task<ClaimedJob>;
    type Error = Infallible;

    fn poll_ready(
        &mut self,
        _: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Option<Result<Self::Task, Self::Error>>> {
        loop {
            let mut step = match self.step.take() {
                Some(step) => step,
                None => self.start_step(),
            };
            match step.poll_unpin(cx) {
                Poll::Pending => {
                    self.step = Some(step);
                    return Poll::Pending;
                }
                Poll::Ready((listener, Step::Claimed(job))) => {
                    self.listener = Some(listener);
                    return Poll::Ready(Some(Ok(TaskBuilder::new(*job).build())));
                }
                Poll::Ready((listener, Step::Waited)) => self.listener = Some(listener),
            }
        }
    }

    /// Shutdown: a fetch in progress may have claimed a job already; finish it and give any
    /// such job straight back, so stopping never spends an attempt or strands a job.
    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        if let Some(mut step) = self.step.take() {
            match step.poll_unpin(cx) {
                Poll::Pending => {
                    self.step = Some(step);
                    return Poll::Pending;
                }
                Poll::Ready((_, Step::Claimed(job))) => {
                    let store = self.store.clone();
                    self.release = Some(
                        async move {
                            if let Err(e) = store.release(&job, Requeue::Front).await {
                                tracing::warn!(error = %e, job_id = %job.id, "could not give back a job claimed during shutdown; its lease will expire");
                            }
                        }
                        .boxed(),
                    );
                }
                Poll::Ready((_, Step::Waited)) => {}
            }
        }
        if let Some(release) = self.release.as_mut() {
            if release.poll_unpin(cx).is_pending() {
                return Poll::Pending;
            }
            self.release = None;
        }
        Poll::Ready(Ok(()))
    }
}

impl BackendConfig for ClaimBackend {
    type Args = ClaimedJob;
    type Id = RandomId;
    type Kind = Ephemeral;
    type Config = ();
    type Layer = Identity;

    fn config(&self) -> &Self::Config {
        &()
    }

    fn middleware(&mut self, _: &mut WorkerContext) -> Self::Layer {
        Identity::new()
    }
}
