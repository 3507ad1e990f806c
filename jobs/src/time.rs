//! Timestamps: the store keeps milliseconds since the Unix epoch (Redis `TIME`), clients see RFC 3339.

use chrono::{DateTime, TimeZone, Utc};

/// Milliseconds since the Unix epoch, as Redis scripts and Postgres rows carry them.
pub type Millis = i64;

/// Converts stored milliseconds to a UTC timestamp.
pub fn from_millis(ms: Millis) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// The current time in milliseconds, from this host's clock.
pub fn now_millis() -> Millis {
    Utc::now().timestamp_millis()
}
