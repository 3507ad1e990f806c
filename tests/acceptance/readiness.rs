//! `/healthz` and `/readyz`: ready means Redis and Postgres both answer.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{RedisServer, TestEnv};

/// (status, body) of `/readyz`; (0, null) while the API is not answering (restarting).
async fn readyz(env: &TestEnv) -> (u16, Value) {
    match env.http.get(format!("{}/readyz", env.api())).send().await {
        Ok(r) => (r.status().as_u16(), r.json().await.unwrap_or(Value::Null)),
        Err(_) => (0, Value::Null),
    }
}

async fn wait_ready_status(env: &TestEnv, want: u16) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, body) = readyz(env).await;
        if code == want {
            return body;
        }
        assert!(Instant::now() < deadline, "readyz stayed {code}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn readyz_is_503_while_postgres_is_unreachable() {
    let env = TestEnv::new("ready-pg").await;
    let ok_api = env.start_api().await;
    let body = wait_ready_status(&env, 200).await;
    assert_eq!(body["checks"]["postgres"], "ok");
    drop(ok_api);

    let dead_port = crate::harness::free_port(); // nothing listens there
    let _api = env.spawn(
        "api-bad-pg",
        &["api"],
        &[(
            "DATABASE_URL",
            &format!("postgres://postgres@127.0.0.1:{dead_port}/x"),
        )],
    );
    let body = wait_ready_status(&env, 503).await;
    assert_eq!(body["checks"]["postgres"], "unavailable");
    assert_eq!(body["checks"]["redis"], "ok");
    let r = env
        .http
        .get(format!("{}/healthz", env.api()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "alive even when not ready");
}

#[tokio::test]
async fn readyz_follows_redis_going_away_and_coming_back() {
    let mut redis = RedisServer::start().await;
    let env = TestEnv::builder("ready-redis")
        .redis_url(redis.url())
        .build()
        .await;
    let api = env.start_api().await;
    wait_ready_status(&env, 200).await;

    redis.stop();
    let body = wait_ready_status(&env, 503).await;
    assert_eq!(body["checks"]["redis"], "unavailable");
    let submit = env
        .post_job_as(
            &env.key,
            &serde_json::json!({"kind": "generation", "input": {"prompt": "x"}}),
        )
        .await;
    assert_eq!(submit.status(), 503);
    assert_eq!(submit.headers()["content-type"], "application/problem+json");
    let problem: Value = submit.json().await.unwrap();
    assert_eq!(problem["code"], "unavailable");
    assert!(
        !problem.to_string().contains("redis://"),
        "5xx bodies must not leak internals: {problem}"
    );

    redis.restart().await;
    wait_ready_status(&env, 200).await;
    let id = env
        .submit(&serde_json::json!({"kind": "generation", "input": {"prompt": "back"}}))
        .await;
    assert!(!id.is_empty());
    drop(api);
}
