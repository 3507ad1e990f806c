//! A worker process's own `/metrics` and `/readyz`, for its supervisor only: served on an
//! ephemeral port of 127.0.0.1 and announced on stdout as one line (`ANNOUNCE` + address),
//! which the supervisor reads. The supervisor scrapes every child on request and serves one
//! merged endpoint for the host (see `host_endpoint`).

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use longhaul_jobs::metrics;

use crate::breaker::{Breaker, BreakerState};

/// The stdout line a worker process announces its endpoint with.
pub(crate) const ANNOUNCE: &str = "longhaul-worker-metrics ";

/// Serves this process's metrics on 127.0.0.1 (an ephemeral port) and announces the address.
pub(crate) async fn spawn(breaker: Arc<Breaker>) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(scrape))
        .route("/readyz", get(readyz))
        .with_state(breaker);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "worker metrics endpoint stopped");
        }
    });
    // Best effort: without a supervisor reading stdout, nobody scrapes us anyway.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{ANNOUNCE}{addr}");
    let _ = out.flush();
    Ok(addr)
}

async fn scrape(State(breaker): State<Arc<Breaker>>) -> impl IntoResponse {
    let m = metrics::get();
    m.breaker_open
        .set(i64::from(breaker.state() != BreakerState::Closed));
    (
        [(CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::encode(&m.gather()),
    )
}

async fn readyz(State(breaker): State<Arc<Breaker>>) -> impl IntoResponse {
    axum::Json(serde_json::json!({"breaker": breaker.state().as_str()}))
}
