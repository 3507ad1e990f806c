//! Job events over Redis pub/sub: one subscriber connection per process, however many
//! jobs are being watched.
//!
//! [`EventListener`] subscribes to one channel (jobs that ended, or jobs to abort) and calls
//! a handler with each job id. It reconnects by itself after a Redis outage and then calls the
//! reconnect handler, because messages sent while it was away are lost: watchers must re-read
//! state instead of trusting that silence means nothing happened.
//! [`Waiters`] is the registry long-polling requests park in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use redis::Client;
use tokio::sync::Notify;

use crate::ids::JobId;

/// A background subscription to one channel.
#[derive(Debug)]
pub struct EventListener {
    task: tokio::task::JoinHandle<()>,
}

impl EventListener {
    /// Subscribes to `channel`; `on_event` gets each job id, `on_reconnect` runs after every
    /// (re)connection.
    pub fn spawn(
        client: Client,
        channel: String,
        on_event: impl Fn(JobId) + Send + Sync + 'static,
        on_reconnect: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        let task = tokio::spawn(async move {
            let mut delay = Duration::from_millis(100);
            loop {
                match client.get_async_pubsub().await {
                    Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                        Ok(()) => {
                            delay = Duration::from_millis(100);
                            on_reconnect();
                            let mut messages = pubsub.on_message();
                            while let Some(message) = messages.next().await {
                                if let Ok(payload) = message.get_payload::<String>()
                                    && let Ok(id) = payload.parse::<JobId>()
                                {
                                    on_event(id);
                                }
                            }
                            tracing::warn!(%channel, "event subscription lost; reconnecting");
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, %channel, "cannot subscribe; retrying")
                        }
                    },
                    Err(e) => {
                        tracing::debug!(error = %e, %channel, "cannot reach Redis for events; retrying")
                    }
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        });
        Self { task }
    }
}

impl Drop for EventListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Requests waiting for jobs to end, woken by job events.
#[derive(Debug, Clone, Default)]
pub struct Waiters {
    by_job: Arc<Mutex<HashMap<JobId, Vec<Arc<Notify>>>>>,
}

/// One parked request; dropping it unregisters it.
#[derive(Debug)]
pub struct Waiter {
    waiters: Waiters,
    id: JobId,
    notify: Arc<Notify>,
}

impl Waiters {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Vec<Arc<Notify>>>> {
        self.by_job.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts waiting for events of `id`. Register before reading the job's state, so an
    /// event between the read and the wait is not missed.
    pub fn register(&self, id: JobId) -> Waiter {
        let notify = Arc::new(Notify::new());
        self.lock().entry(id).or_default().push(notify.clone());
        Waiter {
            waiters: self.clone(),
            id,
            notify,
        }
    }

    /// Wakes everyone waiting on `id`.
    pub fn wake(&self, id: JobId) {
        if let Some(list) = self.lock().get(&id) {
            for n in list {
                n.notify_one();
            }
        }
    }

    /// Wakes everyone (after a reconnect: events may have been missed).
    pub fn wake_all(&self) {
        for list in self.lock().values() {
            for n in list {
                n.notify_one();
            }
        }
    }

    /// Requests parked now.
    pub fn len(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    /// Whether none is parked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Waiter {
    /// Resolves at the next event of this job (or a reconnect).
    pub async fn changed(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let mut map = self.waiters.lock();
        if let Some(list) = map.get_mut(&self.id) {
            list.retain(|n| !Arc::ptr_eq(n, &self.notify));
            if list.is_empty() {
                map.remove(&self.id);
            }
        }
    }
}
