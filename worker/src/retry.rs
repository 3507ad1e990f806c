//! What a failed attempt means: the error stored on the job, whether to retry, and when.

use std::time::Duration;

use longhaul_jobs::job::JobError;
use longhaul_jobs::provider::ProviderError;
use longhaul_jobs::retry::RetryPolicy;

/// The decision for one failed attempt.
#[derive(Debug)]
pub(crate) struct Decision {
    pub error: JobError,
    pub retryable: bool,
    pub delay: Duration,
}

/// Decides what the failure of attempt `attempt` means. Whether attempts remain is the
/// store's call (fail.lua), so `max_attempts` is enforced in one place.
pub(crate) fn decide(policy: &RetryPolicy, attempt: u32, error: &ProviderError) -> Decision {
    Decision {
        error: JobError {
            code: error.code(),
            message: error.to_string(),
        },
        retryable: error.is_retryable(),
        delay: policy.delay(attempt, error.retry_after()),
    }
}
