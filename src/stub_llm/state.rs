//! Shared stub state: call counters, in-flight gauges, early closes and the global outage.
//!
//! Every lock here is a short `std::sync::Mutex` section that never spans an `.await`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

/// State shared by every request of one stub process.
#[derive(Debug)]
pub struct StubState {
    /// Latency added to every completion unless a directive overrides it.
    pub latency: Duration,
    calls: Mutex<CallBook>,
    outage: Mutex<Outage>,
}

/// Counters guarded together so snapshots are consistent.
#[derive(Debug, Default)]
struct CallBook {
    total: u64,
    jobs: HashMap<String, JobStats>,
    in_flight: u64,
    max_in_flight: u64,
    closed_early_total: u64,
    closed_early: HashMap<String, u64>,
}

#[derive(Debug, Default, Clone, Copy)]
struct JobStats {
    calls: u64,
    in_flight: u64,
}

#[derive(Debug, Default)]
struct Outage {
    until: Option<Instant>,
    status: u16,
    retry_after: Option<u64>,
    /// Whether an `outage_ms` directive was already seen since start/reset.
    directive_seen: bool,
}

/// An active outage: what every completion answers until it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutageFault {
    /// Status to answer.
    pub status: u16,
    /// `Retry-After` seconds, if any.
    pub retry_after: Option<u64>,
}

/// `GET /stub/calls`.
#[derive(Debug, Serialize)]
pub struct CallsSnapshot {
    /// Completion requests seen.
    pub total: u64,
    /// Completion requests per `x-longhaul-job-id` (`""` when absent).
    pub by_job: HashMap<String, u64>,
}

/// `GET /stub/calls/{job_id}`.
#[derive(Debug, Serialize)]
pub struct JobSnapshot {
    /// The job id asked about.
    pub job_id: String,
    /// Completion requests seen for it.
    pub calls: u64,
    /// Its requests being handled right now.
    pub in_flight: u64,
}

/// `GET /stub/in-flight`.
#[derive(Debug, Serialize)]
pub struct InFlightSnapshot {
    /// Requests being handled right now.
    pub in_flight: u64,
    /// Highest concurrent count since start or reset.
    pub max_in_flight: u64,
}

/// `GET /stub/closed-early`.
#[derive(Debug, Serialize)]
pub struct ClosedEarlySnapshot {
    /// Requests whose client left before the stub answered.
    pub count: u64,
    /// The same, per job id.
    pub by_job: HashMap<String, u64>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl StubState {
    /// Fresh state with the given global latency.
    pub fn new(latency: Duration) -> Self {
        Self {
            latency,
            calls: Mutex::default(),
            outage: Mutex::default(),
        }
    }

    /// Counts a completion request for `job` and marks it in flight until the guard drops.
    pub fn begin_call(self: &Arc<Self>, job: String) -> CallGuard {
        let call_number = {
            let mut book = lock(&self.calls);
            book.total += 1;
            book.in_flight += 1;
            book.max_in_flight = book.max_in_flight.max(book.in_flight);
            match book.jobs.get_mut(job.as_str()) {
                Some(stats) => {
                    stats.calls += 1;
                    stats.in_flight += 1;
                    stats.calls
                }
                None => {
                    let first = JobStats {
                        calls: 1,
                        in_flight: 1,
                    };
                    book.jobs.insert(job.clone(), first);
                    1
                }
            }
        };
        CallGuard {
            state: Arc::clone(self),
            job,
            call_number,
            answered: false,
        }
    }

    /// Snapshot for `GET /stub/calls`.
    pub fn calls(&self) -> CallsSnapshot {
        let book = lock(&self.calls);
        CallsSnapshot {
            total: book.total,
            by_job: book
                .jobs
                .iter()
                .filter(|(_, s)| s.calls > 0)
                .map(|(job, s)| (job.clone(), s.calls))
                .collect(),
        }
    }

    /// Snapshot for `GET /stub/calls/{job_id}`.
    pub fn job(&self, job_id: String) -> JobSnapshot {
        let stats = lock(&self.calls)
            .jobs
            .get(&job_id)
            .copied()
            .unwrap_or_default();
        JobSnapshot {
            job_id,
            calls: stats.calls,
            in_flight: stats.in_flight,
        }
    }

    /// Snapshot for `GET /stub/in-flight`.
    pub fn in_flight(&self) -> InFlightSnapshot {
        let book = lock(&self.calls);
        InFlightSnapshot {
            in_flight: book.in_flight,
            max_in_flight: book.max_in_flight,
        }
    }

    /// Snapshot for `GET /stub/closed-early`.
    pub fn closed_early(&self) -> ClosedEarlySnapshot {
        let book = lock(&self.calls);
        ClosedEarlySnapshot {
            count: book.closed_early_total,
            by_job: book.closed_early.clone(),
        }
    }

    /// Zeroes every counter and ends any outage.
    ///
    /// Gauges keep describing reality: requests still in flight stay counted as in
    /// flight, and `max_in_flight` restarts from the current in-flight count.
    pub fn reset(&self) {
        {
            let mut book = lock(&self.calls);
            book.total = 0;
            book.jobs.retain(|_, s| s.in_flight > 0);
            book.jobs.values_mut().for_each(|s| s.calls = 0);
            book.max_in_flight = book.in_flight;
            book.closed_early_total = 0;
            book.closed_early.clear();
        }
        *lock(&self.outage) = Outage::default();
    }

    /// Starts the outage asked for by an `outage_ms` directive, unless one was seen before.
    pub fn outage_from_directive(&self, ms: u64, retry_after: Option<u64>) {
        let mut outage = lock(&self.outage);
        if !outage.directive_seen {
            outage.directive_seen = true;
            outage.until = Some(Instant::now() + Duration::from_millis(ms));
            outage.status = 503;
            outage.retry_after = retry_after;
        }
    }

    /// Sets the outage from now (`POST /stub/outage`); `ms = 0` ends it.
    pub fn set_outage(&self, ms: u64, status: u16, retry_after: Option<u64>) {
        let mut outage = lock(&self.outage);
        outage.until = (ms > 0).then(|| Instant::now() + Duration::from_millis(ms));
        outage.status = status;
        outage.retry_after = retry_after;
    }

    /// The outage in force right now, if any.
    pub fn active_outage(&self) -> Option<OutageFault> {
        let outage = lock(&self.outage);
        match outage.until {
            Some(until) if Instant::now() < until => Some(OutageFault {
                status: outage.status,
                retry_after: outage.retry_after,
            }),
            _ => None,
        }
    }

    fn end_call(&self, job: &str, answered: bool) {
        let mut book = lock(&self.calls);
        book.in_flight = book.in_flight.saturating_sub(1);
        if let Some(stats) = book.jobs.get_mut(job) {
            stats.in_flight = stats.in_flight.saturating_sub(1);
        }
        if !answered {
            book.closed_early_total += 1;
            match book.closed_early.get_mut(job) {
                Some(count) => *count += 1,
                None => {
                    book.closed_early.insert(job.to_owned(), 1);
                }
            }
        }
    }
}

/// One completion request in flight. Dropping it before [`CallGuard::answered`] means
/// the client went away first (axum drops the handler future), which counts as an
/// early close.
#[derive(Debug)]
pub struct CallGuard {
    state: Arc<StubState>,
    job: String,
    call_number: u64,
    answered: bool,
}

impl CallGuard {
    /// 1-based number of this call among its job's calls since start/reset.
    pub fn call_number(&self) -> u64 {
        self.call_number
    }

    /// Marks the response as produced.
    pub fn answered(mut self) {
        self.answered = true;
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.state.end_call(&self.job, self.answered);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_calls_and_early_closes() {
        let state = Arc::new(StubState::new(Duration::ZERO));
        let a1 = state.begin_call("a".into());
        let a2 = state.begin_call("a".into());
        let b1 = state.begin_call(String::new());
        assert_eq!((a1.call_number(), a2.call_number()), (1, 2));
        assert_eq!(b1.call_number(), 1);
        assert_eq!(state.in_flight().in_flight, 3);
        a1.answered();
        drop(a2);
        assert_eq!(state.job("a".into()).in_flight, 0);
        assert_eq!(state.closed_early().by_job.get("a"), Some(&1));
        assert_eq!(state.calls().total, 3);

        state.reset();
        assert_eq!(state.calls().total, 0);
        assert_eq!(state.in_flight().max_in_flight, 1);
        b1.answered();
        assert_eq!(state.in_flight().in_flight, 0);
        assert_eq!(state.closed_early().count, 0);
        assert_eq!(state.begin_call("a".into()).call_number(), 1);
    }

    #[test]
    fn first_outage_directive_wins() {
        let state = StubState::new(Duration::ZERO);
        assert_eq!(state.active_outage(), None);
        state.outage_from_directive(60_000, Some(3));
        state.outage_from_directive(0, None);
        assert_eq!(
            state.active_outage(),
            Some(OutageFault {
                status: 503,
                retry_after: Some(3)
            })
        );
        state.set_outage(0, 503, None);
        assert_eq!(state.active_outage(), None);
        state.outage_from_directive(60_000, None);
        assert_eq!(state.active_outage(), None);
    }
}
