//! [`Maintainer`] (after River's queue maintainer): keeps the leader lease, and while it
//! leads, runs each task at each tick of its cron schedule, exactly once per tick across
//! every scheduler.
//!
//! - The lease is renewed every quarter lease; a follower asks every tenth of a lease, so it
//!   leads within one lease (plus that tenth) of the leader's death.
//! - Each due tick is claimed with `SET NX` under the lease ([`claim_tick`]): a tick never
//!   runs twice, even when a paused ex-leader wakes up believing it still leads.
//! - A new leader looks back one lease for a due tick, so a tick missed during a failover is
//!   run once, late; older missed ticks are coalesced into the latest one.
//! - Each run is its own tokio task: a slow or failing task never delays the lease or the
//!   other tasks, and a tick that comes while the previous run of the same task is still
//!   going is skipped (logged). A failure or a panic is logged and recorded, and the task
//!   runs again at its next tick.

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::FutureExt;
use longhaul_jobs::store::TaskRun;
use longhaul_jobs::time::now_millis;
use tokio::task::JoinHandle;

use crate::leader::{Leader, TickClaim, claim_tick};
use crate::task::{Report, Task, TaskContext};

/// Longest one task run may take before it counts as failed (and the next tick may run).
const TASK_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// How long shutdown waits for running tasks before giving the lease up anyway.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);
/// Shortest pause between lease checks.
const MIN_POLL: Duration = Duration::from_millis(100);

/// One task and its schedule.
struct Slot {
    task: Task,
    schedule: cron::Schedule,
    /// The next tick, once computed (`None` while following).
    next: Option<DateTime<Utc>>,
    running: Option<JoinHandle<()>>,
}

impl Slot {
    /// The latest tick due at `now` not handled yet (looking back at most `lookback`), and
    /// advances `next` past `now`.
    fn due_tick(&mut self, now: DateTime<Utc>, lookback: Duration) -> Option<DateTime<Utc>> {
        let earliest = now - chrono::Duration::from_std(lookback).unwrap_or_default();
        let from = match self.next {
            Some(next) if next > now => return None,
            // `after` is exclusive: start just before the pending tick.
            Some(next) => (next - chrono::Duration::milliseconds(1)).max(earliest),
            None => earliest,
        };
        let mut due = None;
        for tick in self.schedule.after(&from) {
            if tick <= now {
                due = Some(tick);
            } else {
                self.next = Some(tick);
                return due;
            }
        }
        // A schedule without future ticks: look again tomorrow.
        self.next = Some(now + chrono::Duration::days(1));
        due
    }

    fn is_running(&self) -> bool {
        self.running.as_ref().is_some_and(|h| !h.is_finished())
    }
}

/// Runs the tasks while this scheduler leads.
pub struct Maintainer {
    leader: Leader,
    ctx: TaskContext,
    slots: Vec<Slot>,
}

impl Maintainer {
    /// A maintainer for every task of [`Task::ALL`], on the configured schedules.
    pub fn new(leader: Leader, ctx: TaskContext) -> Self {
        let slots = Task::ALL
            .into_iter()
            .filter_map(|task| {
                let schedule = ctx.scheduler.schedule(task.name())?.clone();
                Some(Slot {
                    task,
                    schedule,
                    next: None,
                    running: None,
                })
            })
            .collect();
        Self { leader, ctx, slots }
    }

    /// Runs until `shutdown` resolves, then waits briefly for running tasks and resigns.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let lease = self.leader.lease();
        let lead_poll = (lease / 4).max(MIN_POLL);
        let follow_poll = (lease / 10).max(MIN_POLL);
        let guard_ttl = (lease * 3).max(Duration::from_secs(60));
        let mut renew_at = Instant::now();
        let mut leading = false;
        tracing::info!(id = %self.leader.id(), lease_ms = lease.as_millis() as u64, "scheduler started");
        loop {
            if Instant::now() >= renew_at {
                leading = match self.leader.try_lead().await {
                    Ok(leading) => leading,
                    Err(e) => {
                        tracing::warn!(error = %e, "leader election failed; will retry");
                        self.leader.lost();
                        false
                    }
                };
                renew_at = Instant::now() + if leading { lead_poll } else { follow_poll };
            }
            let now = Utc::now();
            for slot in &mut self.slots {
                if !leading {
                    slot.next = None;
                    continue;
                }
                let Some(tick) = slot.due_tick(now, lease) else {
                    continue;
                };
                if slot.is_running() {
                    tracing::warn!(
                        task = slot.task.name(),
                        tick = tick.timestamp(),
                        "previous run still going; tick skipped"
                    );
                    continue;
                }
                slot.running = Some(tokio::spawn(run_tick(
                    slot.task,
                    tick,
                    self.ctx.clone(),
                    self.leader.id().to_owned(),
                    guard_ttl,
                )));
            }
            let mut wake = renew_at;
            for next in self.slots.iter().filter_map(|s| s.next) {
                let until = (next - Utc::now()).to_std().unwrap_or_default();
                wake = wake.min(Instant::now() + until);
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
        let running: Vec<_> = self
            .slots
            .iter_mut()
            .filter_map(|s| s.running.take())
            .collect();
        let _ = tokio::time::timeout(SHUTDOWN_WAIT, futures::future::join_all(running)).await;
        self.leader.resign().await;
        tracing::info!("scheduler stopped");
    }
}

/// Claims `tick` of `task` and, if this scheduler won it, runs the task and records the run.
async fn run_tick(
    task: Task,
    tick: DateTime<Utc>,
    ctx: TaskContext,
    leader_id: String,
    guard_ttl: Duration,
) {
    let name = task.name();
    let tick_secs = tick.timestamp();
    match claim_tick(&ctx.store, &leader_id, name, tick_secs, guard_ttl).await {
        Ok(TickClaim::Won) => {}
        Ok(TickClaim::Taken) => {
            tracing::debug!(task = name, tick = tick_secs, "tick already ran");
            return;
        }
        Ok(TickClaim::NotLeader) => return,
        Err(e) => {
            tracing::warn!(task = name, tick = tick_secs, error = %e, "cannot claim the tick; it is skipped");
            return;
        }
    }
    let started_at = now_millis();
    let clock = Instant::now();
    let outcome: Result<Report, String> = match tokio::time::timeout(
        TASK_TIMEOUT,
        AssertUnwindSafe(task.run(&ctx)).catch_unwind(),
    )
    .await
    {
        Ok(Ok(Ok(report))) => Ok(report),
        Ok(Ok(Err(e))) => Err(e.to_string()),
        Ok(Err(panic)) => Err(format!(
            "panicked: {}",
            panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default()
        )),
        Err(_) => Err(format!("timed out after {}s", TASK_TIMEOUT.as_secs())),
    };
    let duration = clock.elapsed();
    let duration_ms = duration.as_millis() as u64;
    let report = match &outcome {
        Ok(report) => report.to_string(),
        Err(_) => "{}".to_owned(),
    };
    match &outcome {
        Ok(_) => {
            tracing::info!(task = name, tick = tick_secs, duration_ms, report = %report, "scheduler task ran")
        }
        Err(error) => tracing::error!(
            task = name,
            tick = tick_secs,
            duration_ms,
            error = %error,
            "scheduler task failed; it runs again at its next tick"
        ),
    }
    let run = TaskRun {
        task: name,
        tick_secs,
        started_at,
        duration,
        error: outcome.as_ref().err().map(String::as_str),
        report: &report,
        leader: &leader_id,
    };
    if let Err(e) = ctx.store.record_task_run(&run).await {
        tracing::warn!(task = name, error = %e, "cannot record the task run");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(cron: &str) -> Slot {
        Slot {
            task: Task::PromoteDue,
            schedule: cron.parse().unwrap(),
            next: None,
            running: None,
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_new_leader_runs_the_latest_tick_of_the_last_lease_once_then_each_tick() {
        let mut s = slot("*/5 * * * * *");
        let lease = Duration::from_secs(10);
        // Ticks at :00 and :05 fall in the lookback: only the latest is due.
        assert_eq!(
            s.due_tick(at("2025-01-01T00:00:07Z"), lease),
            Some(at("2025-01-01T00:00:05Z"))
        );
        assert_eq!(s.next, Some(at("2025-01-01T00:00:10Z")));
        assert_eq!(s.due_tick(at("2025-01-01T00:00:09Z"), lease), None);
        assert_eq!(
            s.due_tick(at("2025-01-01T00:00:10Z"), lease),
            Some(at("2025-01-01T00:00:10Z"))
        );
        // Missed ticks (a long pause) coalesce into the latest.
        assert_eq!(
            s.due_tick(at("2025-01-01T01:00:03Z"), lease),
            Some(at("2025-01-01T01:00:00Z"))
        );
        assert_eq!(s.next, Some(at("2025-01-01T01:00:05Z")));
    }

    #[test]
    fn nothing_is_due_when_the_last_tick_is_older_than_the_lookback() {
        let mut s = slot("0 0 * * * *");
        assert_eq!(
            s.due_tick(at("2025-01-01T00:30:00Z"), Duration::from_secs(10)),
            None
        );
        assert_eq!(s.next, Some(at("2025-01-01T01:00:00Z")));
    }
}
