//! `longhaul bench <scenario|all>`: the benchmark suite (issue 8).
//!
//! Each scenario starts what it needs as child processes of this executable (a private
//! `redis-server` with the shared Redis's settings, its own Postgres database, the stub
//! provider, the API, a worker host), runs the physical reference (`redis-benchmark -t set`)
//! against that same Redis, and prints one line per figure with its ratio to the reference
//! and its target. Benchmarks print figures; nothing here fails on a time.
//!
//! - `deploy`: the private Redis, the database and the longhaul processes of one scenario.
//! - `reference`: `redis-benchmark`, the yardstick of every ratio.
//! - `load`: a minimal keep-alive HTTP/1.1 client, so the load generator costs little CPU.
//! - `monitor`: attributes every command Redis sees to its sender (`MONITOR`).
//! - `report`: figure lines, and the machine and configuration they were measured on.
//! - one file per scenario: `submit`, `round_trips`, `drain`, `pickup`, `long_calls`,
//!   `cache_hit`.

mod cache_hit;
mod deploy;
mod drain;
mod load;
mod long_calls;
mod monitor;
mod pickup;
mod reference;
mod report;
mod round_trips;
mod submit;

use std::time::Instant;

pub use report::Figure;

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Every scenario, in order.
    All,
    /// Submit throughput and latency (keep-alive clients, then 50 % of the maximum offered).
    Submit,
    /// Redis round trips and Lua time per job, end to end.
    RoundTrips,
    /// Drain a queued backlog: jobs/s from first claim to last terminal status.
    Drain,
    /// Accepted → claimed on an idle queue.
    Pickup,
    /// Many slow provider calls in flight on one worker host: wall time and memory.
    LongCalls,
    /// Repeated identical submits answered from the result cache.
    CacheHit,
}

impl Scenario {
    const EACH: [Scenario; 6] = [
        Scenario::Submit,
        Scenario::RoundTrips,
        Scenario::Drain,
        Scenario::Pickup,
        Scenario::LongCalls,
        Scenario::CacheHit,
    ];

    /// The name figures are printed under.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::All => "all",
            Scenario::Submit => "submit",
            Scenario::RoundTrips => "round-trips",
            Scenario::Drain => "drain",
            Scenario::Pickup => "pickup",
            Scenario::LongCalls => "long-calls",
            Scenario::CacheHit => "cache-hit",
        }
    }
}

/// `longhaul bench` options. The defaults are the figures of issue 8.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Which scenario to run.
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// Postgres to create each scenario's database on (trust auth).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub pg_admin_url: String,
    /// Redis whose settings the private Redis copies (when reachable).
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    pub shared_redis_url: String,
    /// Keep-alive HTTP clients of the submit scenario (also `redis-benchmark -c`).
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Seconds of the closed-loop submit run.
    #[arg(long, default_value_t = 20)]
    pub submit_secs: u64,
    /// Seconds of the submit run offered 50 % of the measured maximum.
    #[arg(long, default_value_t = 10)]
    pub offered_secs: u64,
    /// Jobs of the round-trip count.
    #[arg(long, default_value_t = 1000)]
    pub round_trip_jobs: usize,
    /// Jobs queued before the drain.
    #[arg(long, default_value_t = 100_000)]
    pub drain_jobs: usize,
    /// Jobs submitted one at a time in the pickup scenario.
    #[arg(long, default_value_t = 1000)]
    pub pickup_jobs: usize,
    /// Jobs of the long-call scenario (also its total concurrency).
    #[arg(long, default_value_t = 10_000)]
    pub long_jobs: usize,
    /// Provider latency of the long-call scenario, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub long_latency_ms: u64,
    /// Provider protocol of the long-call scenario: `h2` (h2c prior knowledge) or `h1`.
    #[arg(long, default_value = "h2", value_parser = ["h1", "h2"])]
    pub long_protocol: String,
    /// `LONGHAUL_AI_CONNECTIONS` of the long-call scenario (its default when absent).
    #[arg(long)]
    pub long_connections: Option<usize>,
    /// Extra `KEY=VALUE` environment of every longhaul process (repeatable), to compare
    /// configurations; printed with the configuration.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Requests of each `redis-benchmark` reference run.
    #[arg(long, default_value_t = 200_000)]
    pub redis_requests: u64,
    /// `RUST_LOG` of the longhaul processes (`info` is the default configuration).
    #[arg(long, default_value = "info")]
    pub log: String,
}

/// Runs the chosen scenarios, printing figures as they come and a summary at the end. A
/// scenario that cannot run is reported and the others still run.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    report::print_header(&args).await;
    let scenarios: Vec<Scenario> = match args.scenario {
        Scenario::All => Scenario::EACH.to_vec(),
        one => vec![one],
    };
    let mut figures: Vec<Figure> = Vec::new();
    let mut failed = Vec::new();
    for scenario in scenarios {
        println!();
        println!("== {} ==", scenario.name());
        let result = match scenario {
            Scenario::Submit => submit::run(&args).await,
            Scenario::RoundTrips => round_trips::run(&args).await,
            Scenario::Drain => drain::run(&args).await,
            Scenario::Pickup => pickup::run(&args).await,
            Scenario::LongCalls => long_calls::run(&args).await,
            Scenario::CacheHit => cache_hit::run(&args).await,
            Scenario::All => unreachable!("expanded above"),
        };
        match result {
            Ok(found) => figures.extend(found),
            Err(e) => {
                println!("{:<12} FAILED: {e:#}", scenario.name());
                failed.push(scenario.name());
            }
        }
    }
    println!();
    report::print_summary(&figures);
    println!(
        "bench finished in {:.0} s{}",
        started.elapsed().as_secs_f64(),
        if failed.is_empty() {
            String::new()
        } else {
            format!("; FAILED: {}", failed.join(", "))
        }
    );
    if failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("scenarios failed: {}", failed.join(", "))
    }
}
