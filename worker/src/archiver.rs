//! Moves finished jobs from the Redis archive stream into Postgres, in batches.
//!
//! Every worker process runs one archiver in the stream's consumer group, so archiving
//! scales with the workers. An entry is acknowledged only after its batch is committed;
//! entries a dead process had read are reclaimed after [`RECLAIM_IDLE`]. Upserts are
//! idempotent, so a batch written twice changes nothing.

use std::time::Duration;

use longhaul_jobs::archive::Archive;
use longhaul_jobs::store::{ArchiveEntry, RedisStore};

use crate::drain::Shutdown;

/// Entries read but unacknowledged this long belong to a dead archiver.
const RECLAIM_IDLE: Duration = Duration::from_secs(60);
/// How long one read blocks waiting for new entries.
const BLOCK: Duration = Duration::from_secs(1);

/// Runs until draining begins, then archives what it already read and returns.
pub(crate) async fn run(
    store: RedisStore,
    archive: Archive,
    consumer: String,
    batch: usize,
    shutdown: Shutdown,
) {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(BLOCK + Duration::from_secs(5)))
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_max_delay(Duration::from_secs(2));
    let mut conn = loop {
        match store
            .client()
            .get_connection_manager_with_config(config.clone())
            .await
        {
            Ok(conn) => break conn,
            Err(e) => {
                tracing::warn!(error = %e, "archiver cannot reach Redis; retrying");
                tokio::select! {
                    _ = shutdown.draining() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    let mut last_reclaim = tokio::time::Instant::now() - RECLAIM_IDLE;
    let mut group_ready = false;
    while !shutdown.is_draining() {
        if !group_ready {
            if let Err(e) = store.ensure_archive_group(&mut conn).await {
                tracing::warn!(error = %e, "cannot create the archive consumer group; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            group_ready = true;
        }
        let entries = if last_reclaim.elapsed() >= RECLAIM_IDLE {
            last_reclaim = tokio::time::Instant::now();
            store.reclaim_archive(&consumer, RECLAIM_IDLE, batch).await
        } else {
            tokio::select! {
                read = store.read_archive(&mut conn, &consumer, batch, BLOCK) => read,
                _ = shutdown.draining() => break,
            }
        };
        match entries {
            Ok(entries) if !entries.is_empty() => {
                write_batch(&store, &archive, entries, &shutdown).await
            }
            Ok(_) => {}
            Err(e) => {
                // The group may be gone with a restarted Redis: create it again first.
                group_ready = false;
                tracing::warn!(error = %e, "reading the archive stream failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Writes one batch to Postgres (retrying until it succeeds or the process must stop), then
/// acknowledges it.
async fn write_batch(
    store: &RedisStore,
    archive: &Archive,
    entries: Vec<ArchiveEntry>,
    shutdown: &Shutdown,
) {
    let ids: Vec<String> = entries.iter().map(|e| e.entry_id.clone()).collect();
    let records: Vec<_> = entries
        .into_iter()
        .filter_map(|e| {
            if e.record.is_none() {
                tracing::error!(entry = %e.entry_id, "archive entry cannot be decoded; dropping it");
            }
            e.record
        })
        .collect();
    let mut delay = Duration::from_millis(200);
    loop {
        match archive.upsert_jobs(&records).await {
            Ok(_) => break,
            Err(e) => {
                tracing::warn!(error = %e, count = records.len(), "archiving to Postgres failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    // Unacknowledged entries are reclaimed by another archiver later.
                    _ = shutdown.aborted() => return,
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
    if let Err(e) = store.ack_archive(&ids).await {
        // Harmless: the entries are reclaimed and upserted again, idempotently.
        tracing::warn!(error = %e, "acknowledging archived entries failed");
    }
}
