//! Every environment variable longhaul reads, in one table ([`ENV_VARS`]) with its default and
//! meaning, and the typed [`Config`] parsed from it at start.
//!
//! A bad value stops the process with a message that names the variable. The README's
//! configuration table is checked against [`ENV_VARS`] by a test, so the two cannot drift.

use std::str::FromStr;
use std::time::Duration;

use url::Url;

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
        name: "LONGHAUL_MAX_BODY_BYTES",
        default: "1048576",
        doc: "Largest request body the API accepts (413 above).",
    },
    EnvVar {
        name: "LONGHAUL_ARCHIVE_BATCH",
        default: "500",
        doc: "Finished jobs written to Postgres per batch.",
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
        } else if var.default.contains(' ') {
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
}

/// Retry timing.
#[derive(Debug, Clone, Copy)]
pub struct RetryConfig {
    /// First delay before jitter.
    pub base: Duration,
    /// Cap on one delay.
    pub max: Duration,
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
    /// Largest API request body.
    pub max_body_bytes: usize,
    /// Archive batch size.
    pub archive_batch: usize,
    /// Log line format.
    pub log_format: LogFormat,
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
            },
            worker: WorkerConfig {
                processes: env.positive_or("LONGHAUL_WORKER_PROCESSES", cpus)?,
                generation_concurrency: env
                    .positive_or("LONGHAUL_GENERATION_CONCURRENCY", concurrency)?,
                interpretation_concurrency: env
                    .positive_or("LONGHAUL_INTERPRETATION_CONCURRENCY", concurrency)?,
                lease: Duration::from_secs(env.positive("LONGHAUL_LEASE_SECS")?),
                shutdown_grace: Duration::from_secs(
                    env.required_or_default("LONGHAUL_SHUTDOWN_GRACE_SECS")?,
                ),
                breaker_threshold: env.positive("LONGHAUL_BREAKER_THRESHOLD")?,
                breaker_cooldown: Duration::from_secs(
                    env.positive("LONGHAUL_BREAKER_COOLDOWN_SECS")?,
                ),
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
            max_body_bytes: env.positive("LONGHAUL_MAX_BODY_BYTES")?,
            archive_batch: env.positive("LONGHAUL_ARCHIVE_BATCH")?,
            log_format,
        })
    }
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
        ] {
            let err = config(&[(var, value)]).unwrap_err();
            assert_eq!(err.var, var, "{value}");
            assert!(err.to_string().starts_with(var));
        }
        let err = Config::from_lookup(|_| None).unwrap_err();
        assert_eq!(err.var, "REDIS_URL");
    }
}
