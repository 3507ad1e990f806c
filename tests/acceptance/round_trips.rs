//! The Redis round trips a job costs end to end (issue 8's figure, as a regression check):
//! jobs that succeed on their first attempt must cost at most 6 commands each, amortised.
//!
//! How it counts, so that the figure does not depend on timing:
//! - Everything runs against a private `redis-server`, watched with `MONITOR`, which names
//!   the sender of every command: a command a script runs is sent by `lua` and is not a round
//!   trip; a script call counts once; a pipeline once per command (as Redis sees them). The
//!   test's own snapshots (`INFO commandstats`) delimit the windows, and the count is
//!   cross-checked against the `INFO commandstats` delta of the same window: every command
//!   Redis ran is either longhaul's, a script's, or the snapshot.
//! - The test sends no Redis command while jobs run: it learns that they ended from the
//!   `done` channel (subscribed before the first window) and that they were archived from
//!   Postgres.
//! - Heartbeats cannot fire: the lease is 600 s, so the first renewal is 200 s away (longer
//!   jobs would pay them by share, one script call per process per third of a lease).
//! - Work on a timer rather than per job is accounted for: the maintenance tick's `maintain`
//!   calls (recognised by their script) are left out, and idle fetches (`BLPOP` that time out
//!   and the claim after each) and archive reads that time out are measured in an idle window
//!   of the same deployment first; their rate times the length of the job window is
//!   subtracted. Archive batches (a read, an acknowledgement and a delete per batch) and
//!   claim batches count by share, as the jobs share them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::harness::{RedisServer, TestEnv, generation};

/// Jobs of the check.
const JOBS: usize = 200;
/// The target of issue 8.
const MAX_ROUND_TRIPS_PER_JOB: f64 = 6.0;

#[tokio::test]
async fn a_job_that_succeeds_first_time_costs_at_most_six_redis_round_trips() {
    let redis = RedisServer::start().await;
    let env = TestEnv::builder("round_trips")
        .redis_url(redis.url())
        .env("LONGHAUL_LEASE_SECS", "600")
        .build()
        .await;
    let _api = env.start_api().await;
    let _worker = env.start_worker(&[]);
    let mut conn = env.redis().await;
    // Both processes' fetches of both kinds are idle (blocked on their wake-up lists).
    env.wait_until(Duration::from_secs(30), "idle worker fetches", async || {
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        list.lines().filter(|l| l.contains("cmd=blpop")).count() >= 4
    })
    .await;
    let done = env.subscribe_done().await;
    let pg = env.pg().await;
    let mut monitor = Monitor::start(redis.port).await;

    let s0 = monitor.mark().await;
    let idle_started = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s1 = monitor.mark().await;
    let idle_len = idle_started.elapsed().as_secs_f64();

    let jobs_started = Instant::now();
    let ids = env
        .submit_all((0..JOBS).map(|i| generation(&format!("round trip {i}"))))
        .await;
    env.wait_until(Duration::from_secs(60), "every job ended", async || {
        ids.iter().all(|id| done.count(id) > 0)
    })
    .await;
    env.wait_until(Duration::from_secs(60), "every job archived", async || {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM jobs")
            .fetch_one(&pg)
            .await
            .unwrap_or((0,));
        n as usize >= JOBS
    })
    .await;
    let s2 = monitor.mark().await;
    let jobs_len = jobs_started.elapsed().as_secs_f64();

    let idle = monitor.window(0);
    let busy = monitor.window(1);
    assert_eq!(
        delta(&s2, &s1),
        busy.longhaul_total() + busy.in_scripts + busy.own,
        "MONITOR and INFO commandstats disagree on the job window: {busy:?}"
    );
    assert_eq!(
        delta(&s1, &s0),
        idle.longhaul_total() + idle.in_scripts + idle.own,
        "MONITOR and INFO commandstats disagree on the idle window: {idle:?}"
    );
    let per_job_commands = busy.per_job(JOBS);
    let idle_share = idle.per_job_commands_total() as f64 * jobs_len / idle_len;
    let per_job = (busy.per_job_commands_total() as f64 - idle_share) / JOBS as f64;
    eprintln!(
        "round trips per job: {per_job:.2} (job window {jobs_len:.2} s, idle rate {:.1}/s); by command: {per_job_commands}",
        idle.per_job_commands_total() as f64 / idle_len
    );
    assert!(
        per_job <= MAX_ROUND_TRIPS_PER_JOB,
        "{per_job:.2} Redis round trips per job (at most {MAX_ROUND_TRIPS_PER_JOB}); by command: {per_job_commands}"
    );

    for job in env.wait_all_terminal(&ids, Duration::from_secs(30)).await {
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(job["attempts"], 1, "{job}");
    }
}

/// Commands seen between two snapshots.
#[derive(Debug, Clone, Default)]
struct Window {
    /// Sent by longhaul's processes: command (an `EVALSHA` as `evalsha:<script>`) → count.
    longhaul: BTreeMap<String, u64>,
    /// Run by scripts.
    in_scripts: u64,
    /// The snapshot that opened the window.
    own: u64,
}

impl Window {
    fn longhaul_total(&self) -> u64 {
        self.longhaul.values().sum()
    }

    /// Commands counted against jobs: all of longhaul's but the maintenance tick's.
    fn per_job_commands_total(&self) -> u64 {
        self.longhaul
            .iter()
            .filter(|(name, _)| name.as_str() != "evalsha:maintain")
            .map(|(_, n)| n)
            .sum()
    }

    fn per_job(&self, jobs: usize) -> String {
        self.longhaul
            .iter()
            .map(|(name, n)| format!("{name} {:.2}", *n as f64 / jobs as f64))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A `MONITOR` connection tallying commands per window; windows start at each snapshot.
struct Monitor {
    windows: Arc<Mutex<Vec<Window>>>,
    marker: redis::aio::MultiplexedConnection,
    marks: usize,
    task: tokio::task::JoinHandle<()>,
}

impl Monitor {
    async fn start(port: u16) -> Monitor {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
        let mut marker = client.get_multiplexed_async_connection().await.unwrap();
        let info: String = redis::cmd("CLIENT")
            .arg("INFO")
            .query_async(&mut marker)
            .await
            .unwrap();
        let marker_addr = info
            .split_whitespace()
            .find_map(|f| f.strip_prefix("addr="))
            .expect("CLIENT INFO names the address")
            .to_owned();
        let scripts: HashMap<String, &'static str> = longhaul_jobs::store::script_hashes()
            .into_iter()
            .map(|(name, sha)| (sha, name))
            .collect();
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        stream.write_all(b"MONITOR\r\n").await.unwrap();
        let mut lines = BufReader::new(stream).lines();
        assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("+OK"));
        let windows = Arc::new(Mutex::new(Vec::<Window>::new()));
        let task = tokio::spawn({
            let windows = windows.clone();
            async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    let Some((source, command, first_arg)) = parse(&line) else {
                        continue;
                    };
                    let mut windows = windows.lock().unwrap();
                    if source == marker_addr {
                        windows.push(Window {
                            own: 1,
                            ..Window::default()
                        });
                        continue;
                    }
                    let Some(w) = windows.last_mut() else {
                        continue;
                    };
                    if source == "lua" {
                        w.in_scripts += 1;
                    } else {
                        let label = if command == "evalsha" {
                            format!("evalsha:{}", scripts.get(first_arg).unwrap_or(&"unknown"))
                        } else {
                            command
                        };
                        *w.longhaul.entry(label).or_default() += 1;
                    }
                }
            }
        });
        Monitor {
            windows,
            marker,
            marks: 0,
            task,
        }
    }

    /// Snapshots `INFO commandstats` (closing a window, opening the next) once `MONITOR`
    /// has shown the snapshot, so the closed window is complete.
    async fn mark(&mut self) -> HashMap<String, u64> {
        let text: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut self.marker)
            .await
            .unwrap();
        self.marks += 1;
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.windows.lock().unwrap().len() < self.marks {
            assert!(
                Instant::now() < deadline,
                "MONITOR did not show the snapshot"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        text.lines()
            .filter_map(|line| {
                let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = rest.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
                Some((name.to_owned(), calls.parse().ok()?))
            })
            .collect()
    }

    fn window(&self, i: usize) -> Window {
        self.windows.lock().unwrap()[i].clone()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Commands Redis ran between two snapshots.
fn delta(after: &HashMap<String, u64>, before: &HashMap<String, u64>) -> u64 {
    after
        .iter()
        .map(|(name, n)| n - before.get(name).copied().unwrap_or(0))
        .sum()
}

/// `+1700000000.123456 [0 127.0.0.1:5555] "EVALSHA" "abc" …` → (sender, command, first arg).
fn parse(line: &str) -> Option<(&str, String, &str)> {
    let open = line.find('[')?;
    let close = open + line[open..].find(']')?;
    let source = line[open + 1..close].split_once(' ')?.1;
    let mut quoted = line[close + 1..].split('"');
    quoted.next()?;
    let command = quoted.next()?.to_ascii_lowercase();
    quoted.next();
    Some((source, command, quoted.next().unwrap_or("")))
}
