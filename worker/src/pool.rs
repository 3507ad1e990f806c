//! One worker child process (the "manager"): an apalis worker per job kind over
//! [`ClaimBackend`], with the lease heartbeat, the maintenance tick and the archiver beside
//! them, and the drain that stops them in order.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{WorkerBuilder, WorkerBuilderExt};
use futures::{FutureExt, StreamExt};
use longhaul_jobs::Config;
use longhaul_jobs::archive::Archive;
use longhaul_jobs::cache::ResultCache;
use longhaul_jobs::job::JobKind;
use longhaul_jobs::metrics;
use longhaul_jobs::provider::ProviderClient;
use longhaul_jobs::retry::RetryPolicy;
use longhaul_jobs::store::{EventListener, RedisStore};
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::backend::ClaimBackend;
use crate::breaker::Breaker;
use crate::drain::{Shutdown, ShutdownTrigger};
use crate::lease::Leases;
use crate::{archiver, exporter, maintenance};

/// Longest pause of an open circuit breaker: a provider back after an outage is used
/// within a minute.
const MAX_BREAKER_COOLDOWN: Duration = Duration::from_secs(60);

/// What every attempt in this process shares.
#[derive(Debug)]
pub(crate) struct PoolState {
    pub store: RedisStore,
    pub provider: ProviderClient,
    pub leases: Leases,
    pub retry: RetryPolicy,
    pub result_ttl: Duration,
    pub shutdown: Shutdown,
    pub breaker: Arc<Breaker>,
    /// The result cache's rules and this process's L1.
    pub cache: ResultCache,
}

/// Why a worker process could not start.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Redis could not be reached at start.
    #[error("redis: {0}")]
    Store(#[from] longhaul_jobs::store::StoreError),
    /// The Postgres pool could not be built.
    #[error("postgres: {0}")]
    Archive(#[from] longhaul_jobs::archive::ArchiveError),
    /// The provider client could not be built.
    #[error("provider client: {0}")]
    Provider(#[from] longhaul_jobs::provider::BuildError),
    /// Signal handlers could not be installed.
    #[error("signals: {0}")]
    Signals(#[from] std::io::Error),
}

/// Runs one worker process until SIGTERM (or SIGINT) has drained it.
///
/// First signal: stop claiming and let in-flight attempts finish for `shutdown_grace`; then,
/// or on a second signal, give unfinished jobs back to the queue and exit.
pub async fn run_child(config: Config, worker_id: String) -> Result<(), PoolError> {
    crate::limits::raise_open_file_limit();
    let (trigger, shutdown) = ShutdownTrigger::new();
    let trigger = Arc::new(trigger);
    spawn_signal_handler(trigger.clone(), config.worker.shutdown_grace)?;
    let export = config.worker.metrics_port.is_some();
    run_pool_with(config, worker_id, shutdown, export).await
}

/// Runs the pools until `shutdown` drains them (used by `run_child` and by tests of the drain).
pub async fn run_pool(
    config: Config,
    worker_id: String,
    shutdown: Shutdown,
) -> Result<(), PoolError> {
    run_pool_with(config, worker_id, shutdown, false).await
}

/// [`run_pool`], serving this process's metrics to its supervisor when `export` is set.
async fn run_pool_with(
    config: Config,
    worker_id: String,
    shutdown: Shutdown,
    export: bool,
) -> Result<(), PoolError> {
    let store = connect_store(&config, &shutdown).await?;
    let archive = Archive::connect_lazy(&config.database_url)?;
    let provider = ProviderClient::new(&config.ai)?;
    let state = Arc::new(PoolState {
        store: store.clone(),
        provider,
        leases: Leases::default(),
        retry: RetryPolicy::new(config.retry),
        result_ttl: config.result_ttl,
        shutdown: shutdown.clone(),
        breaker: Arc::new(Breaker::new(
            config.worker.breaker_threshold,
            config.worker.breaker_cooldown,
            MAX_BREAKER_COOLDOWN,
        )),
        cache: ResultCache::from_config(&config),
    });
    for kind in JobKind::ALL {
        metrics::get().init_slots(kind, concurrency_of(&config, kind));
    }
    if export && let Err(e) = exporter::spawn(state.breaker.clone()).await {
        tracing::warn!(error = %e, "cannot serve this process's metrics; the host's /metrics will miss it");
    }
    tracing::info!(
        worker = %worker_id,
        generation = config.worker.generation_concurrency,
        interpretation = config.worker.interpretation_concurrency,
        "worker process started"
    );

    // A cancelled job's running attempt stops within a round trip, not a heartbeat.
    let _cancel_listener = EventListener::spawn(
        store.client().clone(),
        store.keys().cancel_channel(),
        {
            let leases = state.leases.clone();
            move |id| leases.mark_lost(&[id])
        },
        || {},
    );

    // A joined job (single-flight) is completed by the job it waits for, in another
    // process: its waiting attempt here stops as soon as the completion is announced.
    let _done_listener = EventListener::spawn(
        store.client().clone(),
        store.keys().done_channel(),
        {
            let leases = state.leases.clone();
            move |id| leases.mark_lost(&[id])
        },
        || {},
    );

    // The heartbeat outlives the pools: it stops only after the last attempt has ended.
    let (heartbeat_stop_tx, heartbeat_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let heartbeat = tokio::spawn({
        let leases = state.leases.clone();
        let store = store.clone();
        let lease = config.worker.lease;
        async move {
            leases
                .heartbeat(store, lease, async {
                    let _ = heartbeat_stop_rx.await;
                })
                .await
        }
    });
    let maintenance = tokio::spawn(maintenance::run(
        store.clone(),
        Duration::from_millis(500),
        config.result_ttl,
        shutdown.clone(),
    ));
    let archiver = tokio::spawn(archiver::run(
        store.clone(),
        archive,
        worker_id.clone(),
        config.archive_batch,
        shutdown.clone(),
    ));

    let pools: Vec<_> = JobKind::ALL
        .into_iter()
        .map(|kind| {
            let concurrency = concurrency_of(&config, kind);
            let backend = ClaimBackend::new(
                store.clone(),
                kind,
                config.worker.lease,
                worker_id.clone(),
                state.breaker.clone(),
                concurrency,
            );
            tokio::spawn(run_kind_pool(
                format!("{worker_id}-{kind}"),
                backend,
                concurrency,
                state.clone(),
            ))
        })
        .collect();

    for pool in futures::future::join_all(pools).await {
        if let Err(e) = pool {
            tracing::error!(error = %e, "worker pool task failed");
        }
    }
    let _ = heartbeat_stop_tx.send(());
    let _ = heartbeat.await;
    let _ = maintenance.await;
    let _ = archiver.await;
    tracing::info!(held = state.leases.len(), "worker process drained");
    Ok(())
}

/// The apalis worker of one kind: claims one job per free slot and runs it, until draining
/// begins and every in-flight attempt has ended.
///
/// Returned boxed: the `catch_panic` layer's future is only `Send` through a concrete,
/// boxed type (a higher-ranked lifetime limitation of the compiler).
fn run_kind_pool(
    name: String,
    backend: ClaimBackend,
    concurrency: usize,
    state: Arc<PoolState>,
) -> futures::future::BoxFuture<'static, ()> {
    let stop = state.shutdown.clone();
    let worker = WorkerBuilder::new(name)
        .backend(backend)
        .concurrency(concurrency)
        .catch_panic()
        .data(state)
        .build(crate::backend::run_in_slot);
    let run = worker
        .run_until(async move {
            stop.draining().await;
            Ok::<(), std::io::Error>(())
        })
        .boxed();
    async move {
        if let Err(e) = run.await {
            tracing::error!(error = %e, "worker pool stopped with an error");
        }
    }
    .boxed()
}

/// Concurrent attempts of `kind` per process.
fn concurrency_of(config: &Config, kind: JobKind) -> usize {
    match kind {
        JobKind::Generation => config.worker.generation_concurrency,
        JobKind::Interpretation => config.worker.interpretation_concurrency,
    }
}

/// Connects to Redis, waiting for it if it is down at start (until shutdown).
async fn connect_store(config: &Config, shutdown: &Shutdown) -> Result<RedisStore, PoolError> {
    let mut delay = Duration::from_millis(200);
    loop {
        match RedisStore::connect(&config.redis_url, &config.redis_prefix).await {
            Ok(store) => return Ok(store),
            Err(e) if !shutdown.is_draining() => {
                tracing::warn!(error = %e, "cannot reach Redis yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// First SIGTERM/SIGINT: drain, and abort after `grace`. Second: abort now.
fn spawn_signal_handler(trigger: Arc<ShutdownTrigger>, grace: Duration) -> Result<(), PoolError> {
    let mut signals = signal_hook_tokio::Signals::new([SIGTERM, SIGINT])?;
    tokio::spawn(async move {
        if signals.next().await.is_none() {
            return;
        }
        tracing::info!(
            grace_secs = grace.as_secs(),
            "signal received: draining (no new claims)"
        );
        trigger.drain();
        tokio::select! {
            _ = tokio::time::sleep(grace) => tracing::warn!("shutdown grace over: giving unfinished jobs back"),
            _ = signals.next() => tracing::warn!("second signal: giving unfinished jobs back now"),
        }
        trigger.abort();
    });
    Ok(())
}
