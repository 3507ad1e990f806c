//! Who is calling, and may they: Bearer credentials resolved to a tenant and its scopes,
//! then checked against the route's scope and rate bucket.
//!
//! - API keys (`lh_…`): hashed (SHA-256) and looked up by hash; the plaintext is never
//!   stored. Recently seen keys are cached for [`CACHE_TTL`], so a submit needs no Postgres
//!   round trip; a revoked key stops working within that time, an expired one at once.
//! - Any other token is tried as a JWT when JWT is configured (see [`crate::jwt`]).
//!
//! A missing, unknown, revoked, expired or badly signed credential is `401`; a valid one
//! without the route's scope is `403` (`admin` includes every scope). Then the tenant's
//! rate bucket of the route class is checked (`429`): see [`Authorized`].

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use longhaul_jobs::TenantId;
use longhaul_jobs::api_key::{ApiKey, KeyHash, Scope};
use longhaul_jobs::archive::{ApiKeyRow, Archive};

use crate::problem::ApiError;
use crate::rate_limit::RateSlot;
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
    scopes: Vec<Scope>,
}

impl Caller {
    /// Whether the caller may act with `scope` (`admin` includes every scope).
    pub(crate) fn may(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin)
    }
}

/// Every API key starts with this; other tokens are JWTs.
const KEY_TAG: &str = "lh_";

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
        let (scheme, token) = header.split_once(' ').ok_or(ApiError::Unauthorized)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::Unauthorized);
        }
        let token = token.trim();
        if !token.starts_with(KEY_TAG)
            && let Some(jwt) = &state.jwt
        {
            let verified = jwt.verify(token).ok_or(ApiError::Unauthorized)?;
            return Ok(Caller {
                tenant: verified.tenant,
                scopes: verified.scopes,
            });
        }
        let key = ApiKey::parse(token).map_err(|_| ApiError::Unauthorized)?;
        let row = state
            .auth
            .lookup(&key.hash())
            .await?
            .ok_or(ApiError::Unauthorized)?;
        if !row.is_usable(chrono::Utc::now()) {
            return Err(ApiError::Unauthorized);
        }
        Ok(Caller {
            tenant: row.tenant,
            scopes: row.scopes,
        })
    }
}

/// The rate bucket a route class draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bucket {
    /// Submits, cancels and retries.
    Submit,
    /// Reads.
    Read,
}

impl Bucket {
    /// The bucket's name in its Redis key.
    pub(crate) fn class(self) -> &'static str {
        match self {
            Bucket::Submit => "submit",
            Bucket::Read => "read",
        }
    }
}

/// What a route requires: a scope, and a rate bucket to check (or none, when the route's
/// own script checks it).
pub(crate) trait Policy {
    /// The scope the credential must grant.
    const SCOPE: Scope;
    /// The bucket checked by the extractor; `None` when the handler's script checks it.
    const BUCKET: Option<Bucket>;
}

/// `POST /v1/jobs`: the enqueue script checks the submit bucket itself (one round trip).
pub(crate) enum SubmitJobs {}
impl Policy for SubmitJobs {
    const SCOPE: Scope = Scope::JobsWrite;
    const BUCKET: Option<Bucket> = None;
}

/// `DELETE /v1/jobs/{id}`, `POST /v1/jobs/{id}/retry`.
pub(crate) enum ChangeJobs {}
impl Policy for ChangeJobs {
    const SCOPE: Scope = Scope::JobsWrite;
    const BUCKET: Option<Bucket> = Some(Bucket::Submit);
}

/// `GET /v1/jobs...`.
pub(crate) enum ReadJobs {}
impl Policy for ReadJobs {
    const SCOPE: Scope = Scope::JobsRead;
    const BUCKET: Option<Bucket> = Some(Bucket::Read);
}

/// A caller allowed by policy `P`: authenticated (`401`), holding `P::SCOPE` (`403`), and
/// within its `P::BUCKET` rate (`429`), checked in that order before the body is read.
pub(crate) struct Authorized<P> {
    pub caller: Caller,
    slot: Option<RateSlot>,
    _policy: PhantomData<fn() -> P>,
}

impl<P> Authorized<P> {
    /// Records the outcome of a rate check made by the handler (for the response headers).
    pub(crate) fn record_rate(&self, rate: longhaul_jobs::store::RateState) {
        if let Some(slot) = &self.slot {
            slot.record(rate);
        }
    }
}

impl<P: Policy> FromRequestParts<AppState> for Authorized<P> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if !caller.may(P::SCOPE) {
            return Err(ApiError::Forbidden(P::SCOPE));
        }
        let authorized = Authorized {
            caller,
            slot: parts.extensions.get::<RateSlot>().cloned(),
            _policy: PhantomData,
        };
        if let Some(bucket) = P::BUCKET {
            let rate = state
                .store
                .check_rate(
                    bucket.class(),
                    &authorized.caller.tenant,
                    state.rate(bucket),
                )
                .await?;
            authorized.record_rate(rate);
            if rate.retry_after.is_some() {
                return Err(ApiError::RateLimited(rate));
            }
        }
        Ok(authorized)
    }
}
