//! Scenario `submit`: K keep-alive clients post generation jobs as fast as the API answers
//! (closed loop) for `--submit-secs`; then the same clients offer 50 % of the measured
//! maximum at a fixed rate (open loop) for `--offered-secs`. Only the API and Redis run: the
//! queue grows, nothing claims it.
//!
//! Open-loop latency is counted from the time a request was due when its connection was
//! still busy with the previous one (so a stall is not hidden: no coordinated omission),
//! and from when it was sent otherwise (timer slack is the load generator's, not the API's).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::bail;

use super::BenchArgs;
use super::deploy::{Deployment, cpu_secs};
use super::load::{Conn, generation_body};
use super::reference::{self, Reference};
use super::report::{self, Figure, ms, percentile, thousands};

const NAME: &str = "submit";

/// One client's task: its latencies (µs) and error count.
type LoadTask = tokio::task::JoinHandle<anyhow::Result<(Vec<u64>, usize)>>;

/// What one run measured.
struct Run {
    /// Latencies in microseconds, sorted.
    latencies: Vec<u64>,
    elapsed: Duration,
    errors: usize,
}

impl Run {
    fn per_sec(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
}

pub async fn run(args: &BenchArgs) -> anyhow::Result<Vec<Figure>> {
    let mut d = Deployment::start(NAME, args).await?;
    let reference = reference::run(d.redis.port, args.clients, args.redis_requests).await?;
    d.start_api().await?;
    report::config(NAME, format!("redis-server {}", d.redis.settings));
    report::config(NAME, format!("api: {}", d.describe_env(&[])));
    report::config(
        NAME,
        format!(
            "{} keep-alive HTTP/1.1 clients, unique generation prompts, {} s closed loop after 2 s of warm-up, then {} s open loop at 50 % of the measured maximum; no worker runs",
            args.clients, args.submit_secs, args.offered_secs
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
    reference: &Reference,
) -> anyhow::Result<Vec<Figure>> {
    let addr = d.api_addr();
    closed_loop(addr, &d.key, args.clients, Duration::from_secs(2)).await?;
    let cpu = |pid: Option<i32>| pid.map_or(0.0, cpu_secs);
    let (api0, redis0) = (cpu(d.api_pid()), cpu(d.redis.pid()));
    let max = closed_loop(
        addr,
        &d.key,
        args.clients,
        Duration::from_secs(args.submit_secs),
    )
    .await?;
    let (api1, redis1) = (cpu(d.api_pid()), cpu(d.redis.pid()));
    let per_sec = max.per_sec();
    let share = reference.fraction(per_sec);
    let mut figures = vec![
        Figure::info(
            NAME,
            "throughput (closed loop)",
            format!("{} jobs/s", thousands(per_sec)),
            reference.share(per_sec),
        )
        .target(">= 25 % of SET", share >= 0.25)
        .print(),
    ];
    for (name, p) in [("p50", 50.0), ("p99", 99.0), ("p99.9", 99.9)] {
        let v = percentile(&max.latencies, p);
        let ratio = if p >= 99.0 {
            reference.times_p99(v)
        } else {
            reference.times_p50(v)
        };
        figures.push(
            Figure::info(NAME, &format!("latency {name} (closed loop)"), ms(v), ratio).print(),
        );
    }
    let requests = max.latencies.len().max(1) as f64;
    figures.push(
        Figure::info(
            NAME,
            "CPU per submit: api / redis-server",
            format!(
                "{:.0} / {:.0} µs",
                (api1 - api0) * 1e6 / requests,
                (redis1 - redis0) * 1e6 / requests
            ),
            format!(
                "SET costs redis-server {:.1} µs at {} ops/s",
                1e6 / reference.ops_per_sec,
                thousands(reference.ops_per_sec)
            ),
        )
        .print(),
    );
    figures.push(
        Figure::info(
            NAME,
            "errors (closed loop)",
            max.errors.to_string(),
            format!("of {} requests", max.latencies.len() + max.errors),
        )
        .print(),
    );

    let rate = per_sec / 2.0;
    let offered = open_loop(
        addr,
        &d.key,
        args.clients,
        rate,
        Duration::from_secs(args.offered_secs),
    )
    .await?;
    figures.push(
        Figure::info(
            NAME,
            "offered 50 % of max: achieved",
            format!("{} jobs/s", thousands(offered.per_sec())),
            format!("offered {} jobs/s", thousands(rate)),
        )
        .print(),
    );
    for (name, p) in [("p50", 50.0), ("p99", 99.0), ("p99.9", 99.9)] {
        let v = percentile(&offered.latencies, p);
        let ratio = if p >= 99.0 {
            reference.times_p99(v)
        } else {
            reference.times_p50(v)
        };
        let figure = Figure::info(
            NAME,
            &format!("latency {name} at 50 % of max"),
            ms(v),
            ratio,
        );
        figures.push(
            if name == "p99" {
                figure.target("<= 10 ms", v <= 10_000)
            } else {
                figure
            }
            .print(),
        );
    }
    if offered.errors > 0 {
        figures.push(
            Figure::info(
                NAME,
                "errors at 50 % of max",
                offered.errors.to_string(),
                String::new(),
            )
            .print(),
        );
    }
    Ok(figures)
}

/// Every client sends its next request as soon as the previous answer arrived.
async fn closed_loop(
    addr: SocketAddr,
    key: &str,
    clients: usize,
    length: Duration,
) -> anyhow::Result<Run> {
    let start = Instant::now();
    let end = start + length;
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let key = key.to_owned();
            tokio::spawn(async move {
                let mut conn = Conn::connect(addr).await?;
                let mut latencies = Vec::with_capacity(1 << 16);
                let mut errors = 0;
                let mut i = 0u64;
                while Instant::now() < end {
                    let body = generation_body(&format!("c{c}-{i}"));
                    i += 1;
                    let sent = Instant::now();
                    let r = conn.request("POST", "/v1/jobs", &key, Some(&body)).await?;
                    if r.status == 202 {
                        latencies.push(sent.elapsed().as_micros() as u64);
                    } else {
                        errors += 1;
                    }
                }
                anyhow::Ok((latencies, errors))
            })
        })
        .collect();
    collect(tasks, start).await
}

/// Every client sends at `rate / clients` per second on a fixed schedule.
async fn open_loop(
    addr: SocketAddr,
    key: &str,
    clients: usize,
    rate: f64,
    length: Duration,
) -> anyhow::Result<Run> {
    if rate <= 0.0 {
        bail!("nothing to offer: the closed loop measured 0 jobs/s");
    }
    let start = Instant::now() + Duration::from_millis(100);
    let end = start + length;
    let interval = Duration::from_secs_f64(clients as f64 / rate);
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let key = key.to_owned();
            tokio::spawn(async move {
                let mut conn = Conn::connect(addr).await?;
                let mut latencies = Vec::with_capacity(1 << 16);
                let mut errors = 0;
                let offset = interval.mul_f64(c as f64 / clients as f64);
                let mut k = 0u32;
                loop {
                    let due = start + offset + interval * k;
                    if due >= end {
                        break;
                    }
                    k += 1;
                    let busy = Instant::now() > due;
                    tokio::time::sleep_until(due.into()).await;
                    let sent = Instant::now();
                    let from = if busy { due } else { sent };
                    let body = generation_body(&format!("o{c}-{k}"));
                    let r = conn.request("POST", "/v1/jobs", &key, Some(&body)).await?;
                    if r.status == 202 {
                        latencies.push(from.elapsed().as_micros() as u64);
                    } else {
                        errors += 1;
                    }
                }
                anyhow::Ok((latencies, errors))
            })
        })
        .collect();
    collect(tasks, start).await
}

async fn collect(tasks: Vec<LoadTask>, start: Instant) -> anyhow::Result<Run> {
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await??;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    Ok(Run {
        latencies,
        elapsed,
        errors,
    })
}
