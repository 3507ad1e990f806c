//! Bearer API keys: the key is hashed (SHA-256) and looked up by hash; the plaintext is never
//! stored. Recently seen keys are cached for [`CACHE_TTL`], so a submit needs no Postgres
//! round trip; a revoked key stops working within that time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use longhaul_jobs::TenantId;
use longhaul_jobs::api_key::{ApiKey, KeyHash};
use longhaul_jobs::archive::{ApiKeyRow, Archive};

use crate::problem::ApiError;
use crate::state::AppState;

/// How long a key lookup is trusted.
const CACHE_TTL: Duration = Duration::from_secs(30);
/// Cached keys at most; the cache is cleared when full (keys are few per deployment).
const CACHE_MAX: usize = 10_000;

/// Resolves keys to their rows, with a short cache.
pub(crate) struct Authenticator {
    archive: Archive,
    cache: Mutex<HashMap<[u8; 32], (ApiKeyRow, Instant)>>,
}

impl Authenticator {
    pub(crate) fn new(archive: Archive) -> Self {
        Self {
            archive,
            cache: Mutex::new(HashMap::new()),
        }
    }

    async fn lookup(&self, hash: &KeyHash) -> Result<Option<ApiKeyRow>, ApiError> {
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((row, at)) = cache.get(hash.as_bytes())
                && at.elapsed() < CACHE_TTL
            {
                return Ok(Some(row.clone()));
            }
        }
        let row = self.archive.find_api_key(hash).await?;
        if let Some(row) = &row {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(*hash.as_bytes(), (row.clone(), Instant::now()));
            let archive = self.archive.clone();
            let id = row.id;
            tokio::spawn(async move {
                if let Err(e) = archive.touch_api_key(id).await {
                    tracing::debug!(error = %e, "could not record key use");
                }
            });
        }
        Ok(row)
    }
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub tenant: TenantId,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthorized)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or(ApiError::Unauthorized)?
            .trim();
        let key = ApiKey::parse(token).map_err(|_| ApiError::Unauthorized)?;
        let row = state
            .auth
            .lookup(&key.hash())
            .await?
            .ok_or(ApiError::Unauthorized)?;
        if !row.is_usable(chrono::Utc::now()) {
            return Err(ApiError::Unauthorized);
        }
        Ok(Caller { tenant: row.tenant })
    }
}
