//! Every environment variable longhaul reads, in one table ([`ENV_VARS`]) with its default and
//! meaning, and the typed [`Config`] parsed from it at start.
//!
//! A bad value stops the process with a message that names the variable. The README's
//! configuration table is checked against [`ENV_VARS`] by a test, so the two cannot drift.

use std::str::FromStr;
use std::time::Duration;

use url::Url;

/// Who shares cached answers (`LONGHAUL_CACHE_SCOPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheScope {
    /// Identical requests of one tenant share an answer; tenants never see each other's.
    Tenant,
    /// Identical requests share an answer whoever sent them.
    Global,
}

/// One documented environment variable.
#[derive(Debug, Clone, Copy)]
pub struct EnvVar {
    /// The variable's name.
    pub name: &'static str,
    /// Its default, as text (`""` when there is none and it is required or optional).
    pub default: &'static str,
    /// What it does, for the README table.
    pub doc: &'static str,
}

/// Every variable longhaul reads. Defaults carry their reason in the doc text.
pub const ENV_VARS: &[EnvVar] = &[
    EnvVar {
        name: "REDIS_URL",
        default: "",
        doc: "Redis for the job state machine (required), e.g. `redis://127.0.0.1:6379`.",
    },
    EnvVar {
        name: "DATABASE_URL",
        default: "",
        doc: "Postgres for the durable archive and API keys (required), e.g. `postgres://postgres@127.0.0.1/longhaul`.",
    },
    EnvVar {
        name: "PORT",
        default: "8080",
        doc: "Port of the HTTP API.",
    },
    EnvVar {
        name: "LONGHAUL_BIND",
        default: "0.0.0.0",
        doc: "Address the HTTP API binds.",
    },
    EnvVar {
        name: "LONGHAUL_REDIS_PREFIX",
        default: "longhaul",
        doc: "Prefix of every Redis key (hash-tagged as `{prefix}` so all keys share one Cluster slot). Lets several deployments or tests share a Redis.",
    },
    EnvVar {
        name: "LONGHAUL_AI_BASE_URL",
        default: "https://api.openai.com/v1",
        doc: "Base URL of the OpenAI-compatible provider (`{base}/chat/completions`). Unset under `longhaul up`: a built-in stub provider is started and the logs say so.",
    },
    EnvVar {
        name: "LONGHAUL_AI_API_KEY",
        default: "",
        doc: "Bearer key sent to the provider (optional for local servers). Never logged.",
    },
    EnvVar {
        name: "LONGHAUL_AI_MODEL",
        default: "gpt-4o-mini",
        doc: "Model used when a job names none.",
    },
    EnvVar {
        name: "LONGHAUL_AI_HTTP2_PRIOR_KNOWLEDGE",
        default: "false",
        doc: "Speak HTTP/2 without TLS negotiation (h2c) to an `http://` provider such as the stub. Over https, HTTP/2 is negotiated anyway.",
    },
    EnvVar {
        name: "LONGHAUL_AI_CONNECTIONS",
        default: "one per 100 concurrent jobs",
        doc: "HTTP clients (over HTTP/2: connections) each worker process spreads its provider calls over, least-loaded first. HTTP/2 servers cap the streams of one connection (often at ~100) and queue the rest, so the default gives each connection at most ~100 of the process's concurrent jobs.",
    },
    EnvVar {
        name: "LONGHAUL_WORKER_PROCESSES",
        default: "number of CPUs",
        doc: "Worker processes the `longhaul worker` supervisor runs.",
    },
    EnvVar {
        name: "LONGHAUL_WORKER_CONCURRENCY",
        default: "64",
        doc: "Concurrent jobs per worker process and kind (AI calls are I/O-bound: one process holds many).",
    },
    EnvVar {
        name: "LONGHAUL_GENERATION_CONCURRENCY",
        default: "LONGHAUL_WORKER_CONCURRENCY",
        doc: "Concurrent `generation` jobs per worker process.",
    },
    EnvVar {
        name: "LONGHAUL_INTERPRETATION_CONCURRENCY",
        default: "LONGHAUL_WORKER_CONCURRENCY",
        doc: "Concurrent `interpretation` jobs per worker process.",
    },
    EnvVar {
        name: "LONGHAUL_JOB_TIMEOUT_SECS",
        default: "300",
        doc: "Per-attempt timeout, and the highest `timeout_secs` a request may ask. 5 minutes covers long generations.",
    },
    EnvVar {
        name: "LONGHAUL_GENERATION_TIMEOUT_SECS",
        default: "LONGHAUL_JOB_TIMEOUT_SECS",
        doc: "Per-attempt timeout (default and cap) of `generation` jobs.",
    },
    EnvVar {
        name: "LONGHAUL_INTERPRETATION_TIMEOUT_SECS",
        default: "LONGHAUL_JOB_TIMEOUT_SECS",
        doc: "Per-attempt timeout (default and cap) of `interpretation` jobs.",
    },
    EnvVar {
        name: "LONGHAUL_MAX_ATTEMPTS",
        default: "5",
        doc: "Attempts per job when the request gives none (1 to 25). 5 attempts with backoff ride out minutes of provider trouble.",
    },
    EnvVar {
        name: "LONGHAUL_RETRY_BASE_MS",
        default: "1000",
        doc: "First retry delay before jitter; each attempt doubles it (full jitter).",
    },
    EnvVar {
        name: "LONGHAUL_RETRY_MAX_SECS",
        default: "300",
        doc: "Cap on one retry delay (a provider `Retry-After` may ask for longer and is honoured).",
    },
    EnvVar {
        name: "LONGHAUL_BREAKER_THRESHOLD",
        default: "5",
        doc: "Consecutive provider-side failures (5xx, 429, timeouts) after which a worker process stops claiming jobs for a cool-down.",
    },
    EnvVar {
        name: "LONGHAUL_BREAKER_COOLDOWN_SECS",
        default: "2",
        doc: "First cool-down of an open circuit breaker; doubles after each failed probe, up to 60 s.",
    },
    EnvVar {
        name: "LONGHAUL_LEASE_SECS",
        default: "30",
        doc: "Lease of a running attempt; heartbeats renew it every third of it. A dead process's jobs are rescued about one lease after it died.",
    },
    EnvVar {
        name: "LONGHAUL_SHUTDOWN_GRACE_SECS",
        default: "60",
        doc: "How long SIGTERM lets in-flight jobs finish before they are put back in the queue.",
    },
    EnvVar {
        name: "LONGHAUL_RESULT_TTL_SECS",
        default: "86400",
        doc: "How long Redis keeps a finished job; Postgres keeps it after that.",
    },
    EnvVar {
        name: "LONGHAUL_CACHE_TTL_SECS",
        default: "3600",
        doc: "How long a cached answer may be reused.",
    },
    EnvVar {
        name: "LONGHAUL_WEBHOOK_ALLOW_PRIVATE",
        default: "false",
        doc: "`true` lets webhook URLs be `http` and point at loopback, private and link-local addresses (development and tests only: it opens the door to SSRF).",
    },
    EnvVar {
        name: "LONGHAUL_CACHE_SCOPE",
        default: "tenant",
        doc: "`tenant`: identical requests share an answer within one tenant only; `global`: across tenants.",
    },
    EnvVar {
        name: "LONGHAUL_CACHE_LOCAL_ENTRIES",
        default: "10000",
        doc: "Most answers each API and worker process keeps in its in-process cache (L1, in front of Redis).",
    },
    EnvVar {
        name: "LONGHAUL_MAX_BODY_BYTES",
        default: "1048576",
        doc: "Largest request body the API accepts (413 above).",
    },
    EnvVar {
        name: "LONGHAUL_REQUEST_TIMEOUT_SECS",
        default: "75",
        doc: "Longest the API works on one request before answering `503` (code `timeout`). Above the 60 s long-poll maximum.",
    },
    EnvVar {
        name: "LONGHAUL_RATE_SUBMIT_PER_SEC",
        default: "100",
        doc: "Sustained rate of `POST /v1/jobs`, `DELETE` and `retry` per tenant (GCRA in Redis, checked in the enqueue script itself); `429 rate_limited` above it.",
    },
    EnvVar {
        name: "LONGHAUL_RATE_SUBMIT_BURST",
        default: "200",
        doc: "Requests a tenant may send at once on top of the submit rate.",
    },
    EnvVar {
        name: "LONGHAUL_RATE_READ_PER_SEC",
        default: "500",
        doc: "Sustained rate of `GET /v1/jobs...` per tenant (its own bucket).",
    },
    EnvVar {
        name: "LONGHAUL_RATE_READ_BURST",
        default: "1000",
        doc: "Reads a tenant may send at once on top of the read rate.",
    },
    EnvVar {
        name: "LONGHAUL_TENANT_MAX_QUEUED",
        default: "10000",
        doc: "Jobs one tenant may have queued at once (waiting to run or to retry); a submit above it gets `429 quota_exceeded`. Keeps one tenant from burying the others' jobs.",
    },
    EnvVar {
        name: "LONGHAUL_JWT_HS256_SECRET",
        default: "",
        doc: "Enables JWT Bearer tokens signed with this HS256 secret (at least 32 bytes). Never logged.",
    },
    EnvVar {
        name: "LONGHAUL_JWT_PUBLIC_KEY",
        default: "",
        doc: "Enables JWT Bearer tokens verified with this PEM public key (RSA, EC or Ed25519; `\\n` escapes allowed). Exclusive with the HS256 secret.",
    },
    EnvVar {
        name: "LONGHAUL_JWT_ALGORITHM",
        default: "",
        doc: "JWT algorithm for the public key (`RS256`, `RS384`, `RS512`, `PS256`, `PS384`, `PS512`, `ES256`, `ES384`, `EdDSA`); by default taken from the key type (RSA: `RS256`, EC: `ES256`, Ed25519: `EdDSA`).",
    },
    EnvVar {
        name: "LONGHAUL_JWT_AUDIENCE",
        default: "",
        doc: "Required `aud` of JWTs (required when JWT is enabled).",
    },
    EnvVar {
        name: "LONGHAUL_JWT_ISSUER",
        default: "",
        doc: "Required `iss` of JWTs (required when JWT is enabled).",
    },
    EnvVar {
        name: "LONGHAUL_CORS_ORIGINS",
        default: "",
        doc: "Comma-separated origins allowed to call the API from a browser (`https://app.example.com`); empty: no CORS headers.",
    },
    EnvVar {
        name: "LONGHAUL_HSTS",
        default: "false",
        doc: "Send `Strict-Transport-Security` (set it when TLS terminates in front of the API).",
    },
    EnvVar {
        name: "LONGHAUL_ARCHIVE_BATCH",
        default: "500",
        doc: "Finished jobs written to Postgres per batch.",
    },
    EnvVar {
        name: "LONGHAUL_WORKER_METRICS_PORT",
        default: "9090",
        doc: "Port (on `LONGHAUL_BIND`) where a worker host's supervisor serves `/metrics` for all its worker processes, and `/readyz`; `0` turns it off.",
    },
    EnvVar {
        name: "LONGHAUL_SCHEDULER_LEASE_SECS",
        default: "10",
        doc: "Leader lease of the scheduler: when the leading scheduler dies, another one leads within this time.",
    },
    EnvVar {
        name: "LONGHAUL_SCHEDULE_RESCUE_LEASES",
        default: "*/5 * * * * *",
        doc: "When the scheduler puts jobs with expired leases back in the queue (6-field cron: sec min hour day month weekday, UTC). Worker processes do it too, every 500 ms.",
    },
    EnvVar {
        name: "LONGHAUL_SCHEDULE_PROMOTE_DUE",
        default: "* * * * * *",
        doc: "When the scheduler moves due retries to the queue (cron). Worker processes do it too, every 500 ms.",
    },
    EnvVar {
        name: "LONGHAUL_SCHEDULE_CACHE_CLEANUP",
        default: "0 */5 * * * *",
        doc: "When the scheduler evicts result-cache entries without a TTL or over `LONGHAUL_CACHE_MAX_ENTRIES` (cron).",
    },
    EnvVar {
        name: "LONGHAUL_SCHEDULE_KEY_EXPIRY",
        default: "30 * * * * *",
        doc: "When the scheduler disables expired API keys, purges old revoked ones and trims tenant job indexes in Redis (cron).",
    },
    EnvVar {
        name: "LONGHAUL_SCHEDULE_RESULT_RETENTION",
        default: "0 17 * * * *",
        doc: "When the scheduler deletes archived jobs older than `LONGHAUL_ARCHIVE_RETENTION_DAYS` (cron; hourly, in batches).",
    },
    EnvVar {
        name: "LONGHAUL_SCHEDULE_METRICS_ROLLUP",
        default: "15 */5 * * * *",
        doc: "When the scheduler rolls finished jobs up into hourly usage rows (`GET /v1/admin/usage`) (cron).",
    },
    EnvVar {
        name: "LONGHAUL_ARCHIVE_RETENTION_DAYS",
        default: "30",
        doc: "Archived jobs are deleted from Postgres this many days after they finished (hourly usage rollups are kept).",
    },
    EnvVar {
        name: "LONGHAUL_KEY_RETENTION_DAYS",
        default: "30",
        doc: "Revoked and expired API keys are deleted this many days after they stopped working (kept a while so `keys list` can explain a 401).",
    },
    EnvVar {
        name: "LONGHAUL_CACHE_MAX_ENTRIES",
        default: "100000",
        doc: "Most result-cache entries kept in Redis; the cache cleanup evicts those closest to expiry above it.",
    },
    EnvVar {
        name: "LONGHAUL_LOG_FORMAT",
        default: "json",
        doc: "`json` (one object per line) or `pretty`.",
    },
    EnvVar {
        name: "RUST_LOG",
        default: "info",
        doc: "Log filter (`tracing` env-filter syntax).",
    },
];

/// The README's configuration table, generated from [`ENV_VARS`] (a test keeps the README
/// identical to it).
pub fn env_table_markdown() -> String {
    let mut out = String::from("| Variable | Default | Meaning |\n|---|---|---|\n");
    for var in ENV_VARS {
        let default = if var.default.is_empty() {
            "—".to_owned()
        } else if var
            .default
            .chars()
            .all(|c| c.is_ascii_uppercase() || c == '_')
        {
            format!("`{}`", var.default)
        } else if var.default.contains(' ')
            && var
                .default
                .chars()
                .all(|c| c.is_ascii_alphabetic() || c == ' ')
        {
            var.default.to_owned()
        } else {
            format!("`{}`", var.default)
        };
        out.push_str(&format!("| `{}` | {} | {} |\n", var.name, default, var.doc));
    }
    out
}

/// A variable with a value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {reason} (got {value:?})")]
pub struct ConfigError {
    /// The variable's name.
    pub var: &'static str,
    /// The offending value.
    pub value: String,
    /// What was expected.
    pub reason: String,
}

/// The format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable.
    Pretty,
}

/// How to reach the AI provider.
#[derive(Debug, Clone)]
pub struct AiConfig {
    /// Base URL (`{base}/chat/completions`); `None` when not set in the environment.
    pub base_url: Option<Url>,
    /// Bearer key.
    pub api_key: Option<String>,
    /// Default model.
    pub model: String,
    /// h2c prior knowledge for `http://` providers.
    pub http2_prior_knowledge: bool,
    /// HTTP clients (HTTP/2 connections) each process spreads its calls over.
    pub connections: usize,
}

impl AiConfig {
    /// The provider URL to use: the configured one or the documented default.
    pub fn base_url_or_default(&self) -> Url {
        self.base_url.clone().unwrap_or_else(|| {
            Url::parse("https://api.openai.com/v1").expect("the default base URL parses")
        })
    }
}

/// Worker pool sizes and lifecycles.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Child processes of the supervisor.
    pub processes: usize,
    /// Concurrent `generation` jobs per process.
    pub generation_concurrency: usize,
    /// Concurrent `interpretation` jobs per process.
    pub interpretation_concurrency: usize,
    /// Lease of a running attempt.
    pub lease: Duration,
    /// Drain time on SIGTERM.
    pub shutdown_grace: Duration,
    /// Consecutive provider failures that open the circuit breaker.
    pub breaker_threshold: u32,
    /// First cool-down of an open breaker.
    pub breaker_cooldown: Duration,
    /// Port of the supervisor's `/metrics` and `/readyz`; `None`: off.
    pub metrics_port: Option<u16>,
}

/// Concurrent calls the default `LONGHAUL_AI_CONNECTIONS` puts on one HTTP/2 connection: the
/// common `SETTINGS_MAX_CONCURRENT_STREAMS` of providers (calls beyond it would queue).
pub const STREAMS_PER_CONNECTION: usize = 100;

/// The maintenance tasks the scheduler runs, each with the variable of its schedule.
pub const SCHEDULED_TASKS: [(&str, &str); 6] = [
    ("rescue_leases", "LONGHAUL_SCHEDULE_RESCUE_LEASES"),
    ("promote_due", "LONGHAUL_SCHEDULE_PROMOTE_DUE"),
    ("cache_cleanup", "LONGHAUL_SCHEDULE_CACHE_CLEANUP"),
    ("key_expiry", "LONGHAUL_SCHEDULE_KEY_EXPIRY"),
    ("result_retention", "LONGHAUL_SCHEDULE_RESULT_RETENTION"),
    ("metrics_rollup", "LONGHAUL_SCHEDULE_METRICS_ROLLUP"),
];

/// The scheduler: its leader lease, the schedule of each task, and what the tasks keep.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Leader lease.
    pub lease: Duration,
    /// `(task, schedule)` for each of [`SCHEDULED_TASKS`], in that order.
    pub schedules: Vec<(&'static str, cron::Schedule)>,
    /// How long archived jobs are kept after they finished.
    pub archive_retention: Duration,
    /// How long revoked and expired API keys are kept after they stopped working.
    pub key_retention: Duration,
    /// Most result-cache entries kept.
    pub cache_max_entries: u64,
}

impl SchedulerConfig {
    /// The schedule of `task`, if it is one of [`SCHEDULED_TASKS`].
    pub fn schedule(&self, task: &str) -> Option<&cron::Schedule> {
        self.schedules
            .iter()
            .find(|(name, _)| *name == task)
            .map(|(_, schedule)| schedule)
    }
}

/// Retry timing.
#[derive(Debug, Clone, Copy)]
pub struct RetryConfig {
    /// First delay before jitter.
    pub base: Duration,
    /// Cap on one delay.
    pub max: Duration,
}

/// One rate-limit bucket: a sustained rate and a burst on top of it (GCRA).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Requests per second, sustained.
    pub per_sec: f64,
    /// Requests allowed at once.
    pub burst: u32,
}

impl RateLimit {
    /// Time between two requests at the sustained rate, in microseconds (at least 1).
    pub fn emission_interval_micros(&self) -> u64 {
        ((1_000_000.0 / self.per_sec).round() as u64).max(1)
    }
}

/// What verifies JWT signatures.
#[derive(Clone, PartialEq, Eq)]
pub enum JwtKey {
    /// An HS256 shared secret.
    Hs256Secret(String),
    /// A PEM public key (RSA, EC or Ed25519).
    PublicKeyPem(String),
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwtKey::Hs256Secret(_) => f.write_str("Hs256Secret([redacted])"),
            JwtKey::PublicKeyPem(_) => f.write_str("PublicKeyPem(..)"),
        }
    }
}

/// JWT Bearer tokens, when enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    /// The verification key.
    pub key: JwtKey,
    /// `LONGHAUL_JWT_ALGORITHM`, when set (checked against the key by the API at start).
    pub algorithm: Option<String>,
    /// Required `aud`.
    pub audience: String,
    /// Required `iss`.
    pub issuer: String,
}

/// The API's front door: who may call it, how often, and how it answers browsers.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// JWT Bearer tokens; `None`: API keys only.
    pub jwt: Option<JwtConfig>,
    /// Bucket of submits (and cancels, retries) per tenant.
    pub submit_rate: RateLimit,
    /// Bucket of reads per tenant.
    pub read_rate: RateLimit,
    /// Jobs a tenant may have queued at once.
    pub tenant_max_queued: u64,
    /// Origins allowed by CORS; empty: no CORS.
    pub cors_origins: Vec<String>,
    /// Send `Strict-Transport-Security`.
    pub hsts: bool,
    /// Longest one request may take.
    pub request_timeout: Duration,
    /// `LONGHAUL_WEBHOOK_ALLOW_PRIVATE`: webhook URLs may be http and private addresses.
    pub webhook_allow_private: bool,
}

/// The whole configuration of a longhaul process.
#[derive(Debug, Clone)]
pub struct Config {
    /// `REDIS_URL`.
    pub redis_url: String,
    /// `DATABASE_URL`.
    pub database_url: String,
    /// API bind address and port.
    pub bind: String,
    /// API port.
    pub port: u16,
    /// Prefix of every Redis key.
    pub redis_prefix: String,
    /// The AI provider.
    pub ai: AiConfig,
    /// Worker pools.
    pub worker: WorkerConfig,
    /// Defaults and caps for job requests.
    pub limits: crate::job::Limits,
    /// Retry timing.
    pub retry: RetryConfig,
    /// How long Redis keeps finished jobs.
    pub result_ttl: Duration,
    /// How long cached answers live.
    pub cache_ttl: Duration,
    /// Who shares cached answers.
    pub cache_scope: CacheScope,
    /// Entries of each process's in-process cache.
    pub cache_local_entries: u64,
    /// Largest API request body.
    pub max_body_bytes: usize,
    /// Archive batch size.
    pub archive_batch: usize,
    /// Log line format.
    pub log_format: LogFormat,
    /// Auth, rate limits and HTTP hardening of the API.
    pub api: ApiConfig,
    /// The scheduler and its maintenance tasks.
    pub scheduler: SchedulerConfig,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env { lookup: &lookup };
        let concurrency: usize = env.positive("LONGHAUL_WORKER_CONCURRENCY")?;
        let generation_concurrency =
            env.positive_or("LONGHAUL_GENERATION_CONCURRENCY", concurrency)?;
        let interpretation_concurrency =
            env.positive_or("LONGHAUL_INTERPRETATION_CONCURRENCY", concurrency)?;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let prefix: String = env.required_or_default("LONGHAUL_REDIS_PREFIX")?;
        if prefix.is_empty() || prefix.contains(['{', '}', ' ']) {
            return Err(env.error(
                "LONGHAUL_REDIS_PREFIX",
                &prefix,
                "must be non-empty, without braces or spaces",
            ));
        }
        let base_url = match env
            .raw("LONGHAUL_AI_BASE_URL")
            .filter(|v| !v.trim().is_empty())
        {
            None => None,
            Some(raw) => Some(
                parse_base_url(&raw)
                    .map_err(|reason| env.error("LONGHAUL_AI_BASE_URL", &raw, reason))?,
            ),
        };
        let max_attempts: u32 = env.positive("LONGHAUL_MAX_ATTEMPTS")?;
        let job_timeout: u32 = env.positive("LONGHAUL_JOB_TIMEOUT_SECS")?;
        if max_attempts > crate::job::Limits::MAX_ATTEMPTS_CEILING {
            return Err(env.error(
                "LONGHAUL_MAX_ATTEMPTS",
                &max_attempts.to_string(),
                "must be 1 to 25",
            ));
        }
        let log_format = match env
            .required_or_default::<String>("LONGHAUL_LOG_FORMAT")?
            .as_str()
        {
            "json" => LogFormat::Json,
            "pretty" => LogFormat::Pretty,
            other => {
                return Err(env.error("LONGHAUL_LOG_FORMAT", other, "expected `json` or `pretty`"));
            }
        };
        Ok(Config {
            redis_url: env.required("REDIS_URL")?,
            database_url: env.required("DATABASE_URL")?,
            bind: env.required_or_default("LONGHAUL_BIND")?,
            port: env.required_or_default("PORT")?,
            redis_prefix: prefix,
            ai: AiConfig {
                base_url,
                api_key: env.raw("LONGHAUL_AI_API_KEY").filter(|k| !k.is_empty()),
                model: env.required_or_default("LONGHAUL_AI_MODEL")?,
                http2_prior_knowledge: env
                    .required_or_default("LONGHAUL_AI_HTTP2_PRIOR_KNOWLEDGE")?,
                connections: env.positive_or(
                    "LONGHAUL_AI_CONNECTIONS",
                    (generation_concurrency + interpretation_concurrency)
                        .div_ceil(STREAMS_PER_CONNECTION),
                )?,
            },
            worker: WorkerConfig {
                processes: env.positive_or("LONGHAUL_WORKER_PROCESSES", cpus)?,
                generation_concurrency,
                interpretation_concurrency,
                lease: Duration::from_secs(env.positive("LONGHAUL_LEASE_SECS")?),
                shutdown_grace: Duration::from_secs(
                    env.required_or_default("LONGHAUL_SHUTDOWN_GRACE_SECS")?,
                ),
                breaker_threshold: env.positive("LONGHAUL_BREAKER_THRESHOLD")?,
                breaker_cooldown: Duration::from_secs(
                    env.positive("LONGHAUL_BREAKER_COOLDOWN_SECS")?,
                ),
                metrics_port: Some(env.required_or_default("LONGHAUL_WORKER_METRICS_PORT")?)
                    .filter(|port: &u16| *port != 0),
            },
            limits: crate::job::Limits {
                default_max_attempts: max_attempts,
                generation_timeout_secs: env
                    .positive_or("LONGHAUL_GENERATION_TIMEOUT_SECS", job_timeout)?,
                interpretation_timeout_secs: env
                    .positive_or("LONGHAUL_INTERPRETATION_TIMEOUT_SECS", job_timeout)?,
            },
            retry: RetryConfig {
                base: Duration::from_millis(env.positive("LONGHAUL_RETRY_BASE_MS")?),
                max: Duration::from_secs(env.positive("LONGHAUL_RETRY_MAX_SECS")?),
            },
            result_ttl: Duration::from_secs(env.positive("LONGHAUL_RESULT_TTL_SECS")?),
            cache_ttl: Duration::from_secs(env.positive("LONGHAUL_CACHE_TTL_SECS")?),
            cache_scope: match env
                .required_or_default::<String>("LONGHAUL_CACHE_SCOPE")?
                .as_str()
            {
                "tenant" => CacheScope::Tenant,
                "global" => CacheScope::Global,
                other => {
                    return Err(env.error(
                        "LONGHAUL_CACHE_SCOPE",
                        other,
                        "expected `tenant` or `global`",
                    ));
                }
            },
            cache_local_entries: env.positive("LONGHAUL_CACHE_LOCAL_ENTRIES")?,
            max_body_bytes: env.positive("LONGHAUL_MAX_BODY_BYTES")?,
            archive_batch: env.positive("LONGHAUL_ARCHIVE_BATCH")?,
            log_format,
            api: parse_api(&env)?,
            scheduler: parse_scheduler(&env)?,
        })
    }
}

fn parse_scheduler(env: &Env<'_>) -> Result<SchedulerConfig, ConfigError> {
    const DAY: u64 = 24 * 3600;
    let mut schedules = Vec::with_capacity(SCHEDULED_TASKS.len());
    for (task, var) in SCHEDULED_TASKS {
        let raw: String = env.required_or_default(var)?;
        let schedule = raw.trim().parse::<cron::Schedule>().map_err(|e| {
            env.error(
                var,
                &raw,
                format!("expected a 6-field cron expression (sec min hour day month weekday): {e}"),
            )
        })?;
        schedules.push((task, schedule));
    }
    Ok(SchedulerConfig {
        lease: Duration::from_secs(env.positive("LONGHAUL_SCHEDULER_LEASE_SECS")?),
        schedules,
        archive_retention: Duration::from_secs(
            DAY.saturating_mul(env.positive("LONGHAUL_ARCHIVE_RETENTION_DAYS")?),
        ),
        key_retention: Duration::from_secs(
            DAY.saturating_mul(env.positive("LONGHAUL_KEY_RETENTION_DAYS")?),
        ),
        cache_max_entries: env.positive("LONGHAUL_CACHE_MAX_ENTRIES")?,
    })
}

fn parse_api(env: &Env<'_>) -> Result<ApiConfig, ConfigError> {
    let rate = |per_sec: &'static str, burst: &'static str| -> Result<RateLimit, ConfigError> {
        let rate: f64 = env.required_or_default(per_sec)?;
        if !rate.is_finite() || rate <= 0.0 {
            return Err(env.error(per_sec, &rate.to_string(), "must be a positive number"));
        }
        Ok(RateLimit {
            per_sec: rate,
            burst: env.positive(burst)?,
        })
    };
    let set = |name: &'static str| {
        let _ = Env::documented_default(name);
        env.raw(name).filter(|v| !v.trim().is_empty())
    };
    let key = match (
        set("LONGHAUL_JWT_HS256_SECRET"),
        set("LONGHAUL_JWT_PUBLIC_KEY"),
    ) {
        (Some(_), Some(_)) => {
            return Err(env.error(
                "LONGHAUL_JWT_PUBLIC_KEY",
                "(a PEM key)",
                "set either LONGHAUL_JWT_HS256_SECRET or LONGHAUL_JWT_PUBLIC_KEY, not both",
            ));
        }
        (Some(secret), None) => {
            if secret.len() < 32 {
                return Err(env.error(
                    "LONGHAUL_JWT_HS256_SECRET",
                    "(hidden)",
                    "must be at least 32 bytes",
                ));
            }
            Some(JwtKey::Hs256Secret(secret))
        }
        // Keys pasted into one-line env files carry `\n` escapes.
        (None, Some(pem)) => Some(JwtKey::PublicKeyPem(pem.replace("\\n", "\n"))),
        (None, None) => None,
    };
    let jwt = match key {
        None => None,
        Some(key) => {
            let required = |name: &'static str| {
                set(name)
                    .map(|v| v.trim().to_owned())
                    .ok_or_else(|| env.error(name, "", "is required when JWT is enabled"))
            };
            Some(JwtConfig {
                key,
                algorithm: set("LONGHAUL_JWT_ALGORITHM").map(|a| a.trim().to_owned()),
                audience: required("LONGHAUL_JWT_AUDIENCE")?,
                issuer: required("LONGHAUL_JWT_ISSUER")?,
            })
        }
    };
    let cors_origins = set("LONGHAUL_CORS_ORIGINS")
        .unwrap_or_default()
        .split(',')
        .map(|o| o.trim().trim_end_matches('/').to_owned())
        .filter(|o| !o.is_empty())
        .collect::<Vec<_>>();
    for origin in &cors_origins {
        let ok = Url::parse(origin).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https") && u.host().is_some() && u.path() == "/"
        });
        if !ok {
            return Err(env.error(
                "LONGHAUL_CORS_ORIGINS",
                origin,
                "expected origins like https://app.example.com, comma-separated",
            ));
        }
    }
    Ok(ApiConfig {
        jwt,
        submit_rate: rate("LONGHAUL_RATE_SUBMIT_PER_SEC", "LONGHAUL_RATE_SUBMIT_BURST")?,
        read_rate: rate("LONGHAUL_RATE_READ_PER_SEC", "LONGHAUL_RATE_READ_BURST")?,
        tenant_max_queued: env.positive("LONGHAUL_TENANT_MAX_QUEUED")?,
        cors_origins,
        hsts: env.required_or_default("LONGHAUL_HSTS")?,
        webhook_allow_private: env.required_or_default("LONGHAUL_WEBHOOK_ALLOW_PRIVATE")?,
        request_timeout: Duration::from_secs(env.positive("LONGHAUL_REQUEST_TIMEOUT_SECS")?),
    })
}

fn parse_base_url(raw: &str) -> Result<Url, &'static str> {
    let url = Url::parse(raw).map_err(|_| "expected an absolute http(s) URL")?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("expected an absolute http(s) URL");
    }
    Ok(url)
}

/// Typed access to variables, with defaults taken from [`ENV_VARS`].
struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Env<'_> {
    fn raw(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    fn error(&self, var: &'static str, value: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            var,
            value: value.to_owned(),
            reason: reason.into(),
        }
    }

    fn documented_default(name: &'static str) -> &'static str {
        ENV_VARS
            .iter()
            .find(|v| v.name == name)
            .map(|v| v.default)
            .unwrap_or_else(|| panic!("{name} is read but missing from ENV_VARS"))
    }

    fn parse<T: FromStr>(&self, name: &'static str, value: &str) -> Result<T, ConfigError> {
        value.trim().parse::<T>().map_err(|_| {
            self.error(
                name,
                value,
                format!("expected {}", std::any::type_name::<T>()),
            )
        })
    }

    fn required<T: FromStr>(&self, name: &'static str) -> Result<T, ConfigError> {
        let _ = Self::documented_default(name);
        match self.raw(name) {
            Some(v) if !v.trim().is_empty() => self.parse(name, &v),
            _ => Err(self.error(name, "", "is required")),
        }
    }

    fn required_or_default<T: FromStr>(&self, name: &'static str) -> Result<T, ConfigError> {
        let value = self
            .raw(name)
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| Self::documented_default(name).to_owned());
        self.parse(name, &value)
    }

    fn positive<T: FromStr + PartialOrd + Default + ToString>(
        &self,
        name: &'static str,
    ) -> Result<T, ConfigError> {
        let value: T = self.required_or_default(name)?;
        if value <= T::default() {
            return Err(self.error(name, &value.to_string(), "must be positive"));
        }
        Ok(value)
    }

    fn positive_or<T: FromStr + PartialOrd + Default>(
        &self,
        name: &'static str,
        fallback: T,
    ) -> Result<T, ConfigError> {
        let _ = Self::documented_default(name);
        match self.raw(name).filter(|v| !v.trim().is_empty()) {
            None => Ok(fallback),
            Some(v) => {
                let n: T = self.parse(name, &v)?;
                if n <= T::default() {
                    return Err(self.error(name, &v, "must be positive"));
                }
                Ok(n)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut map: HashMap<String, String> = [
            ("REDIS_URL", "redis://127.0.0.1"),
            ("DATABASE_URL", "postgres://localhost/x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (k, v) in pairs {
            map.insert((*k).to_owned(), (*v).to_owned());
        }
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_come_from_the_documented_table() {
        let c = config(&[]).unwrap();
        assert_eq!(c.port, 8080);
        assert_eq!(c.worker.generation_concurrency, 64);
        assert_eq!(c.worker.lease, Duration::from_secs(30));
        assert_eq!(c.limits.default_max_attempts, 5);
        assert!(c.ai.base_url.is_none());
    }

    #[test]
    fn per_kind_concurrency_falls_back_to_the_worker_concurrency() {
        let c = config(&[
            ("LONGHAUL_WORKER_CONCURRENCY", "8"),
            ("LONGHAUL_INTERPRETATION_CONCURRENCY", "2"),
        ])
        .unwrap();
        assert_eq!(c.worker.generation_concurrency, 8);
        assert_eq!(c.worker.interpretation_concurrency, 2);
    }

    #[test]
    fn provider_connections_default_to_one_per_hundred_concurrent_jobs() {
        assert_eq!(config(&[]).unwrap().ai.connections, 2);
        let c = config(&[("LONGHAUL_GENERATION_CONCURRENCY", "5000")]).unwrap();
        assert_eq!(c.ai.connections, 51);
        let c = config(&[("LONGHAUL_AI_CONNECTIONS", "3")]).unwrap();
        assert_eq!(c.ai.connections, 3);
        assert_eq!(
            config(&[("LONGHAUL_AI_CONNECTIONS", "0")]).unwrap_err().var,
            "LONGHAUL_AI_CONNECTIONS"
        );
    }

    #[test]
    fn every_scheduled_task_has_a_valid_default_schedule_and_the_lease_is_configurable() {
        let c = config(&[]).unwrap();
        assert_eq!(c.scheduler.lease, Duration::from_secs(10));
        assert_eq!(c.scheduler.schedules.len(), SCHEDULED_TASKS.len());
        assert_eq!(
            c.scheduler.archive_retention,
            Duration::from_secs(30 * 24 * 3600)
        );
        assert_eq!(c.worker.metrics_port, Some(9090));
        let c = config(&[
            ("LONGHAUL_SCHEDULER_LEASE_SECS", "2"),
            ("LONGHAUL_SCHEDULE_KEY_EXPIRY", "*/2 * * * * *"),
            ("LONGHAUL_WORKER_METRICS_PORT", "0"),
        ])
        .unwrap();
        assert_eq!(c.scheduler.lease, Duration::from_secs(2));
        assert_eq!(
            c.scheduler.schedule("key_expiry").unwrap().source(),
            "*/2 * * * * *"
        );
        assert_eq!(c.worker.metrics_port, None);
    }

    #[test]
    fn the_readme_configuration_table_is_generated_from_env_vars() {
        let readme = include_str!("../../README.md");
        let start = readme
            .find("<!-- env-table:start -->\n")
            .expect("README has the table start marker");
        let end = readme
            .find("<!-- env-table:end -->")
            .expect("README has the table end marker");
        let table = &readme[start + "<!-- env-table:start -->\n".len()..end];
        assert_eq!(
            table,
            env_table_markdown(),
            "README table drifted from ENV_VARS; paste the output of env_table_markdown()"
        );
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (var, value) in [
            ("LONGHAUL_LEASE_SECS", "soon"),
            ("LONGHAUL_LEASE_SECS", "0"),
            ("PORT", "99999"),
            ("LONGHAUL_LOG_FORMAT", "xml"),
            ("LONGHAUL_AI_BASE_URL", "ftp://x"),
            ("LONGHAUL_MAX_ATTEMPTS", "26"),
            ("LONGHAUL_REDIS_PREFIX", "{x}"),
            ("LONGHAUL_SCHEDULE_KEY_EXPIRY", "every minute"),
            ("LONGHAUL_SCHEDULE_PROMOTE_DUE", "* * * *"),
            ("LONGHAUL_SCHEDULER_LEASE_SECS", "0"),
            ("LONGHAUL_WORKER_METRICS_PORT", "http"),
        ] {
            let err = config(&[(var, value)]).unwrap_err();
            assert_eq!(err.var, var, "{value}");
            assert!(err.to_string().starts_with(var));
        }
        let err = Config::from_lookup(|_| None).unwrap_err();
        assert_eq!(err.var, "REDIS_URL");
    }

    #[test]
    fn jwt_needs_one_key_an_audience_and_an_issuer_and_never_shows_the_secret() {
        let secret = "s".repeat(32);
        assert!(config(&[]).unwrap().api.jwt.is_none());
        let err = config(&[("LONGHAUL_JWT_HS256_SECRET", &secret)]).unwrap_err();
        assert_eq!(err.var, "LONGHAUL_JWT_AUDIENCE");
        let err = config(&[
            ("LONGHAUL_JWT_HS256_SECRET", &secret),
            ("LONGHAUL_JWT_AUDIENCE", "longhaul"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "LONGHAUL_JWT_ISSUER");
        let err = config(&[("LONGHAUL_JWT_HS256_SECRET", "short-secret")]).unwrap_err();
        assert!(!err.to_string().contains("short-secret"));
        let err = config(&[
            ("LONGHAUL_JWT_HS256_SECRET", &secret),
            ("LONGHAUL_JWT_PUBLIC_KEY", "-----BEGIN PUBLIC KEY-----"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "LONGHAUL_JWT_PUBLIC_KEY");
        let c = config(&[
            ("LONGHAUL_JWT_HS256_SECRET", &secret),
            ("LONGHAUL_JWT_AUDIENCE", "longhaul"),
            ("LONGHAUL_JWT_ISSUER", "https://auth.example.com"),
        ])
        .unwrap();
        let jwt = c.api.jwt.unwrap();
        assert_eq!(jwt.key, JwtKey::Hs256Secret(secret.clone()));
        assert!(!format!("{jwt:?}").contains(&secret));
    }

    #[test]
    fn front_door_limits_have_defaults_and_reject_bad_values() {
        let c = config(&[]).unwrap();
        assert_eq!(c.api.submit_rate.burst, 200);
        assert_eq!(c.api.submit_rate.emission_interval_micros(), 10_000);
        assert_eq!(c.api.read_rate.emission_interval_micros(), 2_000);
        assert_eq!(c.api.tenant_max_queued, 10_000);
        assert_eq!(c.api.request_timeout, Duration::from_secs(75));
        assert!(c.api.cors_origins.is_empty() && !c.api.hsts);
        let c = config(&[(
            "LONGHAUL_CORS_ORIGINS",
            " https://app.example.com/, http://localhost:3000 ",
        )])
        .unwrap();
        assert_eq!(
            c.api.cors_origins,
            ["https://app.example.com", "http://localhost:3000"]
        );
        for (var, value) in [
            ("LONGHAUL_RATE_SUBMIT_PER_SEC", "0"),
            ("LONGHAUL_RATE_READ_PER_SEC", "NaN"),
            ("LONGHAUL_RATE_READ_BURST", "0"),
            ("LONGHAUL_TENANT_MAX_QUEUED", "-1"),
            ("LONGHAUL_CORS_ORIGINS", "app.example.com"),
            ("LONGHAUL_CORS_ORIGINS", "https://app.example.com/path"),
            ("LONGHAUL_HSTS", "yes please"),
        ] {
            assert_eq!(config(&[(var, value)]).unwrap_err().var, var, "{value}");
        }
    }
}
