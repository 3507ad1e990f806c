//! [`JobRecord`]: everything known about one job at one moment, wherever it was read from
//! (the live Redis hash or the Postgres archive).

use serde::{Deserialize, Serialize};

use super::outcome::{JobError, JobResult, Usage};
use super::spec::JobSpec;
use super::status::JobStatus;
use crate::ids::{JobId, TenantId};
use crate::time::Millis;

/// The state of one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Its id.
    pub id: JobId,
    /// The tenant that submitted it.
    pub tenant: TenantId,
    /// What to run.
    pub spec: JobSpec,
    /// Where it is in its life.
    pub status: JobStatus,
    /// Attempts started so far (including one that crashed its process).
    pub attempts: u32,
    /// Attempts allowed in all: the spec's budget, raised by each explicit retry.
    pub max_attempts: u32,
    /// The answer, once succeeded.
    pub result: Option<JobResult>,
    /// The last attempt's error, if it failed.
    pub error: Option<JobError>,
    /// Tokens billed.
    pub usage: Option<Usage>,
    /// Whether the result came from the cache.
    pub cached: bool,
    /// When it was accepted.
    pub created_at: Millis,
    /// When its first attempt started.
    pub started_at: Option<Millis>,
    /// When it reached a terminal status.
    pub finished_at: Option<Millis>,
    /// When a queued retry becomes due.
    pub next_attempt_at: Option<Millis>,
}
