//! The test harness (after zero2prod's `spawn_app`): [`TestEnv`] owns one isolated
//! deployment (Redis prefix, Postgres database, stub provider, API key) and starts the real
//! processes on free ports.

mod done;
mod env;
mod process;
mod redis_server;

pub use env::{TestEnv, free_port, generation};
pub use process::{Paused, signal_pid};
pub use redis_server::RedisServer;
