//! The prefork supervisor (the "launcher"): runs `LONGHAUL_WORKER_PROCESSES` worker
//! processes, restarts one that dies (with backoff, saying why), and on SIGTERM forwards the
//! signal and waits for every child to drain.
//!
//! Children are separate processes started from the same binary, not `fork()`ed copies of a
//! running tokio runtime (forking a multi-threaded process is unsound). They run in their own
//! process group, so a terminal's Ctrl-C reaches only the supervisor, which then drains them
//! in order; each child asks the kernel to send it SIGTERM if the supervisor dies.

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use backoff::backoff::Backoff;
use futures::StreamExt;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use signal_hook::consts::{SIGINT, SIGTERM};
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

use crate::exporter::ANNOUNCE;
use crate::host_endpoint::{Children, HostEndpoint};

/// A child that ran this long is healthy: its restart backoff starts over.
const HEALTHY_RUN: Duration = Duration::from_secs(60);
/// Extra time after the grace before a child that has not exited is killed.
const KILL_MARGIN: Duration = Duration::from_secs(10);

/// Builds the command that starts child number `index` (0-based).
pub type ChildCommand = dyn Fn(usize) -> Command + Send + Sync;

/// Why the supervisor stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// Signal handlers could not be installed.
    #[error("signals: {0}")]
    Signals(#[from] std::io::Error),
}

struct Slot {
    index: usize,
    child: Option<Child>,
    started: Instant,
    backoff: backoff::ExponentialBackoff,
    restart_at: Option<tokio::time::Instant>,
}

fn restart_backoff() -> backoff::ExponentialBackoff {
    backoff::ExponentialBackoff {
        initial_interval: Duration::from_millis(200),
        max_interval: Duration::from_secs(30),
        multiplier: 2.0,
        randomization_factor: 0.3,
        // Never give up: a worker host keeps trying to have its workers.
        max_elapsed_time: None,
        ..Default::default()
    }
}

/// Runs `processes` children until SIGTERM/SIGINT, then drains them within `grace`
/// (+ a margin, after which stragglers are killed) and returns. With an `endpoint`, serves
/// the host's `/metrics` and `/readyz` there, covering every child.
pub async fn run_supervisor(
    processes: usize,
    grace: Duration,
    command: &ChildCommand,
    endpoint: Option<HostEndpoint>,
) -> Result<(), SupervisorError> {
    // Children inherit it (and raise it again themselves).
    crate::limits::raise_open_file_limit();
    let children = endpoint.map(|endpoint| {
        let children = Children::new(processes);
        crate::host_endpoint::spawn(endpoint, children.clone());
        children
    });
    let mut signals = signal_hook_tokio::Signals::new([SIGTERM, SIGINT])?;
    let mut slots: Vec<Slot> = (0..processes)
        .map(|index| Slot {
            index,
            child: None,
            started: Instant::now(),
            backoff: restart_backoff(),
            restart_at: Some(tokio::time::Instant::now()),
        })
        .collect();
    tracing::info!(processes, "supervisor started");

    loop {
        for slot in &mut slots {
            if slot
                .restart_at
                .is_some_and(|at| at <= tokio::time::Instant::now())
            {
                start(slot, command, children.as_ref());
            }
        }
        let next_restart = slots.iter().filter_map(|s| s.restart_at).min();
        let exited = wait_any(&mut slots);
        tokio::select! {
            _ = signals.next() => break,
            (index, status) = exited => {
                let slot = &mut slots[index];
                slot.child = None;
                if let Some(children) = &children {
                    children.set(index, None);
                    children.restarted();
                }
                if slot.started.elapsed() >= HEALTHY_RUN {
                    slot.backoff.reset();
                }
                let delay = slot.backoff.next_backoff().unwrap_or(Duration::from_secs(30));
                tracing::error!(child = index, reason = %describe(status), restart_in_ms = delay.as_millis() as u64, "worker process died; restarting");
                slot.restart_at = Some(tokio::time::Instant::now() + delay);
            }
            _ = sleep_until(next_restart) => {}
        }
    }

    tracing::info!(
        grace_secs = grace.as_secs(),
        "signal received: draining worker processes"
    );
    forward(&slots, Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + grace + KILL_MARGIN;
    loop {
        if slots.iter().all(|s| s.child.is_none()) {
            break;
        }
        let exited = wait_any(&mut slots);
        tokio::select! {
            (index, status) = exited => {
                slots[index].child = None;
                tracing::info!(child = index, status = %describe(status), "worker process exited");
            }
            _ = signals.next() => {
                tracing::warn!("second signal: telling worker processes to give their jobs back now");
                forward(&slots, Signal::SIGTERM);
            }
            _ = tokio::time::sleep_until(deadline) => {
                tracing::error!("worker processes did not exit in time; killing them");
                forward(&slots, Signal::SIGKILL);
                for slot in &mut slots {
                    if let Some(child) = slot.child.as_mut() {
                        let _ = child.wait().await;
                    }
                    slot.child = None;
                }
            }
        }
    }
    tracing::info!("all worker processes exited");
    Ok(())
}

fn start(slot: &mut Slot, command: &ChildCommand, children: Option<&Children>) {
    slot.restart_at = None;
    let mut cmd = command(slot.index);
    cmd.process_group(0).kill_on_drop(false);
    if children.is_some() {
        cmd.stdout(std::process::Stdio::piped());
    }
    match cmd.spawn() {
        Ok(mut child) => {
            if let (Some(children), Some(stdout)) = (children, child.stdout.take()) {
                tokio::spawn(read_announcements(slot.index, stdout, children.clone()));
            }
            tracing::info!(
                child = slot.index,
                pid = child.id(),
                "worker process started"
            );
            slot.child = Some(child);
            slot.started = Instant::now();
        }
        Err(e) => {
            let delay = slot
                .backoff
                .next_backoff()
                .unwrap_or(Duration::from_secs(30));
            tracing::error!(child = slot.index, error = %e, "cannot start worker process; retrying");
            slot.restart_at = Some(tokio::time::Instant::now() + delay);
        }
    }
}

/// Reads a child's stdout: its metrics address (announced once), and passes anything else
/// through to our stdout.
async fn read_announcements(index: usize, stdout: tokio::process::ChildStdout, children: Children) {
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        match line.strip_prefix(ANNOUNCE).map(|a| a.trim().parse()) {
            Some(Ok(addr)) => children.set(index, Some(addr)),
            Some(Err(_)) => tracing::warn!(child = index, %line, "unreadable metrics announcement"),
            None => {
                use std::io::Write;
                let _ = writeln!(std::io::stdout().lock(), "{line}");
            }
        }
    }
}

/// Resolves when any running child exits, with its slot index and status.
async fn wait_any(slots: &mut [Slot]) -> (usize, std::io::Result<ExitStatus>) {
    let waits: Vec<_> = slots
        .iter_mut()
        .filter_map(|s| {
            let index = s.index;
            s.child
                .as_mut()
                .map(|c| Box::pin(async move { (index, c.wait().await) }))
        })
        .collect();
    if waits.is_empty() {
        return std::future::pending().await;
    }
    futures::future::select_all(waits).await.0
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn forward(slots: &[Slot], signal: Signal) {
    for child in slots.iter().filter_map(|s| s.child.as_ref()) {
        if let Some(pid) = child.id() {
            let _ = kill(Pid::from_raw(pid as i32), signal);
        }
    }
}

fn describe(status: std::io::Result<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exited with code {code}"),
            (None, Some(sig)) => format!(
                "killed by signal {}",
                Signal::try_from(sig).map_or_else(|_| sig.to_string(), |s| s.as_str().to_owned())
            ),
            _ => s.to_string(),
        },
        Err(e) => format!("wait failed: {e}"),
    }
}

/// In a child: ask the kernel for SIGTERM when the supervisor dies (so an orphan drains
/// instead of running on unsupervised). Returns false if the parent is already gone.
pub fn die_with_parent() -> bool {
    let parent = nix::unistd::getppid();
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM);
    nix::unistd::getppid() == parent
}
