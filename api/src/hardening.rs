//! HTTP hardening: security headers on every response, CORS for the configured origins only,
//! and a deadline on every request.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::problem::ApiError;
use crate::rate_limit;
use crate::request_id;

/// HSTS for a year, subdomains included (only sent when `LONGHAUL_HSTS=true`).
const HSTS: &str = "max-age=31536000; includeSubDomains";
/// How long a browser may cache a CORS preflight answer.
const CORS_MAX_AGE: Duration = Duration::from_secs(600);

/// Adds the security headers to every response: `X-Content-Type-Options: nosniff`,
/// `Referrer-Policy: no-referrer`, a CSP that allows nothing (this is a JSON API, never a
/// page), `Cache-Control: no-store` unless the handler chose otherwise (job bodies hold
/// results that must not sit in shared caches), and HSTS when `hsts` is on.
pub(crate) async fn security_headers(
    State(hsts): State<bool>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if hsts {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    response
}

/// CORS for `origins` (exact matches); `None` when no origin is configured, so browsers
/// get no CORS headers at all.
pub(crate) fn cors(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static(request_id::HEADER),
            ])
            .expose_headers([
                header::LOCATION,
                header::RETRY_AFTER,
                HeaderName::from_static(request_id::HEADER),
                rate_limit::LIMIT,
                rate_limit::REMAINING,
                rate_limit::RESET,
            ])
            .max_age(CORS_MAX_AGE),
    )
}

/// Answers `503` (code `timeout`) when a request takes longer than `limit`; its handler is
/// dropped, so the work stops too.
pub(crate) async fn deadline(
    State(limit): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(limit_secs = limit.as_secs(), "request timed out");
            ApiError::Timeout {
                secs: limit.as_secs(),
            }
            .into_response()
        }
    }
}
