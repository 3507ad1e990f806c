//! `/v1/cache`: the result cache, for credentials with the `admin` scope (`403` without).
//!
//! - `GET /v1/cache/stats`: entries in Redis (L2) and in this API process (L1), and the
//!   hit, miss and single-flight-join counts of every process since the counters began,
//!   with the hit rate `(hits + joins) / (hits + joins + misses)`.
//! - `DELETE /v1/cache`: deletes every entry in Redis and this process's L1. Other
//!   processes' L1 entries live on until their TTL (`LONGHAUL_CACHE_TTL_SECS`).

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use serde_json::json;

use crate::auth::Authorized;
use crate::problem::ApiError;
use crate::routes::admin::AdminRead;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/cache/stats", get(stats))
        .route("/v1/cache", delete(clear))
}

async fn stats(
    State(state): State<AppState>,
    _admin: Authorized<AdminRead>,
) -> Result<Response, ApiError> {
    let stats = state.store.cache_stats().await?;
    let answered = stats.hits + stats.joins;
    let lookups = answered + stats.misses;
    let hit_rate = if lookups == 0 {
        0.0
    } else {
        answered as f64 / lookups as f64
    };
    Ok(axum::Json(json!({
        "entries": stats.entries,
        "local_entries": state.cache.local.len(),
        "hits": stats.hits,
        "misses": stats.misses,
        "joins": stats.joins,
        "hit_rate": hit_rate,
        "ttl_secs": state.cache.ttl.as_secs(),
    }))
    .into_response())
}

async fn clear(
    State(state): State<AppState>,
    _admin: Authorized<AdminRead>,
) -> Result<Response, ApiError> {
    let removed = state.store.clear_cache().await?;
    state.cache.local.clear();
    tracing::info!(removed, "result cache cleared");
    Ok(axum::Json(json!({"removed": removed})).into_response())
}
