//! Rate-limit headers. The limits themselves live in Redis (GCRA, `jobs/src/store/lua/`):
//! submits are checked inside the enqueue script, other `/v1` requests by one small script
//! call. Whichever check ran records its outcome in the request's [`RateSlot`]; the
//! [`headers`] middleware turns it into `RateLimit-Limit`, `RateLimit-Remaining` and
//! `RateLimit-Reset` on the response, success or error, and a refused request also gets
//! `Retry-After` (from [`crate::problem::ApiError::RateLimited`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use longhaul_jobs::store::RateState;

/// `RateLimit-Limit`: requests allowed at once (the burst).
pub(crate) const LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
/// `RateLimit-Remaining`: requests still allowed right now.
pub(crate) const REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
/// `RateLimit-Reset`: seconds until the bucket is full again.
pub(crate) const RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// Where the rate check of one request leaves its outcome for the response headers.
#[derive(Debug, Clone, Default)]
pub(crate) struct RateSlot(Arc<Mutex<Option<RateState>>>);

impl RateSlot {
    /// Records the outcome of this request's check.
    pub(crate) fn record(&self, state: RateState) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(state);
    }

    fn take(&self) -> Option<RateState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Whole seconds, rounded up.
fn ceil_secs(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000) as u64
}

/// Writes the `RateLimit-*` headers of `state`, and `Retry-After` (whole seconds, at least 1)
/// when the request was refused.
pub(crate) fn set_headers(headers: &mut HeaderMap, state: &RateState) {
    headers.insert(LIMIT, HeaderValue::from(state.limit));
    headers.insert(REMAINING, HeaderValue::from(state.remaining));
    headers.insert(RESET, HeaderValue::from(ceil_secs(state.reset)));
    if let Some(wait) = state.retry_after {
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from(ceil_secs(wait).max(1)),
        );
    }
}

/// Gives every request a [`RateSlot`] and writes what the check recorded onto the response.
pub(crate) async fn headers(mut request: Request, next: Next) -> Response {
    let slot = RateSlot::default();
    request.extensions_mut().insert(slot.clone());
    let mut response = next.run(request).await;
    if let Some(state) = slot.take()
        && !response.headers().contains_key(LIMIT)
    {
        set_headers(response.headers_mut(), &state);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_whole_seconds_and_at_least_one() {
        let mut headers = HeaderMap::new();
        set_headers(
            &mut headers,
            &RateState {
                limit: 5,
                remaining: 0,
                reset: Duration::from_millis(1200),
                retry_after: Some(Duration::from_millis(10)),
            },
        );
        assert_eq!(headers[LIMIT], "5");
        assert_eq!(headers[REMAINING], "0");
        assert_eq!(headers[RESET], "2");
        assert_eq!(headers[header::RETRY_AFTER], "1");
        set_headers(
            &mut headers,
            &RateState {
                limit: 5,
                remaining: 0,
                reset: Duration::ZERO,
                retry_after: Some(Duration::from_millis(2001)),
            },
        );
        assert_eq!(headers[header::RETRY_AFTER], "3");
        assert_eq!(headers[RESET], "0");
    }
}
