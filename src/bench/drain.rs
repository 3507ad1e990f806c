//! Scenario `drain`: a backlog of `--drain-jobs` generation jobs is queued through the API
//! with no worker running; then one worker host starts with the default processes and
//! concurrency, against a stub that answers at once. Throughput is jobs from the first claim
//! (`started_at`) to the last terminal status (`finished_at`), both from Redis' clock; each
//! job also makes an HTTP call to the stub and is archived to Postgres (the archive's
//! catch-up is printed beside it).

use std::time::Duration;

use anyhow::bail;

use super::BenchArgs;
use super::deploy::Deployment;
use super::load::{DoneWatch, job_times, submit_many};
use super::reference;
use super::report::{self, Figure, thousands};

const NAME: &str = "drain";

pub async fn run(args: &BenchArgs) -> anyhow::Result<Vec<Figure>> {
    let mut d = Deployment::start(NAME, args).await?;
    let reference = reference::run(d.redis.port, args.clients, args.redis_requests).await?;
    d.start_stub(0).await?;
    d.start_api().await?;
    report::config(NAME, format!("redis-server {}", d.redis.settings));
    report::config(NAME, format!("worker: {}", d.describe_env(&[])));
    report::config(
        NAME,
        format!(
            "{} unique generation jobs queued through the API ({} clients), then one worker host with default processes and concurrency; stub latency 0",
            args.drain_jobs, args.clients
        ),
    );
    report::config(NAME, format!("reference: {}", reference.command));
    let result = measure(&mut d, args, &reference).await;
    d.shutdown().await;
    result
}

async fn measure(
    d: &mut Deployment,
    args: &BenchArgs,
    reference: &reference::Reference,
) -> anyhow::Result<Vec<Figure>> {
    let n = args.drain_jobs;
    let submitted = submit_many(d.api_addr(), &d.key, n, args.clients, "drain").await?;
    report::config(
        NAME,
        format!(
            "queued {n} jobs in {:.2} s ({} jobs/s)",
            submitted.elapsed.as_secs_f64(),
            thousands(n as f64 / submitted.elapsed.as_secs_f64())
        ),
    );
    let mut done = DoneWatch::subscribe(&d.redis.url()).await?;
    let before = d.cpu_split();
    d.start_worker(&[])?;
    let last_done = done
        .wait_all(&submitted.ids, Duration::from_secs(600))
        .await?;
    let archived = d.wait_archived(n, Duration::from_secs(300)).await?;
    let after = d.cpu_split();
    let per_job: Vec<f64> = after
        .iter()
        .zip(before)
        .map(|(a, b)| (a - b) * 1e6 / n as f64)
        .collect();
    let mut conn = d.redis.conn().await?;
    let times = job_times(&mut conn, &submitted.ids).await?;
    let succeeded = times.iter().filter(|t| t.0 == "succeeded").count();
    if succeeded != n {
        bail!("only {succeeded} of {n} jobs succeeded");
    }
    let first_claim = times.iter().map(|t| t.2).min().unwrap_or(0);
    let last_end = times.iter().map(|t| t.3).max().unwrap_or(0);
    let span = Duration::from_millis((last_end - first_claim).max(1) as u64);
    let per_sec = n as f64 / span.as_secs_f64();
    let archive_lag = archived.saturating_duration_since(last_done);
    Ok(vec![
        Figure::info(
            NAME,
            "throughput (first claim → last terminal)",
            format!("{} jobs/s", thousands(per_sec)),
            reference.share(per_sec),
        )
        .target(">= 10 % of SET", reference.fraction(per_sec) >= 0.10)
        .print(),
        Figure::info(
            NAME,
            "jobs / span",
            format!("{n} / {}", report::secs(span)),
            format!(
                "all {n} archived to Postgres {} after the last terminal status",
                report::secs(archive_lag)
            ),
        )
        .print(),
        Figure::info(
            NAME,
            "CPU per job: worker / redis / stub / pg",
            format!(
                "{:.0} / {:.0} / {:.0} / {:.0} µs",
                per_job[0], per_job[1], per_job[2], per_job[3]
            ),
            format!(
                "SET costs redis-server {:.1} µs at {} ops/s",
                1e6 / reference.ops_per_sec,
                thousands(reference.ops_per_sec)
            ),
        )
        .print(),
    ])
}
