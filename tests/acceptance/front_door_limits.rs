//! How much a tenant may ask: rate limits (429 with `Retry-After` and `RateLimit-*`), the cap
//! on jobs queued at once, idempotency under concurrency, and the cost of a submit (one
//! Redis round trip, no Postgres).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::harness::{RedisServer, TestEnv, free_port, generation};

async fn post_with_key(env: &TestEnv, idempotency_key: &str, body: &Value) -> reqwest::Response {
    env.http
        .post(format!("{}/v1/jobs", env.api()))
        .bearer_auth(&env.key)
        .header("idempotency-key", idempotency_key)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn header(r: &reqwest::Response, name: &str) -> Option<u64> {
    r.headers().get(name)?.to_str().ok()?.parse().ok()
}

#[tokio::test]
async fn a_burst_over_the_rate_gets_429_with_a_retry_after_the_client_can_honour() {
    let env = TestEnv::builder("ratelimit")
        .env("LONGHAUL_RATE_SUBMIT_PER_SEC", "0.5")
        .env("LONGHAUL_RATE_SUBMIT_BURST", "3")
        .env("LONGHAUL_RATE_READ_PER_SEC", "1")
        .env("LONGHAUL_RATE_READ_BURST", "2")
        .build()
        .await;
    let _api = env.start_api().await;

    let mut remaining = Vec::new();
    let mut last_id = String::new();
    for i in 0..3 {
        let r = env
            .post_job_as(&env.key, &generation(&format!("burst {i}")))
            .await;
        assert_eq!(r.status(), 202);
        assert_eq!(header(&r, "ratelimit-limit"), Some(3));
        assert!(header(&r, "ratelimit-reset").is_some());
        remaining.push(header(&r, "ratelimit-remaining").unwrap());
        last_id = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    assert_eq!(remaining, [2, 1, 0]);

    let refused = env.post_job_as(&env.key, &generation("one too many")).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(header(&refused, "ratelimit-remaining"), Some(0));
    assert_eq!(header(&refused, "ratelimit-limit"), Some(3));
    let retry_after = header(&refused, "retry-after").expect("Retry-After in whole seconds");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "rate_limited", "{problem}");
    let mut redis = env.redis().await;
    let queued: u64 = redis::cmd("LLEN")
        .arg(env.redis_key("ready:generation"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(queued, 3, "a refused submit enqueued nothing");

    // Reads have their own bucket, untouched by the submits.
    for _ in 0..2 {
        let r = env
            .http
            .get(format!("{}/v1/jobs/{last_id}", env.api()))
            .bearer_auth(&env.key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "ratelimit-limit"), Some(2));
    }
    let r = env
        .http
        .get(format!("{}/v1/jobs", env.api()))
        .bearer_auth(&env.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(header(&r, "retry-after").is_some());

    // A client that honours Retry-After gets through.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let r = env
        .post_job_as(&env.key, &generation("after waiting"))
        .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());

    // Another tenant has its own bucket.
    let other = env.create_key("globex").await;
    assert_eq!(
        env.post_job_as(&other, &generation("globex"))
            .await
            .status(),
        202
    );
}

#[tokio::test]
async fn a_tenant_over_its_queued_cap_gets_429_quota_exceeded_but_repeats_still_answer() {
    let env = TestEnv::builder("quota")
        .env("LONGHAUL_TENANT_MAX_QUEUED", "3")
        .build()
        .await;
    let _api = env.start_api().await;
    let mut first = None;
    for i in 0..3 {
        let r = post_with_key(&env, &format!("k{i}"), &generation(&format!("q{i}"))).await;
        assert_eq!(r.status(), 202);
        first.get_or_insert(r.json::<Value>().await.unwrap()["id"].clone());
    }
    let full = post_with_key(&env, "k3", &generation("q3")).await;
    assert_eq!(full.status(), 429);
    assert!(full.headers().contains_key("retry-after"));
    let problem: Value = full.json().await.unwrap();
    assert_eq!(problem["code"], "quota_exceeded", "{problem}");

    // An idempotent repeat is not a new job: it answers, and takes no room.
    let repeat = post_with_key(&env, "k0", &generation("q0")).await;
    assert_eq!(repeat.status(), 200);
    assert_eq!(repeat.json::<Value>().await.unwrap()["id"], first.unwrap());
    // Other tenants are not affected.
    let other = env.create_key("globex").await;
    assert_eq!(
        env.post_job_as(&other, &generation("globex"))
            .await
            .status(),
        202
    );
    // Once one job leaves the queue, there is room again.
    let id = first_id(&env).await;
    let r = env
        .http
        .delete(format!("{}/v1/jobs/{id}", env.api()))
        .bearer_auth(&env.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        post_with_key(&env, "k3", &generation("q3")).await.status(),
        202
    );
}

async fn first_id(env: &TestEnv) -> String {
    let page: Value = env
        .http
        .get(format!("{}/v1/jobs", env.api()))
        .bearer_auth(&env.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["data"][0]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn one_thousand_concurrent_submits_with_one_idempotency_key_make_exactly_one_job() {
    let env = Arc::new(TestEnv::new("idem1000").await);
    let _api = env.start_api().await;
    let body =
        json!({"kind": "generation", "input": {"prompt": "once"}, "metadata": {"a": 1, "b": 2}});
    let started = Instant::now();
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let env = env.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let r = post_with_key(&env, "checkout-7", &body).await;
                let status = r.status().as_u16();
                let v: Value = r.json().await.unwrap();
                (status, v["id"].as_str().unwrap().to_owned())
            })
        })
        .collect();
    let mut created = 0;
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        let (status, id) = t.await.unwrap();
        match status {
            202 => created += 1,
            200 => {}
            other => panic!("unexpected status {other}"),
        }
        ids.insert(id);
    }
    println!(
        "1000 concurrent submits answered in {:?}",
        started.elapsed()
    );
    assert_eq!(created, 1, "exactly one submit created the job");
    assert_eq!(ids.len(), 1, "every answer names the same job");
    let mut redis = env.redis().await;
    let ready: u64 = redis::cmd("LLEN")
        .arg(env.redis_key("ready:generation"))
        .query_async(&mut redis)
        .await
        .unwrap();
    let indexed: u64 = redis::cmd("ZCARD")
        .arg(env.redis_key("tenant:acme"))
        .query_async(&mut redis)
        .await
        .unwrap();
    let queued: Option<u64> = redis::cmd("HGET")
        .arg(env.redis_key("tenant_queued"))
        .arg("acme")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!((ready, indexed, queued), (1, 1, Some(1)));

    // The same key with a different body is refused, whatever the key order of the JSON.
    let same_reordered =
        json!({"metadata": {"b": 2, "a": 1}, "input": {"prompt": "once"}, "kind": "generation"});
    assert_eq!(
        post_with_key(&env, "checkout-7", &same_reordered)
            .await
            .status(),
        200
    );
    let different =
        json!({"kind": "generation", "input": {"prompt": "twice"}, "metadata": {"a": 1, "b": 2}});
    let r = post_with_key(&env, "checkout-7", &different).await;
    assert_eq!(r.status(), 422);
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["code"], "idempotency_key_reused", "{problem}");
    let ready: u64 = redis::cmd("LLEN")
        .arg(env.redis_key("ready:generation"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(ready, 1);
}

/// A TCP forwarder to Postgres that counts the bytes it carries, so a test can see whether a
/// process talks to Postgres at all.
struct CountingProxy {
    port: u16,
    bytes: Arc<AtomicU64>,
}

impl CountingProxy {
    async fn start(upstream: (String, u16)) -> CountingProxy {
        let port = free_port();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let bytes = Arc::new(AtomicU64::new(0));
        let counter = bytes.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = copy_counting(&mut cr, &mut sw, counter.clone());
                    let down = copy_counting(&mut sr, &mut cw, counter);
                    let _ = tokio::join!(up, down);
                });
            }
        });
        CountingProxy { port, bytes }
    }

    fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }
}

async fn copy_counting(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    counter: Arc<AtomicU64>,
) {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => {
                counter.fetch_add(n as u64, Ordering::SeqCst);
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Every command Redis receives from clients (not those scripts run), from `MONITOR`.
struct Monitor {
    lines: Arc<std::sync::Mutex<Vec<String>>>,
    _child: tokio::process::Child,
}

impl Monitor {
    async fn start(port: u16) -> Monitor {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new("redis-cli")
            .args(["-p", &port.to_string(), "monitor"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-cli on PATH");
        let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = out.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        Monitor {
            lines,
            _child: child,
        }
    }

    /// Client commands (name, uppercased) seen between the two `ECHO` markers.
    fn between(&self, start: &str, end: &str) -> Vec<String> {
        let lines = self.lines.lock().unwrap();
        let from = lines.iter().rposition(|l| l.contains(start));
        let to = lines.iter().position(|l| l.contains(end));
        let (Some(from), Some(to)) = (from, to) else {
            return vec!["markers not seen".into()];
        };
        lines[from + 1..to]
            .iter()
            .filter(|l| !l.contains(" lua] "))
            .filter_map(|l| l.split("] \"").nth(1)?.split('"').next())
            .map(str::to_uppercase)
            .collect()
    }
}

/// Sends `ECHO marker` until `monitor` shows it (MONITOR may still be connecting).
async fn mark(
    env: &TestEnv,
    conn: &mut redis::aio::MultiplexedConnection,
    monitor: &Monitor,
    marker: &str,
) {
    env.wait_until(
        Duration::from_secs(10),
        "MONITOR shows the marker",
        async || {
            let _: String = redis::cmd("ECHO")
                .arg(marker)
                .query_async(conn)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            monitor
                .lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains(marker))
        },
    )
    .await;
}

#[tokio::test]
async fn a_submit_is_one_redis_round_trip_and_no_postgres_query() {
    let redis_server = RedisServer::start().await;
    let env = TestEnv::builder("hotpath")
        .redis_url(redis_server.url())
        .build()
        .await;
    // postgres://user@host:port/db: route the API's Postgres traffic through a counter.
    let (_, rest) = env.database_url.split_once('@').unwrap();
    let (host_port, _) = rest.split_once('/').unwrap();
    let (host, port) = host_port.split_once(':').unwrap_or((host_port, "5432"));
    let proxy = CountingProxy::start((host.to_owned(), port.parse().unwrap())).await;
    let proxied = env
        .database_url
        .replacen(host_port, &format!("127.0.0.1:{}", proxy.port), 1);
    let _api = env.spawn("api", &["api"], &[("DATABASE_URL", proxied.as_str())]);
    env.wait_until(Duration::from_secs(30), "the api answers", async || {
        env.http
            .get(format!("{}/healthz", env.api()))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;

    // Warm up: the key is looked up in Postgres once and cached; the scripts get loaded.
    env.submit(&generation("warm-up")).await;
    env.wait_until(
        Duration::from_secs(5),
        "the key's last use is recorded",
        async || {
            let pg = env.pg().await;
            let used: Option<chrono::DateTime<chrono::Utc>> =
                sqlx::query_scalar("SELECT max(last_used_at) FROM api_keys")
                    .fetch_one(&pg)
                    .await
                    .unwrap();
            pg.close().await;
            used.is_some()
        },
    )
    .await;
    assert!(
        proxy.bytes() > 0,
        "the API reached Postgres through the proxy"
    );
    let monitor = Monitor::start(redis_server.port).await;
    let mut redis = env.redis().await;
    mark(&env, &mut redis, &monitor, "hot-path-start").await;
    let pg_before = proxy.bytes();

    const SUBMITS: usize = 100;
    for i in 0..SUBMITS {
        env.submit(&generation(&format!("hot {i}"))).await;
    }

    let pg_bytes = proxy.bytes() - pg_before;
    mark(&env, &mut redis, &monitor, "hot-path-end").await;
    let commands = monitor.between("hot-path-start", "hot-path-end");
    assert_eq!(
        commands,
        vec!["EVALSHA".to_owned(); SUBMITS],
        "each submit is exactly one script call"
    );
    assert_eq!(pg_bytes, 0, "a submit talked to Postgres");
}
