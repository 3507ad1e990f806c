//! [`Deployment`]: what one scenario runs on. A private `redis-server` on a free port with
//! the shared Redis's persistence settings, a Postgres database of its own (migrated, with an
//! API key), and the longhaul processes (stub provider, api, worker host) as child
//! processes of this executable, each logging to a file. Everything is stopped and removed
//! when the scenario ends.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

use super::BenchArgs;

/// Redis settings copied from the shared Redis (persistence and threading shape throughput).
const COPIED_SETTINGS: [&str; 6] = [
    "appendonly",
    "appendfsync",
    "save",
    "io-threads",
    "hz",
    "maxmemory-policy",
];

/// The key prefix of every benchmark deployment (each has a Redis of its own).
pub const PREFIX: &str = "bench";

/// A free TCP port on 127.0.0.1 (bound and released).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A private `redis-server`.
pub struct Redis {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The settings it was started with, and where they came from.
    pub settings: String,
    child: Child,
    dir: PathBuf,
}

impl Redis {
    async fn start(shared_url: &str, log_dir: &std::path::Path) -> anyhow::Result<Redis> {
        let (settings, source) = match shared_settings(shared_url).await {
            Ok(s) => (s, format!("copied from the shared Redis {shared_url}")),
            Err(_) => (
                vec![
                    ("appendonly".to_owned(), "yes".to_owned()),
                    ("appendfsync".to_owned(), "everysec".to_owned()),
                ],
                "docker-compose's (the shared Redis was unreachable)".to_owned(),
            ),
        };
        let port = free_port()?;
        let dir = log_dir.join("redis-data");
        std::fs::create_dir_all(&dir)?;
        let mut cmd = Command::new("redis-server");
        cmd.arg("--port")
            .arg(port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(&dir);
        for (name, value) in &settings {
            cmd.arg(format!("--{name}")).arg(value);
        }
        let log = std::fs::File::create(log_dir.join("redis.log"))?;
        let child = cmd
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .context("starting redis-server (is it on PATH?)")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("the private redis-server did not start");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let shown: Vec<String> = settings
            .iter()
            .map(|(k, v)| format!("{k}={}", if v.is_empty() { "\"\"" } else { v }))
            .collect();
        Ok(Redis {
            port,
            settings: format!("{} ({source})", shown.join(" ")),
            child,
            dir,
        })
    }

    /// The server's pid.
    pub fn pid(&self) -> Option<i32> {
        self.child.id().map(|p| p as i32)
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A new multiplexed connection.
    pub async fn conn(&self) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        Ok(redis::Client::open(self.url())?
            .get_multiplexed_async_connection()
            .await?)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn shared_settings(url: &str) -> anyhow::Result<Vec<(String, String)>> {
    let client = redis::Client::open(url)?;
    let mut conn = tokio::time::timeout(
        Duration::from_secs(2),
        client.get_multiplexed_async_connection(),
    )
    .await??;
    let mut out = Vec::new();
    for name in COPIED_SETTINGS {
        let pair: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg(name)
            .query_async(&mut conn)
            .await?;
        if let [_, value] = pair.as_slice() {
            out.push((name.to_owned(), value.clone()));
        }
    }
    Ok(out)
}

/// A child process of this executable, killed (with its own children) when dropped.
struct Proc {
    child: Child,
}

impl Proc {
    fn pid(&self) -> Option<i32> {
        self.child.id().map(|p| p as i32)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            for child in children_of(pid) {
                let _ = kill(Pid::from_raw(child), Signal::SIGKILL);
            }
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// Pids whose parent is `parent` (from `/proc`).
pub fn children_of(parent: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let after = &stat[stat.rfind(')')? + 1..];
                    after.split_whitespace().nth(1)?.parse::<i32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

/// A `/proc/<pid>/status` field in kB (`VmRSS`, `VmHWM`).
pub fn status_kb(pid: i32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time a process (all its threads) has used so far, from `/proc/<pid>/stat` (user +
/// system, in the kernel's 100 Hz ticks).
pub fn cpu_secs(pid: i32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after = &stat[stat.rfind(')')? + 1..];
            let fields: Vec<&str> = after.split_whitespace().collect();
            // After the command: state is field 3, utime 14 and stime 15 (1-based).
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) as f64 / 100.0)
        })
        .unwrap_or(0.0)
}

/// CPU time of every process whose command is `comm` (e.g. every `postgres` backend).
pub fn cpu_secs_of_command(comm: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let wanted = format!("({comm})");
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|stat| stat.contains(&wanted))
        })
        .map(cpu_secs)
        .sum()
}

/// One scenario's Redis, database and longhaul processes.
pub struct Deployment {
    /// The private Redis.
    pub redis: Redis,
    /// `postgres://…/<db>`.
    pub database_url: String,
    db_name: String,
    admin_url: String,
    /// Port of the API.
    pub api_port: u16,
    /// An API key of tenant `bench`.
    pub key: String,
    /// Where each process logs.
    pub log_dir: PathBuf,
    vars: Vec<(String, String)>,
    stub: Option<Proc>,
    /// The stub's root URL.
    pub stub_url: String,
    api: Option<Proc>,
    worker: Option<Proc>,
}

impl Deployment {
    /// Starts the private Redis, creates and migrates the database, creates an API key.
    pub async fn start(name: &'static str, args: &BenchArgs) -> anyhow::Result<Deployment> {
        let stamp = uuid::Uuid::now_v7().simple().to_string();
        let log_dir = std::env::temp_dir()
            .join("longhaul-bench-logs")
            .join(format!("{name}-{}", &stamp[..16]));
        std::fs::create_dir_all(&log_dir)?;
        let redis = Redis::start(&args.shared_redis_url, &log_dir).await?;
        let db_name = format!("lh_bench_{}", &stamp[stamp.len() - 12..]);
        let admin = sqlx::PgPool::connect(&args.pg_admin_url)
            .await
            .with_context(|| format!("connecting to Postgres at {}", args.pg_admin_url))?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}")))
            .execute(&admin)
            .await
            .context("creating the scenario's database")?;
        admin.close().await;
        let database_url = match args.pg_admin_url.rfind('/') {
            Some(i) => format!("{}/{db_name}", &args.pg_admin_url[..i]),
            None => bail!("--pg-admin-url has no database part"),
        };
        let api_port = free_port()?;
        let vars = [
            ("REDIS_URL", redis.url()),
            ("DATABASE_URL", database_url.clone()),
            ("LONGHAUL_REDIS_PREFIX", PREFIX.to_owned()),
            ("PORT", api_port.to_string()),
            ("LONGHAUL_BIND", "127.0.0.1".to_owned()),
            ("LONGHAUL_LOG_FORMAT", "json".to_owned()),
            ("RUST_LOG", args.log.clone()),
            ("LONGHAUL_WORKER_METRICS_PORT", "0".to_owned()),
            // One tenant sends everything: its rate limits and queued cap are lifted.
            ("LONGHAUL_RATE_SUBMIT_PER_SEC", "1000000000".to_owned()),
            ("LONGHAUL_RATE_SUBMIT_BURST", "1000000000".to_owned()),
            ("LONGHAUL_RATE_READ_PER_SEC", "1000000000".to_owned()),
            ("LONGHAUL_RATE_READ_BURST", "1000000000".to_owned()),
            ("LONGHAUL_TENANT_MAX_QUEUED", "1000000000".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect::<Vec<_>>();
        let mut vars = vars;
        for pair in &args.env {
            let Some((k, v)) = pair.split_once('=') else {
                bail!("--env expects KEY=VALUE, got {pair:?}");
            };
            vars.retain(|(name, _)| name != k);
            vars.push((k.to_owned(), v.to_owned()));
        }
        let mut deployment = Deployment {
            redis,
            database_url,
            db_name,
            admin_url: args.pg_admin_url.clone(),
            api_port,
            key: String::new(),
            log_dir,
            vars,
            stub: None,
            stub_url: String::new(),
            api: None,
            worker: None,
        };
        let migrate = deployment
            .command(&["migrate"], &[], "migrate")?
            .status()
            .await?;
        if !migrate.success() {
            bail!("longhaul migrate failed (see {:?})", deployment.log_dir);
        }
        let out = deployment
            .command(&["keys", "create", "--tenant", "bench"], &[], "keys")?
            .stdout(Stdio::piped())
            .output()
            .await?;
        if !out.status.success() {
            bail!("longhaul keys create failed");
        }
        deployment.key = String::from_utf8(out.stdout)?.trim().to_owned();
        Ok(deployment)
    }

    fn command(
        &self,
        args: &[&str],
        extra: &[(&str, String)],
        log: &str,
    ) -> anyhow::Result<Command> {
        let exe = std::env::current_exe().context("cannot find the longhaul executable")?;
        let file = std::fs::File::create(self.log_dir.join(format!("{log}.log")))?;
        let mut cmd = Command::new(exe);
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env_with(extra))
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .kill_on_drop(true);
        Ok(cmd)
    }

    fn env_with(&self, extra: &[(&str, String)]) -> Vec<(String, String)> {
        let mut vars = self.vars.clone();
        for (k, v) in extra {
            vars.retain(|(name, _)| name != k);
            vars.push(((*k).to_owned(), v.clone()));
        }
        vars
    }

    /// The environment of the longhaul processes, as `K=V` (URLs and the key left out).
    pub fn describe_env(&self, extra: &[(&str, String)]) -> String {
        self.env_with(extra)
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "REDIS_URL" | "DATABASE_URL" | "PORT"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Starts the stub provider with `latency_ms` on every completion; the longhaul
    /// processes started after it call it.
    pub async fn start_stub(&mut self, latency_ms: u64) -> anyhow::Result<()> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .args([
                "stub-llm",
                "--addr",
                "127.0.0.1:0",
                "--latency-ms",
                &latency_ms.to_string(),
            ])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(
                self.log_dir.join("stub.log"),
            )?))
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().context("stub stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("the stub did not start")??
            .context("the stub exited before listening")?;
        self.stub_url = line
            .strip_prefix("stub-llm listening on ")
            .context("unexpected stub banner")?
            .trim()
            .to_owned();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.vars.push((
            "LONGHAUL_AI_BASE_URL".to_owned(),
            format!("{}/v1", self.stub_url),
        ));
        self.stub = Some(Proc { child });
        Ok(())
    }

    /// Starts the API and waits until it answers.
    pub async fn start_api(&mut self) -> anyhow::Result<()> {
        let child = self.command(&["api"], &[], "api")?.spawn()?;
        self.api = Some(Proc { child });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut conn) = super::load::Conn::connect(self.api_addr()).await
                && let Ok(r) = conn.request("GET", "/healthz", "", None).await
                && r.status == 200
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the api did not start (see {:?})", self.log_dir);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The API's pid.
    pub fn api_pid(&self) -> Option<i32> {
        self.api.as_ref().and_then(Proc::pid)
    }

    /// The API's address.
    pub fn api_addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.api_port).into()
    }

    /// Starts a worker host (`longhaul worker`) with `extra` environment.
    pub fn start_worker(&mut self, extra: &[(&str, String)]) -> anyhow::Result<()> {
        let child = self.command(&["worker"], extra, "worker")?.spawn()?;
        self.worker = Some(Proc { child });
        Ok(())
    }

    /// Waits until `listeners` idle fetches are blocked on their wake-up lists (every
    /// worker process is up and idle).
    pub async fn wait_workers_idle(&self, listeners: usize) -> anyhow::Result<()> {
        let mut conn = self.redis.conn().await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let list: String = redis::cmd("CLIENT")
                .arg("LIST")
                .query_async(&mut conn)
                .await?;
            let blocked = list.lines().filter(|l| l.contains("cmd=blpop")).count();
            if blocked >= listeners {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "only {blocked} of {listeners} worker fetches became idle (see {:?})",
                    self.log_dir
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// CPU time used so far by: the worker host (supervisor and processes), redis-server,
    /// the stub, and every Postgres process on the machine.
    pub fn cpu_split(&self) -> [f64; 4] {
        let worker = self.worker.as_ref().and_then(Proc::pid).map_or(0.0, |pid| {
            cpu_secs(pid) + children_of(pid).into_iter().map(cpu_secs).sum::<f64>()
        });
        [
            worker,
            self.redis.pid().map_or(0.0, cpu_secs),
            self.stub.as_ref().and_then(Proc::pid).map_or(0.0, cpu_secs),
            cpu_secs_of_command("postgres"),
        ]
    }

    /// Pids of the worker processes (the supervisor's children).
    pub fn worker_pids(&self) -> Vec<i32> {
        self.worker
            .as_ref()
            .and_then(Proc::pid)
            .map(children_of)
            .unwrap_or_default()
    }

    /// A pool on the scenario's database.
    pub async fn pg(&self) -> anyhow::Result<sqlx::PgPool> {
        Ok(sqlx::PgPool::connect(&self.database_url).await?)
    }

    /// Waits until the archive holds `n` jobs; returns when it did.
    pub async fn wait_archived(&self, n: usize, limit: Duration) -> anyhow::Result<Instant> {
        let pg = self.pg().await?;
        let deadline = Instant::now() + limit;
        loop {
            let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM jobs")
                .fetch_one(&pg)
                .await?;
            if count as usize >= n {
                pg.close().await;
                return Ok(Instant::now());
            }
            if Instant::now() > deadline {
                bail!("only {count} of {n} jobs archived after {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops every process and drops the database.
    pub async fn shutdown(mut self) {
        self.worker = None;
        self.api = None;
        self.stub = None;
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(admin) = sqlx::PgPool::connect(&self.admin_url).await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.db_name
            )))
            .execute(&admin)
            .await;
            admin.close().await;
        }
    }
}
