//! The longhaul worker, named for its roles (after Sidekiq's launcher/manager/processor):
//!
//! - [`supervisor`]: the prefork parent: runs N child processes, restarts one that dies,
//!   forwards SIGTERM and waits for the drain.
//! - [`pool`]: one child process: an apalis worker per job kind, plus its lease heartbeats,
//!   maintenance and archiver tasks.
//! - `backend`: how apalis gets work: our claim script, and a blocking wake-up when idle.
//! - `execute`: runs one attempt and records its outcome, fenced by the attempt token.
//! - `lease`: the attempts this process holds, and the heartbeat that keeps them.
//! - `retry`: what a failed attempt means (retry when, or fail).
//! - `breaker`: stops claiming while the provider is down, so jobs wait instead of failing.
//! - `drain`: the shutdown signal: stop claiming, then (after the grace) give work back.
//! - `archiver`: moves finished jobs from the Redis stream into Postgres.
//! - `exporter`: a worker process's own metrics, for its supervisor.
//! - [`host_endpoint`]: the supervisor's one `/metrics` and `/readyz` for the whole host.
//! - [`limits`]: raises the open-file limit at start (thousands of calls in flight).

mod archiver;
mod backend;
mod breaker;
mod drain;
mod execute;
mod exporter;
pub mod host_endpoint;
mod lease;
pub mod limits;
mod maintenance;
pub mod pool;
mod retry;
pub mod supervisor;

pub use drain::{Shutdown, ShutdownTrigger};
pub use host_endpoint::HostEndpoint;
pub use pool::run_child;
pub use supervisor::run_supervisor;
