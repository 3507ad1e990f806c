//! Scenario `cache-hit`: the same request submitted again and again once its first answer is
//! cached. Latency runs from sending the submit to seeing the job `succeeded`: in the
//! submit's own answer when the API answers a hit at once, else through a long-poll
//! (`GET /v1/jobs/{id}?wait=30`). When a repeat is not answered from a cache, the result
//! cache is not built yet and the scenario says so.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::BenchArgs;
use super::deploy::Deployment;
use super::load::{Conn, Response};
use super::reference;
use super::report::{self, Figure, ms, percentile};

const NAME: &str = "cache-hit";
/// Provider latency: a miss is plainly slower than a hit.
const STUB_LATENCY_MS: u64 = 200;
/// Repeats measured.
const REPEATS: usize = 1000;
const BODY: &[u8] =
    br#"{"kind":"generation","input":{"prompt":"What is a queue? (cache-hit benchmark)"}}"#;

pub async fn run(args: &BenchArgs) -> anyhow::Result<Vec<Figure>> {
    let mut d = Deployment::start(NAME, args).await?;
    let reference = reference::run(d.redis.port, 1, args.redis_requests / 4).await?;
    d.start_stub(STUB_LATENCY_MS).await?;
    d.start_api().await?;
    d.start_worker(&[])?;
    let result = measure(&d, &reference).await;
    d.shutdown().await;
    result
}

async fn measure(d: &Deployment, reference: &reference::Reference) -> anyhow::Result<Vec<Figure>> {
    d.wait_workers_idle(4).await?;
    let mut conn = Conn::connect(d.api_addr()).await?;
    let first = submit_and_wait(&mut conn, &d.key).await?;
    let probe = submit_and_wait(&mut conn, &d.key).await?;
    if !is_cached(&first.1) && !is_cached(&probe.1) {
        return Ok(vec![
            Figure::info(
                NAME,
                "submit → succeeded (long-poll)",
                "not built yet (issue 5)".into(),
                "a repeated identical submit was not answered from a cache".into(),
            )
            .print(),
        ]);
    }
    report::config(NAME, format!("api, worker: {}", d.describe_env(&[])));
    report::config(
        NAME,
        format!(
            "{REPEATS} identical generation submits, one at a time over one keep-alive connection; stub latency {STUB_LATENCY_MS} ms (the first, uncached, call)"
        ),
    );
    report::config(NAME, format!("reference: {}", reference.command));
    let mut latencies = Vec::with_capacity(REPEATS);
    let mut hits = 0;
    for _ in 0..REPEATS {
        let (took, job) = submit_and_wait(&mut conn, &d.key).await?;
        latencies.push(took.as_micros() as u64);
        hits += usize::from(is_cached(&job));
    }
    latencies.sort_unstable();
    let p50 = percentile(&latencies, 50.0);
    let p99 = percentile(&latencies, 99.0);
    Ok(vec![
        Figure::info(
            NAME,
            "submit → succeeded p50",
            ms(p50),
            reference.times_p50(p50),
        )
        .print(),
        Figure::info(
            NAME,
            "submit → succeeded p99",
            ms(p99),
            reference.times_p99(p99),
        )
        .print(),
        Figure::info(
            NAME,
            "answered from the cache",
            format!("{hits} of {REPEATS}"),
            String::new(),
        )
        .print(),
    ])
}

/// Submits [`BODY`] and waits until the job succeeded; returns how long that took and the
/// job as last seen.
async fn submit_and_wait(conn: &mut Conn, key: &str) -> anyhow::Result<(Duration, Response)> {
    let started = Instant::now();
    let r = conn.request("POST", "/v1/jobs", key, Some(BODY)).await?;
    if !matches!(r.status, 200 | 202) {
        bail!("submit answered {}", r.status);
    }
    if status_of(&r) == Some("succeeded") {
        return Ok((started.elapsed(), r));
    }
    let id = r.job_id().context("no id")?;
    loop {
        let job = conn
            .request("GET", &format!("/v1/jobs/{id}?wait=30"), key, None)
            .await?;
        match status_of(&job) {
            Some("succeeded") => return Ok((started.elapsed(), job)),
            Some("failed" | "cancelled") => bail!("the job ended {:?}", status_of(&job)),
            _ => {}
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the job did not succeed within 60 s");
        }
    }
}

fn status_of(r: &Response) -> Option<&str> {
    let text = std::str::from_utf8(&r.body).ok()?;
    let start = text.find("\"status\":\"")? + 10;
    let len = text[start..].find('"')?;
    Some(&text[start..start + len])
}

fn is_cached(r: &Response) -> bool {
    r.body.windows(13).any(|w| w == b"\"cached\":true")
}
