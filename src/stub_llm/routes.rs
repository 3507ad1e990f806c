//! The stub's HTTP routes: chat completions plus `/stub/*` introspection and control.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::completion::chat_completions;
use super::openai;
use super::state::StubState;

/// Largest accepted request body (long prompts are fine).
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Builds the stub's router over `state`.
pub fn router(state: Arc<StubState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/chat/completions", post(chat_completions))
        .route("/stub/calls", get(calls))
        .route("/stub/calls/{job_id}", get(job_calls))
        .route("/stub/in-flight", get(in_flight))
        .route("/stub/closed-early", get(closed_early))
        .route("/stub/reset", post(reset))
        .route("/stub/outage", post(outage))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn calls(State(state): State<Arc<StubState>>) -> Response {
    Json(state.calls()).into_response()
}

async fn job_calls(State(state): State<Arc<StubState>>, Path(job_id): Path<String>) -> Response {
    Json(state.job(job_id)).into_response()
}

async fn in_flight(State(state): State<Arc<StubState>>) -> Response {
    Json(state.in_flight()).into_response()
}

async fn closed_early(State(state): State<Arc<StubState>>) -> Response {
    Json(state.closed_early()).into_response()
}

async fn reset(State(state): State<Arc<StubState>>) -> Response {
    state.reset();
    Json(json!({"reset": true})).into_response()
}

/// Body of `POST /stub/outage`.
#[derive(Debug, Deserialize)]
struct OutageRequest {
    /// Outage length from now; 0 ends any outage.
    ms: u64,
    /// Status answered during the outage.
    #[serde(default = "default_outage_status")]
    status: u16,
    /// Optional `Retry-After` seconds.
    #[serde(default)]
    retry_after: Option<u64>,
}

fn default_outage_status() -> u16 {
    503
}

async fn outage(State(state): State<Arc<StubState>>, body: axum::body::Bytes) -> Response {
    let request: OutageRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => return openai::error(400, &format!("invalid outage body: {err}"), None),
    };
    if !(400..=599).contains(&request.status) {
        return openai::error(400, "`status` must be in 400..=599", None);
    }
    state.set_outage(request.ms, request.status, request.retry_after);
    (
        StatusCode::OK,
        Json(json!({
            "ms": request.ms,
            "status": request.status,
            "retry_after": request.retry_after,
        })),
    )
        .into_response()
}
