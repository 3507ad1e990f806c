//! The worker host's one HTTP endpoint (`LONGHAUL_WORKER_METRICS_PORT`), served by the
//! supervisor for all its worker processes:
//!
//! - `/metrics`: every worker process is scraped on request (each serves its own registry on
//!   127.0.0.1, see `exporter`) and the answers are merged: each sample gets a
//!   `process="<n>"` label, each family's `# HELP`/`# TYPE` is written once. The host adds its
//!   own families with `process="supervisor"`: queue depth per kind and state (read from
//!   Redis), worker processes up, and restarts.
//! - `/readyz`: Redis, and each worker process with its circuit breaker's state; `200` when
//!   Redis answers and at least one worker process does.
//! - `/healthz`: the supervisor is alive.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use longhaul_jobs::job::JobKind;
use longhaul_jobs::metrics::{self, text};
use longhaul_jobs::store::RedisStore;
use prometheus::core::Collector;
use serde_json::{Value, json};

/// Longest a worker process or Redis may take to answer a scrape or a readiness check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the supervisor serves the host's endpoint, and the Redis it reports on.
#[derive(Debug, Clone)]
pub struct HostEndpoint {
    /// Address to bind (`LONGHAUL_BIND:LONGHAUL_WORKER_METRICS_PORT`).
    pub addr: SocketAddr,
    /// `REDIS_URL`.
    pub redis_url: String,
    /// `LONGHAUL_REDIS_PREFIX`.
    pub redis_prefix: String,
}

/// Where each worker process serves its metrics (`None` while it starts or restarts), and
/// how often processes were restarted.
#[derive(Debug, Clone, Default)]
pub(crate) struct Children {
    addrs: Arc<Mutex<Vec<Option<SocketAddr>>>>,
    restarts: Arc<AtomicU64>,
}

impl Children {
    pub(crate) fn new(processes: usize) -> Self {
        Self {
            addrs: Arc::new(Mutex::new(vec![None; processes])),
            restarts: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Option<SocketAddr>>> {
        self.addrs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records where process `index` serves (`None`: it exited).
    pub(crate) fn set(&self, index: usize, addr: Option<SocketAddr>) {
        if let Some(slot) = self.lock().get_mut(index) {
            *slot = addr;
        }
    }

    /// Counts one restart.
    pub(crate) fn restarted(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Vec<Option<SocketAddr>> {
        self.lock().clone()
    }
}

struct Host {
    children: Children,
    http: reqwest::Client,
    redis_url: String,
    redis_prefix: String,
    store: tokio::sync::Mutex<Option<RedisStore>>,
}

impl Host {
    /// The Redis store, connected on first use (the supervisor starts without Redis).
    async fn store(&self) -> Option<RedisStore> {
        let mut store = self.store.lock().await;
        if store.is_none() {
            let connect = RedisStore::connect(&self.redis_url, &self.redis_prefix);
            *store = tokio::time::timeout(CHECK_TIMEOUT, connect)
                .await
                .ok()
                .and_then(Result::ok);
        }
        store.clone()
    }

    async fn get(&self, addr: SocketAddr, path: &str) -> Option<reqwest::Response> {
        self.http
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success())
    }
}

/// Serves the host's endpoint until the process exits. A bind failure is logged, not fatal:
/// the worker processes matter more than their metrics.
pub(crate) fn spawn(endpoint: HostEndpoint, children: Children) {
    let http = match reqwest::Client::builder()
        .timeout(CHECK_TIMEOUT)
        .no_proxy()
        .build()
    {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the metrics scraper; no host metrics");
            return;
        }
    };
    let host = Arc::new(Host {
        children,
        http,
        redis_url: endpoint.redis_url,
        redis_prefix: endpoint.redis_prefix,
        store: tokio::sync::Mutex::new(None),
    });
    let app = Router::new()
        .route("/metrics", get(scrape))
        .route("/readyz", get(readyz))
        .route(
            "/healthz",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .with_state(host);
    tokio::spawn(async move {
        let listener = match tokio::net::TcpListener::bind(endpoint.addr).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::error!(addr = %endpoint.addr, error = %e, "cannot serve the worker host's /metrics and /readyz");
                return;
            }
        };
        tracing::info!(addr = %endpoint.addr, "worker host metrics listening");
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "worker host metrics endpoint stopped");
        }
    });
}

/// The host's own families: queue depth, processes up, restarts.
async fn own_families(host: &Host, up: usize) -> Vec<prometheus::proto::MetricFamily> {
    let mut families = Vec::new();
    if let Some(store) = host.store().await {
        let mut depths = Vec::new();
        for kind in JobKind::ALL {
            if let Ok(Ok(depth)) = tokio::time::timeout(CHECK_TIMEOUT, store.depth(kind)).await {
                depths.push((kind, depth));
            }
        }
        families.extend(metrics::queue_depth(&depths));
    }
    let processes = prometheus::IntGauge::new(
        "longhaul_worker_processes_up",
        "Worker processes of this host whose metrics endpoint is known (started and announced).",
    )
    .expect("valid gauge");
    processes.set(i64::try_from(up).unwrap_or(i64::MAX));
    families.extend(processes.collect());
    let restarts = prometheus::IntCounter::new(
        "longhaul_worker_restarts_total",
        "Worker processes of this host restarted after they died.",
    )
    .expect("valid counter");
    restarts.inc_by(host.children.restarts.load(Ordering::Relaxed));
    families.extend(restarts.collect());
    families
}

async fn scrape(State(host): State<Arc<Host>>) -> impl IntoResponse {
    let addrs = host.children.snapshot();
    let up = addrs.iter().flatten().count();
    let scrapes = addrs.iter().enumerate().map(|(index, addr)| {
        let host = host.clone();
        let addr = *addr;
        async move {
            let response = host.get(addr?, "/metrics").await?;
            let body = response.text().await.ok()?;
            match text::parse(&body) {
                Ok(families) => Some((index.to_string(), families)),
                Err(e) => {
                    tracing::warn!(process = index, error = %e, "worker process metrics do not parse");
                    None
                }
            }
        }
    });
    let (children, own) = tokio::join!(futures::future::join_all(scrapes), own_families(&host, up));
    let mut sources = vec![(
        "supervisor".to_owned(),
        text::parse(&metrics::encode(&own)).unwrap_or_default(),
    )];
    sources.extend(children.into_iter().flatten());
    (
        [(CONTENT_TYPE, metrics::CONTENT_TYPE)],
        text::render(&text::merge("process", sources)),
    )
}

async fn readyz(State(host): State<Arc<Host>>) -> impl IntoResponse {
    let addrs = host.children.snapshot();
    let checks = addrs.iter().enumerate().map(|(index, addr)| {
        let host = host.clone();
        let addr = *addr;
        async move {
            match addr {
                None => json!({"process": index, "status": "starting"}),
                Some(addr) => match host.get(addr, "/readyz").await {
                    Some(r) => {
                        let body: Value = r.json().await.unwrap_or(Value::Null);
                        json!({"process": index, "status": "ok", "breaker": body["breaker"]})
                    }
                    None => json!({"process": index, "status": "unreachable"}),
                },
            }
        }
    });
    let redis = async {
        match host.store().await {
            Some(store) => matches!(
                tokio::time::timeout(CHECK_TIMEOUT, store.ping()).await,
                Ok(Ok(()))
            ),
            None => false,
        }
    };
    let (processes, redis_ok) = tokio::join!(futures::future::join_all(checks), redis);
    let any_up = processes.iter().any(|p| p["status"] == "ok");
    let status = if redis_ok && any_up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if status == StatusCode::OK { "ready" } else { "unready" },
        "checks": {
            "redis": if redis_ok { "ok" } else { "unavailable" },
            "worker_processes": processes,
        },
    });
    (status, axum::Json(body))
}
