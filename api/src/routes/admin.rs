//! `/v1/admin`: the operator's view, for credentials with the `admin` scope (`403` without).
//!
//! - `GET /v1/admin/scheduler`: which scheduler leads, and per task its schedule, last run
//!   (when, how long, outcome, what it did) and run counts.
//! - `GET /v1/admin/usage?from=&to=&tenant=`: hourly usage rows (`metrics_rollup`) with
//!   `from <= hour < to` (RFC 3339; default: the last 24 hours), of every tenant or one.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use longhaul_jobs::TenantId;
use longhaul_jobs::api_key::Scope;
use longhaul_jobs::config::SCHEDULED_TASKS;
use longhaul_jobs::time::from_millis;
use serde::Deserialize;
use serde_json::json;

use crate::auth::{Authorized, Bucket, Policy};
use crate::extract::Params;
use crate::problem::ApiError;
use crate::state::AppState;

/// Admin reads: the `admin` scope, drawn from the caller's read bucket.
pub(crate) enum AdminRead {}
impl Policy for AdminRead {
    const SCOPE: Scope = Scope::Admin;
    const BUCKET: Option<Bucket> = Some(Bucket::Read);
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/scheduler", get(scheduler))
        .route("/v1/admin/usage", get(usage))
}

async fn scheduler(
    State(state): State<AppState>,
    _admin: Authorized<AdminRead>,
) -> Result<Response, ApiError> {
    let names: Vec<&str> = SCHEDULED_TASKS.iter().map(|(task, _)| *task).collect();
    let records = state.store.task_records(&names).await?;
    let leader = state.store.scheduler_leader().await?;
    let tasks: Vec<_> = records
        .into_iter()
        .map(|r| {
            let schedule = state
                .scheduler
                .schedule(&r.task)
                .map(|s| s.source().to_owned());
            let ran = r.last_run_at.is_some();
            json!({
                "task": r.task,
                "schedule": schedule,
                "last_run_at": r.last_run_at.map(from_millis),
                "last_tick": r.last_tick.and_then(|t| DateTime::<Utc>::from_timestamp(t, 0)),
                "duration_ms": ran.then_some(r.duration_ms),
                "outcome": ran.then_some(if r.ok { "ok" } else { "error" }),
                "error": r.error,
                "report": r.report,
                "leader": r.leader,
                "runs": {"ok": r.runs_ok, "error": r.runs_error},
            })
        })
        .collect();
    Ok(axum::Json(json!({
        "leader": leader,
        "lease_secs": state.scheduler.lease.as_secs(),
        "tasks": tasks,
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
struct UsageParams {
    from: Option<String>,
    to: Option<String>,
    tenant: Option<String>,
}

fn timestamp(field: &'static str, raw: Option<String>) -> Result<Option<DateTime<Utc>>, ApiError> {
    raw.map(|raw| {
        DateTime::parse_from_rfc3339(&raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| ApiError::InvalidParameter {
                field,
                message: "must be an RFC 3339 timestamp, e.g. 2025-01-31T00:00:00Z".into(),
            })
    })
    .transpose()
}

async fn usage(
    State(state): State<AppState>,
    _admin: Authorized<AdminRead>,
    Params(params): Params<UsageParams>,
) -> Result<Response, ApiError> {
    let to = timestamp("to", params.to)?.unwrap_or_else(Utc::now);
    let from = timestamp("from", params.from)?.unwrap_or(to - chrono::Duration::hours(24));
    if from > to {
        return Err(ApiError::InvalidParameter {
            field: "from",
            message: "must not be after `to`".into(),
        });
    }
    let tenant = params
        .tenant
        .map(|t| TenantId::parse(&t))
        .transpose()
        .map_err(|e| ApiError::InvalidParameter {
            field: "tenant",
            message: e.to_string(),
        })?;
    let rows = state.archive.usage(from, to, tenant.as_ref()).await?;
    Ok(axum::Json(json!({"from": from, "to": to, "data": rows})).into_response())
}
