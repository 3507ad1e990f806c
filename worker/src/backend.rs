//! [`ClaimBackend`]: the apalis `Backend` over our own claim script.
//!
//! apalis asks for a task only when a concurrency slot is free; the backend counts the slots
//! its tasks hold (each task carries a [`Slot`] until its attempt ends) and claims as many
//! jobs as there are free slots, up to [`MAX_BATCH`], in one script call: no prefetch beyond
//! what can start at once, so an idle process never sits while another hoards queued work,
//! and a backlog costs one claim round trip per batch rather than per job. When the claim
//! leaves the ready list empty, the next fetch goes straight to blocking on the kind's
//! wake-up list (see [`longhaul_jobs::store::WakeListener`]): a new job is picked up within a
//! round trip, and an idle queue costs one blocking call per second per process.
//!
//! Redis errors never end the worker: they are logged and the fetch retries with backoff,
//! so a Redis restart leaves the process running and it recovers by itself.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use apalis::prelude::{Backend, BoxDynError, Data, Task, TaskBuilder, WorkerContext};
use apalis_core::backend::BackendConfig;
use apalis_core::backend::finalize::Ephemeral;
use apalis_core::task::task_id::RandomId;
use futures::FutureExt;
use futures::future::BoxFuture;
use longhaul_jobs::job::JobKind;
use longhaul_jobs::store::{ClaimedJob, RedisStore, Requeue, WakeListener};
use std::sync::Arc;

use crate::breaker::{Admission, Breaker};
use crate::pool::PoolState;
use tower::layer::util::Identity;

/// How long an idle fetch blocks before claiming again (also bounds a missed wake-up).
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// Most jobs one claim script call starts: enough to amortise the round trip, small enough
/// that the script stays short for Redis.
pub(crate) const MAX_BATCH: usize = 32;

/// One step of fetching: claimed jobs (and whether more are ready), or a wait that ended
/// (woken or timed out).
enum Step {
    Claimed(Vec<ClaimedJob>, bool),
    Waited,
}

/// A concurrency slot of one kind's pool, held from the claim until the attempt ends.
pub(crate) struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(busy: &Arc<AtomicUsize>) -> Slot {
        busy.fetch_add(1, Ordering::Relaxed);
        Slot(busy.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A claimed job with the slot it holds.
pub(crate) struct Slotted {
    job: ClaimedJob,
    slot: Slot,
}

/// The apalis handler: runs the attempt, then frees its slot.
pub(crate) async fn run_in_slot(
    task: Slotted,
    state: Data<Arc<PoolState>>,
) -> Result<(), BoxDynError> {
    let Slotted { job, slot } = task;
    let result = crate::execute::run_job(job, state).await;
    drop(slot);
    result
}

type StepFuture = BoxFuture<'static, (WakeListener, Step)>;

/// Claims jobs of one kind for one apalis worker.
pub(crate) struct ClaimBackend {
    store: RedisStore,
    kind: JobKind,
    lease: Duration,
    worker_id: String,
    breaker: Arc<Breaker>,
    concurrency: usize,
    /// Slots held by claimed jobs (handed out or not yet).
    busy: Arc<AtomicUsize>,
    /// Jobs claimed by the last batch, handed out one per poll.
    claimed: VecDeque<Slotted>,
    /// The last claim left the ready list empty: wait for a wake-up before claiming again.
    drained: bool,
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
        concurrency: usize,
    ) -> Self {
        let listener = store.wake_listener(kind);
        Self {
            store,
            kind,
            lease,
            worker_id,
            breaker,
            concurrency,
            busy: Arc::new(AtomicUsize::new(0)),
            claimed: VecDeque::new(),
            drained: false,
            listener: Some(listener),
            step: None,
            release: None,
        }
    }

    /// Claims up to `want` jobs (one when the breaker admits a probe); when none is ready, or
    /// with `wait_first` (the last claim emptied the ready list), waits for a wake-up.
    fn start_step(&mut self, want: usize, wait_first: bool) -> StepFuture {
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
            if !wait_first {
                // An open breaker pauses claiming; bounded so a drain is never held up by it.
                let Ok(admission) = tokio::time::timeout(IDLE_WAIT, breaker.admit()).await else {
                    return (listener, Step::Waited);
                };
                let want = if admission == Admission::Probe {
                    1
                } else {
                    want
                };
                let claimed = store.claim_many(kind, lease, &worker_id, want).await;
                if admission == Admission::Probe {
                    breaker.probe_claimed(
                        claimed
                            .as_ref()
                            .ok()
                            .and_then(|c| c.jobs.first().map(|j| j.id)),
                    );
                }
                match claimed {
                    Ok(c) if !c.jobs.is_empty() => {
                        return (listener, Step::Claimed(c.jobs, c.ready_left > 0));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, %kind, "claim failed; retrying");
                        tokio::time::sleep(IDLE_WAIT).await;
                        return (listener, Step::Waited);
                    }
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

    /// Free slots to claim for: apalis polls only when one is free, so at least one.
    fn free_slots(&self) -> usize {
        self.concurrency
            .saturating_sub(self.busy.load(Ordering::Relaxed))
            .clamp(1, MAX_BATCH)
    }

    fn keep(&mut self, jobs: Vec<ClaimedJob>) {
        for job in jobs {
            let slot = Slot::take(&self.busy);
            self.claimed.push_back(Slotted { job, slot });
        }
    }
}

impl Backend for ClaimBackend {
    type Task = Task<Slotted>;
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
            if let Some(task) = self.claimed.pop_front() {
                return Poll::Ready(Some(Ok(TaskBuilder::new(task).build())));
            }
            let mut step = match self.step.take() {
                Some(step) => step,
                None => {
                    let wait_first = std::mem::take(&mut self.drained);
                    self.start_step(self.free_slots(), wait_first)
                }
            };
            match step.poll_unpin(cx) {
                Poll::Pending => {
                    self.step = Some(step);
                    return Poll::Pending;
                }
                Poll::Ready((listener, Step::Claimed(jobs, more))) => {
                    self.listener = Some(listener);
                    self.keep(jobs);
                    self.drained = !more;
                }
                Poll::Ready((listener, Step::Waited)) => self.listener = Some(listener),
            }
        }
    }

    /// Shutdown: a fetch in progress may have claimed jobs already, and a batch may not be
    /// handed out yet; finish the fetch and give all such jobs straight back, so stopping
    /// never spends an attempt or strands a job.
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
                Poll::Ready((_, Step::Claimed(jobs, _))) => self.keep(jobs),
                Poll::Ready((_, Step::Waited)) => {}
            }
        }
        if self.release.is_none() && !self.claimed.is_empty() {
            let store = self.store.clone();
            // Back to the front, the oldest last, so the queue keeps its order.
            let jobs: Vec<Slotted> = self.claimed.drain(..).rev().collect();
            self.release = Some(
                async move {
                    for Slotted { job, .. } in jobs {
                        if let Err(e) = store.release(&job, Requeue::Front).await {
                            tracing::warn!(error = %e, job_id = %job.id, "could not give back a job claimed during shutdown; its lease will expire");
                        }
                    }
                }
                .boxed(),
            );
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
    type Args = Slotted;
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
