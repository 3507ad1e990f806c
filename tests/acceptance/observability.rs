//! The operator's view over real processes: `/metrics` of the API and of a worker host (one
//! endpoint for its two worker processes) count a known set of jobs exactly and parse as
//! Prometheus text; the host's `/readyz` names each process's breaker; the admin endpoints
//! show the scheduler and hourly usage; and the logs of a full run (api, worker, scheduler,
//! at debug level) hold no API key, JWT or provider key.

use std::time::{Duration, Instant};

use longhaul_jobs::metrics::text::{self, Family};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

use crate::harness::{TestEnv, free_port, generation};

/// Sum of the samples named `name` whose labels include all of `labels`.
fn sum(families: &[Family], name: &str, labels: &[(&str, &str)]) -> f64 {
    families
        .iter()
        .flat_map(|f| &f.samples)
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.label(k).as_deref() == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// GETs `url` and checks the body as `promtool check metrics` would.
async fn scrape(env: &TestEnv, url: &str) -> Vec<Family> {
    let r = env.http.get(url).send().await.expect("scrape");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let body = r.text().await.unwrap();
    text::check(&body).unwrap_or_else(|e| panic!("{url} is not valid exposition text: {e}\n{body}"))
}

/// Creates a key of `tenant` with `scopes` (comma-separated) through the CLI.
async fn create_key(env: &TestEnv, tenant: &str, scopes: &str) -> String {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_longhaul"))
        .args(["keys", "create", "--tenant", tenant, "--scopes", scopes])
        .env_clear()
        .envs(env.env_vars())
        .output()
        .await
        .expect("keys create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Waits until the worker host's `/readyz` answers 200 with both processes up.
async fn wait_host_ready(env: &TestEnv, host: &str) -> Value {
    env.wait_for(Duration::from_secs(30), "worker host ready", async || {
        let r = env.http.get(format!("{host}/readyz")).send().await.ok()?;
        let body: Value = r.json().await.ok()?;
        let procs = body["checks"]["worker_processes"].as_array()?;
        (procs.len() == 2 && procs.iter().all(|p| p["status"] == "ok")).then_some(body)
    })
    .await
}

#[tokio::test]
async fn the_api_and_a_worker_host_of_two_processes_count_a_known_set_of_jobs_in_valid_prometheus_text()
 {
    let env = TestEnv::new("metrics").await;
    let port = free_port().to_string();
    let host = format!("http://127.0.0.1:{port}");
    let _api = env.start_api().await;
    let _worker = env.start_worker(&[("LONGHAUL_WORKER_METRICS_PORT", &port)]);
    let ready = wait_host_ready(&env, &host).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["checks"]["redis"], "ok");
    assert!(
        ready["checks"]["worker_processes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["breaker"] == "closed"),
        "{ready}"
    );

    // 5 + 3 jobs that succeed, 1 that succeeds on its second attempt, 2 that the provider
    // rejects, and 1 cancelled while its provider call runs.
    let mut bodies: Vec<Value> = (0..5).map(|i| generation(&format!("ok {i}"))).collect();
    bodies
        .extend((0..3).map(|i| json!({"kind": "interpretation", "input": {"subject": {"n": i}}})));
    bodies.push(generation("flaky {{stub fail=500}}"));
    bodies.push(generation("bad {{stub status=400}}"));
    bodies.push(generation("bad again {{stub status=400}}"));
    let ids = env.submit_all(bodies).await;
    let slow = env
        .submit(&generation("slow {{stub latency_ms=30000}}"))
        .await;
    let jobs = env.wait_all_terminal(&ids, Duration::from_secs(60)).await;
    let statuses: Vec<&str> = jobs.iter().map(|j| j["status"].as_str().unwrap()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "succeeded").count(),
        9,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == "failed").count(),
        2,
        "{statuses:?}"
    );
    env.wait_until(Duration::from_secs(30), "the slow job runs", async || {
        env.get_job_as(&env.key, &slow).await.1["status"] == "running"
    })
    .await;
    let r = env
        .http
        .delete(format!("{}/v1/jobs/{slow}", env.api()))
        .bearer_auth(&env.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The API: submits, cancels, requests by route template, queue depth.
    let api = scrape(&env, &format!("{}/metrics", env.api())).await;
    let jobs_total = "longhaul_jobs_total";
    let g = ("kind", "generation");
    let i = ("kind", "interpretation");
    assert_eq!(sum(&api, jobs_total, &[g, ("outcome", "submitted")]), 9.0);
    assert_eq!(sum(&api, jobs_total, &[i, ("outcome", "submitted")]), 3.0);
    assert_eq!(sum(&api, jobs_total, &[g, ("outcome", "cancelled")]), 1.0);
    let requests = "longhaul_http_requests_total";
    assert_eq!(
        sum(
            &api,
            requests,
            &[("route", "/v1/jobs"), ("method", "POST"), ("status", "202")]
        ),
        12.0
    );
    assert_eq!(
        sum(
            &api,
            requests,
            &[
                ("route", "/v1/jobs/{id}"),
                ("method", "DELETE"),
                ("status", "200")
            ]
        ),
        1.0
    );
    assert!(
        sum(
            &api,
            requests,
            &[("route", "/v1/jobs/{id}"), ("method", "GET")]
        ) >= 12.0
    );
    assert_eq!(
        sum(
            &api,
            "longhaul_http_request_duration_seconds_count",
            &[("route", "/v1/jobs"), ("method", "POST")]
        ),
        12.0
    );
    assert_eq!(
        sum(&api, "longhaul_queue_depth", &[g, ("state", "ready")]),
        0.0
    );
    assert!(api.iter().any(|f| f.name == "longhaul_queue_depth"));
    assert!(
        api.iter().any(|f| f.name == "longhaul_cache_lookups_total"),
        "issue 5's families at zero"
    );

    // The worker host: each process's counts, labelled, summed over both.
    let workers = scrape(&env, &format!("{host}/metrics")).await;
    let both = |name: &str, labels: &[(&str, &str)]| sum(&workers, name, labels);
    assert_eq!(both(jobs_total, &[g, ("outcome", "started")]), 10.0);
    assert_eq!(both(jobs_total, &[i, ("outcome", "started")]), 3.0);
    assert_eq!(both(jobs_total, &[g, ("outcome", "succeeded")]), 6.0);
    assert_eq!(both(jobs_total, &[i, ("outcome", "succeeded")]), 3.0);
    assert_eq!(both(jobs_total, &[g, ("outcome", "retried")]), 1.0);
    assert_eq!(both(jobs_total, &[g, ("outcome", "failed")]), 2.0);
    assert_eq!(
        both("longhaul_provider_requests_total", &[("outcome", "ok")]),
        9.0
    );
    assert_eq!(
        both(
            "longhaul_provider_requests_total",
            &[("outcome", "unavailable")]
        ),
        1.0
    );
    assert_eq!(
        both(
            "longhaul_provider_requests_total",
            &[("outcome", "rejected")]
        ),
        2.0
    );
    assert_eq!(
        both("longhaul_provider_request_duration_seconds_count", &[]),
        12.0
    );
    assert_eq!(
        both(
            "longhaul_job_duration_seconds_count",
            &[g, ("outcome", "succeeded")]
        ),
        6.0
    );
    assert_eq!(both("longhaul_job_queue_wait_seconds_count", &[g]), 9.0);
    assert!(both("longhaul_tokens_total", &[g, ("type", "completion")]) > 0.0);
    for process in ["0", "1"] {
        let p = ("process", process);
        assert_eq!(
            both("longhaul_worker_free_slots", &[p, g]),
            64.0,
            "process {process}"
        );
        assert_eq!(
            both("longhaul_jobs_in_flight", &[p, i]),
            0.0,
            "process {process}"
        );
        assert_eq!(both("longhaul_provider_breaker_open", &[p]), 0.0);
    }
    let supervisor = ("process", "supervisor");
    assert_eq!(both("longhaul_worker_processes_up", &[supervisor]), 2.0);
    assert_eq!(
        both(
            "longhaul_queue_depth",
            &[supervisor, g, ("state", "in_flight")]
        ),
        0.0
    );
    assert!(
        workers
            .iter()
            .flat_map(|f| &f.samples)
            .all(|s| s.label("process").is_some()),
        "every sample names its process"
    );
}

/// An HS256 JWT for `claims`.
fn jwt(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn the_logs_of_a_full_run_hold_no_api_key_jwt_or_provider_key() {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let provider_key = format!("sk-provider-SECRET-{nonce}");
    let jwt_secret = format!("jwt-SECRET-{nonce}-0123456789");
    let port = free_port().to_string();
    let mut builder = TestEnv::builder("no-secrets")
        .env("LONGHAUL_AI_API_KEY", &provider_key)
        .env("LONGHAUL_JWT_HS256_SECRET", &jwt_secret)
        .env("LONGHAUL_JWT_AUDIENCE", "longhaul")
        .env("LONGHAUL_JWT_ISSUER", "https://auth.test")
        .env("RUST_LOG", "debug")
        .env("LONGHAUL_WORKER_METRICS_PORT", &port);
    for task in [
        "rescue_leases",
        "promote_due",
        "cache_cleanup",
        "key_expiry",
        "result_retention",
        "metrics_rollup",
    ] {
        builder = builder.env(
            &format!("LONGHAUL_SCHEDULE_{}", task.to_uppercase()),
            "* * * * * *",
        );
    }
    let env = builder.build().await;
    let mut api = env.start_api().await;
    let mut worker = env.start_worker(&[]);
    let mut scheduler = env.spawn("scheduler", &["scheduler"], &[]);
    let host = format!("http://127.0.0.1:{port}");
    wait_host_ready(&env, &host).await;
    let admin = create_key(&env, "ops", "admin").await;
    let token = jwt(
        &jwt_secret,
        &json!({"tenant": "acme", "aud": "longhaul", "iss": "https://auth.test",
                "exp": chrono::Utc::now().timestamp() + 300, "scope": "jobs:write jobs:read"}),
    );

    // Jobs through an API key and through a JWT, reads, a list, failures of every kind.
    let mut ids = env
        .submit_all([
            generation("by key"),
            generation("rejected {{stub status=400}}"),
        ])
        .await;
    for body in [generation("by jwt"), generation("flaky {{stub fail=500}}")] {
        let r = env.post_job_as(&token, &body).await;
        assert_eq!(r.status(), 202);
        ids.push(
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    env.wait_all_terminal(&ids, Duration::from_secs(60)).await;
    let (code, _) = env.get_job_as(&token, &ids[0]).await;
    assert_eq!(code, 200);
    let wrong_key = format!("{}x", &env.key[..env.key.len() - 1]);
    let wrong_jwt = jwt(
        "another-secret-of-at-least-32-bytes!!",
        &json!({"tenant": "acme"}),
    );
    for bad in [&wrong_key, &wrong_jwt] {
        assert_eq!(env.post_job_as(bad, &generation("no")).await.status(), 401);
    }
    let list = env
        .http
        .get(format!("{}/v1/jobs?limit=10", env.api()))
        .bearer_auth(&env.key)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);

    // The admin endpoints: the scheduler's record, and usage rolled up from the archive.
    let admin_get = async |path: &str, key: &str| {
        let r = env
            .http
            .get(format!("{}{path}", env.api()))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        (
            r.status().as_u16(),
            r.json::<Value>().await.unwrap_or(Value::Null),
        )
    };
    assert_eq!(admin_get("/v1/admin/scheduler", &env.key).await.0, 403);
    let usage = env
        .wait_for(Duration::from_secs(30), "usage rolled up", async || {
            let (code, body) = admin_get("/v1/admin/usage?tenant=acme", &admin).await;
            assert_eq!(code, 200, "{body}");
            let rows = body["data"].as_array()?.clone();
            (rows
                .iter()
                .map(|r| r["jobs"].as_i64().unwrap_or(0))
                .sum::<i64>()
                == 4)
                .then_some(rows)
        })
        .await;
    let total = |field: &str| {
        usage
            .iter()
            .map(|r| r[field].as_i64().unwrap())
            .sum::<i64>()
    };
    assert_eq!(
        (total("succeeded"), total("failed"), total("attempts")),
        (3, 1, 5)
    );
    let (code, scheduler_view) = admin_get("/v1/admin/scheduler", &admin).await;
    assert_eq!(code, 200);
    let tasks = scheduler_view["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 6, "{scheduler_view}");
    for task in tasks {
        assert_eq!(task["schedule"], "* * * * * *", "{task}");
        assert_eq!(task["outcome"], "ok", "{task}");
        assert!(task["runs"]["ok"].as_u64().unwrap() >= 1, "{task}");
    }
    assert!(scheduler_view["leader"].is_string());
    let (code, _) = admin_get("/v1/admin/usage?from=yesterday", &admin).await;
    assert_eq!(code, 422);
    let metrics = scrape(&env, &format!("{}/metrics", env.api())).await;
    assert!(
        sum(
            &metrics,
            "longhaul_scheduler_task_runs_total",
            &[("task", "metrics_rollup"), ("outcome", "ok")]
        ) >= 1.0
    );

    // Stop everything, then read every log of the run.
    for proc in [&api, &worker, &scheduler] {
        proc.signal(Signal::SIGTERM);
    }
    for proc in [&mut api, &mut worker, &mut scheduler] {
        assert!(
            proc.wait_exit(Duration::from_secs(60)).await.is_some(),
            "{} stops",
            proc.name
        );
    }
    let started = Instant::now();
    let mut logs = String::new();
    for entry in std::fs::read_dir(&env.log_dir).unwrap() {
        logs.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default());
    }
    assert!(logs.lines().count() > 100, "a debug run logs plenty");
    let secret_of = |key: &str| key.rsplit('_').next().unwrap().to_owned();
    let signature = |token: &str| token.rsplit('.').next().unwrap().to_owned();
    for (what, secret) in [
        ("the API key", env.key.clone()),
        ("the API key's secret part", secret_of(&env.key)),
        ("the admin key's secret part", secret_of(&admin)),
        ("a rejected key's secret part", secret_of(&wrong_key)),
        ("the JWT", token.clone()),
        ("the JWT's signature", signature(&token)),
        ("a rejected JWT's signature", signature(&wrong_jwt)),
        ("the JWT secret", jwt_secret.clone()),
        ("the provider key", provider_key.clone()),
        ("the provider key's nonce", nonce.clone()),
    ] {
        assert!(
            !logs.contains(&secret),
            "{what} appears in the logs under {:?}",
            env.log_dir
        );
    }

    // Every line of an attempt names its job; every line of a request its request id.
    let events: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let attempt_lines: Vec<&Value> = events
        .iter()
        .filter(|e| e["span"]["name"] == "job")
        .collect();
    assert!(attempt_lines.len() >= 8, "attempts log their start and end");
    for e in &attempt_lines {
        for field in ["job_id", "tenant", "kind", "attempt"] {
            assert!(!e["span"][field].is_null(), "{field} missing from {e}");
        }
    }
    let request_lines: Vec<&Value> = events
        .iter()
        .filter(|e| e["span"]["name"] == "request")
        .collect();
    assert!(request_lines.iter().any(|e| e["message"] == "job accepted"));
    for e in &request_lines {
        assert!(
            e["span"]["request_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty()),
            "request_id missing from {e}"
        );
    }
    println!(
        "checked {} log lines in {:?}",
        events.len(),
        started.elapsed()
    );
}
