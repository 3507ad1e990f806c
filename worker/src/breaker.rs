//! [`Breaker`]: a circuit breaker on the provider, one per worker process.
//!
//! After [`Breaker::threshold`] consecutive provider-side failures (5xx, 429, timeouts,
//! unreachable) it opens: the process stops claiming jobs, so queued jobs wait instead of
//! burning attempts against a provider that is down. Attempts that fail while it is open are
//! given back to the queue unspent. After a cool-down one probe job is let through: its
//! success closes the breaker; its failure reopens the breaker for twice as long, up to a
//! cap, and gives the probe's job back unspent too, at the back of the queue, so the next
//! probe is another job: a job that fails only for itself cannot hold the breaker open.

use std::sync::Mutex;
use std::time::Duration;

use longhaul_jobs::JobId;
use tokio::sync::Notify;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
        cooldown: Duration,
    },
    HalfOpen {
        probe: Option<JobId>,
        cooldown: Duration,
    },
}

/// Whether the next claim may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Claim as usual.
    Claim,
    /// Claim one job as the probe; report it with [`Breaker::probe_claimed`].
    Probe,
}

/// What to do with an attempt that failed on the provider's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Record it as a failed attempt (retry later or fail).
    Count,
    /// Give the job back unspent: the provider is down, not the job at fault.
    Release,
}

/// The breaker's state, as tests and `/readyz` observe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls flow.
    Closed,
    /// No claims until the cool-down ends.
    Open,
    /// One probe call decides.
    HalfOpen,
}

/// A circuit breaker on the provider.
#[derive(Debug)]
pub(crate) struct Breaker {
    mode: Mutex<Mode>,
    changed: Notify,
    threshold: u32,
    base_cooldown: Duration,
    max_cooldown: Duration,
}

impl BreakerState {
    /// How `/readyz` names it.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

impl Breaker {
    pub(crate) fn new(threshold: u32, base_cooldown: Duration, max_cooldown: Duration) -> Self {
        Self {
            mode: Mutex::new(Mode::Closed { failures: 0 }),
            changed: Notify::new(),
            threshold,
            base_cooldown,
            max_cooldown,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Mode> {
        self.mode.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state now.
    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            Mode::Closed { .. } => BreakerState::Closed,
            Mode::Open { .. } => BreakerState::Open,
            Mode::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Waits until a claim is allowed.
    pub(crate) async fn admit(&self) -> Admission {
        loop {
            let wait = {
                let mut mode = self.lock();
                match *mode {
                    Mode::Closed { .. } => return Admission::Claim,
                    Mode::Open { until, cooldown } if Instant::now() >= until => {
                        *mode = Mode::HalfOpen {
                            probe: None,
                            cooldown,
                        };
                        tracing::info!("circuit breaker half-open: one probe call");
                        return Admission::Probe;
                    }
                    Mode::Open { until, .. } => Some(until),
                    Mode::HalfOpen { .. } => None,
                }
            };
            let notified = self.changed.notified();
            match wait {
                Some(until) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(until) => {}
                        _ = notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// The probe admission claimed this job (`None`: nothing was ready, so no probe ran).
    pub(crate) fn probe_claimed(&self, job: Option<JobId>) {
        let mut mode = self.lock();
        if let Mode::HalfOpen { cooldown, .. } = *mode {
            match job {
                Some(id) => {
                    *mode = Mode::HalfOpen {
                        probe: Some(id),
                        cooldown,
                    }
                }
                // Nothing to probe with: let the next claim probe.
                None => {
                    *mode = Mode::Open {
                        until: Instant::now(),
                        cooldown,
                    };
                    self.changed.notify_waiters();
                }
            }
        }
    }

    /// A call succeeded: the provider works.
    pub(crate) fn on_success(&self) {
        let mut mode = self.lock();
        if !matches!(*mode, Mode::Closed { failures: 0 }) {
            if !matches!(*mode, Mode::Closed { .. }) {
                tracing::info!("circuit breaker closed: the provider answers again");
            }
            *mode = Mode::Closed { failures: 0 };
            self.changed.notify_waiters();
        }
    }

    /// A call of `job` failed on the provider's side.
    pub(crate) fn on_provider_failure(&self, job: JobId) -> Verdict {
        let mut mode = self.lock();
        match *mode {
            Mode::Closed { failures } => {
                let failures = failures + 1;
                if failures >= self.threshold {
                    tracing::warn!(
                        failures,
                        cooldown_ms = self.base_cooldown.as_millis() as u64,
                        "circuit breaker opened: provider failing; claims paused"
                    );
                    *mode = Mode::Open {
                        until: Instant::now() + self.base_cooldown,
                        cooldown: self.base_cooldown,
                    };
                } else {
                    *mode = Mode::Closed { failures };
                }
                Verdict::Count
            }
            Mode::HalfOpen {
                probe: Some(probe),
                cooldown,
            } if probe == job => {
                let cooldown = (cooldown * 2).min(self.max_cooldown);
                tracing::warn!(
                    cooldown_ms = cooldown.as_millis() as u64,
                    "circuit breaker probe failed; reopened"
                );
                *mode = Mode::Open {
                    until: Instant::now() + cooldown,
                    cooldown,
                };
                self.changed.notify_waiters();
                // The provider is still down: the probe's job is not at fault either.
                Verdict::Release
            }
            Mode::Open { .. } | Mode::HalfOpen { .. } => Verdict::Release,
        }
    }

    /// A call ended without telling anything about the provider (rejected request, lease
    /// lost, shutdown): if it was the probe, let another job probe.
    pub(crate) fn on_inconclusive(&self, job: JobId) {
        let mut mode = self.lock();
        if let Mode::HalfOpen {
            probe: Some(probe),
            cooldown,
        } = *mode
            && probe == job
        {
            *mode = Mode::Open {
                until: Instant::now(),
                cooldown,
            };
            self.changed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(3, Duration::from_millis(50), Duration::from_millis(400))
    }

    #[tokio::test]
    async fn it_opens_after_consecutive_failures_and_releases_attempts_failing_while_open() {
        let b = breaker();
        let jobs: Vec<JobId> = (0..5).map(|_| JobId::new()).collect();
        assert_eq!(b.on_provider_failure(jobs[0]), Verdict::Count);
        b.on_success();
        assert_eq!(b.on_provider_failure(jobs[0]), Verdict::Count);
        assert_eq!(b.on_provider_failure(jobs[1]), Verdict::Count);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.on_provider_failure(jobs[2]), Verdict::Count);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.on_provider_failure(jobs[3]), Verdict::Release);
    }

    #[tokio::test]
    async fn a_probe_after_the_cooldown_closes_it_on_success() {
        let b = breaker();
        for _ in 0..3 {
            b.on_provider_failure(JobId::new());
        }
        assert_eq!(b.admit().await, Admission::Probe);
        let probe = JobId::new();
        b.probe_claimed(Some(probe));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        // Other claims wait while the probe runs.
        assert!(
            tokio::time::timeout(Duration::from_millis(100), b.admit())
                .await
                .is_err()
        );
        b.on_success();
        assert_eq!(b.admit().await, Admission::Claim);
    }

    #[tokio::test]
    async fn a_failed_probe_reopens_for_longer_and_spends_no_attempt() {
        let b = breaker();
        for _ in 0..3 {
            b.on_provider_failure(JobId::new());
        }
        assert_eq!(b.admit().await, Admission::Probe);
        let probe = JobId::new();
        b.probe_claimed(Some(probe));
        assert_eq!(b.on_provider_failure(probe), Verdict::Release);
        assert_eq!(b.state(), BreakerState::Open);
        match *b.lock() {
            Mode::Open { cooldown, .. } => assert_eq!(cooldown, Duration::from_millis(100)),
            other => panic!("expected open, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_empty_probe_claim_lets_the_next_claim_probe() {
        let b = breaker();
        for _ in 0..3 {
            b.on_provider_failure(JobId::new());
        }
        assert_eq!(b.admit().await, Admission::Probe);
        b.probe_claimed(None);
        assert_eq!(b.admit().await, Admission::Probe);
    }
}
