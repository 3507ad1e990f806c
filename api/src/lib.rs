//! The longhaul submit API: a slim axum front over the Redis state machine.
//!
//! - `routes`: the handlers (`/v1/jobs`, health).
//! - `auth`: Bearer API keys and JWTs, resolved to a tenant and scopes; scope and rate
//!   checks per route class.
//! - `jwt`: JWT verification.
//! - `rate_limit`: the `RateLimit-*` headers of the Redis-side rate limits.
//! - `problem`: every error as RFC 9457 problem+json with a stable code, mapped in one place.
//! - `body`, `extract`: strict JSON bodies, paths and queries with precise errors.
//! - `hardening`: security headers, CORS, request deadline.
//! - `request_id`: `X-Request-Id` on every response and in every problem body.
//! - `views`: the JSON shapes clients see.
//! - `openapi`: the OpenAPI document, generated from the handlers, at `/openapi.json`.
//! - `metrics`: HTTP request metrics (`/metrics` itself is in `routes`, with `/v1/admin`).

mod auth;
mod body;
mod extract;
mod hardening;
mod jwt;
mod metrics;
mod openapi;
mod problem;
mod rate_limit;
mod request_id;
mod routes;
mod state;
mod views;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use longhaul_jobs::Config;
use longhaul_jobs::archive::Archive;
use longhaul_jobs::store::RedisStore;
use tower_http::trace::TraceLayer;

pub use jwt::JwtSetupError;
pub use state::AppState;

/// Builds the router with every layer (outermost last): request id, tracing, security
/// headers, CORS, problem request ids, rate-limit headers, the request deadline, the body
/// limit.
pub fn router(state: AppState) -> Router {
    let max_body = state.max_body_bytes;
    let api = &state.api;
    let cors = hardening::cors(&api.cors_origins);
    let router = Router::new()
        .merge(routes::jobs::routes())
        .merge(routes::health::routes())
        .merge(routes::metrics::routes())
        .merge(routes::admin::routes())
        .merge(routes::cache::routes())
        .merge(openapi::routes())
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            api.request_timeout,
            hardening::deadline,
        ))
        .layer(axum::middleware::from_fn(rate_limit::headers))
        .layer(axum::middleware::from_fn(problem::attach_request_id))
        .layer(axum::middleware::from_fn(metrics::track));
    let router = match cors {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router
        .layer(axum::middleware::from_fn_with_state(
            api.hsts,
            hardening::security_headers,
        ))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                let id = req
                    .headers()
                    .get(request_id::HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(request_id::layers())
        .with_state(state)
}

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Redis could not be reached.
    #[error("redis: {0}")]
    Store(#[from] longhaul_jobs::store::StoreError),
    /// The Postgres pool could not be built.
    #[error("postgres: {0}")]
    Archive(#[from] longhaul_jobs::archive::ArchiveError),
    /// The address could not be bound.
    #[error("bind: {0}")]
    Bind(#[from] std::io::Error),
    /// The JWT settings cannot be used.
    #[error("{0}")]
    Jwt(#[from] JwtSetupError),
}

/// Connects to Redis (waiting for it if it is down at start) and Postgres (lazily).
pub async fn build_state(config: &Config) -> Result<AppState, StartError> {
    let jwt = config
        .api
        .jwt
        .as_ref()
        .map(jwt::JwtVerifier::new)
        .transpose()?;
    if let Some(jwt) = &config.api.jwt {
        tracing::info!(audience = %jwt.audience, issuer = %jwt.issuer, "JWT bearer tokens enabled");
    }
    let mut delay = Duration::from_millis(200);
    let store = loop {
        match RedisStore::connect(&config.redis_url, &config.redis_prefix).await {
            Ok(store) => break store,
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach Redis yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    };
    let archive = Archive::connect_lazy(&config.database_url)?;
    Ok(AppState::new(store, archive, config, jwt))
}

/// Serves the API on `addr` until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    config: &Config,
    addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let state = build_state(config).await?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "api listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
