//! [`Leader`]: leader election through a Redis lease.
//!
//! The lease key holds the leader's id (its fencing value) with a TTL. The leader renews it
//! only while the key still holds its own id (compare-and-renew in one script); anyone may take
//! it once it has expired. A leader that dies is replaced within one lease.

use std::time::Duration;

use longhaul_jobs::store::{RedisStore, StoreError};
use redis::Script;

/// Renews the lease if we hold it, else takes it if free. Returns 1 if we lead.
const ACQUIRE_OR_RENEW: &str = r"
-- KEYS[1] leader key; ARGV[1] our id; ARGV[2] lease (ms)
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

/// Deletes the lease if we hold it.
const RESIGN: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

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

    /// Takes or renews the lease. Call more often than the lease lasts.
    pub async fn try_lead(&mut self) -> Result<bool, StoreError> {
        let mut conn = self.store.connection();
        let led: i64 = Script::new(ACQUIRE_OR_RENEW)
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

    /// Gives the lease up (at shutdown) so another scheduler takes over at once.
    pub async fn resign(&mut self) {
        let mut conn = self.store.connection();
        let _: Result<i64, _> = Script::new(RESIGN)
            .key(self.store.keys().scheduler_leader())
            .arg(&self.id)
            .invoke_async(&mut conn)
            .await;
        self.leading = false;
    }
}
