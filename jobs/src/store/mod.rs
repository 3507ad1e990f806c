//! The job state machine in Redis: every transition is one Lua script (see `lua/`), so it is
//! atomic, and every write of an attempt is fenced by that attempt's token.
//!
//! ```text
//! enqueue ─▶ ready ─claim─▶ in-flight (lease) ─complete─▶ succeeded ─▶ archive stream
//!              ▲                 │  │  └──fail──▶ delayed ─maintain─┘ (retry) or failed
//!              └──────release────┘  └──lease expired: maintain rescues (attempt counted)
//! ```
//! Keys live under the hash tag `{prefix}` (one Redis Cluster slot): see [`keys::Keys`].

mod codec;
mod error;
mod events;
mod housekeeping;
mod keys;
mod scripts;
mod wake;

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Client};

pub use codec::record_from_fields;
pub use error::StoreError;
pub use events::{EventListener, Waiter, Waiters};
pub use housekeeping::{CacheStats, CacheSweep, IndexTrim, TaskRecord, TaskRun};
pub use keys::Keys;
pub use scripts::script_hashes;
pub use wake::WakeListener;

use crate::cache::CacheKey;
use crate::ids::{JobId, TenantId};
use crate::job::{ErrorCode, JobError, JobKind, JobRecord, JobResult, JobSpec, Usage};
use crate::time::Millis;

/// Archive stream entries kept at most (approximately); the archiver drains it continuously.
const ARCHIVE_STREAM_MAX_LEN: u64 = 1_000_000;

/// A job accepted by [`RedisStore::enqueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// A new job.
    Created {
        /// Its id.
        id: JobId,
        /// When Redis accepted it.
        created_at: Millis,
    },
    /// The idempotency key already named this job; nothing was enqueued.
    Existing(JobId),
}

/// A rate-limit bucket's parameters (GCRA, see `lua/gcra.lua`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Time between two requests at the sustained rate.
    pub interval_micros: u64,
    /// Requests allowed at once.
    pub burst: u32,
}

impl From<crate::config::RateLimit> for Rate {
    fn from(limit: crate::config::RateLimit) -> Self {
        Self {
            interval_micros: limit.emission_interval_micros(),
            burst: limit.burst,
        }
    }
}

/// Where a tenant's bucket stands after one request was checked against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateState {
    /// The burst: requests allowed at once.
    pub limit: u32,
    /// Requests still allowed right now.
    pub remaining: u64,
    /// Until the bucket is full again.
    pub reset: Duration,
    /// `Some` when this request was refused: until the next one is allowed.
    pub retry_after: Option<Duration>,
}

/// An `Idempotency-Key` and the body it was sent with.
#[derive(Debug, Clone, Copy)]
pub struct Idempotency<'a> {
    /// The client's key (per tenant).
    pub key: &'a str,
    /// How long the key names its job.
    pub ttl: Duration,
    /// Digest of the request body: the same key with another body is refused. `""`: not
    /// compared.
    pub digest: &'a str,
}

/// The admission rules [`RedisStore::admit`] checks in the same script call as the enqueue.
#[derive(Debug, Clone, Copy, Default)]
pub struct Admission<'a> {
    /// A repeat of this key returns the first job.
    pub idempotency: Option<Idempotency<'a>>,
    /// The tenant's submit bucket.
    pub rate: Option<Rate>,
    /// Most jobs the tenant may have queued at once.
    pub max_queued: Option<u64>,
}

/// The result-cache lookup [`RedisStore::admit_cached`] makes in the same script call.
#[derive(Debug, Clone, Copy)]
pub struct CacheLookup<'a> {
    /// The request's answer key.
    pub key: &'a CacheKey,
    /// The answer from the caller's in-process cache, if it has one (Redis is then not read).
    pub answer: Option<&'a str>,
    /// How long Redis keeps a job answered at once.
    pub result_ttl: Duration,
}

/// What [`RedisStore::admit`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    /// A new job.
    Created {
        /// Its id.
        id: JobId,
        /// When Redis accepted it.
        created_at: Millis,
    },
    /// The idempotency key already named this job, submitted with the same body.
    Existing(JobId),
    /// The idempotency key names this job, submitted with another body; nothing enqueued.
    KeyReused(JobId),
    /// Over the tenant's submit rate; nothing enqueued.
    RateLimited,
    /// The tenant has `max_queued` jobs queued already; nothing enqueued.
    QueueFull,
    /// A new job, already succeeded from the result cache (never queued).
    Cached {
        /// Its id.
        id: JobId,
        /// When Redis accepted (and completed) it.
        created_at: Millis,
        /// The cached `result` JSON.
        answer: String,
    },
}

/// What [`RedisStore::cache_join`] decided for a claimed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheJoin {
    /// The attempt no longer owns the job (its leader completed it, or it was cancelled or
    /// rescued): stop.
    Stale,
    /// The answer was cached: the job is succeeded; this is the answer's `result` JSON.
    Hit(String),
    /// Another job computes the answer and will complete this one; ask again from time to
    /// time (the lead passes on when that job stops running).
    Joined(JobId),
    /// This attempt computes the answer.
    Lead,
}

/// One attempt a worker holds: the job, and the token that fences its writes.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    /// The job.
    pub id: JobId,
    /// Its kind (the queue it came from).
    pub kind: JobKind,
    /// The attempt token.
    pub token: i64,
    /// Which attempt this is (1-based).
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Owner.
    pub tenant: TenantId,
    /// What to run; an error when the stored payload no longer parses.
    pub spec: Result<JobSpec, String>,
    /// When it was accepted.
    pub created_at: Millis,
}

/// What [`RedisStore::claim_many`] claimed.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The attempts started, oldest job first.
    pub jobs: Vec<ClaimedJob>,
    /// Ids left in the ready list after the claim (0: nothing to claim until a wake-up).
    pub ready_left: u64,
}

/// Where [`RedisStore::release`] puts a job back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    /// Next in line: it was running when its process had to stop.
    Front,
    /// Behind the queued jobs: the provider is down, and the next probe should be another job.
    Back,
}

/// What [`RedisStore::fail`] did with a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// The attempt no longer owned the job: nothing was written.
    Stale,
    /// A retry is due at this time.
    RetryAt(Millis),
    /// The job failed for good.
    Failed,
}

/// What [`RedisStore::retry`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retried {
    /// The job is queued again.
    Queued,
    /// No such job for this tenant.
    NotFound,
    /// The job is not failed or cancelled; this is its status.
    NotRetryable(String),
    /// The tenant has its maximum of jobs queued already; nothing changed.
    QueueFull,
}

/// What [`RedisStore::cancel`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    /// The job is cancelled (a running attempt is being aborted).
    Cancelled,
    /// No such job for this tenant in Redis.
    NotFound,
    /// The job had already ended with this status.
    AlreadyEnded(String),
}

/// Counts of one [`RedisStore::maintain`] pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Maintained {
    /// Retries moved to ready.
    pub promoted: u64,
    /// Expired leases put back in ready.
    pub rescued: u64,
    /// Expired leases that had used their last attempt.
    pub failed: u64,
}

/// Which steps of `maintain.lua` a pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaintainSteps {
    /// Due retries to ready.
    PromoteDue,
    /// Expired leases back to ready (or failed, when their last attempt is spent).
    RescueLeases,
    /// Both.
    Both,
}

impl MaintainSteps {
    fn as_str(self) -> &'static str {
        match self {
            MaintainSteps::PromoteDue => "promote",
            MaintainSteps::RescueLeases => "rescue",
            MaintainSteps::Both => "both",
        }
    }
}

/// One finished job read from the archive stream.
#[derive(Debug, Clone)]
pub struct ArchiveEntry {
    /// The stream entry id (to acknowledge).
    pub entry_id: String,
    /// The job as it was when it finished; `None` if the entry could not be decoded.
    pub record: Option<JobRecord>,
}

/// The Redis side of longhaul.
#[derive(Clone)]
pub struct RedisStore {
    client: Client,
    conn: ConnectionManager,
    keys: Keys,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("keys", &self.keys)
            .finish()
    }
}

/// How long one Redis command may take before it counts as failed. Generous on purpose:
/// redis-rs' default (500 ms) turns a busy moment into an error.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

impl RedisStore {
    /// Connects, retrying in the background if Redis is down later on.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let client = Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_max_delay(Duration::from_secs(2));
        let conn = client.get_connection_manager_with_config(config).await?;
        Ok(Self {
            client,
            conn,
            keys: Keys::new(prefix),
        })
    }

    /// The key layout.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// A listener that blocks until work of `kind` may be ready (its own connection).
    pub fn wake_listener(&self, kind: JobKind) -> WakeListener {
        WakeListener::new(self.client.clone(), self.keys.signal(kind))
    }

    /// A plain connection for commands this module has no method for (health checks, tests).
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// The client, for dedicated connections (pub/sub).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// `PING`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    /// Accepts a job: one script call. With an idempotency key, a second submit returns the
    /// first job instead. No rate limit or cap applies (see [`Self::admit`]).
    pub async fn enqueue(
        &self,
        id: JobId,
        tenant: &TenantId,
        spec: &JobSpec,
        idempotency: Option<(&str, Duration)>,
    ) -> Result<Enqueued, StoreError> {
        let admission = Admission {
            idempotency: idempotency.map(|(key, ttl)| Idempotency {
                key,
                ttl,
                digest: "",
            }),
            ..Admission::default()
        };
        match self.admit(id, tenant, spec, &admission).await?.0 {
            Admitted::Created { id, created_at } => Ok(Enqueued::Created { id, created_at }),
            Admitted::Existing(id) | Admitted::KeyReused(id) => Ok(Enqueued::Existing(id)),
            Admitted::RateLimited | Admitted::QueueFull | Admitted::Cached { .. } => {
                Err(StoreError::corrupt("refused an enqueue without limits"))
            }
        }
    }

    /// Admits and accepts a job in one script call: the tenant's submit rate, the
    /// idempotency key (and its body), and the tenant's cap on queued jobs are checked
    /// atomically with the enqueue. Also returns the rate bucket's state when a rate applies.
    pub async fn admit(
        &self,
        id: JobId,
        tenant: &TenantId,
        spec: &JobSpec,
        admission: &Admission<'_>,
    ) -> Result<(Admitted, Option<RateState>), StoreError> {
        self.admit_cached(id, tenant, spec, admission, None).await
    }

    /// [`Self::admit`], answering the job at once from the result cache when `cache` finds
    /// its answer (in the caller's L1, or else in Redis, within the same script call).
    pub async fn admit_cached(
        &self,
        id: JobId,
        tenant: &TenantId,
        spec: &JobSpec,
        admission: &Admission<'_>,
        cache: Option<CacheLookup<'_>>,
    ) -> Result<(Admitted, Option<RateState>), StoreError> {
        let spec_json = serde_json::to_string(spec).map_err(StoreError::encode)?;
        let (idem_key, idem_ttl, digest) = match admission.idempotency {
            Some(i) => (
                self.keys.idempotency(tenant, i.key),
                i.ttl.as_secs().max(1),
                i.digest,
            ),
            None => (self.keys.idempotency(tenant, ""), 0, ""),
        };
        let (interval, burst) = admission
            .rate
            .map_or((0, 0), |r| (r.interval_micros.max(1), r.burst));
        let cache_key = match cache {
            Some(c) => self.keys.cache_entry(c.key),
            None => format!("{}:cache:-", self.keys.tag()),
        };
        let mut conn = self.conn.clone();
        let (outcome, job, created_at, remaining, reset_ms, retry_ms, answer): (
            String,
            String,
            i64,
            u64,
            u64,
            u64,
            String,
        ) = scripts::get()
            .enqueue
            .key(self.keys.job(id))
            .key(self.keys.ready(spec.kind))
            .key(self.keys.signal(spec.kind))
            .key(self.keys.tenant_index(tenant))
            .key(idem_key)
            .key(self.keys.rate("submit", tenant))
            .key(self.keys.tenant_queued())
            .key(cache_key)
            .key(self.keys.cache_stats())
            .key(self.keys.archive())
            .arg(id.to_string())
            .arg(tenant.as_str())
            .arg(spec.kind.as_str())
            .arg(spec_json)
            .arg(spec.max_attempts)
            .arg(idem_ttl)
            .arg(digest)
            .arg(interval)
            .arg(burst)
            .arg(admission.max_queued.unwrap_or(0))
            .arg(if cache.is_some() { "1" } else { "0" })
            .arg(cache.and_then(|c| c.answer).unwrap_or(""))
            .arg(cache.map_or(1, |c| c.result_ttl.as_secs().max(1)))
            .arg(ARCHIVE_STREAM_MAX_LEN)
            .invoke_async(&mut conn)
            .await?;
        let job_id = || -> Result<JobId, StoreError> {
            job.parse()
                .map_err(|_| StoreError::corrupt("idempotency key names no job id"))
        };
        let admitted = match outcome.as_str() {
            "created" => Admitted::Created {
                id: job_id()?,
                created_at,
            },
            "existing" => Admitted::Existing(job_id()?),
            "key_reused" => Admitted::KeyReused(job_id()?),
            "rate_limited" => Admitted::RateLimited,
            "queue_full" => Admitted::QueueFull,
            "cached" => Admitted::Cached {
                id: job_id()?,
                created_at,
                answer,
            },
            _ => return Err(StoreError::corrupt("unknown enqueue outcome")),
        };
        let rate = admission.rate.map(|r| RateState {
            limit: r.burst,
            remaining,
            reset: Duration::from_millis(reset_ms),
            retry_after: (admitted == Admitted::RateLimited)
                .then(|| Duration::from_millis(retry_ms)),
        });
        Ok((admitted, rate))
    }

    /// Checks one request of `tenant` against its `class` bucket (one script call); a
    /// refused request has `retry_after` set.
    pub async fn check_rate(
        &self,
        class: &str,
        tenant: &TenantId,
        rate: Rate,
    ) -> Result<RateState, StoreError> {
        let mut conn = self.conn.clone();
        let (allowed, remaining, reset_ms, retry_ms): (i64, u64, u64, u64) = scripts::get()
            .rate
            .key(self.keys.rate(class, tenant))
            .arg(rate.interval_micros.max(1))
            .arg(rate.burst)
            .invoke_async(&mut conn)
            .await?;
        Ok(RateState {
            limit: rate.burst,
            remaining,
            reset: Duration::from_millis(reset_ms),
            retry_after: (allowed == 0).then(|| Duration::from_millis(retry_ms)),
        })
    }

    /// Jobs of `tenant` whose status is `queued` (waiting to run or to retry), as the
    /// scripts count them.
    pub async fn queued_count(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let n: Option<i64> = conn
            .hget(self.keys.tenant_queued(), tenant.as_str())
            .await?;
        Ok(n.unwrap_or(0).max(0) as u64)
    }

    /// Claims the oldest ready job of `kind` for one attempt, or `None` when none is ready.
    pub async fn claim(
        &self,
        kind: JobKind,
        lease: Duration,
        worker_id: &str,
    ) -> Result<Option<ClaimedJob>, StoreError> {
        Ok(self
            .claim_many(kind, lease, worker_id, 1)
            .await?
            .jobs
            .into_iter()
            .next())
    }

    /// Claims up to `max` of the oldest ready jobs of `kind` (one attempt each) in one script
    /// call. Ask only for as many as can start now: a claimed attempt's lease is running.
    pub async fn claim_many(
        &self,
        kind: JobKind,
        lease: Duration,
        worker_id: &str,
        max: usize,
    ) -> Result<Claimed, StoreError> {
        let mut conn = self.conn.clone();
        let reply: Vec<redis::Value> = scripts::get()
            .claim
            .key(self.keys.ready(kind))
            .key(self.keys.inflight(kind))
            .key(self.keys.tenant_queued())
            .key(self.keys.signal(kind))
            .arg(self.keys.job_prefix())
            .arg(lease.as_millis() as u64)
            .arg(worker_id)
            .arg(max.max(1))
            .invoke_async(&mut conn)
            .await?;
        let corrupt = |what: &'static str| move |_| StoreError::corrupt(what);
        let (left, fields) = reply
            .split_first()
            .ok_or_else(|| StoreError::corrupt("empty claim reply"))?;
        let ready_left: u64 = redis::from_redis_value_ref(left).map_err(corrupt("ready left"))?;
        let mut jobs = Vec::with_capacity(fields.len() / 7);
        for job in fields.chunks_exact(7) {
            let (id, token, attempt, tenant, spec, created_at, max_attempts): (
                String,
                i64,
                u32,
                String,
                String,
                i64,
                u32,
            ) = redis::from_redis_value_ref(&redis::Value::Array(job.to_vec()))
                .map_err(corrupt("claimed job"))?;
            jobs.push(ClaimedJob {
                id: id.parse().map_err(|_| StoreError::corrupt("claimed id"))?,
                kind,
                token,
                attempt,
                max_attempts,
                tenant: TenantId::parse(&tenant)
                    .map_err(|_| StoreError::corrupt("claimed tenant"))?,
                spec: serde_json::from_str(&spec).map_err(|e| e.to_string()),
                created_at,
            });
        }
        Ok(Claimed { jobs, ready_left })
    }

    /// Renews the leases of attempts this process runs; returns the jobs it no longer owns.
    pub async fn heartbeat(
        &self,
        kind: JobKind,
        lease: Duration,
        attempts: &[(JobId, i64)],
    ) -> Result<Vec<JobId>, StoreError> {
        if attempts.is_empty() {
            return Ok(Vec::new());
        }
        let script = &scripts::get().heartbeat;
        let mut invocation = script.key(self.keys.inflight(kind));
        invocation
            .arg(self.keys.job_prefix())
            .arg(lease.as_millis() as u64);
        for (id, token) in attempts {
            invocation.arg(id.to_string()).arg(*token);
        }
        let mut conn = self.conn.clone();
        let lost: Vec<String> = invocation.invoke_async(&mut conn).await?;
        Ok(lost.iter().filter_map(|s| s.parse().ok()).collect())
    }

    /// Records the result of an attempt. `false`: the attempt was stale and wrote nothing.
    pub async fn complete(
        &self,
        job: &ClaimedJob,
        result: &JobResult,
        usage: &Usage,
        cached: bool,
        result_ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.complete_caching(job, result, usage, cached, result_ttl, None)
            .await
    }

    /// [`Self::complete`], and with `cache` (the answer's key and TTL) also stores the
    /// answer in the result cache and completes the jobs that joined this one (see
    /// `lua/cache_join.lua`), in the same script call.
    pub async fn complete_caching(
        &self,
        job: &ClaimedJob,
        result: &JobResult,
        usage: &Usage,
        cached: bool,
        result_ttl: Duration,
        cache: Option<(&CacheKey, Duration)>,
    ) -> Result<bool, StoreError> {
        let (entry, lock) = match cache {
            Some((key, _)) => (self.keys.cache_entry(key), self.keys.cache_inflight(key)),
            None => (
                format!("{}:cache:-", self.keys.tag()),
                format!("{}:inflight_cache:-", self.keys.tag()),
            ),
        };
        let mut conn = self.conn.clone();
        let written: i64 = scripts::get()
            .complete
            .key(self.keys.job(job.id))
            .key(self.keys.inflight(job.kind))
            .key(self.keys.archive())
            .key(entry)
            .key(lock)
            .arg(job.id.to_string())
            .arg(job.token)
            .arg(serde_json::to_string(result).map_err(StoreError::encode)?)
            .arg(serde_json::to_string(usage).map_err(StoreError::encode)?)
            .arg(if cached { "1" } else { "0" })
            .arg(result_ttl.as_secs().max(1))
            .arg(self.keys.done_channel())
            .arg(ARCHIVE_STREAM_MAX_LEN)
            .arg(cache.map_or(0, |(_, ttl)| ttl.as_secs().max(1)))
            .arg(self.keys.job_prefix())
            .invoke_async(&mut conn)
            .await?;
        Ok(written == 1)
    }

    /// Before an attempt calls the provider: answers it from the result cache, joins it to
    /// an identical job computing the answer, or makes it the one that computes it (one
    /// script call; see `lua/cache_join.lua`). `lock_ttl` should outlive the provider call;
    /// `first` is set on the attempt's first call (a join is counted once).
    pub async fn cache_join(
        &self,
        job: &ClaimedJob,
        key: &CacheKey,
        lock_ttl: Duration,
        result_ttl: Duration,
        first: bool,
    ) -> Result<CacheJoin, StoreError> {
        let mut conn = self.conn.clone();
        let (what, detail): (String, String) = scripts::get()
            .cache_join
            .key(self.keys.job(job.id))
            .key(self.keys.inflight(job.kind))
            .key(self.keys.archive())
            .key(self.keys.cache_entry(key))
            .key(self.keys.cache_inflight(key))
            .key(self.keys.cache_stats())
            .arg(job.id.to_string())
            .arg(job.token)
            .arg(self.keys.job_prefix())
            .arg(lock_ttl.as_millis().max(1) as u64)
            .arg(result_ttl.as_secs().max(1))
            .arg(self.keys.done_channel())
            .arg(ARCHIVE_STREAM_MAX_LEN)
            .arg(if first { "1" } else { "0" })
            .invoke_async(&mut conn)
            .await?;
        Ok(match what.as_str() {
            "hit" => CacheJoin::Hit(detail),
            "joined" => CacheJoin::Joined(
                detail
                    .parse()
                    .map_err(|_| StoreError::corrupt("single-flight leader id"))?,
            ),
            "lead" => CacheJoin::Lead,
            _ => CacheJoin::Stale,
        })
    }

    /// Records a failed attempt: a retry after `retry_delay` when `retryable` and attempts
    /// remain, else the job fails for good.
    pub async fn fail(
        &self,
        job: &ClaimedJob,
        error: &JobError,
        retryable: bool,
        retry_delay: Duration,
        result_ttl: Duration,
    ) -> Result<FailOutcome, StoreError> {
        let mut conn = self.conn.clone();
        let reply: Vec<i64> = scripts::get()
            .fail
            .key(self.keys.job(job.id))
            .key(self.keys.inflight(job.kind))
            .key(self.keys.delayed(job.kind))
            .key(self.keys.archive())
            .key(self.keys.tenant_queued())
            .arg(job.id.to_string())
            .arg(job.token)
            .arg(serde_json::to_string(error).map_err(StoreError::encode)?)
            .arg(if retryable { "1" } else { "0" })
            .arg(retry_delay.as_millis() as u64)
            .arg(result_ttl.as_secs().max(1))
            .arg(self.keys.done_channel())
            .arg(ARCHIVE_STREAM_MAX_LEN)
            .invoke_async(&mut conn)
            .await?;
        Ok(match reply.as_slice() {
            [1, due] => FailOutcome::RetryAt(*due),
            [2] => FailOutcome::Failed,
            _ => FailOutcome::Stale,
        })
    }

    /// Gives an attempt back unspent (drain, or an open circuit breaker).
    pub async fn release(&self, job: &ClaimedJob, place: Requeue) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let released: i64 = scripts::get()
            .release
            .key(self.keys.job(job.id))
            .key(self.keys.inflight(job.kind))
            .key(self.keys.ready(job.kind))
            .key(self.keys.signal(job.kind))
            .key(self.keys.tenant_queued())
            .arg(job.id.to_string())
            .arg(job.token)
            .arg(match place {
                Requeue::Front => "front",
                Requeue::Back => "back",
            })
            .invoke_async(&mut conn)
            .await?;
        Ok(released == 1)
    }

    /// Promotes due retries and rescues expired leases of `kind`, in chunks, until done
    /// (at most `max_chunks` script calls).
    pub async fn maintain(
        &self,
        kind: JobKind,
        chunk: u32,
        max_chunks: u32,
        result_ttl: Duration,
    ) -> Result<Maintained, StoreError> {
        self.maintain_steps(kind, MaintainSteps::Both, chunk, max_chunks, result_ttl)
            .await
    }

    /// [`Self::maintain`] restricted to `steps` (the scheduler runs each on its own schedule).
    pub async fn maintain_steps(
        &self,
        kind: JobKind,
        steps: MaintainSteps,
        chunk: u32,
        max_chunks: u32,
        result_ttl: Duration,
    ) -> Result<Maintained, StoreError> {
        let lost = serde_json::to_string(&JobError {
            code: ErrorCode::WorkerLost,
            message: "the process running the attempt stopped renewing its lease".into(),
        })
        .map_err(StoreError::encode)?;
        let mut total = Maintained::default();
        let mut conn = self.conn.clone();
        for _ in 0..max_chunks {
            let (promoted, rescued, failed, due_seen, expired_seen): (u64, u64, u64, u64, u64) =
                scripts::get()
                    .maintain
                    .key(self.keys.ready(kind))
                    .key(self.keys.inflight(kind))
                    .key(self.keys.delayed(kind))
                    .key(self.keys.signal(kind))
                    .key(self.keys.archive())
                    .key(self.keys.tenant_queued())
                    .arg(self.keys.job_prefix())
                    .arg(chunk)
                    .arg(result_ttl.as_secs().max(1))
                    .arg(self.keys.done_channel())
                    .arg(ARCHIVE_STREAM_MAX_LEN)
                    .arg(&lost)
                    .arg(steps.as_str())
                    .invoke_async(&mut conn)
                    .await?;
            total.promoted += promoted;
            total.rescued += rescued;
            total.failed += failed;
            // Another pass only while a chunk came back full (ids seen, not ids moved: a
            // chunk may hold ids of jobs cancelled meanwhile).
            if due_seen < u64::from(chunk) && expired_seen < u64::from(chunk) {
                break;
            }
        }
        Ok(total)
    }

    /// Queues a failed or cancelled job again with a fresh budget of attempts. `archived` is
    /// the Postgres copy, used to restore the job when Redis no longer holds it. With
    /// `max_queued`, a tenant that has that many jobs queued already is refused.
    pub async fn retry(
        &self,
        id: JobId,
        tenant: &TenantId,
        archived: Option<&JobRecord>,
        max_queued: Option<u64>,
    ) -> Result<Retried, StoreError> {
        let (kind, budget) = match archived {
            Some(r) => (r.spec.kind, r.spec.max_attempts),
            None => match self.get(id).await? {
                Some(r) => (r.spec.kind, r.spec.max_attempts),
                None => return Ok(Retried::NotFound),
            },
        };
        let restore: [String; 6] = match archived {
            Some(r) => [
                r.spec.kind.as_str().to_owned(),
                serde_json::to_string(&r.spec).map_err(StoreError::encode)?,
                r.attempts.to_string(),
                r.created_at.to_string(),
                r.started_at.map(|t| t.to_string()).unwrap_or_default(),
                match &r.error {
                    Some(e) => serde_json::to_string(e).map_err(StoreError::encode)?,
                    None => String::new(),
                },
            ],
            None => Default::default(),
        };
        let mut conn = self.conn.clone();
        let reply: String = scripts::get()
            .retry
            .key(self.keys.job(id))
            .key(self.keys.ready(kind))
            .key(self.keys.signal(kind))
            .key(self.keys.tenant_index(tenant))
            .key(self.keys.tenant_queued())
            .arg(id.to_string())
            .arg(tenant.as_str())
            .arg(budget)
            .arg(&restore[..])
            .arg(max_queued.unwrap_or(0))
            .invoke_async(&mut conn)
            .await?;
        Ok(match reply.as_str() {
            "queued" => Retried::Queued,
            "not_found" => Retried::NotFound,
            "queue_full" => Retried::QueueFull,
            other => Retried::NotRetryable(other.to_owned()),
        })
    }

    /// Cancels a queued or running job of `tenant`.
    pub async fn cancel(
        &self,
        id: JobId,
        kind: JobKind,
        tenant: &TenantId,
        result_ttl: Duration,
    ) -> Result<Cancelled, StoreError> {
        let mut conn = self.conn.clone();
        let reply: String = scripts::get()
            .cancel
            .key(self.keys.job(id))
            .key(self.keys.ready(kind))
            .key(self.keys.delayed(kind))
            .key(self.keys.inflight(kind))
            .key(self.keys.archive())
            .key(self.keys.tenant_queued())
            .arg(id.to_string())
            .arg(tenant.as_str())
            .arg(result_ttl.as_secs().max(1))
            .arg(self.keys.done_channel())
            .arg(self.keys.cancel_channel())
            .arg(ARCHIVE_STREAM_MAX_LEN)
            .invoke_async(&mut conn)
            .await?;
        Ok(match reply.as_str() {
            "cancelled" => Cancelled::Cancelled,
            "not_found" => Cancelled::NotFound,
            other => Cancelled::AlreadyEnded(other.to_owned()),
        })
    }

    /// Reads one job, if Redis still holds it.
    pub async fn get(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        let mut conn = self.conn.clone();
        let fields: Vec<(String, String)> = conn.hgetall(self.keys.job(id)).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        record_from_fields(fields).map(Some)
    }

    /// Reads several jobs in one pipeline; `None` for those Redis no longer holds.
    pub async fn get_many(&self, ids: &[JobId]) -> Result<Vec<Option<JobRecord>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(self.keys.job(*id));
        }
        let mut conn = self.conn.clone();
        let rows: Vec<Vec<(String, String)>> = pipe.query_async(&mut conn).await?;
        rows.into_iter()
            .map(|fields| {
                if fields.is_empty() {
                    Ok(None)
                } else {
                    record_from_fields(fields).map(Some)
                }
            })
            .collect()
    }

    /// A page of a tenant's job ids, newest first (by creation time, then id), strictly after
    /// the cursor `before`.
    ///
    /// Paging is by rank, not by score: many jobs can share one millisecond, and a score
    /// cursor would skip or repeat them.
    pub async fn tenant_jobs(
        &self,
        tenant: &TenantId,
        before: Option<(Millis, JobId)>,
        limit: usize,
    ) -> Result<Vec<(JobId, Millis)>, StoreError> {
        let key = self.keys.tenant_index(tenant);
        let mut conn = self.conn.clone();
        let rows: Vec<(String, f64)> = match before {
            None => {
                redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(limit.saturating_sub(1))
                    .arg("REV")
                    .arg("WITHSCORES")
                    .query_async(&mut conn)
                    .await?
            }
            Some((ms, id)) => {
                let rank: Option<usize> = redis::cmd("ZREVRANK")
                    .arg(&key)
                    .arg(id.to_string())
                    .query_async(&mut conn)
                    .await?;
                match rank {
                    Some(rank) => {
                        redis::cmd("ZRANGE")
                            .arg(&key)
                            .arg(rank + 1)
                            .arg(rank + limit)
                            .arg("REV")
                            .arg("WITHSCORES")
                            .query_async(&mut conn)
                            .await?
                    }
                    // The cursor's job left the index (trimmed): continue strictly below its
                    // millisecond.
                    None => {
                        redis::cmd("ZRANGE")
                            .arg(&key)
                            .arg(format!("({ms}"))
                            .arg("-inf")
                            .arg("BYSCORE")
                            .arg("REV")
                            .arg("LIMIT")
                            .arg(0)
                            .arg(limit)
                            .arg("WITHSCORES")
                            .query_async(&mut conn)
                            .await?
                    }
                }
            }
        };
        Ok(rows
            .into_iter()
            .filter_map(|(id, score)| Some((id.parse().ok()?, score as Millis)))
            .collect())
    }

    /// Creates the archivers' consumer group (and the stream) unless it exists. Once per
    /// archiver, and again after an error (Redis may have lost it).
    pub async fn ensure_archive_group(
        &self,
        conn: &mut ConnectionManager,
    ) -> Result<(), StoreError> {
        let created: Result<(), redis::RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(self.keys.archive())
            .arg(self.keys.archive_group())
            .arg("0")
            .arg("MKSTREAM")
            .query_async(conn)
            .await;
        match created {
            Err(e) if e.code() != Some("BUSYGROUP") => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Reads up to `count` finished jobs from the archive stream for `consumer`, blocking up
    /// to `block` for new ones (the group must exist: [`Self::ensure_archive_group`]).
    /// Entries stay pending until [`Self::ack_archive`].
    pub async fn read_archive(
        &self,
        conn: &mut ConnectionManager,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<ArchiveEntry>, StoreError> {
        let group = self.keys.archive_group();
        // First any entries this consumer read but never acknowledged, then new ones.
        let reply: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(group)
            .arg(consumer)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(block.as_millis() as u64)
            .arg("STREAMS")
            .arg(self.keys.archive())
            .arg(">")
            .query_async(conn)
            .await?;
        Ok(codec::archive_entries(reply))
    }

    /// Moves entries that another consumer read but did not acknowledge for `min_idle`
    /// (it died) to `consumer`, and returns them.
    pub async fn reclaim_archive(
        &self,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<ArchiveEntry>, StoreError> {
        let mut conn = self.conn.clone();
        let reply: Result<redis::streams::StreamAutoClaimReply, _> = redis::cmd("XAUTOCLAIM")
            .arg(self.keys.archive())
            .arg(self.keys.archive_group())
            .arg(consumer)
            .arg(min_idle.as_millis() as u64)
            .arg("0")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut conn)
            .await;
        match reply {
            Ok(reply) => Ok(codec::claimed_entries(reply)),
            // The group does not exist yet: nothing to reclaim.
            Err(e) if e.code() == Some("NOGROUP") => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// Acknowledges and deletes archived entries.
    pub async fn ack_archive(&self, entry_ids: &[String]) -> Result<(), StoreError> {
        if entry_ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.cmd("XACK")
            .arg(self.keys.archive())
            .arg(self.keys.archive_group())
            .arg(entry_ids)
            .ignore();
        pipe.cmd("XDEL")
            .arg(self.keys.archive())
            .arg(entry_ids)
            .ignore();
        let () = pipe.query_async(&mut conn).await?;
        Ok(())
    }

    /// Jobs waiting per state for `kind`: (ready, delayed, in flight).
    pub async fn depth(&self, kind: JobKind) -> Result<(u64, u64, u64), StoreError> {
        let mut conn = self.conn.clone();
        let (ready, delayed, inflight): (u64, u64, u64) = redis::pipe()
            .llen(self.keys.ready(kind))
            .zcard(self.keys.delayed(kind))
            .zcard(self.keys.inflight(kind))
            .query_async(&mut conn)
            .await?;
        Ok((ready, delayed, inflight))
    }
}
