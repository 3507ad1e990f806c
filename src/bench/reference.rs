//! The physical reference: `redis-benchmark -t set` against the scenario's own Redis, with
//! the same number of clients, run in the same invocation so that every ratio compares
//! figures measured under the same conditions.

use anyhow::{Context, bail};

/// One `redis-benchmark` run.
#[derive(Debug, Clone)]
pub struct Reference {
    /// The command line, as run.
    pub command: String,
    /// `-c`.
    pub clients: usize,
    /// SET requests per second.
    pub ops_per_sec: f64,
    /// Median latency, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, in milliseconds.
    pub p99_ms: f64,
}

impl Reference {
    /// `x % of SET ops/s` for a throughput.
    pub fn share(&self, per_sec: f64) -> String {
        format!(
            "{:.1} % of SET {} ops/s (-c {})",
            100.0 * per_sec / self.ops_per_sec,
            super::report::thousands(self.ops_per_sec),
            self.clients
        )
    }

    /// The fraction of SET ops/s, for a target check.
    pub fn fraction(&self, per_sec: f64) -> f64 {
        per_sec / self.ops_per_sec
    }

    /// `x × SET p50` for a latency in microseconds.
    pub fn times_p50(&self, micros: u64) -> String {
        format!(
            "{:.1} × SET p50 {:.3} ms (-c {})",
            micros as f64 / 1000.0 / self.p50_ms,
            self.p50_ms,
            self.clients
        )
    }

    /// `x × SET p99` for a latency in microseconds.
    pub fn times_p99(&self, micros: u64) -> String {
        format!(
            "{:.1} × SET p99 {:.3} ms (-c {})",
            micros as f64 / 1000.0 / self.p99_ms,
            self.p99_ms,
            self.clients
        )
    }
}

/// Runs `redis-benchmark -t set -c clients -n requests -q --csv` against `port`, then
/// empties the Redis and resets its statistics so the scenario starts clean.
pub async fn run(port: u16, clients: usize, requests: u64) -> anyhow::Result<Reference> {
    let args = [
        "-h".to_owned(),
        "127.0.0.1".to_owned(),
        "-p".to_owned(),
        port.to_string(),
        "-t".to_owned(),
        "set".to_owned(),
        "-c".to_owned(),
        clients.to_string(),
        "-n".to_owned(),
        requests.to_string(),
        "-q".to_owned(),
        "--csv".to_owned(),
    ];
    let output = tokio::process::Command::new("redis-benchmark")
        .args(&args)
        .output()
        .await
        .context("running redis-benchmark (is it on PATH?)")?;
    if !output.status.success() {
        bail!(
            "redis-benchmark failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let (ops_per_sec, p50_ms, p99_ms) =
        parse_csv(&text).with_context(|| format!("unexpected redis-benchmark output: {text}"))?;
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let () = redis::cmd("FLUSHALL").query_async(&mut conn).await?;
    let () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await?;
    Ok(Reference {
        command: format!("redis-benchmark {}", args.join(" ")),
        clients,
        ops_per_sec,
        p50_ms,
        p99_ms,
    })
}

/// `"SET","95238.10","0.5","0.1","0.335","0.9","1.2","3.0"` → (rps, p50, p99).
fn parse_csv(text: &str) -> Option<(f64, f64, f64)> {
    let line = text.lines().find(|l| l.starts_with("\"SET"))?;
    let fields: Vec<f64> = line
        .split(',')
        .skip(1)
        .map(|f| f.trim_matches('"').parse::<f64>())
        .collect::<Result<_, _>>()
        .ok()?;
    // rps, avg, min, p50, p95, p99, max
    Some((*fields.first()?, *fields.get(3)?, *fields.get(5)?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_csv_line_gives_rate_and_percentiles() {
        let out = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\"SET\",\"35026.27\",\"1.224\",\"0.160\",\"0.831\",\"4.511\",\"5.983\",\"16.927\"\n";
        assert_eq!(super::parse_csv(out), Some((35026.27, 0.831, 5.983)));
    }
}
