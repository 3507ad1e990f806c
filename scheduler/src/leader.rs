//! [`Leader`]: leader election through a Redis lease, and the per-tick guard.
//!
//! The lease key holds the leader's id (its fencing value) with a TTL. The leader renews it
//! only while the key still holds its own id (compare-and-renew in one script, `lua/lead.lua`);
//! anyone may take it once it has expired. A leader that dies is replaced within one lease.
//!
//! The lease alone cannot make a tick run once: a leader paused past its lease may wake up
//! and run a tick its successor already ran. So each tick of each task is also claimed with
//! `SET NX` ([`Leader::claim_tick`], `lua/claim_tick.lua`), checked against the lease in the
//! same script: fencing by tick.

use std::sync::LazyLock;
use std::time::Duration;

use longhaul_jobs::store::{RedisStore, StoreError};
use redis::Script;

static LEAD: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/lead.lua")));
static RESIGN: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/resign.lua")));
static CLAIM_TICK: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/claim_tick.lua")));

/// Who may run one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickClaim {
    /// This scheduler: run it.
    Won,
    /// The tick ran (or runs) already.
    Taken,
    /// This scheduler no longer holds the lease.
    NotLeader,
}

/// One candidate for leadership.
pub struct Leader {
    store: RedisStore,
    id: String,
    lease: Duration,
    leading: bool,
}

impl Leader {
    /// A candidate with a fresh id.
    pub fn new(store: RedisStore, lease: Duration) -> Self {
        Self {
            store,
            id: uuid::Uuid::now_v7().to_string(),
            lease,
            leading: false,
        }
    }

    /// This candidate's id (the fencing value in the lease key).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The lease.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Takes or renews the lease. Call more often than the lease lasts.
    pub async fn try_lead(&mut self) -> Result<bool, StoreError> {
        let mut conn = self.store.connection();
        let led: i64 = LEAD
            .key(self.store.keys().scheduler_leader())
            .arg(&self.id)
            .arg(self.lease.as_millis() as u64)
            .invoke_async(&mut conn)
            .await?;
        let leading = led == 1;
        if leading != self.leading {
            tracing::info!(id = %self.id, leading, "scheduler leadership changed");
        }
        self.leading = leading;
        Ok(leading)
    }

    /// Records that leadership is unknown (Redis unreachable): behave as a follower.
    pub fn lost(&mut self) {
        if self.leading {
            tracing::warn!(id = %self.id, "scheduler leadership lost (cannot renew the lease)");
        }
        self.leading = false;
    }

    /// Gives the lease up (at shutdown) so another scheduler takes over at once.
    pub async fn resign(&mut self) {
        let mut conn = self.store.connection();
        let _: Result<i64, _> = RESIGN
            .key(self.store.keys().scheduler_leader())
            .arg(&self.id)
            .invoke_async(&mut conn)
            .await;
        self.leading = false;
    }
}

/// Claims tick `tick_secs` of `task` for the scheduler `leader_id`, if it holds the lease.
/// The guard lives `guard_ttl`: longer than any scheduler looks back for a due tick.
pub async fn claim_tick(
    store: &RedisStore,
    leader_id: &str,
    task: &str,
    tick_secs: i64,
    guard_ttl: Duration,
) -> Result<TickClaim, StoreError> {
    let mut conn = store.connection();
    let claimed: i64 = CLAIM_TICK
        .key(store.keys().scheduler_leader())
        .key(store.keys().scheduler_tick(task, tick_secs))
        .arg(leader_id)
        .arg(guard_ttl.as_secs().max(1))
        .invoke_async(&mut conn)
        .await?;
    Ok(match claimed {
        1 => TickClaim::Won,
        0 => TickClaim::Taken,
        _ => TickClaim::NotLeader,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TestRedis;

    #[tokio::test]
    async fn one_candidate_leads_and_the_other_takes_over_when_the_lease_lapses() {
        let redis = TestRedis::new().await;
        let lease = Duration::from_millis(300);
        let mut a = Leader::new(redis.store.clone(), lease);
        let mut b = Leader::new(redis.store.clone(), lease);
        assert!(a.try_lead().await.unwrap());
        assert!(!b.try_lead().await.unwrap());
        assert!(a.try_lead().await.unwrap(), "the holder renews");
        tokio::time::sleep(lease + Duration::from_millis(100)).await;
        assert!(b.try_lead().await.unwrap(), "a lapsed lease is taken");
        assert!(!a.try_lead().await.unwrap());
        b.resign().await;
        assert!(
            a.try_lead().await.unwrap(),
            "a resigned lease is free at once"
        );
    }

    #[tokio::test]
    async fn a_tick_is_claimed_once_and_only_by_the_lease_holder() {
        let redis = TestRedis::new().await;
        let ttl = Duration::from_secs(60);
        let mut a = Leader::new(redis.store.clone(), Duration::from_secs(10));
        let b = Leader::new(redis.store.clone(), Duration::from_secs(10));
        assert!(a.try_lead().await.unwrap());
        let claim = |id: String, tick: i64| {
            let store = redis.store.clone();
            async move {
                claim_tick(&store, &id, "promote_due", tick, ttl)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(
            claim(b.id().to_owned(), 100).await,
            TickClaim::NotLeader,
            "a follower never claims"
        );
        assert_eq!(claim(a.id().to_owned(), 100).await, TickClaim::Won);
        assert_eq!(claim(a.id().to_owned(), 100).await, TickClaim::Taken);
        assert_eq!(claim(a.id().to_owned(), 101).await, TickClaim::Won);
    }
}
