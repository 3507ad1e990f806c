//! Prometheus metrics: every family a longhaul process exports, defined once here so that
//! names, labels and buckets cannot drift between processes.
//!
//! Each process has one [`Metrics`] ([`get`]); code anywhere records into it. Families whose
//! labels are never used in a process are left out of its output (the API exports no
//! attempt counts, a worker no HTTP requests). Queue depth and the scheduler's task runs are
//! not counted in-process: they are read from Redis when a scrape asks ([`queue_depth`],
//! [`scheduler_tasks`]), so every host reports the same, cluster-wide figures.
//!
//! [`text`] parses and merges the exposition format: a worker host's supervisor merges its
//! children's metrics into one endpoint.

pub mod text;

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::job::JobKind;
use crate::store::TaskRecord;

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Buckets of AI-call durations: a call takes from a fraction of a second to minutes.
const LONG_CALL_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
/// Buckets of queue waits: from milliseconds (idle workers) to an hour (a backlog).
const QUEUE_WAIT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];
/// Buckets of API request latencies (`?wait=` long polls reach 60 s).
const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// How an attempt or a job ended, as `longhaul_jobs_total{outcome}` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// Accepted by the API.
    Submitted,
    /// An attempt began.
    Started,
    /// The job succeeded.
    Succeeded,
    /// The job failed for good.
    Failed,
    /// An attempt failed and a retry was scheduled.
    Retried,
    /// The job was cancelled.
    Cancelled,
    /// An expired lease was put back in the queue (its process died).
    Rescued,
    /// An attempt was given back unspent (drain, open circuit breaker).
    Released,
}

impl JobOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            JobOutcome::Submitted => "submitted",
            JobOutcome::Started => "started",
            JobOutcome::Succeeded => "succeeded",
            JobOutcome::Failed => "failed",
            JobOutcome::Retried => "retried",
            JobOutcome::Cancelled => "cancelled",
            JobOutcome::Rescued => "rescued",
            JobOutcome::Released => "released",
        }
    }
}

/// Every in-process family of one longhaul process.
pub struct Metrics {
    registry: Registry,
    /// `longhaul_http_requests_total{route,method,status}`.
    pub http_requests: IntCounterVec,
    /// `longhaul_http_request_duration_seconds{route,method}`.
    pub http_duration: HistogramVec,
    /// `longhaul_jobs_total{kind,outcome}`.
    pub jobs: IntCounterVec,
    /// `longhaul_job_duration_seconds{kind,outcome}`: one attempt, start to end.
    pub job_duration: HistogramVec,
    /// `longhaul_job_queue_wait_seconds{kind}`: submit to first claim.
    pub queue_wait: HistogramVec,
    /// `longhaul_jobs_in_flight{kind}`: attempts running in this process.
    pub in_flight: IntGaugeVec,
    /// `longhaul_worker_free_slots{kind}`: attempts this process could start now.
    pub free_slots: IntGaugeVec,
    /// `longhaul_provider_requests_total{outcome}`.
    pub provider_requests: IntCounterVec,
    /// `longhaul_provider_request_duration_seconds{outcome}`.
    pub provider_duration: HistogramVec,
    /// `longhaul_tokens_total{kind,type}`: tokens the provider billed.
    pub tokens: IntCounterVec,
    /// `longhaul_provider_breaker_open`: 1 while this process's circuit breaker is not closed.
    pub breaker_open: IntGauge,
    /// `longhaul_cache_lookups_total{result}`: `hit` (answered from the cache), `miss` (a
    /// provider call for a cacheable job), `join` (waited for an identical job's answer).
    pub cache_lookups: IntCounterVec,
    /// `longhaul_webhook_deliveries_total{outcome}` (webhooks: issue 5; zero until then).
    pub webhook_deliveries: IntCounterVec,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// This process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter");
    registry
        .register(Box::new(c.clone()))
        .expect("registered once");
    c
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )
    .expect("valid histogram");
    registry
        .register(Box::new(h.clone()))
        .expect("registered once");
    h
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid gauge");
    registry
        .register(Box::new(g.clone()))
        .expect("registered once");
    g
}

impl Metrics {
    fn new() -> Self {
        let r = Registry::new();
        let breaker_open = IntGauge::new(
            "longhaul_provider_breaker_open",
            "1 while this worker process's circuit breaker on the provider is open or half-open.",
        )
        .expect("valid gauge");
        r.register(Box::new(breaker_open.clone()))
            .expect("registered once");
        let m = Metrics {
            http_requests: counter(
                &r,
                "longhaul_http_requests_total",
                "HTTP requests answered, by route template, method and status code.",
                &["route", "method", "status"],
            ),
            http_duration: histogram(
                &r,
                "longhaul_http_request_duration_seconds",
                "Time to answer an HTTP request, by route template and method.",
                &["route", "method"],
                HTTP_BUCKETS,
            ),
            jobs: counter(
                &r,
                "longhaul_jobs_total",
                "Job events by kind and outcome: submitted, started, succeeded, failed, retried, cancelled, rescued, released.",
                &["kind", "outcome"],
            ),
            job_duration: histogram(
                &r,
                "longhaul_job_duration_seconds",
                "Duration of one attempt, from its start to its outcome, by kind and outcome.",
                &["kind", "outcome"],
                LONG_CALL_BUCKETS,
            ),
            queue_wait: histogram(
                &r,
                "longhaul_job_queue_wait_seconds",
                "Time from submit to the first attempt's start, by kind.",
                &["kind"],
                QUEUE_WAIT_BUCKETS,
            ),
            in_flight: gauge(
                &r,
                "longhaul_jobs_in_flight",
                "Attempts running in this worker process, by kind.",
                &["kind"],
            ),
            free_slots: gauge(
                &r,
                "longhaul_worker_free_slots",
                "Attempts this worker process could start now (its concurrency minus in-flight), by kind.",
                &["kind"],
            ),
            provider_requests: counter(
                &r,
                "longhaul_provider_requests_total",
                "Calls to the AI provider, by outcome (ok, rate_limited, unavailable, rejected, timeout, unreachable, bad_response).",
                &["outcome"],
            ),
            provider_duration: histogram(
                &r,
                "longhaul_provider_request_duration_seconds",
                "Duration of one call to the AI provider, by outcome.",
                &["outcome"],
                LONG_CALL_BUCKETS,
            ),
            tokens: counter(
                &r,
                "longhaul_tokens_total",
                "Tokens the provider billed, by kind and type (prompt, completion).",
                &["kind", "type"],
            ),
            breaker_open,
            cache_lookups: counter(
                &r,
                "longhaul_cache_lookups_total",
                "Result-cache lookups by result: hit (answered from the cache), miss (a provider call for a cacheable job), join (waited for an identical job's answer).",
                &["result"],
            ),
            webhook_deliveries: counter(
                &r,
                "longhaul_webhook_deliveries_total",
                "Webhook deliveries by outcome (delivered, retried, failed). Webhooks arrive with issue 5: zero until then.",
                &["outcome"],
            ),
            registry: r,
        };
        for result in ["hit", "miss", "join"] {
            m.cache_lookups.with_label_values(&[result]);
        }
        for outcome in ["delivered", "retried", "failed"] {
            m.webhook_deliveries.with_label_values(&[outcome]);
        }
        m
    }

    /// Counts one job event.
    pub fn job(&self, kind: JobKind, outcome: JobOutcome) {
        self.jobs
            .with_label_values(&[kind.as_str(), outcome.as_str()])
            .inc();
    }

    /// Counts `n` job events (maintenance passes move many at once).
    pub fn jobs_by(&self, kind: JobKind, outcome: JobOutcome, n: u64) {
        if n > 0 {
            self.jobs
                .with_label_values(&[kind.as_str(), outcome.as_str()])
                .inc_by(n);
        }
    }

    /// Sets the worker gauges of `kind` to zero in flight out of `concurrency` slots.
    pub fn init_slots(&self, kind: JobKind, concurrency: usize) {
        self.in_flight.with_label_values(&[kind.as_str()]).set(0);
        self.free_slots
            .with_label_values(&[kind.as_str()])
            .set(i64::try_from(concurrency).unwrap_or(i64::MAX));
    }

    /// Marks one attempt of `kind` running until the guard drops.
    pub fn attempt_running(&'static self, kind: JobKind) -> InFlight {
        self.in_flight.with_label_values(&[kind.as_str()]).inc();
        self.free_slots.with_label_values(&[kind.as_str()]).dec();
        InFlight {
            metrics: self,
            kind,
        }
    }

    /// The families recorded so far.
    pub fn gather(&self) -> Vec<MetricFamily> {
        self.registry.gather()
    }
}

/// One running attempt in `longhaul_jobs_in_flight` (and out of the free slots).
pub struct InFlight {
    metrics: &'static Metrics,
    kind: JobKind,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let kind = self.kind.as_str();
        self.metrics.in_flight.with_label_values(&[kind]).dec();
        self.metrics.free_slots.with_label_values(&[kind]).inc();
    }
}

/// `longhaul_queue_depth{kind,state}`: jobs ready, delayed (waiting to retry) and in flight,
/// as Redis holds them now.
pub fn queue_depth(depths: &[(JobKind, (u64, u64, u64))]) -> Vec<MetricFamily> {
    let g = IntGaugeVec::new(
        Opts::new(
            "longhaul_queue_depth",
            "Jobs per kind and state (ready, delayed, in_flight), read from Redis at scrape time.",
        ),
        &["kind", "state"],
    )
    .expect("valid gauge");
    for (kind, (ready, delayed, inflight)) in depths {
        for (state, n) in [
            ("ready", ready),
            ("delayed", delayed),
            ("in_flight", inflight),
        ] {
            g.with_label_values(&[kind.as_str(), state])
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
    }
    g.collect()
}

/// The scheduler's task runs, from the record the leading scheduler keeps in Redis:
/// `longhaul_scheduler_task_runs_total{task,outcome}`, and per task the last run's time,
/// duration and success.
pub fn scheduler_tasks(tasks: &[TaskRecord]) -> Vec<MetricFamily> {
    let runs = IntCounterVec::new(
        Opts::new(
            "longhaul_scheduler_task_runs_total",
            "Runs of each scheduler task by outcome (ok, error), across all schedulers.",
        ),
        &["task", "outcome"],
    )
    .expect("valid counter");
    let last_run = prometheus::GaugeVec::new(
        Opts::new(
            "longhaul_scheduler_task_last_run_timestamp_seconds",
            "When each scheduler task last started (Unix time).",
        ),
        &["task"],
    )
    .expect("valid gauge");
    let last_duration = prometheus::GaugeVec::new(
        Opts::new(
            "longhaul_scheduler_task_last_duration_seconds",
            "How long each scheduler task's last run took.",
        ),
        &["task"],
    )
    .expect("valid gauge");
    let last_ok = IntGaugeVec::new(
        Opts::new(
            "longhaul_scheduler_task_last_success",
            "1 if each scheduler task's last run succeeded, 0 if it failed.",
        ),
        &["task"],
    )
    .expect("valid gauge");
    for t in tasks {
        runs.with_label_values(&[t.task.as_str(), "ok"])
            .inc_by(t.runs_ok);
        runs.with_label_values(&[t.task.as_str(), "error"])
            .inc_by(t.runs_error);
        if let Some(at) = t.last_run_at {
            last_run
                .with_label_values(&[t.task.as_str()])
                .set(at as f64 / 1000.0);
            last_duration
                .with_label_values(&[t.task.as_str()])
                .set(Duration::from_millis(t.duration_ms).as_secs_f64());
            last_ok
                .with_label_values(&[t.task.as_str()])
                .set(i64::from(t.ok));
        }
    }
    let mut families = runs.collect();
    families.extend(last_run.collect());
    families.extend(last_duration.collect());
    families.extend(last_ok.collect());
    families
}

/// Renders families in the text exposition format.
pub fn encode(families: &[MetricFamily]) -> String {
    let families: Vec<MetricFamily> = families
        .iter()
        .filter(|f| !f.get_metric().is_empty())
        .cloned()
        .collect();
    TextEncoder::new()
        .encode_to_string(&families)
        .unwrap_or_else(|e| format!("# encoding metrics failed: {e}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_5_families_are_exported_at_zero_and_unused_ones_are_left_out() {
        let out = encode(&get().gather());
        assert!(out.contains("longhaul_cache_lookups_total{result=\"hit\"} 0"));
        assert!(out.contains("longhaul_webhook_deliveries_total{outcome=\"failed\"} 0"));
        let families = text::parse(&out).unwrap();
        assert!(families.iter().all(|f| !f.samples.is_empty()));
    }

    #[test]
    fn in_flight_and_free_slots_move_together() {
        let m = get();
        m.init_slots(JobKind::Interpretation, 4);
        let guard = m.attempt_running(JobKind::Interpretation);
        let kind = JobKind::Interpretation.as_str();
        assert_eq!(m.in_flight.with_label_values(&[kind]).get(), 1);
        assert_eq!(m.free_slots.with_label_values(&[kind]).get(), 3);
        drop(guard);
        assert_eq!(m.free_slots.with_label_values(&[kind]).get(), 4);
    }
}
