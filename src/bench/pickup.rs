//! Scenario `pickup`: on an idle queue (every worker fetch blocked on its wake-up list),
//! `--pickup-jobs` jobs are submitted one at a time, each after the previous one ended and a
//! short pause. Pickup latency is `started_at - created_at` of each job (Redis' clock, in
//! whole milliseconds); the time from the submit's answer to its terminal transition seen by
//! a subscriber is printed beside it, in microseconds.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::BenchArgs;
use super::deploy::Deployment;
use super::load::{Conn, DoneWatch, generation_body, job_times};
use super::reference;
use super::report::{self, Figure, ms, percentile};

const NAME: &str = "pickup";
/// Pause after a job ended, so that every fetch is back on its blocking wait.
const PAUSE: Duration = Duration::from_millis(2);

pub async fn run(args: &BenchArgs) -> anyhow::Result<Vec<Figure>> {
    let mut d = Deployment::start(NAME, args).await?;
    let reference = reference::run(d.redis.port, 1, args.redis_requests / 4).await?;
    d.start_stub(0).await?;
    d.start_api().await?;
    d.start_worker(&[])?;
    report::config(NAME, format!("redis-server {}", d.redis.settings));
    report::config(NAME, format!("api, worker: {}", d.describe_env(&[])));
    report::config(
        NAME,
        format!(
            "{} generation jobs submitted one at a time over one keep-alive connection, each after the previous ended + {} ms; stub latency 0",
            args.pickup_jobs,
            PAUSE.as_millis()
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
    d.wait_workers_idle(4).await?;
    let mut done = DoneWatch::subscribe(&d.redis.url()).await?;
    let mut conn = Conn::connect(d.api_addr()).await?;
    let mut ids = Vec::with_capacity(args.pickup_jobs);
    let mut end_to_end = Vec::with_capacity(args.pickup_jobs);
    for i in 0..args.pickup_jobs {
        let body = generation_body(&format!("pickup-{i}"));
        let r = conn
            .request("POST", "/v1/jobs", &d.key, Some(&body))
            .await?;
        let accepted = Instant::now();
        if r.status != 202 {
            bail!("submit answered {}", r.status);
        }
        let id = r.job_id().context("no id")?;
        loop {
            let (ended, at) = done.next(Duration::from_secs(30)).await?;
            if ended == id {
                end_to_end.push(at.saturating_duration_since(accepted).as_micros() as u64);
                break;
            }
        }
        ids.push(id);
        tokio::time::sleep(PAUSE).await;
    }
    let mut redis = d.redis.conn().await?;
    let mut pickup: Vec<u64> = job_times(&mut redis, &ids)
        .await?
        .iter()
        .map(|(_, created, started, _)| (started - created).max(0) as u64 * 1000)
        .collect();
    pickup.sort_unstable();
    end_to_end.sort_unstable();
    let p50 = percentile(&pickup, 50.0);
    let p99 = percentile(&pickup, 99.0);
    Ok(vec![
        Figure::info(
            NAME,
            "accepted → claimed p50 (1 ms clock)",
            ms(p50),
            reference.times_p50(p50),
        )
        .target("<= 1 ms", p50 <= 1000)
        .print(),
        Figure::info(
            NAME,
            "accepted → claimed p99 (1 ms clock)",
            ms(p99),
            reference.times_p99(p99),
        )
        .target("<= 5 ms", p99 <= 5000)
        .print(),
        Figure::info(
            NAME,
            "submit answered → succeeded seen p50",
            ms(percentile(&end_to_end, 50.0)),
            reference.times_p50(percentile(&end_to_end, 50.0)),
        )
        .print(),
        Figure::info(
            NAME,
            "submit answered → succeeded seen p99",
            ms(percentile(&end_to_end, 99.0)),
            reference.times_p99(percentile(&end_to_end, 99.0)),
        )
        .print(),
    ])
}
