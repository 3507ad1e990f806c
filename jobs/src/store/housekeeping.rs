//! Housekeeping of the Redis side, for the scheduler's tasks: trimming tenant indexes,
//! sweeping the result cache, and the record of task runs (`{P}:scheduler:tasks`).
//!
//! Everything here walks keys with `SCAN` in bounded batches and changes them in bounded
//! chunks, so Redis never blocks on one long command, however many keys there are.

use std::collections::HashMap;
use std::time::Duration;

use redis::AsyncCommands;
use serde::Serialize;

use super::{RedisStore, StoreError, scripts};
use crate::time::Millis;

/// Keys asked per `SCAN` call.
const SCAN_COUNT: usize = 1000;
/// Keys changed per command (`UNLINK`) or ids per script call.
const CHUNK: usize = 500;
/// Script calls per tenant index per run: 100 × 500 ids.
const MAX_CHUNKS_PER_INDEX: usize = 100;
/// Cache entries one sweep looks at, at most (bounds its memory; the next run goes on).
const MAX_SWEEP_ENTRIES: usize = 1_000_000;

/// What [`RedisStore::trim_tenant_indexes`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IndexTrim {
    /// Tenant indexes looked at.
    pub indexes: u64,
    /// Ids removed from them (their jobs had left Redis).
    pub removed: u64,
}

/// What [`RedisStore::sweep_cache`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheSweep {
    /// Entries seen.
    pub entries: u64,
    /// Entries given a TTL (they had none, or a longer one than the configured TTL).
    pub ttl_set: u64,
    /// Entries evicted because the cache held more than its budget.
    pub evicted: u64,
}

/// One run of a scheduler task, as the leader records it.
#[derive(Debug, Clone)]
pub struct TaskRun<'a> {
    /// The task.
    pub task: &'a str,
    /// The cron tick it ran for (Unix seconds).
    pub tick_secs: i64,
    /// When it started.
    pub started_at: Millis,
    /// How long it took.
    pub duration: Duration,
    /// `None`: it succeeded; else why it failed.
    pub error: Option<&'a str>,
    /// What it did (JSON object).
    pub report: &'a str,
    /// The scheduler that ran it.
    pub leader: &'a str,
}

/// The last run and run counts of one task, from `{P}:scheduler:tasks`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TaskRecord {
    /// The task.
    pub task: String,
    /// When its last run started; `None`: it never ran.
    pub last_run_at: Option<Millis>,
    /// The cron tick of its last run (Unix seconds).
    pub last_tick: Option<i64>,
    /// How long its last run took.
    pub duration_ms: u64,
    /// Whether its last run succeeded.
    pub ok: bool,
    /// Why its last run failed.
    pub error: Option<String>,
    /// What its last run did.
    pub report: Option<serde_json::Value>,
    /// Runs that succeeded, ever.
    pub runs_ok: u64,
    /// Runs that failed, ever.
    pub runs_error: u64,
    /// The scheduler that ran it last.
    pub leader: Option<String>,
}

impl RedisStore {
    /// Records one task run: its last-run fields, and one more run of its outcome.
    pub async fn record_task_run(&self, run: &TaskRun<'_>) -> Result<(), StoreError> {
        let key = self.keys.scheduler_tasks();
        let t = run.task;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset_multiple(
                &key,
                &[
                    (format!("{t}:last_run_at"), run.started_at.to_string()),
                    (format!("{t}:last_tick"), run.tick_secs.to_string()),
                    (
                        format!("{t}:duration_ms"),
                        (run.duration.as_millis() as u64).to_string(),
                    ),
                    (
                        format!("{t}:outcome"),
                        if run.error.is_none() { "ok" } else { "error" }.to_owned(),
                    ),
                    (format!("{t}:report"), run.report.to_owned()),
                    (format!("{t}:leader"), run.leader.to_owned()),
                ],
            )
            .ignore();
        match run.error {
            None => pipe
                .hdel(&key, format!("{t}:error"))
                .ignore()
                .hincr(&key, format!("{t}:runs_ok"), 1)
                .ignore(),
            Some(e) => pipe
                .hset(&key, format!("{t}:error"), e)
                .ignore()
                .hincr(&key, format!("{t}:runs_error"), 1)
                .ignore(),
        };
        let mut conn = self.connection();
        let () = pipe.query_async(&mut conn).await?;
        Ok(())
    }

    /// The record of each of `tasks`, in that order (a task that never ran has an empty one).
    pub async fn task_records(&self, tasks: &[&str]) -> Result<Vec<TaskRecord>, StoreError> {
        let mut conn = self.connection();
        let fields: HashMap<String, String> = conn.hgetall(self.keys.scheduler_tasks()).await?;
        let get = |task: &str, field: &str| fields.get(&format!("{task}:{field}"));
        let num = |task: &str, field: &str| get(task, field).and_then(|v| v.parse::<i64>().ok());
        Ok(tasks
            .iter()
            .map(|task| TaskRecord {
                task: (*task).to_owned(),
                last_run_at: num(task, "last_run_at"),
                last_tick: num(task, "last_tick"),
                duration_ms: num(task, "duration_ms").unwrap_or(0).max(0) as u64,
                ok: get(task, "outcome").is_some_and(|o| o == "ok"),
                error: get(task, "error").cloned(),
                report: get(task, "report").and_then(|r| serde_json::from_str(r).ok()),
                runs_ok: num(task, "runs_ok").unwrap_or(0).max(0) as u64,
                runs_error: num(task, "runs_error").unwrap_or(0).max(0) as u64,
                leader: get(task, "leader").cloned(),
            })
            .collect())
    }

    /// The id of the scheduler that holds the leader lease now, if any.
    pub async fn scheduler_leader(&self) -> Result<Option<String>, StoreError> {
        let mut conn = self.connection();
        Ok(conn.get(self.keys.scheduler_leader()).await?)
    }

    /// Walks the keys matching `pattern`, one `SCAN` batch at a time.
    fn scan(&self, pattern: String) -> Scan {
        Scan {
            conn: self.connection(),
            pattern,
            cursor: Some(0),
        }
    }

    /// Removes from every tenant's index (`{P}:tenant:<t>`) the ids of jobs created before
    /// `cutoff` whose hash Redis no longer holds (finished longer than the result TTL ago).
    /// Without this the indexes grow forever; the API lists such jobs from Postgres.
    pub async fn trim_tenant_indexes(&self, cutoff: Millis) -> Result<IndexTrim, StoreError> {
        let mut total = IndexTrim::default();
        let job_prefix = self.keys.job_prefix();
        let pattern = self.keys.tenant_index_pattern();
        let mut indexes = Vec::new();
        let mut scan = self.scan(pattern);
        while let Some(keys) = scan.next_batch().await? {
            indexes.extend(keys);
        }
        let mut conn = self.connection();
        for index in indexes {
            total.indexes += 1;
            let mut offset: u64 = 0;
            for _ in 0..MAX_CHUNKS_PER_INDEX {
                let (seen, removed): (u64, u64) = scripts::get()
                    .trim_index
                    .key(&index)
                    .arg(&job_prefix)
                    .arg(cutoff)
                    .arg(CHUNK)
                    .arg(offset)
                    .invoke_async(&mut conn)
                    .await?;
                total.removed += removed;
                offset += seen - removed;
                if seen < CHUNK as u64 {
                    break;
                }
            }
        }
        Ok(total)
    }

    /// Sweeps the result cache (`{P}:cache:*`, written by issue 5's cache: one key per entry,
    /// each with a TTL). Redis drops expired entries by itself; the sweep gives an entry
    /// with no TTL, or a longer one than `ttl` (the TTL was lowered), `ttl`, and when more
    /// than `max_entries` exist, evicts those closest to expiry. `SCAN` batches of
    /// [`SCAN_COUNT`], `PTTL`s pipelined per batch, `UNLINK`s in chunks of [`CHUNK`].
    pub async fn sweep_cache(
        &self,
        max_entries: u64,
        ttl: Duration,
    ) -> Result<CacheSweep, StoreError> {
        let ttl_ms = ttl.as_millis().max(1) as i64;
        let mut sweep = CacheSweep::default();
        let mut entries: Vec<(i64, String)> = Vec::new();
        let mut scan = self.scan(self.keys.cache_pattern());
        let mut conn = self.connection();
        while let Some(keys) = scan.next_batch().await? {
            if keys.is_empty() {
                continue;
            }
            let mut pipe = redis::pipe();
            for key in &keys {
                pipe.pttl(key);
            }
            let ttls: Vec<i64> = pipe.query_async(&mut conn).await?;
            let mut fix = redis::pipe();
            for (key, left) in keys.into_iter().zip(ttls) {
                // -2: gone since the SCAN.
                if left == -2 {
                    continue;
                }
                let left = if left == -1 || left > ttl_ms {
                    fix.pexpire(&key, ttl_ms).ignore();
                    sweep.ttl_set += 1;
                    ttl_ms
                } else {
                    left
                };
                entries.push((left, key));
            }
            if !fix.is_empty() {
                let () = fix.query_async(&mut conn).await?;
            }
            if entries.len() >= MAX_SWEEP_ENTRIES {
                break;
            }
        }
        sweep.entries = entries.len() as u64;
        let over = entries.len().saturating_sub(max_entries as usize);
        if over > 0 {
            entries.sort_unstable();
            for chunk in entries[..over].chunks(CHUNK) {
                let keys: Vec<&str> = chunk.iter().map(|(_, k)| k.as_str()).collect();
                let n: u64 = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await?;
                sweep.evicted += n;
            }
        }
        Ok(sweep)
    }
}

/// The result cache's size and counters (`GET /v1/cache/stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Entries in Redis (L2).
    pub entries: u64,
    /// Jobs answered from the cache (at submit or before the provider call).
    pub hits: u64,
    /// Provider calls made for cacheable jobs.
    pub misses: u64,
    /// Jobs that waited for an identical job's answer (single-flight).
    pub joins: u64,
}

impl RedisStore {
    /// Counts the cache's entries (`SCAN`) and reads its counters.
    pub async fn cache_stats(&self) -> Result<CacheStats, StoreError> {
        let mut stats = CacheStats::default();
        let mut scan = self.scan(self.keys.cache_pattern());
        while let Some(keys) = scan.next_batch().await? {
            stats.entries += keys.len() as u64;
        }
        let mut conn = self.connection();
        let counters: std::collections::HashMap<String, u64> =
            conn.hgetall(self.keys.cache_stats()).await?;
        let get = |name: &str| counters.get(name).copied().unwrap_or(0);
        stats.hits = get("hits");
        stats.misses = get("misses");
        stats.joins = get("joins");
        Ok(stats)
    }

    /// Deletes every cache entry (`{P}:cache:*`); returns how many there were.
    pub async fn clear_cache(&self) -> Result<u64, StoreError> {
        let mut removed = 0;
        let mut scan = self.scan(self.keys.cache_pattern());
        let mut conn = self.connection();
        while let Some(keys) = scan.next_batch().await? {
            for chunk in keys.chunks(CHUNK) {
                let n: u64 = redis::cmd("UNLINK")
                    .arg(chunk)
                    .query_async(&mut conn)
                    .await?;
                removed += n;
            }
        }
        Ok(removed)
    }
}

/// A `SCAN` in progress.
struct Scan {
    conn: redis::aio::ConnectionManager,
    pattern: String,
    cursor: Option<u64>,
}

impl Scan {
    /// The next batch of keys (possibly empty), or `None` when the walk is over.
    async fn next_batch(&mut self) -> Result<Option<Vec<String>>, StoreError> {
        let Some(cursor) = self.cursor else {
            return Ok(None);
        };
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&self.pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query_async(&mut self.conn)
            .await?;
        self.cursor = (next != 0).then_some(next);
        Ok(Some(keys))
    }
}
