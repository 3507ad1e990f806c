//! Cancellation (a queued job never runs, a running job's provider call is dropped) and
//! long-polling (`?wait=N` answers as soon as the job ends).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::TestEnv;

async fn delete(env: &TestEnv, key: &str, id: &str) -> (u16, Value) {
    env.api_call(reqwest::Method::DELETE, key, &format!("/v1/jobs/{id}"))
        .await
}

#[tokio::test]
async fn a_cancelled_queued_job_never_runs() {
    let env = TestEnv::new("cancel-queued").await;
    let _api = env.start_api().await;
    let id = env
        .submit(&json!({"kind": "generation", "input": {"prompt": "never"}}))
        .await;
    let other = env.create_key("globex").await;
    assert_eq!(
        delete(&env, &other, &id).await.0,
        404,
        "another tenant cannot cancel it"
    );
    let (code, job) = delete(&env, &env.key, &id).await;
    assert_eq!(code, 200, "{job}");
    assert_eq!(job["status"], "cancelled");
    assert!(job["finished_at"].is_string());

    let _worker = env.start_worker(&[]);
    let later = env
        .submit(&json!({"kind": "generation", "input": {"prompt": "after"}}))
        .await;
    assert_eq!(
        env.wait_terminal(&later, Duration::from_secs(30)).await["status"],
        "succeeded"
    );
    assert_eq!(
        env.stub_calls_for(&id).await,
        0,
        "the cancelled job reached the provider"
    );
    let (_, job) = env.get_job_as(&env.key, &id).await;
    assert_eq!(job["status"], "cancelled");
    assert_eq!(job["attempts"], 0);
    let (code, problem) = delete(&env, &env.key, &id).await;
    assert_eq!(code, 409, "{problem}");
    assert_eq!(problem["code"], "conflict");
}

#[tokio::test]
async fn cancelling_a_running_job_closes_its_provider_request_and_discards_its_answer() {
    let env = TestEnv::new("cancel-running").await;
    let _api = env.start_api().await;
    let _worker = env.start_worker(&[]);
    let id = env
        .submit(
            &json!({"kind": "generation", "input": {"prompt": "slow {{stub latency_ms=8000}}"}}),
        )
        .await;
    env.wait_until(
        Duration::from_secs(20),
        "the job's provider call to be in flight",
        async || env.stub_get(&format!("/stub/calls/{id}")).await["in_flight"] == 1,
    )
    .await;
    let cancelled_at = Instant::now();
    let (code, job) = delete(&env, &env.key, &id).await;
    assert_eq!(code, 200, "{job}");
    assert_eq!(job["status"], "cancelled");

    // Polled every 10 ms (not with `wait_until`) so the printed delay is meaningful.
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.stub_closed_early_for(&id).await != 1 {
        assert!(
            Instant::now() < deadline,
            "the provider request was never closed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "provider request closed {:?} after the cancel",
        cancelled_at.elapsed()
    );
    // Long after the provider would have answered, the job is still cancelled with no result.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, job) = env.get_job_as(&env.key, &id).await;
    assert_eq!(job["status"], "cancelled", "{job}");
    assert!(job["result"].is_null());
    assert_eq!(env.stub_calls_for(&id).await, 1);
}

#[tokio::test]
async fn a_long_poll_returns_when_the_job_ends_or_after_the_wait() {
    let env = TestEnv::new("longpoll").await;
    let _api = env.start_api().await;
    let queued = env
        .submit(&json!({"kind": "generation", "input": {"prompt": "no worker yet"}}))
        .await;
    let r = env
        .http
        .get(format!("{}/v1/jobs/{queued}?wait=1", env.api()))
        .bearer_auth(&env.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["status"],
        "queued",
        "after the wait, the current state"
    );

    let _worker = env.start_worker(&[]);
    let id = env
        .submit(
            &json!({"kind": "generation", "input": {"prompt": "soon {{stub latency_ms=1500}}"}}),
        )
        .await;
    let started = Instant::now();
    let r = env
        .http
        .get(format!("{}/v1/jobs/{id}?wait=30", env.api()))
        .bearer_auth(&env.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let job: Value = r.json().await.unwrap();
    assert_eq!(
        job["status"], "succeeded",
        "the long poll answered before the job ended: {job}"
    );
    println!(
        "long poll answered {:?} after submit (provider latency 1.5 s)",
        started.elapsed()
    );

    for bad in ["61", "-1", "soon"] {
        let r = env
            .http
            .get(format!("{}/v1/jobs/{id}?wait={bad}", env.api()))
            .bearer_auth(&env.key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "wait={bad}");
    }
}
