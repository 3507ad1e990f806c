//! Decoding of job hashes (and archive stream entries, which carry a copy of the hash)
//! into [`JobRecord`]s.

use std::collections::HashMap;

use redis::Value;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};

use super::{ArchiveEntry, StoreError};
use crate::ids::TenantId;
use crate::job::JobRecord;

/// Builds a record from the fields of a job hash.
pub fn record_from_fields(
    fields: impl IntoIterator<Item = (String, String)>,
) -> Result<JobRecord, StoreError> {
    let map: HashMap<String, String> = fields.into_iter().collect();
    let text = |name: &str| {
        map.get(name)
            .ok_or_else(|| StoreError::corrupt(format!("job field {name} missing")))
    };
    let number = |name: &str| -> Result<Option<i64>, StoreError> {
        map.get(name)
            .map(|v| v.parse::<i64>())
            .transpose()
            .map_err(|_| StoreError::corrupt(format!("job field {name} is not a number")))
    };
    let json = |name: &str| -> Result<Option<serde_json::Value>, StoreError> {
        map.get(name)
            .map(|v| serde_json::from_str(v))
            .transpose()
            .map_err(|_| StoreError::corrupt(format!("job field {name} is not JSON")))
    };
    fn typed<T: serde::de::DeserializeOwned>(
        name: &str,
        v: Option<serde_json::Value>,
    ) -> Result<Option<T>, StoreError> {
        v.map(serde_json::from_value)
            .transpose()
            .map_err(|e| StoreError::corrupt(format!("job field {name}: {e}")))
    }

    Ok(JobRecord {
        id: text("id")?
            .parse()
            .map_err(|_| StoreError::corrupt("job id"))?,
        tenant: TenantId::parse(text("tenant")?).map_err(|_| StoreError::corrupt("tenant"))?,
        spec: serde_json::from_str(text("spec")?)
            .map_err(|e| StoreError::corrupt(format!("job spec: {e}")))?,
        status: text("status")?
            .parse()
            .map_err(|_| StoreError::corrupt("status"))?,
        attempts: number("attempts")?.unwrap_or(0).max(0) as u32,
        max_attempts: number("max_attempts")?.unwrap_or(0).max(0) as u32,
        result: typed("result", json("result")?)?,
        error: typed("error", json("error")?)?,
        usage: typed("usage", json("usage")?)?,
        cached: map.get("cached").is_some_and(|v| v == "1"),
        created_at: number("created_at")?.unwrap_or(0),
        started_at: number("started_at")?,
        finished_at: number("finished_at")?,
        next_attempt_at: number("next_attempt_at")?,
    })
}

fn entry(id: StreamId) -> ArchiveEntry {
    let fields = id.map.into_iter().filter_map(|(k, v)| match v {
        Value::BulkString(bytes) => String::from_utf8(bytes).ok().map(|s| (k, s)),
        Value::SimpleString(s) => Some((k, s)),
        _ => None,
    });
    ArchiveEntry {
        record: record_from_fields(fields).ok(),
        entry_id: id.id,
    }
}

pub(super) fn archive_entries(reply: StreamReadReply) -> Vec<ArchiveEntry> {
    reply
        .keys
        .into_iter()
        .flat_map(|k| k.ids)
        .map(entry)
        .collect()
}

pub(super) fn claimed_entries(reply: StreamAutoClaimReply) -> Vec<ArchiveEntry> {
    reply.claimed.into_iter().map(entry).collect()
}
