//! [`ProviderError`]: why a provider call failed, and whether trying again can help.

use std::time::Duration;

use crate::job::ErrorCode;

/// A failed provider call.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// `429`: the provider asks us to slow down.
    #[error("provider rate limited the call (429)")]
    RateLimited {
        /// The provider's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// `5xx` (or 408/409): the provider failed on its side.
    #[error("provider failed with status {status}")]
    Unavailable {
        /// The HTTP status.
        status: u16,
        /// The provider's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// Any other `4xx`: the request itself is wrong; retrying cannot help.
    #[error("provider rejected the request with status {status}: {message}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The provider's message, truncated.
        message: String,
    },
    /// No HTTP answer: connection refused or reset, DNS, TLS.
    #[error("provider unreachable: {0}")]
    Unreachable(String),
    /// An answer that is not a chat completion.
    #[error("provider answered something that is not a chat completion: {0}")]
    BadResponse(String),
    /// The attempt's timeout passed; the request was dropped.
    #[error("the provider call timed out after {0:?}")]
    Timeout(Duration),
}

impl ProviderError {
    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, ProviderError::Rejected { .. })
    }

    /// The wait the provider asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::RateLimited { retry_after }
            | ProviderError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The stable code stored on the job.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProviderError::RateLimited { .. } => ErrorCode::ProviderRateLimited,
            ProviderError::Unavailable { .. } => ErrorCode::ProviderUnavailable,
            ProviderError::Rejected { .. } => ErrorCode::ProviderRejected,
            ProviderError::Unreachable(_) => ErrorCode::ProviderUnreachable,
            ProviderError::BadResponse(_) => ErrorCode::ProviderBadResponse,
            ProviderError::Timeout(_) => ErrorCode::Timeout,
        }
    }

    /// Classifies a non-success HTTP status.
    pub fn from_status(status: u16, retry_after: Option<Duration>, body: &str) -> Self {
        match status {
            429 => ProviderError::RateLimited { retry_after },
            408 | 409 | 500..=599 => ProviderError::Unavailable {
                status,
                retry_after,
            },
            _ => ProviderError::Rejected {
                status,
                message: body.chars().take(300).collect(),
            },
        }
    }
}

/// Parses `Retry-After` given in seconds (the HTTP-date form is rare from AI providers and
/// is ignored: the backoff applies instead).
pub(crate) fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    let secs: f64 = value?.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_once() {
        assert!(matches!(
            ProviderError::from_status(429, None, ""),
            ProviderError::RateLimited { .. }
        ));
        assert!(ProviderError::from_status(503, None, "").is_retryable());
        assert!(ProviderError::from_status(408, None, "").is_retryable());
        let rejected = ProviderError::from_status(400, None, "bad");
        assert!(!rejected.is_retryable());
        assert_eq!(rejected.code(), ErrorCode::ProviderRejected);
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        assert_eq!(parse_retry_after(Some("2")), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after(Some("0.5")),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
        assert_eq!(parse_retry_after(None), None);
    }
}
