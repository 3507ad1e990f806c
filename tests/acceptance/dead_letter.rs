//! Dead letter: failed jobs stay listable and can be run again with a fresh budget.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::TestEnv;

async fn retry(env: &TestEnv, key: &str, id: &str) -> (u16, Value) {
    env.api_call(reqwest::Method::POST, key, &format!("/v1/jobs/{id}/retry"))
        .await
}

#[tokio::test]
async fn a_failed_job_is_listed_and_runs_again_on_retry_with_a_fresh_budget() {
    let env = TestEnv::new("deadletter").await;
    let _api = env.start_api().await;
    let _worker = env.start_worker(&[]);
    // The provider rejects the first call only: the job fails, and succeeds when retried.
    let id = env
        .submit(&json!({"kind": "generation", "input": {"prompt": "once {{stub fail=400}}"}, "max_attempts": 1}))
        .await;
    let failed = env.wait_terminal(&id, Duration::from_secs(30)).await;
    assert_eq!(failed["status"], "failed", "{failed}");

    let list: Value = env
        .http
        .get(format!("{}/v1/jobs?status=failed", env.api()))
        .bearer_auth(&env.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["id"], id.as_str());

    let other = env.create_key("globex").await;
    assert_eq!(
        retry(&env, &other, &id).await.0,
        404,
        "another tenant cannot retry it"
    );

    let (code, body) = retry(&env, &env.key, &id).await;
    assert_eq!(code, 202, "{body}");
    // A worker may claim it before the API reads it back.
    assert!(
        matches!(
            body["status"].as_str(),
            Some("queued" | "running" | "succeeded")
        ),
        "{body}"
    );
    let job = env.wait_terminal(&id, Duration::from_secs(30)).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 2, "attempts keep counting across retries");
    assert_eq!(
        job["max_attempts"], 2,
        "the retry granted the spec's budget again"
    );
    assert!(job["error"].is_null());

    let (code, problem) = retry(&env, &env.key, &id).await;
    assert_eq!(code, 409, "a succeeded job cannot be retried: {problem}");
    assert_eq!(problem["code"], "conflict");
    assert_eq!(
        retry(&env, &env.key, &uuid::Uuid::now_v7().to_string())
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn a_failed_job_that_only_postgres_still_holds_can_be_retried() {
    let env = TestEnv::builder("deadletter-archived")
        .env("LONGHAUL_RESULT_TTL_SECS", "1")
        .build()
        .await;
    let _api = env.start_api().await;
    let _worker = env.start_worker(&[]);
    let id = env
        .submit(&json!({"kind": "interpretation", "input": {"subject": {"x": 1}, "instructions": "{{stub fail=400}}"}, "max_attempts": 1}))
        .await;
    assert_eq!(
        env.wait_terminal(&id, Duration::from_secs(30)).await["status"],
        "failed"
    );
    env.wait_redis_forgot(&id).await;

    let (code, body) = retry(&env, &env.key, &id).await;
    assert_eq!(code, 202, "{body}");
    let job = env.wait_terminal(&id, Duration::from_secs(30)).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 2);
    assert_eq!(env.stub_calls_for(&id).await, 2);
}
