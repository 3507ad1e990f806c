//! Errors of the Redis store.

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis could not be reached or refused the command.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis holds data this version cannot read.
    #[error("corrupt job data: {0}")]
    Corrupt(String),
    /// A value could not be encoded.
    #[error("encoding failed: {0}")]
    Encode(String),
}

impl StoreError {
    pub(crate) fn corrupt(what: impl Into<String>) -> Self {
        Self::Corrupt(what.into())
    }

    pub(crate) fn encode(e: serde_json::Error) -> Self {
        Self::Encode(e.to_string())
    }

    /// A stable code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Redis(_) => "redis_unavailable",
            StoreError::Corrupt(_) => "corrupt_data",
            StoreError::Encode(_) => "encode_failed",
        }
    }
}
