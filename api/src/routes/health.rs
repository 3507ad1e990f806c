//! `/healthz` (the process is alive) and `/readyz` (it can reach Redis and Postgres).

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;

use crate::state::AppState;

/// Longest a dependency check may take before it counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// The body of `/healthz`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// Always `ok`.
    status: HealthStatus,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum HealthStatus {
    Ok,
}

/// The body of `/readyz`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Readiness {
    /// `ready` when every check is `ok`.
    status: ReadyStatus,
    /// Each dependency.
    checks: Checks,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum ReadyStatus {
    Ready,
    Unready,
}

/// One check per dependency.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Checks {
    redis: CheckStatus,
    postgres: CheckStatus,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum CheckStatus {
    Ok,
    Unavailable,
}

/// Liveness: the process runs.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    security(()),
    responses((status = 200, description = "The process runs", body = Health)),
)]
pub(crate) async fn healthz() -> impl IntoResponse {
    axum::Json(Health {
        status: HealthStatus::Ok,
    })
}

/// Readiness: Redis and Postgres answer within 2 s.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    security(()),
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "A dependency is unreachable", body = Readiness),
    ),
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let (redis, postgres) = tokio::join!(
        tokio::time::timeout(CHECK_TIMEOUT, state.store.ping()),
        tokio::time::timeout(CHECK_TIMEOUT, state.archive.ping()),
    );
    let redis_ok = matches!(redis, Ok(Ok(())));
    let postgres_ok = matches!(postgres, Ok(Ok(())));
    let word = |ok: bool| {
        if ok {
            CheckStatus::Ok
        } else {
            CheckStatus::Unavailable
        }
    };
    let (status, word_status) = if redis_ok && postgres_ok {
        (StatusCode::OK, ReadyStatus::Ready)
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, ReadyStatus::Unready)
    };
    let body = Readiness {
        status: word_status,
        checks: Checks {
            redis: word(redis_ok),
            postgres: word(postgres_ok),
        },
    };
    (status, axum::Json(body))
}
