//! [`Shutdown`]: the two steps of stopping a worker, as a small named type.
//!
//! 1. **drain**: stop claiming; in-flight attempts run on (heartbeats continue).
//! 2. **abort**: the grace is over (or a second SIGTERM came): in-flight attempts stop and
//!    give their jobs back to the queue without spending an attempt.

use tokio::sync::watch;

/// Sends the two shutdown steps.
#[derive(Debug)]
pub struct ShutdownTrigger {
    drain: watch::Sender<bool>,
    abort: watch::Sender<bool>,
}

/// Observes the two shutdown steps.
#[derive(Debug, Clone)]
pub struct Shutdown {
    drain: watch::Receiver<bool>,
    abort: watch::Receiver<bool>,
}

impl ShutdownTrigger {
    /// A trigger and its first observer.
    pub fn new() -> (Self, Shutdown) {
        let (drain_tx, drain_rx) = watch::channel(false);
        let (abort_tx, abort_rx) = watch::channel(false);
        (
            Self {
                drain: drain_tx,
                abort: abort_tx,
            },
            Shutdown {
                drain: drain_rx,
                abort: abort_rx,
            },
        )
    }

    /// Step 1: stop claiming.
    pub fn drain(&self) {
        self.drain.send_replace(true);
    }

    /// Step 2: stop in-flight attempts (implies step 1).
    pub fn abort(&self) {
        self.drain.send_replace(true);
        self.abort.send_replace(true);
    }
}

impl Shutdown {
    /// Whether draining has begun.
    pub fn is_draining(&self) -> bool {
        *self.drain.borrow()
    }

    /// Resolves when draining begins.
    pub async fn draining(&self) {
        let mut rx = self.drain.clone();
        let _ = rx.wait_for(|v| *v).await;
    }

    /// Resolves when in-flight attempts must stop.
    pub async fn aborted(&self) {
        let mut rx = self.abort.clone();
        let _ = rx.wait_for(|v| *v).await;
    }
}
