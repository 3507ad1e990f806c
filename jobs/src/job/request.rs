//! The body of `POST /v1/jobs` as it arrives, before validation.
//!
//! Unknown fields are rejected so a typo (`"max_attempt"`) is an error, not a silent default.

use serde::Deserialize;

/// A job submission, loosely typed so that every mistake can be reported by field.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// `generation` or `interpretation`.
    #[schema(value_type = crate::job::JobKind, required = true)]
    pub kind: Option<String>,
    /// The kind's input object.
    #[schema(value_type = crate::job::Input, required = true)]
    pub input: Option<serde_json::Value>,
    /// The model to ask; the configured default when absent.
    #[schema(min_length = 1, max_length = 200)]
    pub model: Option<String>,
    /// Where to POST the job when it ends.
    pub webhook: Option<WebhookRequest>,
    /// Attempts allowed, including the first.
    #[schema(minimum = 1, maximum = 25)]
    pub max_attempts: Option<u32>,
    /// Per-attempt timeout, at most the kind's configured timeout.
    #[schema(minimum = 1)]
    pub timeout_secs: Option<u32>,
    /// Whether a cached answer may be used (and this answer cached).
    pub cache: Option<bool>,
    /// Client data echoed back on the job: an object of at most 64 keys, 16 KiB, 32 levels.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
}

/// The `webhook` member of a submission.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// The receiver's URL.
    pub url: String,
}
