//! The JSON shapes clients see (DESIGN §4), built from domain records.

use chrono::{DateTime, Utc};
use longhaul_jobs::job::{JobError, JobKind, JobRecord, JobResult, JobStatus, Usage};
use longhaul_jobs::time::{Millis, from_millis};
use serde::Serialize;

/// `GET /v1/jobs/{id}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct JobView {
    pub id: String,
    pub kind: JobKind,
    pub status: JobStatus,
    pub attempts: u32,
    pub max_attempts: u32,
    pub result: Option<JobResult>,
    pub error: Option<JobError>,
    pub usage: Option<Usage>,
    pub cached: bool,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    pub links: Links,
}

/// Hypermedia links of a job.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Links {
    #[serde(rename = "self")]
    pub self_: String,
}

/// The path of a job.
pub(crate) fn job_path(id: &impl std::fmt::Display) -> String {
    format!("/v1/jobs/{id}")
}

fn ts(ms: Option<Millis>) -> Option<DateTime<Utc>> {
    ms.map(from_millis)
}

impl From<JobRecord> for JobView {
    fn from(r: JobRecord) -> Self {
        JobView {
            links: Links {
                self_: job_path(&r.id),
            },
            id: r.id.to_string(),
            kind: r.spec.kind,
            status: r.status,
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            result: r.result,
            error: r.error,
            usage: r.usage,
            cached: r.cached,
            created_at: from_millis(r.created_at),
            started_at: ts(r.started_at),
            finished_at: ts(r.finished_at),
            next_attempt_at: ts(r.next_attempt_at).filter(|_| r.status == JobStatus::Queued),
            metadata: r.spec.metadata,
        }
    }
}

/// The `202 Accepted` body of a new job.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct AcceptedView {
    pub id: String,
    pub kind: JobKind,
    pub status: JobStatus,
    pub created_at: DateTime<Utc>,
    pub links: Links,
}

/// A page of `GET /v1/jobs`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct JobPage {
    pub data: Vec<JobView>,
    pub next_cursor: Option<String>,
}
