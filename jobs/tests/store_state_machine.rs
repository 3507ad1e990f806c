//! The Redis state machine (`store` and its Lua scripts) against a real Redis: every
//! transition, its fencing by attempt token, and the chunked maintenance pass.
//!
//! Needs Redis at `redis://127.0.0.1:6379` (`LONGHAUL_TEST_REDIS_URL` overrides). Each test
//! works under its own key prefix and deletes its keys when it ends.

use std::collections::HashSet;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use longhaul_jobs::job::{
    ErrorCode, JobError, JobKind, JobResult, JobSpec, JobStatus, Limits, Usage,
};
use longhaul_jobs::store::{
    ClaimedJob, Enqueued, FailOutcome, Maintained, RedisStore, Requeue, StoreError,
};
use longhaul_jobs::time::Millis;
use longhaul_jobs::{JobId, TenantId};
use redis::AsyncCommands;
use redis::streams::StreamRangeReply;
use serde_json::json;

const KIND: JobKind = JobKind::Generation;
/// Long enough that no lease expires unless a test means it to.
const LONG_LEASE: Duration = Duration::from_secs(600);
const TTL: Duration = Duration::from_secs(3600);

fn redis_url() -> String {
    std::env::var("LONGHAUL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A valid generation job allowing `max_attempts` attempts.
fn spec(max_attempts: u32) -> JobSpec {
    let request = json!({
        "kind": "generation",
        "input": {"prompt": "say hello"},
        "max_attempts": max_attempts,
    });
    let limits = Limits::uniform(3, 60);
    JobSpec::parse(serde_json::from_value(request).unwrap(), &limits).unwrap()
}

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

fn answer(text: &str) -> JobResult {
    JobResult {
        text: text.into(),
        model: "test-model".into(),
        finish_reason: "stop".into(),
    }
}

fn usage() -> Usage {
    Usage {
        prompt_tokens: 3,
        completion_tokens: 5,
        total_tokens: 8,
    }
}

fn error(code: ErrorCode) -> JobError {
    JobError {
        code,
        message: "it went wrong".into(),
    }
}

/// A store under a fresh prefix; its keys are deleted when it is dropped.
struct TestStore {
    store: RedisStore,
    url: String,
    prefix: String,
}

impl TestStore {
    async fn new() -> Self {
        let url = redis_url();
        let prefix = format!("sm{}", uuid::Uuid::now_v7().simple());
        let store = RedisStore::connect(&url, &prefix).await.unwrap();
        Self { store, url, prefix }
    }

    /// Enqueues a job of tenant `acme` without an idempotency key.
    async fn submit(&self, max_attempts: u32) -> JobId {
        self.submit_for(&tenant("acme"), max_attempts).await
    }

    async fn submit_for(&self, tenant: &TenantId, max_attempts: u32) -> JobId {
        let id = JobId::new();
        let enqueued = self
            .store
            .enqueue(id, tenant, &spec(max_attempts), None)
            .await
            .unwrap();
        assert!(matches!(enqueued, Enqueued::Created { id: got, .. } if got == id));
        id
    }

    async fn claim_one(&self, lease: Duration) -> Option<ClaimedJob> {
        self.store.claim(KIND, lease, "worker-1").await.unwrap()
    }

    async fn maintain_now(&self) -> Maintained {
        self.store.maintain(KIND, 500, 20, TTL).await.unwrap()
    }

    async fn record(&self, id: JobId) -> longhaul_jobs::job::JobRecord {
        self.store.get(id).await.unwrap().expect("job is in Redis")
    }

    async fn inflight_holds(&self, id: JobId) -> bool {
        let mut conn = self.store.connection();
        let score: Option<f64> = conn
            .zscore(self.store.keys().inflight(KIND), id.to_string())
            .await
            .unwrap();
        score.is_some()
    }

    async fn ready_len(&self) -> u64 {
        self.store.depth(KIND).await.unwrap().0
    }

    /// (id, status) of every archive stream entry, oldest first.
    async fn archived(&self) -> Vec<(String, String)> {
        let mut conn = self.store.connection();
        let reply: StreamRangeReply = conn.xrange_all(self.store.keys().archive()).await.unwrap();
        reply
            .ids
            .iter()
            .map(|e| (e.get("id").unwrap(), e.get("status").unwrap()))
            .collect()
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        // Best effort: a failed cleanup must not hide the test's own outcome.
        let Ok(mut conn) = redis::Client::open(self.url.as_str()).and_then(|c| c.get_connection())
        else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{{{}}}*", self.prefix))
            .query(&mut conn)
            .unwrap_or_default();
        for batch in keys.chunks(1000) {
            let _: redis::RedisResult<i64> = redis::cmd("UNLINK").arg(batch).query(&mut conn);
        }
    }
}

#[tokio::test]
async fn a_claim_starts_attempt_one_with_a_token_and_an_empty_queue_gives_none() {
    let t = TestStore::new().await;
    let id = t.submit(3).await;

    let job = t.claim_one(LONG_LEASE).await.expect("a job is ready");
    assert_eq!(job.id, id);
    assert_eq!(job.attempt, 1);
    assert_eq!(job.max_attempts, 3);
    assert!(job.token > 0);
    assert_eq!(job.tenant, tenant("acme"));
    assert_eq!(job.spec.as_ref().unwrap(), &spec(3));
    assert_eq!(t.record(id).await.status, JobStatus::Running);
    assert!(t.inflight_holds(id).await);

    assert!(t.claim_one(LONG_LEASE).await.is_none());
}

#[tokio::test]
async fn claims_take_the_oldest_job_first() {
    let t = TestStore::new().await;
    let ids = [t.submit(3).await, t.submit(3).await, t.submit(3).await];

    for id in ids {
        assert_eq!(t.claim_one(LONG_LEASE).await.unwrap().id, id);
    }
    assert!(t.claim_one(LONG_LEASE).await.is_none());
}

#[tokio::test]
async fn complete_records_the_result_once_and_archives_it_once() {
    let t = TestStore::new().await;
    let id = t.submit(3).await;
    let job = t.claim_one(LONG_LEASE).await.unwrap();

    assert!(
        t.store
            .complete(&job, &answer("hi"), &usage(), false, TTL)
            .await
            .unwrap()
    );

    let record = t.record(id).await;
    assert_eq!(record.status, JobStatus::Succeeded);
    assert_eq!(record.result, Some(answer("hi")));
    assert_eq!(record.usage, Some(usage()));
    assert_eq!(record.attempts, 1);
    assert!(record.finished_at.is_some());
    assert!(!t.inflight_holds(id).await);
    assert_eq!(t.archived().await, [(id.to_string(), "succeeded".into())]);

    // Terminal already: the same attempt cannot write again, nor archive twice.
    assert!(
        !t.store
            .complete(&job, &answer("again"), &usage(), false, TTL)
            .await
            .unwrap()
    );
    assert_eq!(t.record(id).await.result, Some(answer("hi")));
    assert_eq!(t.archived().await.len(), 1);
}

#[tokio::test]
async fn a_stale_attempt_cannot_write_after_its_lease_was_rescued() {
    let t = TestStore::new().await;
    let id = t.submit(3).await;
    let old = t.claim_one(Duration::from_millis(100)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;

    let maintained = t.maintain_now().await;
    assert_eq!(maintained.rescued, 1);
    let rescued = t.record(id).await;
    assert_eq!(rescued.status, JobStatus::Queued);
    assert_eq!(rescued.attempts, 1);
    assert_eq!(rescued.error.unwrap().code, ErrorCode::WorkerLost);

    let new = t.claim_one(LONG_LEASE).await.unwrap();
    assert_eq!(new.id, id);
    assert_eq!(new.attempt, 2);
    assert_ne!(new.token, old.token);

    let s = &t.store;
    assert!(
        !s.complete(&old, &answer("old"), &usage(), false, TTL)
            .await
            .unwrap()
    );
    let err = error(ErrorCode::Timeout);
    let failed = s.fail(&old, &err, true, Duration::ZERO, TTL).await;
    assert_eq!(failed.unwrap(), FailOutcome::Stale);
    assert!(!s.release(&old, Requeue::Front).await.unwrap());
    let lost = s
        .heartbeat(KIND, LONG_LEASE, &[(id, old.token)])
        .await
        .unwrap();
    assert_eq!(lost, [id]);
    assert_eq!(t.record(id).await.status, JobStatus::Running);

    assert!(
        s.complete(&new, &answer("new"), &usage(), false, TTL)
            .await
            .unwrap()
    );
    assert_eq!(t.record(id).await.result, Some(answer("new")));
}

#[tokio::test]
async fn a_retryable_failure_waits_until_due_then_maintain_promotes_it() {
    let t = TestStore::new().await;
    let id = t.submit(3).await;
    let job = t.claim_one(LONG_LEASE).await.unwrap();

    let delay = Duration::from_millis(300);
    let outcome = t
        .store
        .fail(
            &job,
            &error(ErrorCode::ProviderUnavailable),
            true,
            delay,
            TTL,
        )
        .await
        .unwrap();
    let FailOutcome::RetryAt(due) = outcome else {
        panic!("expected a retry, got {outcome:?}");
    };
    let record = t.record(id).await;
    assert_eq!(record.status, JobStatus::Queued);
    assert_eq!(record.next_attempt_at, Some(due));
    assert_eq!(record.error.unwrap().code, ErrorCode::ProviderUnavailable);
    assert!(!t.inflight_holds(id).await);

    // Not due yet: neither claimable nor promoted.
    assert!(t.claim_one(LONG_LEASE).await.is_none());
    assert_eq!(t.maintain_now().await.promoted, 0);
    assert!(t.claim_one(LONG_LEASE).await.is_none());

    tokio::time::sleep(delay + Duration::from_millis(200)).await;
    assert_eq!(t.maintain_now().await.promoted, 1);
    let retry = t.claim_one(LONG_LEASE).await.unwrap();
    assert_eq!(retry.id, id);
    assert_eq!(retry.attempt, 2);
    assert_eq!(t.record(id).await.next_attempt_at, None);
}

#[tokio::test]
async fn a_non_retryable_failure_ends_the_job_even_with_attempts_left() {
    let t = TestStore::new().await;
    let id = t.submit(3).await;
    let job = t.claim_one(LONG_LEASE).await.unwrap();

    let error = error(ErrorCode::ProviderRejected);
    let outcome = t.store.fail(&job, &error, false, Duration::ZERO, TTL).await;
    assert_eq!(outcome.unwrap(), FailOutcome::Failed);

    let record = t.record(id).await;
    assert_eq!(record.status, JobStatus::Failed);
    assert_eq!(record.error, Some(error));
    assert_eq!(record.next_attempt_at, None);
    assert!(record.finished_at.is_some());
    assert_eq!(t.archived().await, [(id.to_string(), "failed".into())]);
    assert!(t.claim_one(LONG_LEASE).await.is_none());
}

#[tokio::test]
async fn a_retryable_failure_of_the_last_attempt_ends_the_job() {
    let t = TestStore::new().await;
    let id = t.submit(2).await;
    let err = error(ErrorCode::ProviderUnavailable);

    let first = t.claim_one(LONG_LEASE).await.unwrap();
    let outcome = t.store.fail(&first, &err, true, Duration::ZERO, TTL).await;
    assert!(matches!(outcome.unwrap(), FailOutcome::RetryAt(_)));
    assert_eq!(t.maintain_now().await.promoted, 1);

    let last = t.claim_one(LONG_LEASE).await.unwrap();
    assert_eq!(last.attempt, last.max_attempts);
    let outcome = t.store.fail(&last, &err, true, Duration::ZERO, TTL).await;
    assert_eq!(outcome.unwrap(), FailOutcome::Failed);
    assert_eq!(t.record(id).await.status, JobStatus::Failed);
    assert_eq!(t.maintain_now().await, Maintained::default());
}

#[tokio::test]
async fn rescue_fails_the_job_as_worker_lost_after_max_attempts() {
    let t = TestStore::new().await;
    let id = t.submit(2).await;
    let lease = Duration::from_millis(100);
    let past_lease = Duration::from_millis(400);

    t.claim_one(lease).await.unwrap();
    tokio::time::sleep(past_lease).await;
    let first = t.maintain_now().await;
    assert_eq!((first.rescued, first.failed), (1, 0));

    assert_eq!(t.claim_one(lease).await.unwrap().attempt, 2);
    tokio::time::sleep(past_lease).await;
    let second = t.maintain_now().await;
    assert_eq!((second.rescued, second.failed), (0, 1));

    let record = t.record(id).await;
    assert_eq!(record.status, JobStatus::Failed);
    assert_eq!(record.attempts, 2);
    assert_eq!(record.error.unwrap().code, ErrorCode::WorkerLost);
    assert!(!t.inflight_holds(id).await);
    assert_eq!(t.archived().await, [(id.to_string(), "failed".into())]);
    assert!(t.claim_one(lease).await.is_none());
}

#[tokio::test]
async fn release_gives_the_attempt_back_and_the_job_is_claimed_next() {
    let t = TestStore::new().await;
    let first = t.submit(3).await;
    let older_waiting = t.submit(3).await;

    let job = t.claim_one(LONG_LEASE).await.unwrap();
    assert_eq!((job.id, job.attempt), (first, 1));
    assert!(t.store.release(&job, Requeue::Front).await.unwrap());

    let record = t.record(first).await;
    assert_eq!(record.status, JobStatus::Queued);
    assert_eq!(record.attempts, 0);
    assert!(!t.inflight_holds(first).await);

    // Released to the front: ahead of the job that has been waiting all along.
    let again = t.claim_one(LONG_LEASE).await.unwrap();
    assert_eq!((again.id, again.attempt), (first, 1));
    assert_eq!(t.claim_one(LONG_LEASE).await.unwrap().id, older_waiting);
}

#[tokio::test]
async fn heartbeats_keep_a_lease_alive_past_its_length() {
    let t = TestStore::new().await;
    let id = t.submit(3).await;
    let lease = Duration::from_millis(300);
    let job = t.claim_one(lease).await.unwrap();

    for _ in 0..9 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let lost = t
            .store
            .heartbeat(KIND, lease, &[(id, job.token)])
            .await
            .unwrap();
        assert!(lost.is_empty(), "lost {lost:?}");
    }
    assert_eq!(t.maintain_now().await, Maintained::default());
    assert_eq!(t.record(id).await.status, JobStatus::Running);
    assert!(t.inflight_holds(id).await);
}

#[tokio::test]
async fn a_heartbeat_for_a_job_finished_elsewhere_reports_it_lost() {
    let t = TestStore::new().await;
    let done = t.submit(3).await;
    let running = t.submit(3).await;
    let done_job = t.claim_one(LONG_LEASE).await.unwrap();
    let running_job = t.claim_one(LONG_LEASE).await.unwrap();
    assert!(
        t.store
            .complete(&done_job, &answer("x"), &usage(), false, TTL)
            .await
            .unwrap()
    );

    let attempts = [(done, done_job.token), (running, running_job.token)];
    let lost = t
        .store
        .heartbeat(KIND, LONG_LEASE, &attempts)
        .await
        .unwrap();
    assert_eq!(lost, [done]);
    // A heartbeat never puts a finished job back in flight.
    assert!(!t.inflight_holds(done).await);
}

#[tokio::test]
async fn an_idempotency_key_returns_the_first_job_per_tenant() {
    let t = TestStore::new().await;
    let acme = tenant("acme");
    let key = Some(("order-42", Duration::from_secs(60)));

    let first = JobId::new();
    let created = t.store.enqueue(first, &acme, &spec(3), key).await.unwrap();
    assert!(matches!(created, Enqueued::Created { id, .. } if id == first));
    let again = t
        .store
        .enqueue(JobId::new(), &acme, &spec(3), key)
        .await
        .unwrap();
    assert_eq!(again, Enqueued::Existing(first));
    assert_eq!(t.ready_len().await, 1);

    let other = JobId::new();
    let created = t
        .store
        .enqueue(other, &tenant("globex"), &spec(3), key)
        .await;
    assert!(matches!(created.unwrap(), Enqueued::Created { id, .. } if id == other));
    assert_eq!(t.ready_len().await, 2);
}

#[tokio::test]
async fn a_backlog_of_ten_thousand_jobs_drains_exactly_once() {
    let t = TestStore::new().await;
    let n = 10_000;
    let enqueued: HashSet<JobId> = stream::iter(0..n)
        .map(|_| t.submit(3))
        .buffer_unordered(64)
        .collect()
        .await;
    assert_eq!(enqueued.len(), n);

    let claimed: Vec<JobId> = stream::iter(0..n)
        .map(|_| t.claim_one(LONG_LEASE))
        .buffer_unordered(64)
        .map(|job| job.expect("a job per claim").id)
        .collect()
        .await;
    let distinct: HashSet<JobId> = claimed.iter().copied().collect();
    assert_eq!(claimed.len(), n);
    assert_eq!(distinct, enqueued);
    assert!(t.claim_one(LONG_LEASE).await.is_none());
}

#[tokio::test]
async fn maintain_promotes_nine_thousand_due_retries_in_chunks() {
    let t = TestStore::new().await;
    let n = 9_000;
    stream::iter(0..n)
        .map(|_| t.submit(3))
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    let err = error(ErrorCode::ProviderUnavailable);
    let outcomes: Vec<FailOutcome> = stream::iter(0..n)
        .map(|_| async {
            let job = t.claim_one(LONG_LEASE).await.unwrap();
            t.store
                .fail(&job, &err, true, Duration::ZERO, TTL)
                .await
                .unwrap()
        })
        .buffer_unordered(64)
        .collect()
        .await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, FailOutcome::RetryAt(_)))
    );

    // 500 × 20 allows 10_000: every due retry moves in one maintenance pass.
    let maintained = t.store.maintain(KIND, 500, 20, TTL).await.unwrap();
    assert_eq!(maintained.promoted, n as u64);
    assert_eq!(t.store.depth(KIND).await.unwrap(), (n as u64, 0, 0));
}

/// Pages through a tenant's jobs `page` at a time, as the API does.
async fn all_pages(t: &TestStore, tenant: &TenantId, page: usize) -> Vec<(JobId, Millis)> {
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let rows = t.store.tenant_jobs(tenant, cursor, page).await.unwrap();
        seen.extend(rows.iter().copied());
        if rows.len() < page {
            return seen;
        }
        cursor = rows.last().map(|&(id, ms)| (ms, id));
    }
}

fn assert_newest_first_without_repeats(pages: &[(JobId, Millis)], expected: &HashSet<JobId>) {
    let distinct: HashSet<JobId> = pages.iter().map(|(id, _)| *id).collect();
    let repeated = pages.len() - distinct.len();
    let skipped = expected.difference(&distinct).count();
    assert_eq!((repeated, skipped), (0, 0), "(repeated, skipped) ids");
    assert!(distinct.is_subset(expected), "an id of another tenant");
    let positions: Vec<(Millis, JobId)> = pages.iter().map(|&(id, ms)| (ms, id)).collect();
    assert!(positions.is_sorted_by(|a, b| a > b), "not newest first");
}

#[tokio::test]
async fn tenant_pages_never_repeat_or_skip_jobs_sharing_a_millisecond() {
    let t = TestStore::new().await;
    let acme = tenant("acme");
    let ids: HashSet<JobId> = stream::iter(0..50)
        .map(|_| t.submit_for(&acme, 3))
        .buffer_unordered(50)
        .collect()
        .await;
    t.submit_for(&tenant("globex"), 3).await;

    let pages = all_pages(&t, &acme, 7).await;
    assert_newest_first_without_repeats(&pages, &ids);
}

#[tokio::test]
async fn tenant_pages_reach_every_job_even_when_hundreds_share_a_millisecond() {
    let t = TestStore::new().await;
    let acme = tenant("acme");
    // A burst one Redis can absorb in a millisecond, written straight into the index
    // (all tenant_jobs reads) so that every id shares the same score.
    let ids: HashSet<JobId> = (0..150).map(|_| JobId::new()).collect();
    let mut conn = t.store.connection();
    let members: Vec<(i64, String)> = ids
        .iter()
        .map(|id| (1_700_000_000_000, id.to_string()))
        .collect();
    let _: i64 = conn
        .zadd_multiple(t.store.keys().tenant_index(&acme), &members)
        .await
        .unwrap();

    let pages = all_pages(&t, &acme, 7).await;
    assert_newest_first_without_repeats(&pages, &ids);
}

#[tokio::test]
async fn a_job_hash_without_a_spec_reads_as_corrupt() {
    let t = TestStore::new().await;
    let id = JobId::new();
    let mut conn = t.store.connection();
    let fields = [
        ("id", id.to_string()),
        ("tenant", "acme".into()),
        ("status", "queued".into()),
        ("attempts", "0".into()),
        ("created_at", "1".into()),
    ];
    let _: () = conn
        .hset_multiple(t.store.keys().job(id), &fields)
        .await
        .unwrap();

    let read = t.store.get(id).await;
    assert!(matches!(read, Err(StoreError::Corrupt(_))), "got {read:?}");
}

#[tokio::test]
async fn a_batch_claim_starts_at_most_the_asked_number_oldest_first_and_drops_stale_wake_ups() {
    let t = TestStore::new().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(t.submit(3).await);
    }
    let signal = t.store.keys().signal(KIND);
    let mut conn = t.store.connection();

    let first = t.store.claim_many(KIND, LONG_LEASE, "w", 3).await.unwrap();
    let claimed: Vec<JobId> = first.jobs.iter().map(|j| j.id).collect();
    assert_eq!(claimed, ids[..3], "the oldest first, no more than asked");
    assert_eq!(first.ready_left, 2);
    assert!(first.jobs.iter().all(|j| j.attempt == 1 && j.token == 1));
    let tokens: u64 = conn.llen(&signal).await.unwrap();
    assert!(tokens > 0, "wake-ups stay while jobs are ready");

    let rest = t.store.claim_many(KIND, LONG_LEASE, "w", 32).await.unwrap();
    assert_eq!(rest.jobs.len(), 2);
    assert_eq!(rest.ready_left, 0);
    let tokens: u64 = conn.llen(&signal).await.unwrap();
    assert_eq!(tokens, 0, "an emptied ready list leaves no stale wake-up");
    for id in &ids {
        let job = t.store.get(*id).await.unwrap().unwrap();
        assert_eq!(job.status, JobStatus::Running);
        assert_eq!(job.attempts, 1);
    }
    assert!(
        t.store
            .claim_many(KIND, LONG_LEASE, "w", 32)
            .await
            .unwrap()
            .jobs
            .is_empty()
    );
}
