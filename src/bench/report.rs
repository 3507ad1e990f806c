//! How figures are printed: one line each (scenario, figure, value, ratio to the
//! `redis-benchmark` reference, target and verdict), the machine they were measured on, and
//! a closing summary table in Markdown, ready for `BENCHMARKS.md`.

use std::time::Duration;

use super::BenchArgs;

/// One printed figure.
#[derive(Debug, Clone)]
pub struct Figure {
    /// Scenario name.
    pub scenario: &'static str,
    /// What is measured.
    pub name: String,
    /// The value with its unit.
    pub value: String,
    /// The value next to the physical reference (or the ideal), in words.
    pub ratio: String,
    /// The target, or empty.
    pub target: String,
    /// Whether the target is met; `None` when there is no target.
    pub met: Option<bool>,
}

impl Figure {
    /// A figure without a target.
    pub fn info(scenario: &'static str, name: &str, value: String, ratio: String) -> Figure {
        Figure {
            scenario,
            name: name.to_owned(),
            value,
            ratio,
            target: String::new(),
            met: None,
        }
    }

    /// A figure with a target and whether it is met.
    pub fn target(mut self, target: &str, met: bool) -> Figure {
        self.target = target.to_owned();
        self.met = Some(met);
        self
    }

    /// Prints the figure's line and returns it.
    pub fn print(self) -> Figure {
        let verdict = match self.met {
            Some(true) => format!("target {}: met", self.target),
            Some(false) => format!("target {}: NOT MET", self.target),
            None => String::new(),
        };
        println!(
            "{:<12} {:<38} {:>18}   {:<52} {}",
            self.scenario, self.name, self.value, self.ratio, verdict
        );
        self
    }
}

/// Prints a configuration line of a scenario.
pub fn config(scenario: &str, text: impl std::fmt::Display) {
    println!("{scenario:<12} config: {text}");
}

/// Milliseconds with three decimals, from microseconds.
pub fn ms(micros: u64) -> String {
    format!("{:.3} ms", micros as f64 / 1000.0)
}

/// A duration in seconds with three decimals.
pub fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// The `p`-th percentile (0..=100) of sorted values (nearest rank).
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Thousands separators for readability.
pub fn thousands(n: f64) -> String {
    let whole = n.round() as i64;
    let digits = whole.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if whole < 0 { format!("-{out}") } else { out }
}

/// The machine and build the figures come from.
pub async fn print_header(args: &BenchArgs) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let redis = tokio::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .await
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|e| format!("redis-server not found: {e}"));
    let nofile = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or_else(|e| e.to_string(), |(s, h)| format!("{s}/{h}"));
    println!(
        "longhaul bench {} ({} build)",
        env!("CARGO_PKG_VERSION"),
        if cfg!(debug_assertions) {
            "DEBUG: figures are meaningless, use --release"
        } else {
            "release"
        }
    );
    println!(
        "machine: {cores} cores ({model}), {mem_gib:.1} GiB memory, Linux {}, load average at start {}",
        kernel.trim(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("redis: {redis}; open files soft/hard {nofile}");
    println!(
        "options: scenario={} clients={} submit_secs={} offered_secs={} round_trip_jobs={} drain_jobs={} pickup_jobs={} long_jobs={} long_latency_ms={} long_protocol={} redis_requests={} RUST_LOG={}",
        args.scenario.name(),
        args.clients,
        args.submit_secs,
        args.offered_secs,
        args.round_trip_jobs,
        args.drain_jobs,
        args.pickup_jobs,
        args.long_jobs,
        args.long_latency_ms,
        args.long_protocol,
        args.redis_requests,
        args.log
    );
    println!(
        "every process (Redis, Postgres, the stub, api, worker, this load generator) shares this machine's cores"
    );
}

/// The closing summary, as a Markdown table.
pub fn print_summary(figures: &[Figure]) {
    println!("| scenario | figure | value | ratio | target |");
    println!("|---|---|---:|---|---|");
    for f in figures {
        let verdict = match f.met {
            Some(true) => format!("{}: met", f.target),
            Some(false) => format!("{}: **not met**", f.target),
            None => String::new(),
        };
        println!(
            "| {} | {} | {} | {} | {} |",
            f.scenario, f.name, f.value, f.ratio, verdict
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 99.9), 100);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(-1000.0), "-1,000");
    }
}
