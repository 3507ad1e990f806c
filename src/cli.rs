//! The command line (DESIGN §3): one binary, one subcommand per role.

use clap::{Parser, Subcommand};

use crate::stub_llm::StubArgs;

/// Background jobs for long AI calls.
#[derive(Debug, Parser)]
#[command(name = "longhaul", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What to run.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The HTTP API (binds PORT).
    Api,
    /// The worker supervisor: LONGHAUL_WORKER_PROCESSES processes, each running jobs.
    Worker {
        /// Internal: run as worker process number N of a supervisor.
        #[arg(long, hide = true)]
        child: Option<usize>,
    },
    /// Maintenance on a schedule; any number may run, one leads.
    Scheduler,
    /// API, worker and scheduler together, for a laptop or a single host.
    Up,
    /// Apply the Postgres migrations to DATABASE_URL.
    Migrate,
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The OpenAI-compatible stub provider (latency and fault injection) for tests and demos.
    StubLlm(StubArgs),
    /// The benchmark suite: runs a scenario (or all) against private Redis and Postgres
    /// databases and prints each figure beside `redis-benchmark`'s. Use a release build.
    Bench(crate::bench::BenchArgs),
}

/// `longhaul keys ...`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key for a tenant; the key is printed once and never stored.
    Create {
        /// The tenant the key acts for (created if new).
        #[arg(long)]
        tenant: String,
        /// Scopes, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "jobs:write,jobs:read")]
        scopes: Vec<String>,
    },
    /// List keys (prefix, tenant, scopes, state); never the secrets.
    List {
        /// Only this tenant's keys.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revoke a key by id.
    Revoke {
        /// The key's id, as `keys list` shows it.
        id: String,
    },
}
