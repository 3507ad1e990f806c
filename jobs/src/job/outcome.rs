//! What a finished attempt leaves behind: a result and token usage, or an error with a stable code.

use serde::{Deserialize, Serialize};

/// The answer of a generation or interpretation job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobResult {
    /// The generated text.
    pub text: String,
    /// The model that produced it.
    pub model: String,
    /// Why the model stopped (`stop`, `length`, ...).
    pub finish_reason: String,
}

/// Tokens the provider billed for the job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub completion_tokens: u64,
    /// Their sum.
    pub total_tokens: u64,
}

/// Stable, machine-readable reasons a job attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The provider rejected the request (a 4xx other than 408/409/429): retrying cannot help.
    ProviderRejected,
    /// The provider said it is overloaded (429).
    ProviderRateLimited,
    /// The provider failed (5xx).
    ProviderUnavailable,
    /// The provider could not be reached (connection refused, reset, DNS).
    ProviderUnreachable,
    /// The provider answered something that is not a chat completion.
    ProviderBadResponse,
    /// The attempt ran past its timeout and was stopped.
    Timeout,
    /// The process running the attempt died (its lease expired).
    WorkerLost,
    /// The job's stored payload could not be read.
    InvalidPayload,
}

impl ErrorCode {
    /// The code as clients see it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ProviderRejected => "provider_rejected",
            ErrorCode::ProviderRateLimited => "provider_rate_limited",
            ErrorCode::ProviderUnavailable => "provider_unavailable",
            ErrorCode::ProviderUnreachable => "provider_unreachable",
            ErrorCode::ProviderBadResponse => "provider_bad_response",
            ErrorCode::Timeout => "timeout",
            ErrorCode::WorkerLost => "worker_lost",
            ErrorCode::InvalidPayload => "invalid_payload",
        }
    }
}

/// The error of the last failed attempt, as stored on the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobError {
    /// Stable code.
    pub code: ErrorCode,
    /// Human-readable detail (never secrets).
    pub message: String,
}
