//! [`Proc`]: a child process of the `longhaul` binary whose output goes to a log file, and
//! which is killed when the test ends (pass or fail).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
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
}

impl Drop for Proc {
    fn drop(&mut self) {
        // The supervisor's children run in their own process group: kill the whole group
        // of a supervisor too (best effort), then the process itself.
        if let Some(pid) = self.child.id() {
            let _ = kill(Pid::from_raw(-(pid as i32)), Signal::SIGKILL);
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
}
