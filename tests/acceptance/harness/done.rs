//! [`DoneLog`]: counts the terminal transitions Redis publishes on `{prefix}:done`, per job,
//! so a test can check that every job reached its terminal status exactly once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;

/// How long to keep listening for a late duplicate once every job has been seen.
const SETTLE: Duration = Duration::from_millis(500);

/// The terminal transitions seen since the subscription started.
pub struct DoneLog {
    counts: Arc<Mutex<HashMap<String, u64>>>,
    listener: tokio::task::JoinHandle<()>,
}

impl DoneLog {
    /// Subscribes to `channel` on `redis_url`; returns once the subscription is active.
    pub async fn subscribe(redis_url: &str, channel: String) -> DoneLog {
        let client = redis::Client::open(redis_url).expect("redis url");
        let mut pubsub = client
            .get_async_pubsub()
            .await
            .expect("redis reachable for pub/sub");
        pubsub
            .subscribe(&channel)
            .await
            .expect("subscribe to the done channel");
        let counts = Arc::new(Mutex::new(HashMap::new()));
        let listener = tokio::spawn({
            let counts = counts.clone();
            async move {
                let mut messages = pubsub.into_on_message();
                while let Some(message) = messages.next().await {
                    let id: String = message.get_payload().unwrap_or_default();
                    *lock(&counts).entry(id).or_default() += 1;
                }
            }
        });
        DoneLog { counts, listener }
    }

    /// Terminal transitions seen for `id` so far.
    pub fn count(&self, id: &str) -> u64 {
        lock(&self.counts).get(id).copied().unwrap_or(0)
    }

    /// Waits until each of `ids` has been published, listens a little longer for duplicates,
    /// then asserts that each was published exactly once and no other job was.
    pub async fn assert_exactly_once(&self, ids: &[String]) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let missing = ids.iter().filter(|id| self.count(id) == 0).count();
            if missing == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{missing} of {} jobs never published a terminal transition",
                ids.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(SETTLE).await;
        let counts = lock(&self.counts).clone();
        let twice: Vec<_> = ids
            .iter()
            .filter(|id| counts.get(*id).copied() != Some(1))
            .map(|id| (id, counts.get(id)))
            .collect();
        assert!(
            twice.is_empty(),
            "jobs with more than one terminal transition: {twice:?}"
        );
        let strangers: Vec<_> = counts.keys().filter(|id| !ids.contains(id)).collect();
        assert!(
            strangers.is_empty(),
            "terminal transitions of jobs the test did not expect: {strangers:?}"
        );
    }
}

impl Drop for DoneLog {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
