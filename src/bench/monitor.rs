//! Counting what longhaul's processes send to Redis.
//!
//! `INFO commandstats` counts every command Redis ran, including the commands a script runs
//! (`redis.call` inside `EVALSHA` is counted under its own name), so on its own it cannot say
//! how many round trips a client made. `MONITOR` can: it shows each command with its sender,
//! and a script's commands with the sender `lua`. [`Monitor`] tallies the `MONITOR` stream
//! per sender class and command (an `EVALSHA` under its script's name), in windows delimited
//! by the `INFO commandstats` snapshots the benchmark takes itself ([`Monitor::mark`]), so
//! the two counts cover exactly the same commands and cross-check each other:
//! `commandstats Δ = longhaul's commands + the scripts' commands + the snapshot itself`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Commands seen in one window, by sender class.
#[derive(Debug, Clone, Default)]
pub struct Window {
    /// Sent by longhaul's processes: command (or `evalsha:<script>`) → count.
    pub longhaul: BTreeMap<String, u64>,
    /// Run by scripts (`redis.call`).
    pub in_scripts: u64,
    /// Sent by the benchmark itself (the snapshots).
    pub own: u64,
}

impl Window {
    /// Every command longhaul's processes sent.
    pub fn longhaul_total(&self) -> u64 {
        self.longhaul.values().sum()
    }
}

/// `INFO commandstats`: command → (calls, usec).
pub type CommandStats = HashMap<String, (u64, u64)>;

/// Calls and usec of `stats` minus `before`, summed over commands matching `pick`.
pub fn delta(
    after: &CommandStats,
    before: &CommandStats,
    pick: impl Fn(&str) -> bool,
) -> (u64, u64) {
    after
        .iter()
        .filter(|(name, _)| pick(name))
        .map(|(name, (calls, usec))| {
            let (c0, u0) = before.get(name).copied().unwrap_or((0, 0));
            (calls.saturating_sub(c0), usec.saturating_sub(u0))
        })
        .fold((0, 0), |(c, u), (dc, du)| (c + dc, u + du))
}

struct Shared {
    windows: Vec<Window>,
    marks_seen: usize,
}

/// A `MONITOR` connection and the tally of what it saw.
pub struct Monitor {
    shared: Arc<Mutex<Shared>>,
    marker: redis::aio::MultiplexedConnection,
    marks_sent: usize,
    task: tokio::task::JoinHandle<()>,
}

impl Monitor {
    /// Starts monitoring the Redis on `port`. Windows begin at the first [`Self::mark`].
    pub async fn start(port: u16) -> anyhow::Result<Monitor> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
        let mut marker = client.get_multiplexed_async_connection().await?;
        let info: String = redis::cmd("CLIENT")
            .arg("INFO")
            .query_async(&mut marker)
            .await?;
        let marker_addr = info
            .split_whitespace()
            .find_map(|f| f.strip_prefix("addr="))
            .context("CLIENT INFO without addr")?
            .to_owned();
        let scripts: HashMap<String, &'static str> = longhaul_jobs::store::script_hashes()
            .into_iter()
            .map(|(name, sha)| (sha, name))
            .collect();
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(b"MONITOR\r\n").await?;
        let mut lines = BufReader::new(stream).lines();
        let ok = lines.next_line().await?.unwrap_or_default();
        if ok != "+OK" {
            bail!("MONITOR answered {ok}");
        }
        let shared = Arc::new(Mutex::new(Shared {
            windows: Vec::new(),
            marks_seen: 0,
        }));
        let task = tokio::spawn({
            let shared = shared.clone();
            async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    let Some((source, command, first_arg)) = parse(&line) else {
                        continue;
                    };
                    let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
                    if source == marker_addr {
                        if command == "info" {
                            s.marks_seen += 1;
                            s.windows.push(Window::default());
                            // The snapshot itself belongs to the window it opens.
                            if let Some(w) = s.windows.last_mut() {
                                w.own += 1;
                            }
                        } else if let Some(w) = s.windows.last_mut() {
                            w.own += 1;
                        }
                        continue;
                    }
                    let Some(w) = s.windows.last_mut() else {
                        continue;
                    };
                    if source == "lua" {
                        w.in_scripts += 1;
                        continue;
                    }
                    let label = if command == "evalsha" {
                        let script = scripts.get(first_arg).copied().unwrap_or("unknown");
                        format!("evalsha:{script}")
                    } else {
                        command
                    };
                    *w.longhaul.entry(label).or_default() += 1;
                }
            }
        });
        Ok(Monitor {
            shared,
            marker,
            marks_sent: 0,
            task,
        })
    }

    /// Takes an `INFO commandstats` snapshot, which also closes the current window and
    /// opens the next; returns the snapshot once `MONITOR` has shown it (so the closed window
    /// holds every command that ran before it).
    pub async fn mark(&mut self) -> anyhow::Result<CommandStats> {
        let text: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut self.marker)
            .await?;
        self.marks_sent += 1;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let seen = self
                .shared
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .marks_seen;
            if seen >= self.marks_sent {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                bail!("MONITOR did not show the snapshot");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(parse_commandstats(&text))
    }

    /// The window between snapshot `i` and snapshot `i + 1` (0-based).
    pub fn window(&self, i: usize) -> Window {
        self.shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .windows
            .get(i)
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `+1700000000.123456 [0 127.0.0.1:5555] "EVALSHA" "abc…" "3" …` →
/// (`127.0.0.1:5555`, `evalsha`, `abc…`).
fn parse(line: &str) -> Option<(&str, String, &str)> {
    let open = line.find('[')?;
    let close = open + line[open..].find(']')?;
    let source = line[open + 1..close].split_once(' ')?.1;
    let mut quoted = line[close + 1..].split('"');
    quoted.next()?;
    let command = quoted.next()?.to_ascii_lowercase();
    quoted.next();
    let first_arg = quoted.next().unwrap_or("");
    Some((source, command, first_arg))
}

/// `cmdstat_evalsha:calls=3,usec=120,…` lines → map.
pub fn parse_commandstats(text: &str) -> CommandStats {
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let field = |key: &str| -> Option<u64> {
                rest.split(',')
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))?
                    .parse()
                    .ok()
            };
            Some((name.to_owned(), (field("calls")?, field("usec")?)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_monitor_line_gives_sender_command_and_first_argument() {
        let line = r#"+1795449565.411875 [0 127.0.0.1:49396] "EVALSHA" "abc123" "3" "k""#;
        assert_eq!(
            parse(line),
            Some(("127.0.0.1:49396", "evalsha".to_owned(), "abc123"))
        );
        let line = r#"+1795449565.411951 [0 lua] "set" "a" "b""#;
        assert_eq!(parse(line), Some(("lua", "set".to_owned(), "a")));
        let line = r#"+1795449565.411976 [0 lua] "time""#;
        assert_eq!(parse(line), Some(("lua", "time".to_owned(), "")));
    }

    #[test]
    fn commandstats_are_parsed_and_subtracted() {
        let before = parse_commandstats(
            "# Commandstats\r\ncmdstat_evalsha:calls=3,usec=120,usec_per_call=40.00,rejected_calls=0,failed_calls=0\r\n",
        );
        let after = parse_commandstats(
            "cmdstat_evalsha:calls=5,usec=200,usec_per_call=40.00\r\ncmdstat_blpop:calls=2,usec=4,usec_per_call=2.00\r\n",
        );
        assert_eq!(delta(&after, &before, |_| true), (4, 84));
        assert_eq!(delta(&after, &before, |n| n == "evalsha"), (2, 80));
    }
}
