//! [`Proc`]: a child process of the `longhaul` binary whose output goes to a log file, and
//! which is killed when the test ends (pass or fail).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::process::{Child, Command};

/// The binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_longhaul")
}

/// A running process.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// Starts `longhaul <args>` with `envs`, logging stdout+stderr to `log`.
    pub fn spawn(name: &str, args: &[&str], envs: &[(String, String)], log: PathBuf) -> Proc {
        let file = std::fs::File::create(&log).expect("create log file");
        let err = file.try_clone().expect("clone log file");
        let mut cmd = Command::new(binary());
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let child = cmd.spawn().expect("spawn longhaul");
        Proc {
            name: name.to_owned(),
            child,
            log,
        }
    }

    /// The OS process id.
    pub fn pid(&self) -> i32 {
        self.child.id().expect("process still running") as i32
    }

    /// Sends a signal.
    pub fn signal(&self, signal: Signal) {
        if let Some(pid) = self.child.id() {
            let _ = kill(Pid::from_raw(pid as i32), signal);
        }
    }

    /// Waits for exit up to `limit`; returns the exit code (None if killed by a signal).
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<Option<i32>> {
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(Ok(status)) => Some(status.code()),
            _ => None,
        }
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its exit status if it has exited, without waiting.
    pub fn try_exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("poll child status")
    }

    /// Panics (with the log) if it has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.try_exited() {
            panic!("{} exited ({status}):\n{}", self.name, self.log_text());
        }
    }

    /// The JSON log lines (of it and its children) whose `message` is `message`.
    pub fn log_events(&self, message: &str) -> Vec<Value> {
        self.log_text()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|event| event["message"] == message)
            .collect()
    }

    /// Pids of the worker processes a supervisor started, in order (from its log).
    pub fn started_worker_pids(&self) -> Vec<i32> {
        self.log_events("worker process started")
            .iter()
            .filter_map(|event| event["pid"].as_i64())
            .map(|pid| pid as i32)
            .collect()
    }

    /// Pids of its live child processes (from `/proc`).
    pub fn child_pids(&self) -> Vec<i32> {
        let parent = self.pid();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| parent_of(*pid) == Some(parent))
            .collect()
    }
}

/// The parent pid of `pid`, from `/proc/<pid>/stat` (None once it is gone).
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`: comm may hold spaces and parentheses.
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(1)?.parse().ok()
}

/// Sends `signal` to any process (e.g. a worker child found through a job's `worker` field).
pub fn signal_pid(pid: i32, signal: Signal) {
    let _ = kill(Pid::from_raw(pid), signal);
}

/// A process stopped with SIGSTOP. [`Paused::resume`] continues it; if the test ends
/// first, it is killed, so a failing test never leaves a stopped process behind.
pub struct Paused {
    pid: i32,
    resumed: bool,
}

impl Paused {
    /// Stops `pid`.
    pub fn stop(pid: i32) -> Paused {
        signal_pid(pid, Signal::SIGSTOP);
        Paused {
            pid,
            resumed: false,
        }
    }

    /// Continues it.
    pub fn resume(mut self) {
        signal_pid(self.pid, Signal::SIGCONT);
        self.resumed = true;
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        if !self.resumed {
            signal_pid(self.pid, Signal::SIGKILL);
            signal_pid(self.pid, Signal::SIGCONT);
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // A supervisor's worker processes run in process groups of their own (and would
        // drain for the whole grace after it dies): kill them first, then the process.
        if let Some(pid) = self.child.id() {
            for child in self.child_pids() {
                let _ = kill(Pid::from_raw(child), Signal::SIGKILL);
            }
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
}
