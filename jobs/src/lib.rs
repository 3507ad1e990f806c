//! longhaul's domain library: every process (`api`, `worker`, `scheduler`) builds on it.
//!
//! - [`job`]: what a job is (kinds, inputs, status, the record clients see), parsed at the edge.
//! - [`store`]: the job state machine in Redis, one Lua script per transition.
//! - [`archive`]: the durable Postgres side (jobs history, tenants, API keys).
//! - [`provider`]: the OpenAI-compatible client that does the actual AI call.
//! - [`config`]: every environment variable, typed and validated at start.
//! - [`retry`]: how long a failed attempt waits before the next one.
//! - [`telemetry`]: structured logs.
//! - [`metrics`]: the Prometheus families every process exports.

pub mod api_key;
pub mod archive;
pub mod cache;
pub mod config;
pub mod ids;
pub mod job;
pub mod metrics;
pub mod provider;
pub mod retry;
pub mod store;
pub mod telemetry;
pub mod time;
pub mod webhook;

pub use config::Config;
pub use ids::{JobId, TenantId};
