//! The jobs history: finished jobs copied from Redis, read back by tenant.
//!
//! The archiver may deliver the same job more than once (a stream entry re-read after a
//! crash, a batch replayed), so [`Archive::upsert_jobs`] is idempotent: a row only changes
//! when the incoming snapshot differs and is not older than the stored one.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::{Archive, ArchiveError};
use crate::ids::{JobId, TenantId};
use crate::job::{JobKind, JobRecord, JobStatus};
use crate::time::{Millis, from_millis};

/// The columns a [`JobRecord`] is read from, in the order [`record_from_row`] expects.
const JOB_COLUMNS: &str = "id, tenant, status, attempts, max_attempts, spec, result, error, usage, cached, \
                           created_at, started_at, finished_at";

/// One upsert for a whole batch: the batch travels as one array per column and `UNNEST`
/// turns them back into rows, so the statement text (and its prepared plan) never changes.
///
/// On conflict the row is rewritten only when the snapshot is for the same tenant, has not
/// fewer attempts than the stored one (attempts only grow, so fewer means older), and differs
/// in some column; replaying a batch therefore writes nothing, not even `archived_at`.
const UPSERT_JOBS: &str = r#"
INSERT INTO jobs (id, tenant, kind, status, attempts, max_attempts, spec, result, error, usage,
                  cached, created_at, started_at, finished_at)
SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int[], $6::int[],
                     $7::jsonb[], $8::jsonb[], $9::jsonb[], $10::jsonb[], $11::bool[],
                     $12::timestamptz[], $13::timestamptz[], $14::timestamptz[])
ON CONFLICT (id) DO UPDATE SET
    kind = EXCLUDED.kind,
    status = EXCLUDED.status,
    attempts = EXCLUDED.attempts,
    max_attempts = EXCLUDED.max_attempts,
    spec = EXCLUDED.spec,
    result = EXCLUDED.result,
    error = EXCLUDED.error,
    usage = EXCLUDED.usage,
    cached = EXCLUDED.cached,
    started_at = EXCLUDED.started_at,
    finished_at = EXCLUDED.finished_at,
    archived_at = now()
WHERE jobs.tenant = EXCLUDED.tenant
  AND jobs.attempts <= EXCLUDED.attempts
  AND (jobs.kind, jobs.status, jobs.attempts, jobs.max_attempts, jobs.spec, jobs.result,
       jobs.error, jobs.usage, jobs.cached, jobs.started_at, jobs.finished_at)
      IS DISTINCT FROM
      (EXCLUDED.kind, EXCLUDED.status, EXCLUDED.attempts, EXCLUDED.max_attempts, EXCLUDED.spec,
       EXCLUDED.result, EXCLUDED.error, EXCLUDED.usage, EXCLUDED.cached, EXCLUDED.started_at,
       EXCLUDED.finished_at)
"#;

/// A page of one tenant's archived jobs, newest first.
#[derive(Debug, Clone)]
pub struct JobQuery {
    /// Whose jobs.
    pub tenant: TenantId,
    /// Only jobs in this status.
    pub status: Option<JobStatus>,
    /// Only jobs of this kind.
    pub kind: Option<JobKind>,
    /// Keyset cursor: only jobs strictly older than this `(created_at, id)`, i.e. the last
    /// job of the previous page.
    pub before: Option<(Millis, JobId)>,
    /// At most this many jobs.
    pub limit: usize,
}

impl Archive {
    /// Writes a batch of job snapshots in one statement and returns how many rows changed
    /// (inserted, or updated because the snapshot was newer). Replaying a batch returns 0.
    ///
    /// When a job appears more than once in the batch, its last snapshot wins.
    /// `next_attempt_at` is not archived.
    pub async fn upsert_jobs(&self, jobs: &[JobRecord]) -> Result<u64, ArchiveError> {
        let jobs = last_snapshot_per_job(jobs);
        if jobs.is_empty() {
            return Ok(0);
        }
        let mut c = Columns::with_capacity(jobs.len());
        for job in jobs {
            c.push(job);
        }
        let done = sqlx::query(UPSERT_JOBS)
            .bind(c.id)
            .bind(c.tenant)
            .bind(c.kind)
            .bind(c.status)
            .bind(c.attempts)
            .bind(c.max_attempts)
            .bind(c.spec)
            .bind(c.result)
            .bind(c.error)
            .bind(c.usage)
            .bind(c.cached)
            .bind(c.created_at)
            .bind(c.started_at)
            .bind(c.finished_at)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// One archived job, if it exists and belongs to `tenant`.
    pub async fn get_job(
        &self,
        tenant: &TenantId,
        id: JobId,
    ) -> Result<Option<JobRecord>, ArchiveError> {
        let mut q = QueryBuilder::<Postgres>::new(format!("SELECT {JOB_COLUMNS} FROM jobs"));
        q.push(" WHERE id = ")
            .push_bind(id.as_uuid())
            .push(" AND tenant = ")
            .push_bind(tenant.as_str());
        let row = q.build().fetch_optional(&self.pool).await?;
        row.as_ref().map(record_from_row).transpose()
    }

    /// A page of a tenant's archived jobs, newest first by `(created_at, id)`.
    ///
    /// To read the next page, pass the last job's `(created_at, id)` as [`JobQuery::before`].
    pub async fn list_jobs(&self, query: &JobQuery) -> Result<Vec<JobRecord>, ArchiveError> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let mut q = QueryBuilder::<Postgres>::new(format!("SELECT {JOB_COLUMNS} FROM jobs"));
        q.push(" WHERE tenant = ").push_bind(query.tenant.as_str());
        if let Some(status) = query.status {
            q.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(kind) = query.kind {
            q.push(" AND kind = ").push_bind(kind.as_str());
        }
        if let Some((created_at, id)) = query.before {
            q.push(" AND (created_at, id) < (")
                .push_bind(from_millis(created_at))
                .push(", ")
                .push_bind(id.as_uuid())
                .push(")");
        }
        q.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(i64::try_from(query.limit).unwrap_or(i64::MAX));
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(record_from_row).collect()
    }
}

/// Keeps one snapshot per job id, the last one, so the upsert never touches a row twice
/// (which Postgres rejects). Order of first appearance is kept.
fn last_snapshot_per_job(jobs: &[JobRecord]) -> Vec<&JobRecord> {
    let mut slot: HashMap<JobId, usize> = HashMap::with_capacity(jobs.len());
    let mut out: Vec<&JobRecord> = Vec::with_capacity(jobs.len());
    for job in jobs {
        match slot.get(&job.id) {
            Some(&i) => out[i] = job,
            None => {
                slot.insert(job.id, out.len());
                out.push(job);
            }
        }
    }
    out
}

/// A batch of jobs, one vector per column of [`UPSERT_JOBS`].
struct Columns<'a> {
    id: Vec<Uuid>,
    tenant: Vec<&'a str>,
    kind: Vec<&'static str>,
    status: Vec<&'static str>,
    attempts: Vec<i32>,
    max_attempts: Vec<i32>,
    spec: Vec<Json<&'a crate::job::JobSpec>>,
    result: Vec<Option<Json<&'a crate::job::JobResult>>>,
    error: Vec<Option<Json<&'a crate::job::JobError>>>,
    usage: Vec<Option<Json<&'a crate::job::Usage>>>,
    cached: Vec<bool>,
    created_at: Vec<DateTime<Utc>>,
    started_at: Vec<Option<DateTime<Utc>>>,
    finished_at: Vec<Option<DateTime<Utc>>>,
}

impl<'a> Columns<'a> {
    fn with_capacity(n: usize) -> Self {
        Self {
            id: Vec::with_capacity(n),
            tenant: Vec::with_capacity(n),
            kind: Vec::with_capacity(n),
            status: Vec::with_capacity(n),
            attempts: Vec::with_capacity(n),
            max_attempts: Vec::with_capacity(n),
            spec: Vec::with_capacity(n),
            result: Vec::with_capacity(n),
            error: Vec::with_capacity(n),
            usage: Vec::with_capacity(n),
            cached: Vec::with_capacity(n),
            created_at: Vec::with_capacity(n),
            started_at: Vec::with_capacity(n),
            finished_at: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, job: &'a JobRecord) {
        self.id.push(job.id.as_uuid());
        self.tenant.push(job.tenant.as_str());
        self.kind.push(job.spec.kind.as_str());
        self.status.push(job.status.as_str());
        self.attempts.push(saturating_i32(job.attempts));
        self.max_attempts.push(saturating_i32(job.max_attempts));
        self.spec.push(Json(&job.spec));
        self.result.push(job.result.as_ref().map(Json));
        self.error.push(job.error.as_ref().map(Json));
        self.usage.push(job.usage.as_ref().map(Json));
        self.cached.push(job.cached);
        self.created_at.push(from_millis(job.created_at));
        self.started_at.push(job.started_at.map(from_millis));
        self.finished_at.push(job.finished_at.map(from_millis));
    }
}

/// Postgres `INT` is signed; counts never come near the limit, but must not wrap if they did.
fn saturating_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Reads a row selected with [`JOB_COLUMNS`].
fn record_from_row(row: &PgRow) -> Result<JobRecord, ArchiveError> {
    let id: Uuid = row.try_get("id")?;
    let tenant: String = row.try_get("tenant")?;
    let status: String = row.try_get("status")?;
    let attempts: i32 = row.try_get("attempts")?;
    let max_attempts: i32 = row.try_get("max_attempts")?;
    let created_at: DateTime<Utc> = row.try_get("created_at")?;
    let started_at: Option<DateTime<Utc>> = row.try_get("started_at")?;
    let finished_at: Option<DateTime<Utc>> = row.try_get("finished_at")?;
    let corrupt = |what: &str| ArchiveError::corrupt(format!("job {id}: {what}"));

    Ok(JobRecord {
        id: JobId::from(id),
        tenant: TenantId::parse(&tenant).map_err(|e| corrupt(&format!("tenant: {e}")))?,
        spec: json_column(row, "spec")?.ok_or_else(|| corrupt("spec is null"))?,
        status: status
            .parse::<JobStatus>()
            .map_err(|e| corrupt(&e.to_string()))?,
        attempts: u32::try_from(attempts).map_err(|_| corrupt("negative attempts"))?,
        max_attempts: u32::try_from(max_attempts).map_err(|_| corrupt("negative max_attempts"))?,
        result: json_column(row, "result")?,
        error: json_column(row, "error")?,
        usage: json_column(row, "usage")?,
        cached: row.try_get("cached")?,
        created_at: created_at.timestamp_millis(),
        started_at: started_at.map(|t| t.timestamp_millis()),
        finished_at: finished_at.map(|t| t.timestamp_millis()),
        next_attempt_at: None,
    })
}

/// Decodes a nullable JSONB column into `T`; a value that does not fit is corrupt data.
fn json_column<T: DeserializeOwned>(row: &PgRow, column: &str) -> Result<Option<T>, ArchiveError> {
    let value: Option<serde_json::Value> = row.try_get(column)?;
    value
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| ArchiveError::corrupt(format!("jobs.{column}: {e}")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::archive::test_db::TestDb;
    use crate::job::{ErrorCode, JobError, JobResult, JobSpec, Usage};

    fn spec(kind: JobKind) -> JobSpec {
        let input = match kind {
            JobKind::Generation => json!({"prompt": "write a haiku"}),
            JobKind::Interpretation => json!({"subject": {"revenue": [1, 2, 3]}}),
        };
        serde_json::from_value(json!({
            "kind": kind.as_str(),
            "input": input,
            "max_attempts": 3,
            "timeout_secs": 60,
            "cache": true,
            "metadata": {"ticket": 42},
        }))
        .unwrap()
    }

    fn succeeded(tenant: &str, kind: JobKind, created_at: Millis) -> JobRecord {
        JobRecord {
            id: JobId::new(),
            tenant: TenantId::parse(tenant).unwrap(),
            spec: spec(kind),
            status: JobStatus::Succeeded,
            attempts: 1,
            max_attempts: 3,
            result: Some(JobResult {
                text: "an old silent pond".into(),
                model: "gpt-test".into(),
                finish_reason: "stop".into(),
            }),
            error: None,
            usage: Some(Usage {
                prompt_tokens: 5,
                completion_tokens: 7,
                total_tokens: 12,
            }),
            cached: false,
            created_at,
            started_at: Some(created_at + 10),
            finished_at: Some(created_at + 2_500),
            next_attempt_at: None,
        }
    }

    fn failed(tenant: &str, created_at: Millis) -> JobRecord {
        JobRecord {
            status: JobStatus::Failed,
            attempts: 3,
            result: None,
            usage: None,
            error: Some(JobError {
                code: ErrorCode::ProviderUnavailable,
                message: "502 from provider".into(),
            }),
            ..succeeded(tenant, JobKind::Generation, created_at)
        }
    }

    fn query(tenant: &str, limit: usize) -> JobQuery {
        JobQuery {
            tenant: TenantId::parse(tenant).unwrap(),
            status: None,
            kind: None,
            before: None,
            limit,
        }
    }

    async fn count_rows(archive: &Archive) -> i64 {
        sqlx::query("SELECT count(*) AS n FROM jobs")
            .fetch_one(archive.pool())
            .await
            .unwrap()
            .get("n")
    }

    #[tokio::test]
    async fn replaying_a_batch_changes_nothing() {
        let db = TestDb::new().await;
        let archive = &db.archive;
        let batch = vec![
            succeeded("acme", JobKind::Generation, 1_700_000_000_123),
            failed("acme", 1_700_000_000_456),
        ];

        assert_eq!(archive.upsert_jobs(&batch).await.unwrap(), 2);
        let archived_at: DateTime<Utc> = sqlx::query("SELECT max(archived_at) AS t FROM jobs")
            .fetch_one(archive.pool())
            .await
            .unwrap()
            .get("t");

        assert_eq!(archive.upsert_jobs(&batch).await.unwrap(), 0);
        assert_eq!(count_rows(archive).await, 2);
        let again: DateTime<Utc> = sqlx::query("SELECT max(archived_at) AS t FROM jobs")
            .fetch_one(archive.pool())
            .await
            .unwrap()
            .get("t");
        assert_eq!(again, archived_at);

        let tenant = TenantId::parse("acme").unwrap();
        for job in &batch {
            let back = archive.get_job(&tenant, job.id).await.unwrap();
            assert_eq!(back.as_ref(), Some(job), "read back differs");
        }
    }

    #[tokio::test]
    async fn a_newer_snapshot_updates_the_row_and_an_older_one_does_not() {
        let db = TestDb::new().await;
        let archive = &db.archive;
        let tenant = TenantId::parse("acme").unwrap();
        let first = failed("acme", 1_700_000_000_000);
        let first = JobRecord {
            attempts: 1,
            ..first
        };
        let retried = JobRecord {
            status: JobStatus::Succeeded,
            attempts: 2,
            error: None,
            result: succeeded("acme", JobKind::Generation, 0).result,
            ..first.clone()
        };

        // In one batch, the last snapshot of a job wins.
        assert_eq!(
            archive
                .upsert_jobs(&[first.clone(), retried.clone()])
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            archive.get_job(&tenant, first.id).await.unwrap(),
            Some(retried.clone())
        );

        // A stale snapshot delivered late is ignored.
        assert_eq!(
            archive
                .upsert_jobs(std::slice::from_ref(&first))
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            archive.get_job(&tenant, first.id).await.unwrap(),
            Some(retried)
        );
    }

    #[tokio::test]
    async fn another_tenant_cannot_read_or_overwrite_a_job() {
        let db = TestDb::new().await;
        let archive = &db.archive;
        let job = succeeded("acme", JobKind::Generation, 1_700_000_000_000);
        archive
            .upsert_jobs(std::slice::from_ref(&job))
            .await
            .unwrap();

        let other = TenantId::parse("globex").unwrap();
        assert_eq!(archive.get_job(&other, job.id).await.unwrap(), None);
        assert_eq!(
            archive.get_job(&job.tenant, JobId::new()).await.unwrap(),
            None
        );

        let hijack = JobRecord {
            tenant: other.clone(),
            attempts: 9,
            ..job.clone()
        };
        assert_eq!(archive.upsert_jobs(&[hijack]).await.unwrap(), 0);
        assert_eq!(
            archive.get_job(&job.tenant, job.id).await.unwrap(),
            Some(job)
        );
    }

    #[tokio::test]
    async fn listing_is_newest_first_and_pages_with_a_keyset_cursor() {
        let db = TestDb::new().await;
        let archive = &db.archive;
        let base = 1_700_000_000_000;
        // Five jobs; two share a created_at, so the id breaks the tie.
        let mut jobs = vec![
            succeeded("acme", JobKind::Generation, base),
            failed("acme", base + 1_000),
            succeeded("acme", JobKind::Interpretation, base + 2_000),
            succeeded("acme", JobKind::Generation, base + 2_000),
            failed("acme", base + 3_000),
            succeeded("globex", JobKind::Generation, base + 5_000),
        ];
        archive.upsert_jobs(&jobs).await.unwrap();
        jobs.retain(|j| j.tenant.as_str() == "acme");
        jobs.sort_by_key(|j| std::cmp::Reverse((j.created_at, j.id)));
        let expected: Vec<JobId> = jobs.iter().map(|j| j.id).collect();

        let all = archive.list_jobs(&query("acme", 100)).await.unwrap();
        assert_eq!(all.iter().map(|j| j.id).collect::<Vec<_>>(), expected);

        let mut paged = Vec::new();
        let mut q = query("acme", 2);
        loop {
            let page = archive.list_jobs(&q).await.unwrap();
            assert!(page.len() <= 2);
            let Some(last) = page.last() else { break };
            q.before = Some((last.created_at, last.id));
            paged.extend(page.iter().map(|j| j.id));
        }
        assert_eq!(paged, expected);

        let failed_only = archive
            .list_jobs(&JobQuery {
                status: Some(JobStatus::Failed),
                ..query("acme", 100)
            })
            .await
            .unwrap();
        assert_eq!(failed_only.len(), 2);
        assert!(failed_only.iter().all(|j| j.status == JobStatus::Failed));
        assert!(failed_only[0].created_at > failed_only[1].created_at);

        let interpretation = archive
            .list_jobs(&JobQuery {
                kind: Some(JobKind::Interpretation),
                ..query("acme", 100)
            })
            .await
            .unwrap();
        assert_eq!(interpretation.len(), 1);
        assert_eq!(interpretation[0].spec.kind, JobKind::Interpretation);

        assert!(
            archive
                .list_jobs(&query("acme", 0))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            archive
                .list_jobs(&query("nobody", 10))
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn an_empty_batch_is_a_no_op() {
        let db = TestDb::new().await;
        assert_eq!(db.archive.upsert_jobs(&[]).await.unwrap(), 0);
        db.archive.ping().await.unwrap();
    }
}
