//! [`ApiError`]: every error the API returns, mapped once to an RFC 9457
//! `application/problem+json` response with a stable `code`.
//!
//! 5xx bodies say what kind of failure happened, never the internal detail (which is logged).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use longhaul_jobs::job::ValidationError;
use serde_json::json;

use crate::request_id::HEADER;

/// The content type of problem bodies.
pub(crate) const PROBLEM_JSON: &str = "application/problem+json";

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("missing or invalid credentials")]
    Unauthorized,
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

impl ApiError {
    /// The stable code clients can switch on.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::NotFound => "not_found",
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::Validation(_) | ApiError::InvalidParameter { .. } => "validation_failed",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
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
        let mut body = json!({
            "type": format!("https://longhaul.dev/problems/{}", self.code()),
            "title": self.title(),
            "status": status.as_u16(),
            "code": self.code(),
            "detail": detail,
        });
        if let ApiError::Validation(errors) = &self {
            body["errors"] = json!(errors);
        }
        if let ApiError::InvalidParameter { field, message } = &self {
            body["errors"] = json!([{ "field": field, "message": message }]);
        }
        let mut response = (status, axum::Json(body)).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        match self {
            ApiError::Unavailable(_) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
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
