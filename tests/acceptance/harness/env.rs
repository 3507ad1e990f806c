//! [`TestEnv`]: one isolated longhaul deployment for one test.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use super::done::DoneLog;
use super::process::{Proc, binary};

/// Clients that submit at once in [`TestEnv::submit_all`].
const SUBMITTERS: usize = 16;

/// A free TCP port on 127.0.0.1 (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The body of a `generation` job with `prompt` (stub directives go in the prompt).
pub fn generation(prompt: &str) -> Value {
    json!({"kind": "generation", "input": {"prompt": prompt}})
}

/// Serializes a JSON value into a request body.
fn json_body(value: &Value) -> String {
    value.to_string()
}

fn admin_pg_url() -> String {
    std::env::var("LONGHAUL_TEST_PG_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn shared_redis_url() -> String {
    std::env::var("LONGHAUL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Options of a [`TestEnv`].
pub struct Builder {
    name: String,
    redis_url: Option<String>,
    env: Vec<(String, String)>,
    stub_latency_ms: u64,
}

impl Builder {
    /// Uses this Redis instead of the shared one.
    pub fn redis_url(mut self, url: String) -> Self {
        self.redis_url = Some(url);
        self
    }

    /// Adds an environment variable to every process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Latency of every stub completion.
    pub fn stub_latency_ms(mut self, ms: u64) -> Self {
        self.stub_latency_ms = ms;
        self
    }

    /// Creates the database, migrates it, starts the stub and creates an API key.
    pub async fn build(self) -> TestEnv {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let short = &id[..12];
        let db_name = format!("lh_at_{short}");
        let admin = sqlx::PgPool::connect(&admin_pg_url())
            .await
            .expect("postgres reachable");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}")))
            .execute(&admin)
            .await
            .expect("create test database");
        admin.close().await;
        let base = admin_pg_url();
        let database_url = match base.rfind('/') {
            Some(i) => format!("{}/{db_name}", &base[..i]),
            None => panic!("admin URL has no database part"),
        };
        let log_dir = std::env::temp_dir()
            .join("longhaul-test-logs")
            .join(format!("{}-{short}", self.name));
        std::fs::create_dir_all(&log_dir).expect("log dir");

        let mut env = TestEnv {
            name: self.name,
            prefix: format!("t{short}"),
            db_name,
            database_url,
            redis_url: self.redis_url.unwrap_or_else(shared_redis_url),
            stub_url: String::new(),
            stub: None,
            api_port: free_port(),
            key: String::new(),
            extra_env: self.env,
            log_dir,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(90))
                .build()
                .expect("http client"),
        };
        env.start_stub(self.stub_latency_ms).await;
        let mut migrate = env.spawn("migrate", &["migrate"], &[]);
        assert_eq!(
            migrate.wait_exit(Duration::from_secs(60)).await,
            Some(Some(0)),
            "migrate failed:\n{}",
            migrate.log_text()
        );
        env.key = env.create_key("acme").await;
        env
    }
}

/// One isolated deployment: Redis prefix, Postgres database, stub provider, API key.
pub struct TestEnv {
    pub name: String,
    pub prefix: String,
    pub db_name: String,
    pub database_url: String,
    pub redis_url: String,
    /// The stub's root URL (its API is under `/v1`, its counters under `/stub`).
    pub stub_url: String,
    stub: Option<Proc>,
    pub api_port: u16,
    /// An API key of tenant `acme`.
    pub key: String,
    extra_env: Vec<(String, String)>,
    pub log_dir: PathBuf,
    pub http: reqwest::Client,
}

impl TestEnv {
    /// A deployment named after the test.
    pub fn builder(name: &str) -> Builder {
        Builder {
            name: name.to_owned(),
            redis_url: None,
            env: Vec::new(),
            stub_latency_ms: 0,
        }
    }

    /// A deployment with default options.
    pub async fn new(name: &str) -> TestEnv {
        Self::builder(name).build().await
    }

    /// The environment every process gets.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        let mut vars: Vec<(String, String)> = [
            ("REDIS_URL", self.redis_url.clone()),
            ("DATABASE_URL", self.database_url.clone()),
            ("LONGHAUL_REDIS_PREFIX", self.prefix.clone()),
            ("LONGHAUL_AI_BASE_URL", format!("{}/v1", self.stub_url)),
            ("PORT", self.api_port.to_string()),
            ("LONGHAUL_BIND", "127.0.0.1".to_owned()),
            ("LONGHAUL_LOG_FORMAT", "json".to_owned()),
            ("RUST_LOG", "info".to_owned()),
            ("LONGHAUL_RETRY_BASE_MS", "50".to_owned()),
            ("LONGHAUL_WORKER_PROCESSES", "2".to_owned()),
            // Off unless a test asks: two worker hosts on one machine would share port 9090.
            ("LONGHAUL_WORKER_METRICS_PORT", "0".to_owned()),
            // Far above what any test sends, so only the tests of the limits meet them.
            ("LONGHAUL_RATE_SUBMIT_PER_SEC", "1000000".to_owned()),
            ("LONGHAUL_RATE_SUBMIT_BURST", "1000000".to_owned()),
            ("LONGHAUL_RATE_READ_PER_SEC", "1000000".to_owned()),
            ("LONGHAUL_RATE_READ_BURST", "1000000".to_owned()),
            ("LONGHAUL_TENANT_MAX_QUEUED", "1000000".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (k, v) in &self.extra_env {
            vars.retain(|(name, _)| name != k);
            vars.push((k.clone(), v.clone()));
        }
        vars
    }

    /// Starts `longhaul <args>` with this deployment's environment plus `extra`.
    pub fn spawn(&self, name: &str, args: &[&str], extra: &[(&str, &str)]) -> Proc {
        let mut vars = self.env_vars();
        for (k, v) in extra {
            vars.retain(|(name, _)| name != k);
            vars.push(((*k).to_owned(), (*v).to_owned()));
        }
        let log = self
            .log_dir
            .join(format!("{name}-{}.log", uuid::Uuid::new_v4().simple()));
        Proc::spawn(name, args, &vars, log)
    }

    async fn start_stub(&mut self, latency_ms: u64) {
        let mut child = tokio::process::Command::new(binary())
            .args([
                "stub-llm",
                "--addr",
                "127.0.0.1:0",
                "--latency-ms",
                &latency_ms.to_string(),
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn stub");
        let stdout = child.stdout.take().expect("stub stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("stub starts")
            .expect("stub stdout readable")
            .expect("stub prints its address");
        self.stub_url = line
            .strip_prefix("stub-llm listening on ")
            .expect("stub banner")
            .trim()
            .to_owned();
        // Keep draining stdout so the stub never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.stub = Some(Proc {
            name: "stub".into(),
            child,
            log: self.log_dir.join("stub.log"),
        });
    }

    /// Creates an API key for `tenant` with the CLI, returns it.
    pub async fn create_key(&self, tenant: &str) -> String {
        let out = tokio::process::Command::new(binary())
            .args(["keys", "create", "--tenant", tenant])
            .env_clear()
            .envs(self.env_vars())
            .output()
            .await
            .expect("run keys create");
        assert!(
            out.status.success(),
            "keys create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf8 key")
            .trim()
            .to_owned()
    }

    /// The API's base URL.
    pub fn api(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    /// Starts the API and waits until it answers.
    pub async fn start_api(&self) -> Proc {
        let proc = self.spawn("api", &["api"], &[]);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self
                .http
                .get(format!("{}/healthz", self.api()))
                .send()
                .await
                && r.status().is_success()
            {
                return proc;
            }
            assert!(
                Instant::now() < deadline,
                "api did not start:\n{}",
                proc.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts a worker supervisor with extra env.
    pub fn start_worker(&self, extra: &[(&str, &str)]) -> Proc {
        self.spawn("worker", &["worker"], extra)
    }

    /// POSTs a job with `key`.
    pub async fn post_job_as(&self, key: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/jobs", self.api()))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(json_body(body))
            .send()
            .await
            .expect("POST /v1/jobs")
    }

    /// Submits a job as `acme`, asserts 202, returns its id.
    pub async fn submit(&self, body: &Value) -> String {
        let response = self.post_job_as(&self.key, body).await;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(status, 202, "submit answered {status}: {text}");
        let v: Value = serde_json::from_str(&text).expect("JSON body");
        v["id"].as_str().expect("id").to_owned()
    }

    /// Calls the API with `key` and no body: (status code, JSON body or null).
    pub async fn api_call(&self, method: reqwest::Method, key: &str, path: &str) -> (u16, Value) {
        let r = self
            .http
            .request(method.clone(), format!("{}{path}", self.api()))
            .bearer_auth(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// GETs a job with `key`: (status code, body).
    pub async fn get_job_as(&self, key: &str, id: &str) -> (u16, Value) {
        self.api_call(reqwest::Method::GET, key, &format!("/v1/jobs/{id}"))
            .await
    }

    /// Waits until Redis has expired the job's hash (only Postgres holds it then).
    pub async fn wait_redis_forgot(&self, id: &str) {
        let mut redis = self.redis().await;
        let key = self.redis_key(&format!("job:{id}"));
        self.wait_until(
            Duration::from_secs(30),
            "redis to expire the job",
            async || {
                redis::cmd("EXISTS")
                    .arg(&key)
                    .query_async::<u64>(&mut redis)
                    .await
                    .unwrap()
                    == 0
            },
        )
        .await
    }

    /// Polls a job (as `acme`) until it is terminal; panics after `limit`.
    pub async fn wait_terminal(&self, id: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let (code, job) = self.get_job_as(&self.key, id).await;
            if code == 200
                && matches!(
                    job["status"].as_str(),
                    Some("succeeded" | "failed" | "cancelled")
                )
            {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} not terminal after {limit:?}: {job}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Submits every body as `acme` (several at once), asserts 202 for each, returns the
    /// ids in the order of `bodies`.
    pub async fn submit_all(&self, bodies: impl IntoIterator<Item = Value>) -> Vec<String> {
        futures::stream::iter(bodies)
            .map(|body| async move { self.submit(&body).await })
            .buffered(SUBMITTERS)
            .collect()
            .await
    }

    /// Waits until each of `ids` is terminal, all within `limit`; returns them in order.
    pub async fn wait_all_terminal(&self, ids: &[String], limit: Duration) -> Vec<Value> {
        let deadline = Instant::now() + limit;
        let mut jobs = Vec::with_capacity(ids.len());
        for id in ids {
            let left = deadline.saturating_duration_since(Instant::now());
            jobs.push(self.wait_terminal(id, left).await);
        }
        jobs
    }

    /// Polls `check` until it gives a value; panics naming `what` after `limit`.
    pub async fn wait_for<T>(
        &self,
        limit: Duration,
        what: &str,
        mut check: impl AsyncFnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(value) = check().await {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "[{}] still waiting after {limit:?} for: {what}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls `check` until it holds; panics naming `what` after `limit`.
    pub async fn wait_until(
        &self,
        limit: Duration,
        what: &str,
        mut check: impl AsyncFnMut() -> bool,
    ) {
        self.wait_for(limit, what, async || check().await.then_some(()))
            .await
    }

    /// Subscribes to the channel of terminal transitions (`{prefix}:done`); call it before
    /// the jobs can finish.
    pub async fn subscribe_done(&self) -> DoneLog {
        DoneLog::subscribe(&self.redis_url, self.redis_key("done")).await
    }

    /// The pid of the worker process running `id` now, from the `worker` field
    /// (`<host>-<pid>-<index>`) of its Redis hash; None when no process holds it.
    pub async fn worker_pid_of(&self, id: &str) -> Option<i32> {
        self.worker_pids_of(&[id.to_owned()]).await[0]
    }

    /// [`TestEnv::worker_pid_of`] for many jobs at once, in order.
    pub async fn worker_pids_of(&self, ids: &[String]) -> Vec<Option<i32>> {
        let mut redis = self.redis().await;
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hget(self.redis_key(&format!("job:{id}")), "worker");
        }
        let workers: Vec<Option<String>> = pipe.query_async(&mut redis).await.expect("HGET worker");
        workers
            .iter()
            .map(|w| w.as_deref()?.rsplit('-').nth(1)?.parse().ok())
            .collect()
    }

    /// The stub's in-flight gauges: `{"in_flight": n, "max_in_flight": m}`.
    pub async fn stub_in_flight(&self) -> Value {
        self.stub_get("/stub/in-flight").await
    }

    /// Requests of one job that the worker dropped before the stub answered.
    pub async fn stub_closed_early_for(&self, id: &str) -> u64 {
        self.stub_get("/stub/closed-early").await["by_job"][id]
            .as_u64()
            .unwrap_or(0)
    }

    /// Calls the stub received per job.
    pub async fn stub_calls_by_job(&self) -> HashMap<String, u64> {
        serde_json::from_value(self.stub_calls().await["by_job"].take()).expect("by_job map")
    }

    /// GETs a JSON document of the stub (`/stub/...`).
    pub async fn stub_get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.stub_url))
            .send()
            .await
            .expect("stub reachable")
            .json()
            .await
            .expect("stub JSON")
    }

    /// The stub's call counters.
    pub async fn stub_calls(&self) -> Value {
        self.http
            .get(format!("{}/stub/calls", self.stub_url))
            .send()
            .await
            .expect("stub calls")
            .json()
            .await
            .expect("stub calls JSON")
    }

    /// Calls the stub received for one job.
    pub async fn stub_calls_for(&self, id: &str) -> u64 {
        let v: Value = self
            .http
            .get(format!("{}/stub/calls/{id}", self.stub_url))
            .send()
            .await
            .expect("stub calls")
            .json()
            .await
            .expect("stub JSON");
        v["calls"].as_u64().unwrap_or(0)
    }

    /// A Redis connection (to the deployment's Redis).
    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.redis_url.as_str())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("redis reachable")
    }

    /// A key of this deployment (`{prefix}:rest`).
    pub fn redis_key(&self, rest: &str) -> String {
        format!("{{{}}}:{rest}", self.prefix)
    }

    /// A pool on the deployment's database.
    pub async fn pg(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.database_url)
            .await
            .expect("test database")
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        drop(self.stub.take());
        // Best effort: drop the database and the prefix's keys.
        let _ = std::process::Command::new("psql")
            .args([
                &admin_pg_url(),
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db_name),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        if let Ok(client) = redis::Client::open(self.redis_url.as_str())
            && let Ok(mut conn) = client.get_connection()
        {
            let pattern = format!("{{{}}}*", self.prefix);
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(pattern)
                .query(&mut conn)
                .unwrap_or_default();
            for chunk in keys.chunks(500) {
                let _: Result<(), _> = redis::cmd("UNLINK").arg(chunk).query(&mut conn);
            }
        }
    }
}
