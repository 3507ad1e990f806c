//! Admission in the Redis scripts: the per-tenant rate (GCRA), the cap on queued jobs and the
//! counter behind it, and idempotency keys bound to a body digest.
//!
//! Needs Redis at `redis://127.0.0.1:6379` (`LONGHAUL_TEST_REDIS_URL` overrides). Each test
//! works under its own key prefix and deletes its keys when it ends.

use std::time::Duration;

use longhaul_jobs::job::{ErrorCode, JobError, JobKind, JobSpec, Limits};
use longhaul_jobs::store::{
    Admission, Admitted, Cancelled, Idempotency, Rate, RedisStore, Retried,
};
use longhaul_jobs::{JobId, TenantId};
use serde_json::json;

const KIND: JobKind = JobKind::Generation;
const TTL: Duration = Duration::from_secs(3600);

fn spec() -> JobSpec {
    let request = json!({"kind": "generation", "input": {"prompt": "hello"}, "max_attempts": 3});
    JobSpec::parse(
        serde_json::from_value(request).unwrap(),
        &Limits::uniform(3, 60),
    )
    .unwrap()
}

fn acme() -> TenantId {
    TenantId::parse("acme").unwrap()
}

struct TestStore {
    store: RedisStore,
    url: String,
    prefix: String,
}

impl TestStore {
    async fn new() -> Self {
        let url = std::env::var("LONGHAUL_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let prefix = format!("adm{}", uuid::Uuid::now_v7().simple());
        let store = RedisStore::connect(&url, &prefix).await.unwrap();
        Self { store, url, prefix }
    }

    async fn admit(&self, admission: &Admission<'_>) -> Admitted {
        self.store
            .admit(JobId::new(), &acme(), &spec(), admission)
            .await
            .unwrap()
            .0
    }

    async fn queued(&self) -> u64 {
        self.store.queued_count(&acme()).await.unwrap()
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
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

fn created(admitted: &Admitted) -> JobId {
    match admitted {
        Admitted::Created { id, .. } => *id,
        other => panic!("expected a new job, got {other:?}"),
    }
}

#[tokio::test]
async fn the_queued_count_follows_every_transition_into_and_out_of_queued() {
    let t = TestStore::new().await;
    let s = &t.store;
    let none = Admission::default();
    for _ in 0..3 {
        created(&t.admit(&none).await);
    }
    assert_eq!(t.queued().await, 3);

    // claim: out of queued; a retryable failure: queued again (delayed); promotion: no change.
    let job = s.claim(KIND, TTL, "w").await.unwrap().unwrap();
    assert_eq!(t.queued().await, 2);
    let error = JobError {
        code: ErrorCode::ProviderUnavailable,
        message: "down".into(),
    };
    s.fail(&job, &error, true, Duration::ZERO, TTL)
        .await
        .unwrap();
    assert_eq!(t.queued().await, 3);
    s.maintain(KIND, 100, 10, TTL).await.unwrap();
    assert_eq!(t.queued().await, 3);

    // release (drain): queued again.
    let job = s.claim(KIND, TTL, "w").await.unwrap().unwrap();
    assert_eq!(t.queued().await, 2);
    assert!(
        s.release(&job, longhaul_jobs::store::Requeue::Front)
            .await
            .unwrap()
    );
    assert_eq!(t.queued().await, 3);

    // an expired lease rescued by maintain: queued again.
    let _expired = s
        .claim(KIND, Duration::from_millis(1), "w")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.queued().await, 2);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(s.maintain(KIND, 100, 10, TTL).await.unwrap().rescued, 1);
    assert_eq!(t.queued().await, 3);

    // cancelling a running job leaves the count alone; a queued one takes one away.
    let running = s.claim(KIND, TTL, "w").await.unwrap().unwrap();
    assert_eq!(t.queued().await, 2);
    assert_eq!(
        s.cancel(running.id, KIND, &acme(), TTL).await.unwrap(),
        Cancelled::Cancelled
    );
    assert_eq!(t.queued().await, 2);
    let queued_id = s.claim(KIND, TTL, "w").await.unwrap().unwrap();
    s.fail(&queued_id, &error, true, Duration::from_secs(60), TTL)
        .await
        .unwrap();
    assert_eq!(t.queued().await, 2);
    assert_eq!(
        s.cancel(queued_id.id, KIND, &acme(), TTL).await.unwrap(),
        Cancelled::Cancelled
    );
    assert_eq!(t.queued().await, 1);

    // retry of a cancelled job: queued again; complete: no change.
    assert_eq!(
        s.retry(running.id, &acme(), None, None).await.unwrap(),
        Retried::Queued
    );
    assert_eq!(t.queued().await, 2);
    while let Some(job) = s.claim(KIND, TTL, "w").await.unwrap() {
        let result = longhaul_jobs::job::JobResult {
            text: "ok".into(),
            model: "m".into(),
            finish_reason: "stop".into(),
        };
        s.complete(&job, &result, &Default::default(), false, TTL)
            .await
            .unwrap();
    }
    assert_eq!(t.queued().await, 0);
}

#[tokio::test]
async fn the_queued_cap_refuses_new_jobs_but_not_idempotent_repeats_nor_after_a_claim() {
    let t = TestStore::new().await;
    let capped = |key: &'static str| Admission {
        idempotency: Some(Idempotency {
            key,
            ttl: TTL,
            digest: "d",
        }),
        rate: None,
        max_queued: Some(2),
    };
    let first = created(&t.admit(&capped("a")).await);
    created(&t.admit(&capped("b")).await);
    assert_eq!(t.admit(&capped("c")).await, Admitted::QueueFull);
    assert_eq!(t.queued().await, 2);
    assert_eq!(t.admit(&capped("a")).await, Admitted::Existing(first));
    // The refused key was not taken: once a job leaves the queue, it is accepted.
    let running = t.store.claim(KIND, TTL, "w").await.unwrap().unwrap();
    assert_eq!(running.id, first);
    created(&t.admit(&capped("c")).await);
    // A retry is held to the same cap.
    t.store.cancel(first, KIND, &acme(), TTL).await.unwrap();
    assert_eq!(
        t.store.retry(first, &acme(), None, Some(2)).await.unwrap(),
        Retried::QueueFull
    );
    assert_eq!(
        t.store.retry(first, &acme(), None, Some(3)).await.unwrap(),
        Retried::Queued
    );
    assert_eq!(t.queued().await, 3);
}

#[tokio::test]
async fn an_idempotency_key_is_bound_to_the_body_it_was_first_sent_with() {
    let t = TestStore::new().await;
    let with = |digest: &'static str| Admission {
        idempotency: Some(Idempotency {
            key: "order-42",
            ttl: TTL,
            digest,
        }),
        ..Admission::default()
    };
    let first = created(&t.admit(&with("aaaa")).await);
    assert_eq!(t.admit(&with("aaaa")).await, Admitted::Existing(first));
    assert_eq!(t.admit(&with("bbbb")).await, Admitted::KeyReused(first));
    // Without a digest (an internal caller), the key alone decides.
    assert_eq!(t.admit(&with("")).await, Admitted::Existing(first));
    assert_eq!(t.queued().await, 1);
}

#[tokio::test]
async fn gcra_allows_the_burst_then_one_request_per_interval() {
    let t = TestStore::new().await;
    let rate = Rate {
        interval_micros: 300_000,
        burst: 3,
    };
    for expected in [2, 1, 0] {
        let state = t.store.check_rate("read", &acme(), rate).await.unwrap();
        assert!(state.retry_after.is_none());
        assert_eq!(state.remaining, expected);
        assert_eq!(state.limit, 3);
    }
    let refused = t.store.check_rate("read", &acme(), rate).await.unwrap();
    let wait = refused.retry_after.expect("the fourth request is refused");
    assert!(
        wait > Duration::from_millis(200) && wait <= Duration::from_millis(300),
        "{wait:?}"
    );
    assert!(refused.reset > Duration::from_millis(600), "{refused:?}");
    // Another tenant and another class have their own buckets.
    let globex = TenantId::parse("globex").unwrap();
    assert!(
        t.store
            .check_rate("read", &globex, rate)
            .await
            .unwrap()
            .retry_after
            .is_none()
    );
    assert!(
        t.store
            .check_rate("submit", &acme(), rate)
            .await
            .unwrap()
            .retry_after
            .is_none()
    );
    // Refused requests do not push the next allowed time further out.
    for _ in 0..5 {
        assert!(
            t.store
                .check_rate("read", &acme(), rate)
                .await
                .unwrap()
                .retry_after
                .is_some()
        );
    }
    tokio::time::sleep(wait + Duration::from_millis(20)).await;
    let state = t.store.check_rate("read", &acme(), rate).await.unwrap();
    assert!(state.retry_after.is_none(), "{state:?}");
    assert_eq!(state.remaining, 0);
}

#[tokio::test]
async fn a_rate_limited_submit_writes_nothing() {
    let t = TestStore::new().await;
    let admission = Admission {
        idempotency: Some(Idempotency {
            key: "k",
            ttl: TTL,
            digest: "d",
        }),
        rate: Some(Rate {
            interval_micros: 60_000_000,
            burst: 1,
        }),
        max_queued: Some(10),
    };
    let (first, rate) = t
        .store
        .admit(JobId::new(), &acme(), &spec(), &admission)
        .await
        .unwrap();
    created(&first);
    assert_eq!(rate.unwrap().remaining, 0);
    let other_key = Admission {
        idempotency: Some(Idempotency {
            key: "other",
            ttl: TTL,
            digest: "d",
        }),
        ..admission
    };
    let (second, rate) = t
        .store
        .admit(JobId::new(), &acme(), &spec(), &other_key)
        .await
        .unwrap();
    assert_eq!(second, Admitted::RateLimited);
    assert!(rate.unwrap().retry_after.unwrap() > Duration::from_secs(59));
    assert_eq!(t.queued().await, 1);
    assert_eq!(t.store.depth(KIND).await.unwrap().0, 1);
    let mut conn = t.store.connection();
    let key: Option<String> = redis::cmd("GET")
        .arg(t.store.keys().idempotency(&acme(), "other"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(key, None, "a refused submit took its idempotency key");
}
