//! `/v1/jobs`: submit (one Redis round trip, no Postgres), read, and list a tenant's jobs.
//!
//! Reads go to Redis first and fall back to the Postgres archive once Redis has expired a
//! finished job. Another tenant's job is "not found", never "forbidden".

use axum::Router;
use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64_cursor::{decode_cursor, encode_cursor};
use longhaul_jobs::JobId;
use longhaul_jobs::archive::JobQuery;
use longhaul_jobs::job::{
    JobKind, JobRecord, JobResult, JobSpec, JobStatus, SubmitRequest, Usage, ValidationError,
};
use longhaul_jobs::metrics::{self, JobOutcome};
use longhaul_jobs::store::{Admission, Admitted, CacheLookup, Cancelled, Idempotency, Retried};
use longhaul_jobs::time::from_millis;
use serde::Deserialize;

use crate::auth::{Authorized, Caller, ChangeJobs, ReadJobs, SubmitJobs};
use crate::body::JsonBody;
use crate::extract::{JobPath, Params};
use crate::problem::{ApiError, Problem};
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

/// Submit a job.
///
/// One Redis script call checks the tenant's submit rate, the Idempotency-Key and the
/// tenant's cap on queued jobs, and enqueues; no Postgres query. With an `Idempotency-Key`
/// already used by this tenant (24 h) and the same body, the first job is returned with
/// `200` and nothing is enqueued; with another body, `422 idempotency_key_reused`.
///
/// The same script call looks up the result cache (this process's L1 first, else Redis):
/// when the answer of an identical request is cached, the job is created already
/// `succeeded` (`cached: true`, zero usage, no provider call) and answered `200` with the
/// whole job, so the client need not poll. `"cache": false` bypasses the cache.
#[utoipa::path(
    post,
    path = "/v1/jobs",
    tag = "jobs",
    request_body(content = SubmitRequest, content_type = "application/json"),
    params(
        ("Idempotency-Key" = Option<String>, Header, pattern = r"^[!-~]{1,255}$",
         description = "Makes retried submits safe: the same key (per tenant, 24 h) returns the same job."),
    ),
    responses(
        (status = 202, description = "Accepted and queued", body = AcceptedView,
         headers(("Location" = String, description = "The job's URL"),
                 ("RateLimit-Limit" = u32), ("RateLimit-Remaining" = u64), ("RateLimit-Reset" = u64)),
         links(
             ("ReadJob" = (operation_id = "read", parameters(("id" = "$response.body#/id")),
                           description = "Read (or long-poll) the new job")),
             ("CancelJob" = (operation_id = "cancel", parameters(("id" = "$response.body#/id")),
                             description = "Cancel the new job")),
             ("RetryJob" = (operation_id = "retry", parameters(("id" = "$response.body#/id")),
                            description = "Run the job again once it failed or was cancelled")),
         )),
        (status = 200, description = "A repeat of an Idempotency-Key (the first job), or a job answered at once from the result cache (`status: succeeded`, `cached: true`)", body = JobView,
         headers(("Location" = String, description = "The job's URL"))),
        (status = 400, description = "`invalid_json`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the credential lacks `jobs:write`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` or `idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` or `quota_exceeded`", body = Problem, content_type = "application/problem+json",
         headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 500, description = "`internal`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable` or `timeout`", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn submit(
    State(state): State<AppState>,
    auth: Authorized<SubmitJobs>,
    headers: HeaderMap,
    body: JsonBody<SubmitRequest>,
) -> Result<Response, ApiError> {
    let caller = &auth.caller;
    let idempotency_key = idempotency_key(&headers)?;
    let spec = JobSpec::parse(body.value, &state.limits).map_err(ApiError::Validation)?;
    if let Some(url) = &spec.webhook_url {
        longhaul_jobs::webhook::check_url(url, state.api.webhook_allow_private)
            .await
            .map_err(|refused| {
                ApiError::Validation(vec![ValidationError {
                    field: "webhook.url".into(),
                    message: refused.to_string(),
                }])
            })?;
    }
    let id = JobId::new();
    let admission = Admission {
        idempotency: idempotency_key.as_deref().map(|key| Idempotency {
            key,
            ttl: state.idempotency_ttl,
            digest: body.digest.as_str(),
        }),
        rate: Some(state.submit_rate),
        max_queued: Some(state.tenant_max_queued),
    };
    let cache_key = state.cache.key(&spec, &caller.tenant);
    let local_answer = cache_key.as_ref().and_then(|k| state.cache.local.get(k));
    let lookup = cache_key.as_ref().map(|key| CacheLookup {
        key,
        answer: local_answer.as_deref(),
        result_ttl: state.result_ttl,
    });
    let (admitted, rate) = state
        .store
        .admit_cached(id, &caller.tenant, &spec, &admission, lookup)
        .await?;
    if let Some(rate) = rate {
        auth.record_rate(rate);
    }
    match admitted {
        Admitted::Created { id, created_at } => {
            tracing::info!(job_id = %id, tenant = %caller.tenant, kind = %spec.kind, "job accepted");
            metrics::get().job(spec.kind, JobOutcome::Submitted);
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
        Admitted::Existing(id) => {
            let job = find(&state, caller, id).await?.ok_or(ApiError::NotFound)?;
            let mut response = (StatusCode::OK, axum::Json(JobView::from(job))).into_response();
            if let Ok(location) = HeaderValue::from_str(&job_path(&id)) {
                response.headers_mut().insert(LOCATION, location);
            }
            Ok(response)
        }
        Admitted::Cached {
            id,
            created_at,
            answer,
        } => {
            let result: JobResult = serde_json::from_str(&answer)
                .map_err(|e| ApiError::Internal(format!("cached answer unreadable: {e}")))?;
            if let Some(key) = &cache_key
                && local_answer.is_none()
            {
                state.cache.local.insert(key, answer.into());
            }
            tracing::info!(job_id = %id, tenant = %caller.tenant, kind = %spec.kind, "job answered from the cache");
            let m = metrics::get();
            m.job(spec.kind, JobOutcome::Submitted);
            m.cache_lookups.with_label_values(&["hit"]).inc();
            let job = JobRecord {
                id,
                tenant: caller.tenant.clone(),
                max_attempts: spec.max_attempts,
                spec,
                status: JobStatus::Succeeded,
                attempts: 0,
                result: Some(result),
                error: None,
                usage: Some(Usage::default()),
                cached: true,
                created_at,
                started_at: None,
                finished_at: Some(created_at),
                next_attempt_at: None,
            };
            let mut response = (StatusCode::OK, axum::Json(JobView::from(job))).into_response();
            if let Ok(location) = HeaderValue::from_str(&job_path(&id)) {
                response.headers_mut().insert(LOCATION, location);
            }
            Ok(response)
        }
        Admitted::KeyReused(_) => Err(ApiError::IdempotencyKeyReused),
        Admitted::RateLimited => {
            Err(ApiError::RateLimited(rate.ok_or_else(|| {
                ApiError::Internal("rate limited without a rate state".into())
            })?))
        }
        Admitted::QueueFull => Err(ApiError::QuotaExceeded {
            limit: state.tenant_max_queued,
        }),
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
pub(crate) struct ReadParams {
    wait: Option<String>,
}

/// Read a job.
///
/// With `wait`, answers as soon as the job is terminal (woken by the process's one pub/sub
/// subscription, not by polling), else its state after `wait` seconds.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    tag = "jobs",
    params(
        ("id" = String, Path, description = "The job id"),
        ("wait" = Option<u32>, Query, minimum = 0, maximum = 60,
         description = "Long-poll: seconds to wait for a terminal status"),
    ),
    responses(
        (status = 200, description = "The job", body = JobView,
         headers(("RateLimit-Limit" = u32), ("RateLimit-Remaining" = u64), ("RateLimit-Reset" = u64))),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the credential lacks `jobs:read`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found` (also another tenant's job)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` (a bad `wait`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`", body = Problem, content_type = "application/problem+json",
         headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 500, description = "`internal`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable` or `timeout`", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn read(
    State(state): State<AppState>,
    auth: Authorized<ReadJobs>,
    JobPath(id): JobPath,
    Params(params): Params<ReadParams>,
) -> Result<Response, ApiError> {
    let caller = &auth.caller;
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
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(wait);
    // Registered before the first read, so an end between read and wait is not missed.
    let waiter = (wait > 0).then(|| state.waiters.register(id));
    loop {
        let job = find(&state, caller, id).await?.ok_or(ApiError::NotFound)?;
        let Some(waiter) = waiter.as_ref().filter(|_| !job.status.is_terminal()) else {
            return Ok(axum::Json(JobView::from(job)).into_response());
        };
        tokio::select! {
            _ = waiter.changed() => {}
            _ = tokio::time::sleep_until(deadline) => {
                let job = find(&state, caller, id).await?.ok_or(ApiError::NotFound)?;
                return Ok(axum::Json(JobView::from(job)).into_response());
            }
        }
    }
}

/// Cancel a job.
///
/// A queued job never runs; a running job's provider call is aborted. `409` when the job
/// already ended.
#[utoipa::path(
    delete,
    path = "/v1/jobs/{id}",
    tag = "jobs",
    params(("id" = String, Path, description = "The job id")),
    responses(
        (status = 200, description = "The cancelled job", body = JobView,
         headers(("RateLimit-Limit" = u32), ("RateLimit-Remaining" = u64), ("RateLimit-Reset" = u64))),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the credential lacks `jobs:write`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: the job already ended", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`", body = Problem, content_type = "application/problem+json",
         headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 500, description = "`internal`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable` or `timeout`", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    auth: Authorized<ChangeJobs>,
    JobPath(id): JobPath,
) -> Result<Response, ApiError> {
    let caller = &auth.caller;
    let job = find(&state, caller, id).await?.ok_or(ApiError::NotFound)?;
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
            metrics::get().job(job.spec.kind, JobOutcome::Cancelled);
            let job = find(&state, caller, id).await?.ok_or(ApiError::NotFound)?;
            Ok(axum::Json(JobView::from(job)).into_response())
        }
        Cancelled::NotFound => Err(ApiError::NotFound),
        Cancelled::AlreadyEnded(status) => Err(ApiError::Conflict(format!(
            "the job already ended: {status}"
        ))),
    }
}

/// Run a failed or cancelled job again.
///
/// The job is queued again with a fresh budget of attempts (the dead-letter path); it is
/// restored from Postgres when Redis no longer holds it. `409` for a job that is not failed
/// or cancelled.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/retry",
    tag = "jobs",
    params(("id" = String, Path, description = "The job id")),
    responses(
        (status = 202, description = "Queued again", body = JobView,
         headers(("RateLimit-Limit" = u32), ("RateLimit-Remaining" = u64), ("RateLimit-Reset" = u64))),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the credential lacks `jobs:write`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: the job is not failed or cancelled", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` or `quota_exceeded`", body = Problem, content_type = "application/problem+json",
         headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 500, description = "`internal`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable` or `timeout`", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn retry(
    State(state): State<AppState>,
    auth: Authorized<ChangeJobs>,
    JobPath(id): JobPath,
) -> Result<Response, ApiError> {
    let caller = &auth.caller;
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
        .retry(
            id,
            &caller.tenant,
            archived.as_ref(),
            Some(state.tenant_max_queued),
        )
        .await?
    {
        Retried::Queued => {
            tracing::info!(job_id = %id, tenant = %caller.tenant, "job queued again by request");
            let job = find(&state, caller, id).await?.ok_or(ApiError::NotFound)?;
            Ok((StatusCode::ACCEPTED, axum::Json(JobView::from(job))).into_response())
        }
        Retried::NotFound => Err(ApiError::NotFound),
        Retried::QueueFull => Err(ApiError::QuotaExceeded {
            limit: state.tenant_max_queued,
        }),
        Retried::NotRetryable(status) => Err(ApiError::Conflict(format!(
            "only failed or cancelled jobs can be retried; this one is {status}"
        ))),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListParams {
    status: Option<String>,
    kind: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// List the tenant's jobs, newest first.
///
/// Pass `next_cursor` back as `cursor` for the next page; a page may hold fewer than
/// `limit` jobs when filters apply: keep following `next_cursor` until it is `null`.
#[utoipa::path(
    get,
    path = "/v1/jobs",
    tag = "jobs",
    params(
        ("status" = Option<JobStatus>, Query, description = "Only jobs in this status"),
        ("kind" = Option<JobKind>, Query, description = "Only jobs of this kind"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (default 20)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of jobs", body = JobPage,
         headers(("RateLimit-Limit" = u32), ("RateLimit-Remaining" = u64), ("RateLimit-Reset" = u64))),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the credential lacks `jobs:read`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` (a bad parameter)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`", body = Problem, content_type = "application/problem+json",
         headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 500, description = "`internal`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable` or `timeout`", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    auth: Authorized<ReadJobs>,
    Params(params): Params<ListParams>,
) -> Result<Response, ApiError> {
    let caller = &auth.caller;
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
