//! Scenario `round-trips`: how many commands longhaul's processes send to Redis per job, end
//! to end (submit through the API, claim, provider call, complete, archive to Postgres), and
//! how much Lua time each job costs Redis.
//!
//! Counting: see [`super::monitor`]. A script call counts once, a pipeline once per
//! command. Commands that run on a timer whether or not there are jobs (idle fetches that
//! time out, the maintenance tick, archive reads that time out) are measured on their own
//! in an idle window of the same deployment first, and their rate times the length of the
//! job window is subtracted; heartbeats and archive batches count by share.

use std::time::{Duration, Instant};

use super::BenchArgs;
use super::deploy::Deployment;
use super::load::{DoneWatch, submit_many};
use super::monitor::{CommandStats, Monitor, Window, delta, parse_commandstats};
use super::reference;
use super::report::{self, Figure};

const NAME: &str = "round-trips";
/// The idle window measured before the jobs.
const IDLE: Duration = Duration::from_secs(5);
/// Concurrent submitters.
const SUBMITTERS: usize = 16;
/// The target: round trips per job that succeeds on its first attempt.
const TARGET: f64 = 6.0;

pub async fn run(args: &BenchArgs) -> anyhow::Result<Vec<Figure>> {
    let mut d = Deployment::start(NAME, args).await?;
    let reference = reference::run(d.redis.port, args.clients, args.redis_requests).await?;
    d.start_stub(0).await?;
    d.start_api().await?;
    d.start_worker(&[])?;
    report::config(NAME, format!("redis-server {}", d.redis.settings));
    report::config(NAME, format!("api, worker: {}", d.describe_env(&[])));
    report::config(
        NAME,
        format!(
            "{} unique generation jobs submitted by {SUBMITTERS} clients, stub latency 0; idle baseline over {} s; counted with MONITOR, cross-checked with INFO commandstats",
            args.round_trip_jobs,
            IDLE.as_secs()
        ),
    );
    report::config(NAME, format!("reference: {}", reference.command));
    let result = measure(&d, args, &reference).await;
    d.shutdown().await;
    result
}

async fn measure(
    d: &Deployment,
    args: &BenchArgs,
    reference: &reference::Reference,
) -> anyhow::Result<Vec<Figure>> {
    let n = args.round_trip_jobs;
    d.wait_workers_idle(4).await?;
    let mut done = DoneWatch::subscribe(&d.redis.url()).await?;
    let mut monitor = Monitor::start(d.redis.port).await?;
    monitor.mark().await?;
    let idle_started = Instant::now();
    tokio::time::sleep(IDLE).await;
    let s1 = monitor.mark().await?;
    let idle_len = idle_started.elapsed().as_secs_f64();
    let jobs_started = Instant::now();
    let submitted = submit_many(d.api_addr(), &d.key, n, SUBMITTERS, "rt").await?;
    done.wait_all(&submitted.ids, Duration::from_secs(120))
        .await?;
    d.wait_archived(n, Duration::from_secs(60)).await?;
    let s2 = monitor.mark().await?;
    let jobs_len = jobs_started.elapsed().as_secs_f64();

    let idle = monitor.window(0);
    let jobs = monitor.window(1);
    let scale = jobs_len / idle_len;
    let raw = jobs.longhaul_total() as f64;
    let idle_share = idle.longhaul_total() as f64 * scale;
    let per_job = (raw - idle_share).max(0.0) / n as f64;

    let (stat_calls, _) = delta(&s2, &s1, |_| true);
    let seen = jobs.longhaul_total() + jobs.in_scripts + jobs.own;
    drop(monitor);
    // MONITOR slows every command down (each is formatted for it), so script time is
    // measured on a second batch without it.
    let lua = lua_time(d, n, &mut done).await?;
    let lua_per_job = lua.per_job;

    let mut figures = vec![
        Figure::info(
            NAME,
            "round trips per job (net of idle)",
            format!("{per_job:.2}"),
            format!(
                "Redis-bound ceiling ≈ {} jobs/s (SET {} ops/s ÷ {per_job:.2})",
                report::thousands(reference.ops_per_sec / per_job.max(0.01)),
                report::thousands(reference.ops_per_sec)
            ),
        )
        .target("<= 6", per_job <= TARGET)
        .print(),
        Figure::info(
            NAME,
            "round trips per job (raw)",
            format!("{:.2}", raw / n as f64),
            format!(
                "idle baseline {:.1}/s over {:.1} s = {:.2} per job",
                idle.longhaul_total() as f64 / idle_len,
                jobs_len,
                idle_share / n as f64
            ),
        )
        .print(),
        Figure::info(
            NAME,
            "Lua script time per job (net of idle)",
            format!("{lua_per_job:.1} µs"),
            format!(
                "{:.1} × a SET at {} ops/s",
                lua_per_job / (1e6 / reference.ops_per_sec),
                report::thousands(reference.ops_per_sec)
            ),
        )
        .print(),
    ];
    report::config(
        NAME,
        format!("per job, by command (raw): {}", breakdown(&jobs, n as f64)),
    );
    report::config(
        NAME,
        format!("idle, per second: {}", breakdown(&idle, idle_len)),
    );
    report::config(
        NAME,
        format!(
            "Redis time per job by command (inside scripts and direct): {}",
            lua.breakdown
        ),
    );
    report::config(
        NAME,
        format!(
            "cross-check: INFO commandstats counted {stat_calls} commands in the job window; MONITOR saw {} from longhaul + {} inside scripts + {} snapshot = {seen} ({})",
            jobs.longhaul_total(),
            jobs.in_scripts,
            jobs.own,
            if stat_calls == seen {
                "equal"
            } else {
                "DIFFERENT"
            }
        ),
    );
    figures.push(
        Figure::info(
            NAME,
            "jobs / job window",
            format!("{n} / {jobs_len:.2} s"),
            format!("submitted in {:.2} s", submitted.elapsed.as_secs_f64()),
        )
        .print(),
    );
    Ok(figures)
}

/// Each command's count divided by `div`.
fn breakdown(w: &Window, div: f64) -> String {
    w.longhaul
        .iter()
        .map(|(name, count)| format!("{name} {:.3}", *count as f64 / div))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Script time per job, from `INFO commandstats`, net of an idle baseline.
struct LuaTime {
    per_job: f64,
    /// The commands scripts spend it on, most first.
    breakdown: String,
}

async fn lua_time(d: &Deployment, n: usize, done: &mut DoneWatch) -> anyhow::Result<LuaTime> {
    let mut conn = d.redis.conn().await?;
    let mut stats = async || -> anyhow::Result<CommandStats> {
        let text: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn)
            .await?;
        Ok(parse_commandstats(&text))
    };
    let t0 = stats().await?;
    let idle_started = Instant::now();
    tokio::time::sleep(IDLE / 2).await;
    let t1 = stats().await?;
    let idle_len = idle_started.elapsed().as_secs_f64();
    let started = Instant::now();
    let submitted = submit_many(d.api_addr(), &d.key, n, SUBMITTERS, "rt-lua").await?;
    done.wait_all(&submitted.ids, Duration::from_secs(120))
        .await?;
    d.wait_archived(2 * n, Duration::from_secs(60)).await?;
    let t2 = stats().await?;
    let scale = started.elapsed().as_secs_f64() / idle_len;
    let net = |pick: &dyn Fn(&str) -> bool| {
        let (_, busy) = delta(&t2, &t1, pick);
        let (_, idle) = delta(&t1, &t0, pick);
        (busy as f64 - idle as f64 * scale).max(0.0) / n as f64
    };
    let per_job = net(&|c| c == "evalsha" || c == "eval");
    let mut inner: Vec<(String, f64)> = t2
        .keys()
        .filter(|c| !matches!(c.as_str(), "evalsha" | "eval" | "info"))
        .map(|c| (c.clone(), net(&|x| x == c)))
        .filter(|(_, usec)| *usec >= 0.05)
        .collect();
    inner.sort_by(|a, b| b.1.total_cmp(&a.1));
    let breakdown = inner
        .iter()
        .map(|(c, usec)| format!("{c} {usec:.1} µs"))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(LuaTime { per_job, breakdown })
}
