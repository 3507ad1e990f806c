//! Scenario `long-calls`: `--long-jobs` jobs whose provider call takes `--long-latency-ms`,
//! one worker host (default processes) whose generation concurrency adds up to the number of
//! jobs, talking HTTP/2 (h2c) to the stub. Wall time runs from the first submit to the last
//! terminal transition; the ideal is the provider latency plus the time the API took to
//! accept every job. Peak memory is the sum of `VmHWM` of the worker processes (the
//! supervisor's children), with the peak of their summed `VmRSS`, sampled every 100 ms,
//! beside it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::bail;

use super::BenchArgs;
use super::deploy::{Deployment, status_kb};
use super::load::{Conn, DoneWatch, job_times, submit_many};
use super::reference;
use super::report::{self, Figure, thousands};

const NAME: &str = "long-calls";
/// Most memory the worker processes may use together (the target), in MB.
const TARGET_MB: f64 = 200.0;

pub async fn run(args: &BenchArgs) -> anyhow::Result<Vec<Figure>> {
    let mut d = Deployment::start(NAME, args).await?;
    let reference = reference::run(d.redis.port, args.clients, args.redis_requests).await?;
    d.start_stub(args.long_latency_ms).await?;
    d.start_api().await?;
    let processes = std::thread::available_parallelism().map_or(1, |n| n.get());
    let h2 = args.long_protocol == "h2";
    let mut env = vec![
        ("LONGHAUL_AI_HTTP2_PRIOR_KNOWLEDGE", h2.to_string()),
        (
            "LONGHAUL_GENERATION_CONCURRENCY",
            args.long_jobs.div_ceil(processes).to_string(),
        ),
    ];
    if let Some(n) = args.long_connections {
        env.push(("LONGHAUL_AI_CONNECTIONS", n.to_string()));
    }
    d.start_worker(&env)?;
    report::config(NAME, format!("redis-server {}", d.redis.settings));
    report::config(NAME, format!("worker: {}", d.describe_env(&env)));
    report::config(
        NAME,
        format!(
            "{} unique generation jobs submitted through the API by {} clients; stub latency {} ms over {}; {processes} worker processes (the default) × {} generation slots",
            args.long_jobs,
            args.clients,
            args.long_latency_ms,
            if h2 { "h2c" } else { "HTTP/1.1" },
            args.long_jobs.div_ceil(processes)
        ),
    );
    report::config(NAME, format!("reference: {}", reference.command));
    let result = measure(&d, args, processes).await;
    d.shutdown().await;
    result
}

async fn measure(
    d: &Deployment,
    args: &BenchArgs,
    processes: usize,
) -> anyhow::Result<Vec<Figure>> {
    d.wait_workers_idle(2 * processes).await?;
    let pids = d.worker_pids();
    let baseline_kb: u64 = pids.iter().map(|p| status_kb(*p, "VmRSS")).sum();
    let peak_rss_kb = Arc::new(AtomicU64::new(0));
    let sampler = tokio::spawn({
        let pids = pids.clone();
        let peak = peak_rss_kb.clone();
        async move {
            loop {
                let sum: u64 = pids.iter().map(|p| status_kb(*p, "VmRSS")).sum();
                peak.fetch_max(sum, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let mut done = DoneWatch::subscribe(&d.redis.url()).await?;
    let n = args.long_jobs;
    let submitted = submit_many(d.api_addr(), &d.key, n, args.clients, "long").await?;
    let last = done
        .wait_all(&submitted.ids, Duration::from_secs(300))
        .await?;
    sampler.abort();
    let hwm_kb: u64 = pids.iter().map(|p| status_kb(*p, "VmHWM")).sum();
    let mut conn = d.redis.conn().await?;
    let succeeded = job_times(&mut conn, &submitted.ids)
        .await?
        .iter()
        .filter(|t| t.0 == "succeeded")
        .count();
    if succeeded != n {
        bail!("only {succeeded} of {n} jobs succeeded");
    }
    let wall = last.saturating_duration_since(submitted.first_sent);
    let ideal = Duration::from_millis(args.long_latency_ms) + submitted.elapsed;
    let ratio = wall.as_secs_f64() / ideal.as_secs_f64();
    let stub_peak = stub_max_in_flight(d).await.unwrap_or(0);
    let mb = |kb: u64| kb as f64 * 1024.0 / 1e6;
    Ok(vec![
        Figure::info(
            NAME,
            "wall time (first submit → last succeeded)",
            report::secs(wall),
            format!(
                "{ratio:.2} × ideal {} ({} ms + submit {})",
                report::secs(ideal),
                args.long_latency_ms,
                report::secs(submitted.elapsed)
            ),
        )
        .target("<= 1.2 × ideal", ratio <= 1.2)
        .print(),
        Figure::info(
            NAME,
            "peak RSS of worker processes (Σ VmHWM)",
            format!("{:.1} MB", mb(hwm_kb)),
            format!(
                "{:.1} KB per call at the peak of {} in flight; {} processes idle at {:.1} MB",
                (hwm_kb.saturating_sub(baseline_kb)) as f64 * 1024.0
                    / 1e3
                    / stub_peak.max(1) as f64,
                thousands(stub_peak as f64),
                pids.len(),
                mb(baseline_kb)
            ),
        )
        .target("<= 200 MB", mb(hwm_kb) <= TARGET_MB)
        .print(),
        Figure::info(
            NAME,
            "peak of Σ VmRSS (sampled at 10 Hz)",
            format!("{:.1} MB", mb(peak_rss_kb.load(Ordering::Relaxed))),
            String::new(),
        )
        .print(),
        Figure::info(
            NAME,
            "provider calls in flight at once (stub)",
            thousands(stub_peak as f64),
            format!(
                "of {n} jobs; submit {} jobs/s",
                thousands(n as f64 / submitted.elapsed.as_secs_f64())
            ),
        )
        .print(),
    ])
}

async fn stub_max_in_flight(d: &Deployment) -> anyhow::Result<u64> {
    let addr: std::net::SocketAddr = d.stub_url.trim_start_matches("http://").parse()?;
    let mut conn = Conn::connect(addr).await?;
    let r = conn.request("GET", "/stub/in-flight", "", None).await?;
    let v: serde_json::Value = serde_json::from_slice(&r.body)?;
    Ok(v["max_in_flight"].as_u64().unwrap_or(0))
}
