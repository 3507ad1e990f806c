//! `/v1/jobs`: submit (one Redis round trip, no Postgres), read, and list a tenant's jobs.
//!
//! Reads go to Redis first and fall back to the Postgres archive once Redis has expired a
//! finished job. Another tenant's job is "not found", never "forbidden".

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64_cursor::{decode_cursor, encode_cursor};
use longhaul_jobs::JobId;
use longhaul_jobs::archive::JobQuery;
use longhaul_jobs::job::{JobKind, JobRecord, JobSpec, JobStatus, SubmitRequest};
use longhaul_jobs::store::{Cancelled, Enqueued, Retried};
use longhaul_jobs::time::from_millis;
use serde::Deserialize;

use crate::auth::Caller;
use crate::body::JsonBody;
use crate::problem::ApiError;
use crate::state::AppState;
use crate::views::{AcceptedView, JobPage, JobView, Links, job_path};

/// Largest page of `GET /v1/jobs`.
const MAX_PAGE: usize = 100;
/// Longest Idempotency-Key accepted.
const MAX_IDEMPOTENCY_KEY: usize = 255;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/jobs", get(list).post(submit))
        .route("/v1/jobs/{id}", get(read).delete(cancel))
        .route("/v1/jobs/{id}/retry", post(retry))
}

async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(request): JsonBody<SubmitRequest>,
) -> Result<Response, ApiError> {
    let idempotency_key = idempotency_key(&headers)?;
    let spec = JobSpec::parse(request, &state.limits).map_err(ApiError::Validation)?;
    let id = JobId::new();
    let idempotency = idempotency_key
        .as_deref()
        .map(|k| (k, state.idempotency_ttl));
    match state
        .store
        .enqueue(id, &caller.tenant, &spec, idempotency)
        .await?
    {
        Enqueued::Created { id, created_at } => {
            tracing::info!(job_id = %id, tenant = %caller.tenant, kind = %spec.kind, "job accepted");
            let body = AcceptedView {
                id: id.to_string(),
                kind: spec.kind,
                status: JobStatus::Queued,
                created_at: from_millis(created_at),
                links: Links {
                    self_: job_path(&id),
                },
            };
            let mut response = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
            if let Ok(location) = HeaderValue::from_str(&job_path(&id)) {
                response.headers_mut().insert(LOCATION, location);
            }
            Ok(response)
        }
        Enqueued::Existing(id) => {
            let job = find(&state, &caller, id).await?.ok_or(ApiError::NotFound)?;
            let mut response = (StatusCode::OK, axum::Json(JobView::from(job))).into_response();
            if let Ok(location) = HeaderValue::from_str(&job_path(&id)) {
                response.headers_mut().insert(LOCATION, location);
            }
            Ok(response)
        }
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let invalid = || ApiError::InvalidParameter {
        field: "Idempotency-Key",
        message: format!("must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
    };
    let key = value.to_str().map_err(|_| invalid())?;
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(invalid());
    }
    Ok(Some(key.to_owned()))
}

/// A job of the caller's tenant, from Redis or else the archive.
async fn find(state: &AppState, caller: &Caller, id: JobId) -> Result<Option<JobRecord>, ApiError> {
    if let Some(job) = state.store.get(id).await? {
        return Ok((job.tenant == caller.tenant).then_some(job));
    }
    Ok(state.archive.get_job(&caller.tenant, id).await?)
}

/// Longest `?wait=` a client may ask (seconds).
const MAX_WAIT_SECS: u64 = 60;

#[derive(Debug, Deserialize)]
struct ReadParams {
    wait: Option<String>,
}

/// `GET /v1/jobs/{id}[?wait=N]`: with `wait`, answers as soon as the job is terminal (woken
/// by the process's one pub/sub subscription, not by polling), else its state after N s.
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<ReadParams>,
) -> Result<Response, ApiError> {
    let wait = match params.wait {
        None => 0,
        Some(raw) => match raw.parse::<u64>() {
            Ok(n) if n <= MAX_WAIT_SECS => n,
            _ => {
                return Err(ApiError::InvalidParameter {
                    field: "wait",
                    message: format!("must be 0 to {MAX_WAIT_SECS} seconds"),
                });
            }
        },
    };
    let id: JobId = id.parse().map_err(|_| ApiError::NotFound)?;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(wait);
    // Registered before the first read, so an end between read and wait is not missed.
    let waiter = (wait > 0).then(|| state.waiters.register(id));
    loop {
        let job = find(&state, &caller, id).await?.ok_or(ApiError::NotFound)?;
        let Some(waiter) = waiter.as_ref().filter(|_| !job.status.is_terminal()) else {
            return Ok(axum::Json(JobView::from(job)).into_response());
        };
        tokio::select! {
            _ = waiter.changed() => {}
            _ = tokio::time::sleep_until(deadline) => {
                let job = find(&state, &caller, id).await?.ok_or(ApiError::NotFound)?;
                return Ok(axum::Json(JobView::from(job)).into_response());
            }
        }
    }
}

/// `DELETE /v1/jobs/{id}`: a queued job never runs; a running job's provider call is
/// aborted. `409` when the job already ended.
async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: JobId = id.parse().map_err(|_| ApiError::NotFound)?;
    let job = find(&state, &caller, id).await?.ok_or(ApiError::NotFound)?;
    if job.status.is_terminal() {
        return Err(ApiError::Conflict(format!(
            "the job already ended: {}",
            job.status
        )));
    }
    match state
        .store
        .cancel(id, job.spec.kind, &caller.tenant, state.result_ttl)
        .await?
    {
        Cancelled::Cancelled => {
            tracing::info!(job_id = %id, tenant = %caller.tenant, "job cancelled by request");
            let job = find(&state, &caller, id).await?.ok_or(ApiError::NotFound)?;
            Ok(axum::Json(JobView::from(job)).into_response())
        }
        Cancelled::NotFound => Err(ApiError::NotFound),
        Cancelled::AlreadyEnded(status) => Err(ApiError::Conflict(format!(
            "the job already ended: {status}"
        ))),
    }
}

/// `POST /v1/jobs/{id}/retry`: runs a failed or cancelled job again with a fresh budget of
/// attempts (the dead-letter path). `409` for a job that is not failed or cancelled.
async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: JobId = id.parse().map_err(|_| ApiError::NotFound)?;
    let archived = match state.store.get(id).await? {
        Some(job) if job.tenant == caller.tenant => None,
        Some(_) => return Err(ApiError::NotFound),
        None => Some(
            state
                .archive
                .get_job(&caller.tenant, id)
                .await?
                .ok_or(ApiError::NotFound)?,
        ),
    };
    match state
        .store
        .retry(id, &caller.tenant, archived.as_ref())
        .await?
    {
        Retried::Queued => {
            tracing::info!(job_id = %id, tenant = %caller.tenant, "job queued again by request");
            let job = find(&state, &caller, id).await?.ok_or(ApiError::NotFound)?;
            Ok((StatusCode::ACCEPTED, axum::Json(JobView::from(job))).into_response())
        }
        Retried::NotFound => Err(ApiError::NotFound),
        Retried::NotRetryable(status) => Err(ApiError::Conflict(format!(
            "only failed or cancelled jobs can be retried; this one is {status}"
        ))),
    }
}

#[derive(Debug, Deserialize)]
struct ListParams {
    status: Option<String>,
    kind: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<Response, ApiError> {
    let status = params
        .status
        .map(|s| s.parse::<JobStatus>())
        .transpose()
        .map_err(|e| ApiError::InvalidParameter {
            field: "status",
            message: e.to_string(),
        })?;
    let kind = params
        .kind
        .map(|s| s.parse::<JobKind>())
        .transpose()
        .map_err(|e| ApiError::InvalidParameter {
            field: "kind",
            message: e.to_string(),
        })?;
    let limit = match params.limit {
        None => 20,
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                return Err(ApiError::InvalidParameter {
                    field: "limit",
                    message: format!("must be 1 to {MAX_PAGE}"),
                });
            }
        },
    };
    let before = params
        .cursor
        .map(|c| decode_cursor(&c))
        .transpose()
        .map_err(|_| ApiError::InvalidParameter {
            field: "cursor",
            message: "is not a cursor from a previous page".into(),
        })?;

    // Live jobs first, from the Redis index; then older ones from the archive.
    let mut data = Vec::with_capacity(limit);
    let mut next = None;
    let page = state
        .store
        .tenant_jobs(&caller.tenant, before, limit)
        .await?;
    let exhausted = page.len() < limit;
    let ids: Vec<JobId> = page.iter().map(|(id, _)| *id).collect();
    let records = state.store.get_many(&ids).await?;
    for ((id, created), record) in page.iter().zip(records) {
        let record = match record {
            Some(r) => Some(r),
            None => state.archive.get_job(&caller.tenant, *id).await?,
        };
        if let Some(r) = record
            && status.is_none_or(|s| s == r.status)
            && kind.is_none_or(|k| k == r.spec.kind)
        {
            data.push(JobView::from(r));
        }
        next = Some((*created, *id));
    }
    if exhausted {
        let cursor = next.or(before);
        let seen: std::collections::HashSet<JobId> = ids.into_iter().collect();
        let remaining = limit - page.len();
        let rows = state
            .archive
            .list_jobs(&JobQuery {
                tenant: caller.tenant.clone(),
                status,
                kind,
                before: cursor,
                limit: remaining,
            })
            .await?;
        let full = rows.len() == remaining;
        next = None;
        for r in rows {
            let position = (r.created_at, r.id);
            if !seen.contains(&r.id) {
                data.push(JobView::from(r));
            }
            if full {
                next = Some(position);
            }
        }
    }
    Ok(axum::Json(JobPage {
        data,
        next_cursor: next.map(|(ms, id)| encode_cursor(ms, id)),
    })
    .into_response())
}

/// Opaque list cursors: `base64url("<created_ms>:<id>")`.
mod base64_cursor {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use longhaul_jobs::JobId;
    use longhaul_jobs::time::Millis;

    pub(super) fn encode_cursor(ms: Millis, id: JobId) -> String {
        URL_SAFE_NO_PAD.encode(format!("{ms}:{id}"))
    }

    pub(super) fn decode_cursor(cursor: &str) -> Result<(Millis, JobId), ()> {
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| ())?;
        let text = String::from_utf8(bytes).map_err(|_| ())?;
        let (ms, id) = text.split_once(':').ok_or(())?;
        Ok((ms.parse().map_err(|_| ())?, id.parse().map_err(|_| ())?))
    }
}
