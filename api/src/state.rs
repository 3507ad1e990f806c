//! [`AppState`]: what every handler shares.

use std::sync::Arc;
use std::time::Duration;

use longhaul_jobs::Config;
use longhaul_jobs::archive::Archive;
use longhaul_jobs::job::Limits;
use longhaul_jobs::store::{EventListener, RedisStore, Waiters};

use crate::auth::Authenticator;

/// Shared state of the API.
#[derive(Clone)]
pub struct AppState {
    pub(crate) store: RedisStore,
    pub(crate) archive: Archive,
    pub(crate) auth: Arc<Authenticator>,
    pub(crate) limits: Limits,
    pub(crate) max_body_bytes: usize,
    pub(crate) idempotency_ttl: Duration,
    pub(crate) result_ttl: Duration,
    /// Long-polling requests, woken by the one `done` subscription of this process.
    pub(crate) waiters: Waiters,
    _events: Arc<EventListener>,
}

/// How long an Idempotency-Key names its job: a day covers any client's retry loop.
const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

impl AppState {
    /// State over connected stores.
    pub fn new(store: RedisStore, archive: Archive, config: &Config) -> Self {
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
            _events: Arc::new(events),
            result_ttl: config.result_ttl,
            auth: Arc::new(Authenticator::new(archive.clone())),
            store,
            archive,
            limits: config.limits,
            max_body_bytes: config.max_body_bytes,
            idempotency_ttl: IDEMPOTENCY_TTL,
        }
    }
}
