//! [`ProviderClient`]: a small pool of reqwest clients per process, shared by every job.
//!
//! Over HTTP/2 one reqwest client holds ONE connection per origin and queues requests beyond
//! the server's `SETTINGS_MAX_CONCURRENT_STREAMS` (often ~100): thousands of concurrent
//! calls on one client would wait in waves. So the client is sharded
//! (`LONGHAUL_AI_CONNECTIONS`, by default one shard per ~100 concurrent jobs), and each call
//! goes to the least-loaded shard. Over HTTP/1.1 the shards simply split the connection pool.
//!
//! The attempt timeout wraps the whole call (headers and body); when it fires, the request
//! future is dropped, which closes the HTTP/1.1 connection or resets the HTTP/2 stream, so
//! the provider stops working (and billing) for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use url::Url;

use super::error::{ProviderError, parse_retry_after};
use super::messages::messages;
use super::wire::{ChatRequest, ChatResponse};
use crate::config::AiConfig;
use crate::ids::JobId;
use crate::job::{Input, JobResult, JobSpec, Usage};

/// A successful call.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The answer.
    pub result: JobResult,
    /// Tokens billed.
    pub usage: Usage,
}

/// Calls the provider.
#[derive(Clone)]
pub struct ProviderClient {
    shards: Arc<[Shard]>,
    /// Where the next least-loaded search starts, so ties rotate over the shards.
    next: Arc<AtomicUsize>,
    endpoint: Url,
    auth: Option<HeaderValue>,
    default_model: String,
}

impl std::fmt::Debug for ProviderClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of logs.
        f.debug_struct("ProviderClient")
            .field("endpoint", &self.endpoint.as_str())
            .field("connections", &self.shards.len())
            .field("default_model", &self.default_model)
            .finish()
    }
}

/// One reqwest client (one HTTP/2 connection, or one HTTP/1.1 pool) and its calls in flight.
struct Shard {
    http: reqwest::Client,
    in_flight: AtomicUsize,
}

/// Counts a call against its shard until dropped (also when the call is cancelled).
struct ShardGuard<'a>(&'a Shard);

impl Drop for ShardGuard<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Errors building the client.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    Http(#[from] reqwest::Error),
    /// The key has characters a header cannot carry.
    #[error("LONGHAUL_AI_API_KEY is not a valid header value")]
    BadKey,
}

impl ProviderClient {
    /// Builds the client for `config`: `config.connections` shards.
    pub fn new(config: &AiConfig) -> Result<Self, BuildError> {
        let base = config.base_url_or_default();
        let shards = (0..config.connections.max(1))
            .map(|_| {
                let mut builder = reqwest::Client::builder()
                    .pool_max_idle_per_host(usize::MAX)
                    .pool_idle_timeout(Duration::from_secs(90))
                    .tcp_nodelay(true)
                    .connect_timeout(Duration::from_secs(10))
                    // Redirects of an API call are a misconfiguration, not something to follow.
                    .redirect(reqwest::redirect::Policy::none());
                if config.http2_prior_knowledge && base.scheme() == "http" {
                    builder = builder.http2_prior_knowledge();
                }
                Ok(Shard {
                    http: builder.build()?,
                    in_flight: AtomicUsize::new(0),
                })
            })
            .collect::<Result<Vec<_>, BuildError>>()?;
        let auth = match &config.api_key {
            Some(key) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {key}"))
                    .map_err(|_| BuildError::BadKey)?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let mut endpoint = base;
        if !endpoint.path().ends_with('/') {
            let path = format!("{}/", endpoint.path());
            endpoint.set_path(&path);
        }
        let endpoint = endpoint
            .join("chat/completions")
            .map_err(|_| BuildError::BadKey)?;
        Ok(Self {
            shards: shards.into(),
            next: Arc::new(AtomicUsize::new(0)),
            endpoint,
            auth,
            default_model: config.model.clone(),
        })
    }

    /// The shard with the fewest calls in flight, counted as busy until the guard drops.
    fn pick(&self) -> ShardGuard<'_> {
        let n = self.shards.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let mut best = &self.shards[start];
        let mut best_load = best.in_flight.load(Ordering::Relaxed);
        for i in 1..n {
            if best_load == 0 {
                break;
            }
            let shard = &self.shards[(start + i) % n];
            let load = shard.in_flight.load(Ordering::Relaxed);
            if load < best_load {
                best = shard;
                best_load = load;
            }
        }
        best.in_flight.fetch_add(1, Ordering::Relaxed);
        ShardGuard(best)
    }

    /// The model a job asks for, or the default.
    pub fn model_for<'a>(&'a self, spec: &'a JobSpec) -> &'a str {
        spec.model.as_deref().unwrap_or(&self.default_model)
    }

    /// Runs one attempt of a job, giving up after `timeout`. Counted in the provider and
    /// token metrics.
    pub async fn complete(
        &self,
        job: JobId,
        attempt: u32,
        spec: &JobSpec,
        timeout: Duration,
    ) -> Result<Completion, ProviderError> {
        let started = std::time::Instant::now();
        let result = match tokio::time::timeout(timeout, self.call(job, attempt, spec)).await {
            Ok(result) => result,
            Err(_) => Err(ProviderError::Timeout(timeout)),
        };
        let m = crate::metrics::get();
        let outcome = match &result {
            Ok(_) => "ok",
            Err(ProviderError::RateLimited { .. }) => "rate_limited",
            Err(ProviderError::Unavailable { .. }) => "unavailable",
            Err(ProviderError::Rejected { .. }) => "rejected",
            Err(ProviderError::Unreachable(_)) => "unreachable",
            Err(ProviderError::BadResponse(_)) => "bad_response",
            Err(ProviderError::Timeout(_)) => "timeout",
        };
        m.provider_requests.with_label_values(&[outcome]).inc();
        m.provider_duration
            .with_label_values(&[outcome])
            .observe(started.elapsed().as_secs_f64());
        if let Ok(done) = &result {
            let kind = spec.kind.as_str();
            m.tokens
                .with_label_values(&[kind, "prompt"])
                .inc_by(done.usage.prompt_tokens);
            m.tokens
                .with_label_values(&[kind, "completion"])
                .inc_by(done.usage.completion_tokens);
        }
        result
    }

    async fn call(
        &self,
        job: JobId,
        attempt: u32,
        spec: &JobSpec,
    ) -> Result<Completion, ProviderError> {
        let model = self.model_for(spec);
        let (max_tokens, temperature) = match &spec.input {
            Input::Generation(g) => (g.max_tokens, g.temperature),
            Input::Interpretation(_) => (None, None),
        };
        let body = ChatRequest {
            model,
            messages: messages(&spec.input),
            max_tokens,
            temperature,
        };
        let shard = self.pick();
        let mut request = shard
            .0
            .http
            .post(self.endpoint.clone())
            .header("x-longhaul-job-id", job.to_string())
            .header("x-longhaul-attempt", attempt)
            .json(&body);
        if let Some(auth) = &self.auth {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        let response = request
            .send()
            .await
            .map_err(|e| ProviderError::Unreachable(describe(&e)))?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = parse_retry_after(
                response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok()),
            );
            let text = response.text().await.unwrap_or_default();
            return Err(ProviderError::from_status(
                status.as_u16(),
                retry_after,
                &text,
            ));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ProviderError::Unreachable(describe(&e)))?;
        let parsed: ChatResponse = serde_json::from_slice(&bytes)
            .map_err(|e| ProviderError::BadResponse(e.to_string()))?;
        let choice = parsed
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| ProviderError::BadResponse("no choices".into()))?;
        let text = choice
            .message
            .content
            .ok_or_else(|| ProviderError::BadResponse("no message content".into()))?;
        let usage = parsed.usage.map_or_else(Usage::default, |u| Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u
                .total_tokens
                .unwrap_or(u.prompt_tokens + u.completion_tokens),
        });
        Ok(Completion {
            result: JobResult {
                text,
                model: parsed.model.unwrap_or_else(|| model.to_owned()),
                finish_reason: choice.finish_reason.unwrap_or_else(|| "stop".into()),
            },
            usage,
        })
    }
}

/// An error's chain as one line (the key travels in a header, never in the URL).
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
