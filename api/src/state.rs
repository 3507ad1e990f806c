//! [`AppState`]: what every handler shares.

use std::sync::Arc;
use std::time::Duration;

use longhaul_jobs::Config;
use longhaul_jobs::archive::Archive;
use longhaul_jobs::cache::ResultCache;
use longhaul_jobs::job::Limits;
use longhaul_jobs::store::{EventListener, Rate, RedisStore, Waiters};

use crate::auth::{Authenticator, Bucket};
use crate::jwt::JwtVerifier;

/// Shared state of the API.
#[derive(Clone)]
pub struct AppState {
    pub(crate) store: RedisStore,
    pub(crate) archive: Archive,
    pub(crate) auth: Arc<Authenticator>,
    /// JWT verification, when configured.
    pub(crate) jwt: Option<Arc<JwtVerifier>>,
    pub(crate) submit_rate: Rate,
    pub(crate) read_rate: Rate,
    /// Jobs a tenant may have queued at once.
    pub(crate) tenant_max_queued: u64,
    /// The front-door settings (CORS, HSTS, deadline). Behind an `Arc`, as is every
    /// sizeable field: the state is cloned for each extractor of each request.
    pub(crate) api: Arc<longhaul_jobs::config::ApiConfig>,
    pub(crate) limits: Limits,
    pub(crate) max_body_bytes: usize,
    pub(crate) idempotency_ttl: Duration,
    pub(crate) result_ttl: Duration,
    /// The scheduler's lease and schedules (for `GET /v1/admin/scheduler`).
    pub(crate) scheduler: Arc<longhaul_jobs::config::SchedulerConfig>,
    /// Long-polling requests, woken by the one `done` subscription of this process.
    pub(crate) waiters: Waiters,
    /// The result cache's rules and this process's L1.
    pub(crate) cache: ResultCache,
    _events: Arc<EventListener>,
}

/// How long an Idempotency-Key names its job: a day covers any client's retry loop.
const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

impl AppState {
    /// State over connected stores.
    pub(crate) fn new(
        store: RedisStore,
        archive: Archive,
        config: &Config,
        jwt: Option<JwtVerifier>,
    ) -> Self {
        let waiters = Waiters::default();
        let events = EventListener::spawn(
            store.client().clone(),
            store.keys().done_channel(),
            {
                let waiters = waiters.clone();
                move |id| waiters.wake(id)
            },
            {
                let waiters = waiters.clone();
                move || waiters.wake_all()
            },
        );
        Self {
            waiters,
            cache: ResultCache::from_config(config),
            _events: Arc::new(events),
            result_ttl: config.result_ttl,
            scheduler: Arc::new(config.scheduler.clone()),
            auth: Arc::new(Authenticator::new(archive.clone())),
            jwt: jwt.map(Arc::new),
            submit_rate: config.api.submit_rate.into(),
            read_rate: config.api.read_rate.into(),
            tenant_max_queued: config.api.tenant_max_queued,
            api: Arc::new(config.api.clone()),
            store,
            archive,
            limits: config.limits,
            max_body_bytes: config.max_body_bytes,
            idempotency_ttl: IDEMPOTENCY_TTL,
        }
    }
}

impl AppState {
    /// The parameters of a rate bucket.
    pub(crate) fn rate(&self, bucket: Bucket) -> Rate {
        match bucket {
            Bucket::Submit => self.submit_rate,
            Bucket::Read => self.read_rate,
        }
    }
}
