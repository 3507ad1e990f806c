//! [`ApiError`]: every error the API returns, mapped once to an RFC 9457
//! `application/problem+json` response with a stable `code`.
//!
//! 5xx bodies say what kind of failure happened, never the internal detail (which is logged).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use longhaul_jobs::api_key::Scope;
use longhaul_jobs::job::ValidationError;
use longhaul_jobs::store::RateState;
use serde::Serialize;
use serde_json::json;

use crate::rate_limit;
use crate::request_id::HEADER;

/// The content type of problem bodies.
pub(crate) const PROBLEM_JSON: &str = "application/problem+json";

/// Seconds a client over its queued-jobs cap is asked to wait: workers drain queues in
/// seconds, and retrying sooner only spends the client's rate.
const QUEUE_FULL_RETRY_AFTER_SECS: &str = "5";

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("missing or invalid credentials")]
    Unauthorized,
    #[error("this credential lacks the {0} scope")]
    Forbidden(Scope),
    #[error("too many requests: retry after the time in Retry-After")]
    RateLimited(RateState),
    #[error("the tenant already has its maximum of {limit} jobs queued; retry once some have run")]
    QuotaExceeded { limit: u64 },
    #[error("this Idempotency-Key was used with a different request body")]
    IdempotencyKeyReused,
    #[error("the request took longer than {secs} s")]
    Timeout { secs: u64 },
    #[error("not found")]
    NotFound,
    #[error("request body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("request is invalid")]
    Validation(Vec<ValidationError>),
    #[error("invalid parameter {field}: {message}")]
    InvalidParameter {
        field: &'static str,
        message: String,
    },
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    #[error("a dependency is unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// The stable `code` of a problem, which clients switch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ProblemCode {
    /// 401: no credential, or one that is unknown, revoked, expired or badly signed.
    Unauthorized,
    /// 403: a valid credential without the scope the route needs.
    Forbidden,
    /// 404: no such route, or no such job for this tenant.
    NotFound,
    /// 400: the body is not a JSON object.
    InvalidJson,
    /// 422: a field or parameter is invalid (see `errors`).
    ValidationFailed,
    /// 422: the Idempotency-Key was used with another body.
    IdempotencyKeyReused,
    /// 413: the body is over `LONGHAUL_MAX_BODY_BYTES`.
    PayloadTooLarge,
    /// 405.
    MethodNotAllowed,
    /// 409: the job is not in a state that allows this.
    Conflict,
    /// 429: over the tenant's request rate (see `Retry-After`).
    RateLimited,
    /// 429: the tenant has its maximum of jobs queued.
    QuotaExceeded,
    /// 503: the request took longer than `LONGHAUL_REQUEST_TIMEOUT_SECS`.
    Timeout,
    /// 503: Redis or Postgres is unreachable.
    Unavailable,
    /// 500.
    Internal,
}

impl ProblemCode {
    /// The code as it appears in bodies and problem types.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ProblemCode::Unauthorized => "unauthorized",
            ProblemCode::Forbidden => "forbidden",
            ProblemCode::NotFound => "not_found",
            ProblemCode::InvalidJson => "invalid_json",
            ProblemCode::ValidationFailed => "validation_failed",
            ProblemCode::IdempotencyKeyReused => "idempotency_key_reused",
            ProblemCode::PayloadTooLarge => "payload_too_large",
            ProblemCode::MethodNotAllowed => "method_not_allowed",
            ProblemCode::Conflict => "conflict",
            ProblemCode::RateLimited => "rate_limited",
            ProblemCode::QuotaExceeded => "quota_exceeded",
            ProblemCode::Timeout => "timeout",
            ProblemCode::Unavailable => "unavailable",
            ProblemCode::Internal => "internal",
        }
    }
}

/// An RFC 9457 problem, as every error is answered (`application/problem+json`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Problem {
    /// `https://longhaul.dev/problems/<code>`.
    #[serde(rename = "type")]
    pub r#type: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// The stable code.
    pub code: ProblemCode,
    /// What happened, for people. 5xx details never carry internal information.
    pub detail: String,
    /// The invalid fields or parameters (`validation_failed` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<ValidationError>>,
    /// The request's `X-Request-Id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl ApiError {
    /// The stable code clients can switch on.
    pub(crate) fn code(&self) -> ProblemCode {
        match self {
            ApiError::Unauthorized => ProblemCode::Unauthorized,
            ApiError::Forbidden(_) => ProblemCode::Forbidden,
            ApiError::RateLimited(_) => ProblemCode::RateLimited,
            ApiError::QuotaExceeded { .. } => ProblemCode::QuotaExceeded,
            ApiError::IdempotencyKeyReused => ProblemCode::IdempotencyKeyReused,
            ApiError::Timeout { .. } => ProblemCode::Timeout,
            ApiError::NotFound => ProblemCode::NotFound,
            ApiError::InvalidJson(_) => ProblemCode::InvalidJson,
            ApiError::Validation(_) | ApiError::InvalidParameter { .. } => {
                ProblemCode::ValidationFailed
            }
            ApiError::PayloadTooLarge { .. } => ProblemCode::PayloadTooLarge,
            ApiError::MethodNotAllowed => ProblemCode::MethodNotAllowed,
            ApiError::Conflict(_) => ProblemCode::Conflict,
            ApiError::Unavailable(_) => ProblemCode::Unavailable,
            ApiError::Internal(_) => ProblemCode::Internal,
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::RateLimited(_) | ApiError::QuotaExceeded { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Timeout { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::InvalidJson(_) => StatusCode::BAD_REQUEST,
            ApiError::Validation(_) | ApiError::InvalidParameter { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "Unauthorized",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::RateLimited(_) => "Too many requests",
            ApiError::QuotaExceeded { .. } => "Too many jobs queued",
            ApiError::IdempotencyKeyReused => "Idempotency key reused",
            ApiError::Timeout { .. } => "Request timed out",
            ApiError::NotFound => "Not found",
            ApiError::InvalidJson(_) => "Invalid JSON",
            ApiError::Validation(_) | ApiError::InvalidParameter { .. } => "Validation failed",
            ApiError::PayloadTooLarge { .. } => "Payload too large",
            ApiError::MethodNotAllowed => "Method not allowed",
            ApiError::Conflict(_) => "Conflict",
            ApiError::Unavailable(_) => "Service unavailable",
            ApiError::Internal(_) => "Internal error",
        }
    }
}

impl From<longhaul_jobs::store::StoreError> for ApiError {
    fn from(e: longhaul_jobs::store::StoreError) -> Self {
        match e {
            longhaul_jobs::store::StoreError::Redis(_) => ApiError::Unavailable(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<longhaul_jobs::archive::ArchiveError> for ApiError {
    fn from(e: longhaul_jobs::archive::ArchiveError) -> Self {
        match e {
            longhaul_jobs::archive::ArchiveError::Database(_) => {
                ApiError::Unavailable(e.to_string())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match &self {
            // Internal detail stays in the logs.
            ApiError::Unavailable(inner) => {
                tracing::warn!(error = %inner, "dependency unavailable");
                "A dependency of the service is unavailable; retry shortly.".to_owned()
            }
            ApiError::Internal(inner) => {
                tracing::error!(error = %inner, "internal error");
                "The server failed to handle the request.".to_owned()
            }
            other => other.to_string(),
        };
        let errors = match &self {
            ApiError::Validation(errors) => Some(errors.clone()),
            ApiError::InvalidParameter { field, message } => Some(vec![ValidationError {
                field: (*field).to_owned(),
                message: message.clone(),
            }]),
            _ => None,
        };
        let body = Problem {
            r#type: format!("https://longhaul.dev/problems/{}", self.code().as_str()),
            title: self.title().to_owned(),
            status: status.as_u16(),
            code: self.code(),
            detail,
            errors,
            request_id: None,
        };
        let mut response = (status, axum::Json(body)).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        match self {
            ApiError::Unavailable(_) | ApiError::Timeout { .. } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::RateLimited(rate) => {
                rate_limit::set_headers(response.headers_mut(), &rate);
            }
            ApiError::QuotaExceeded { .. } => {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(QUEUE_FULL_RETRY_AFTER_SECS),
                );
            }
            ApiError::Unauthorized => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

/// Adds the request id to every problem body, so a client's bug report names the request.
pub(crate) async fn attach_request_id(request: Request, next: Next) -> Response {
    let id = request.headers().get(HEADER).cloned();
    let response = next.run(request).await;
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
    let Some(id) = id.filter(|_| is_problem) else {
        return response;
    };
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let mut value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    value["request_id"] = json!(id.to_str().unwrap_or_default());
    let mut parts = parts;
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(value.to_string()))
}
