//! `GET /metrics`: this API process's metrics (HTTP, jobs submitted and cancelled) plus
//! cluster-wide figures read from Redis when scraped: queue depth per kind and state, and
//! the scheduler's task runs. Unauthenticated, as Prometheus expects: expose the API's port
//! to the scraper, or block `/metrics` at the proxy.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use longhaul_jobs::config::SCHEDULED_TASKS;
use longhaul_jobs::job::JobKind;
use longhaul_jobs::metrics;

use crate::state::AppState;

/// Longest a Redis read may take before a scrape goes without it.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(scrape))
}

async fn scrape(State(state): State<AppState>) -> impl IntoResponse {
    let mut families = metrics::get().gather();
    let mut depths = Vec::new();
    for kind in JobKind::ALL {
        if let Ok(Ok(depth)) = tokio::time::timeout(READ_TIMEOUT, state.store.depth(kind)).await {
            depths.push((kind, depth));
        }
    }
    families.extend(metrics::queue_depth(&depths));
    let tasks: Vec<&str> = SCHEDULED_TASKS.iter().map(|(task, _)| *task).collect();
    if let Ok(Ok(records)) =
        tokio::time::timeout(READ_TIMEOUT, state.store.task_records(&tasks)).await
    {
        families.extend(metrics::scheduler_tasks(&records));
    }
    (
        [(CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::encode(&families),
    )
}
