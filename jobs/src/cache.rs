//! The result cache: identical requests do not cost twice.
//!
//! An answer is found by its [`CacheKey`], the SHA-256 of a canonical form of what decides
//! it: the kind, the model (the configured default when the request names none), the input
//! (with its generation parameters) and, unless `LONGHAUL_CACHE_SCOPE=global`, the tenant.
//! Only successful results are cached, as their `result` JSON.
//!
//! Two levels:
//! - L1, [`LocalCache`]: in each API and worker process (moka, bounded by
//!   `LONGHAUL_CACHE_LOCAL_ENTRIES`, entries live `LONGHAUL_CACHE_TTL_SECS`);
//! - L2, Redis: one key per entry, `{P}:cache:<hash>`, with a TTL of
//!   `LONGHAUL_CACHE_TTL_SECS` (the scheduler's `cache_cleanup` keeps them within budget).
//!
//! The scripts read and write L2 inside the transitions themselves (`enqueue.lua` answers a
//! submit from it, `cache_join.lua` a claimed job, `complete.lua` fills it), so the cache
//! adds no round trip; see the README's design notes for single-flight.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::config::CacheScope;
use crate::ids::TenantId;
use crate::job::JobSpec;

/// Version of the canonical form: bump it when the form changes, so old entries are not
/// read as answers to other requests.
const FORM_VERSION: u32 = 1;

/// The identity of one answer: hex SHA-256 of the request's canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(String);

impl CacheKey {
    /// The key of `spec` submitted by `tenant`, or `None` when the request opted out
    /// (`"cache": false`).
    pub fn of(
        spec: &JobSpec,
        tenant: &TenantId,
        default_model: &str,
        scope: CacheScope,
    ) -> Option<Self> {
        if !spec.cache {
            return None;
        }
        let input = serde_json::to_value(&spec.input).ok()?;
        let mut form = String::with_capacity(256);
        form.push_str(&format!("v{FORM_VERSION}\n"));
        match scope {
            CacheScope::Tenant => form.push_str(&format!("tenant:{tenant}\n")),
            CacheScope::Global => form.push_str("tenant:*\n"),
        }
        form.push_str(&format!("kind:{}\n", spec.kind));
        let model = spec.model.as_deref().unwrap_or(default_model);
        form.push_str("model:");
        canonical_json(&serde_json::Value::String(model.to_owned()), &mut form);
        form.push_str("\ninput:");
        canonical_json(&input, &mut form);
        Some(Self(hex::encode(Sha256::digest(form.as_bytes()))))
    }

    /// The hex digest.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Writes `value` as JSON with object keys sorted at every level and no whitespace, so two
/// requests that differ only in key order or spacing have one form.
fn canonical_json(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(&serde_json::Value::String(k.clone()), out);
                out.push(':');
                canonical_json(v, out);
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(v, out);
            }
            out.push(']');
        }
        // Scalars have one serde_json form.
        other => out.push_str(&other.to_string()),
    }
}

/// The in-process cache (L1): answer JSON by key, bounded in entries and age.
#[derive(Clone)]
pub struct LocalCache {
    entries: moka::sync::Cache<String, Arc<str>>,
}

impl std::fmt::Debug for LocalCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCache")
            .field("entries", &self.entries.entry_count())
            .finish()
    }
}

impl LocalCache {
    /// At most `capacity` answers, each kept for `ttl`.
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The answer of `key`, if this process has it.
    pub fn get(&self, key: &CacheKey) -> Option<Arc<str>> {
        self.entries.get(key.as_str())
    }

    /// Remembers the answer of `key`.
    pub fn insert(&self, key: &CacheKey, result: Arc<str>) {
        self.entries.insert(key.0.clone(), result);
    }

    /// Forgets every answer.
    pub fn clear(&self) {
        self.entries.invalidate_all();
    }

    /// Answers held (approximately: moka counts lazily).
    pub fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }

    /// Whether no answer is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a process needs to use the cache: the key rules and its L1.
#[derive(Debug, Clone)]
pub struct ResultCache {
    /// The model of requests that name none (part of the key).
    pub default_model: String,
    /// Who shares answers.
    pub scope: CacheScope,
    /// How long an answer lives in Redis.
    pub ttl: Duration,
    /// This process's L1.
    pub local: LocalCache,
}

impl ResultCache {
    /// The cache as configured.
    pub fn from_config(config: &crate::Config) -> Self {
        Self {
            default_model: config.ai.model.clone(),
            scope: config.cache_scope,
            ttl: config.cache_ttl,
            local: LocalCache::new(config.cache_local_entries, config.cache_ttl),
        }
    }

    /// The key of a request, or `None` when it opted out.
    pub fn key(&self, spec: &JobSpec, tenant: &TenantId) -> Option<CacheKey> {
        CacheKey::of(spec, tenant, &self.default_model, self.scope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Limits, SubmitRequest};

    fn spec(body: serde_json::Value) -> JobSpec {
        let req: SubmitRequest = serde_json::from_value(body).unwrap();
        JobSpec::parse(req, &Limits::uniform(3, 60)).unwrap()
    }

    #[test]
    fn the_key_ignores_key_order_and_metadata_but_not_parameters_model_or_tenant() {
        let acme = TenantId::parse("acme").unwrap();
        let globex = TenantId::parse("globex").unwrap();
        let key = |body, tenant: &TenantId, scope| {
            CacheKey::of(&spec(body), tenant, "stub-model", scope).unwrap()
        };
        let t = CacheScope::Tenant;
        let base = key(
            serde_json::json!({"kind": "generation", "input": {"prompt": "p", "temperature": 0.5}}),
            &acme,
            t,
        );
        let reordered = key(
            serde_json::json!({"input": {"temperature": 0.5, "prompt": "p"}, "kind": "generation", "metadata": {"a": 1}}),
            &acme,
            t,
        );
        assert_eq!(base, reordered);
        let explicit_default_model = key(
            serde_json::json!({"kind": "generation", "model": "stub-model", "input": {"prompt": "p", "temperature": 0.5}}),
            &acme,
            t,
        );
        assert_eq!(base, explicit_default_model);
        let warmer = key(
            serde_json::json!({"kind": "generation", "input": {"prompt": "p", "temperature": 0.9}}),
            &acme,
            t,
        );
        assert_ne!(base, warmer);
        let other_model = key(
            serde_json::json!({"kind": "generation", "model": "big", "input": {"prompt": "p", "temperature": 0.5}}),
            &acme,
            t,
        );
        assert_ne!(base, other_model);
        let body =
            serde_json::json!({"kind": "generation", "input": {"prompt": "p", "temperature": 0.5}});
        assert_ne!(base, key(body.clone(), &globex, t));
        assert_eq!(
            key(body.clone(), &acme, CacheScope::Global),
            key(body, &globex, CacheScope::Global)
        );
        let opted_out = spec(
            serde_json::json!({"kind": "generation", "cache": false, "input": {"prompt": "p"}}),
        );
        assert!(CacheKey::of(&opted_out, &acme, "m", t).is_none());
    }
}
