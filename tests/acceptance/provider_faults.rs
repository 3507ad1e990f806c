//! How provider failures become retries or failures: 5xx retried, 4xx fatal, 429's
//! `Retry-After` honoured. Faults are chosen per request with stub directives.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::TestEnv;

#[tokio::test]
async fn a_job_whose_provider_fails_twice_with_500_succeeds_on_the_third_attempt() {
    let env = TestEnv::new("retry500").await;
    let _api = env.start_api().await;
    let _worker = env.start_worker(&[]);
    let id = env
        .submit(&json!({"kind": "generation", "input": {"prompt": "flaky {{stub fail=500,500}}"}}))
        .await;
    let job = env.wait_terminal(&id, Duration::from_secs(30)).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 3);
    assert!(
        job["error"].is_null(),
        "a success clears the last error: {job}"
    );
    assert_eq!(env.stub_calls_for(&id).await, 3);
}

#[tokio::test]
async fn a_job_whose_provider_answers_400_fails_after_one_attempt_with_a_clear_code() {
    let env = TestEnv::new("fatal400").await;
    let _api = env.start_api().await;
    let _worker = env.start_worker(&[]);
    let id = env
        .submit(&json!({"kind": "generation", "input": {"prompt": "bad {{stub status=400}}"}, "max_attempts": 5}))
        .await;
    let job = env.wait_terminal(&id, Duration::from_secs(30)).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["error"]["code"], "provider_rejected");
    assert!(job["error"]["message"].as_str().unwrap().contains("400"));
    assert_eq!(env.stub_calls_for(&id).await, 1);
}

#[tokio::test]
async fn a_429_with_retry_after_2_is_not_retried_before_2_seconds() {
    let env = TestEnv::new("retryafter").await;
    let _api = env.start_api().await;
    let _worker = env.start_worker(&[]);
    let submitted = Instant::now();
    let id = env
        .submit(&json!({"kind": "generation", "input": {"prompt": "busy {{stub fail=429 retry_after=2}}"}}))
        .await;
    // Between the attempts the job is queued with the retry's due time visible.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, job) = env.get_job_as(&env.key, &id).await;
        if job["attempts"] == 1 && job["status"] == "queued" {
            assert_eq!(job["error"]["code"], "provider_rate_limited", "{job}");
            assert!(job["next_attempt_at"].is_string(), "{job}");
            break;
        }
        assert!(Instant::now() < deadline, "never saw the retry wait: {job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let job = env.wait_terminal(&id, Duration::from_secs(30)).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 2);
    // The retry base is 50 ms here, so only Retry-After explains a wait of 2 s or more.
    assert!(
        submitted.elapsed() >= Duration::from_secs(2),
        "retried too early: {:?}",
        submitted.elapsed()
    );
    let started =
        chrono::DateTime::parse_from_rfc3339(job["started_at"].as_str().unwrap()).unwrap();
    let finished =
        chrono::DateTime::parse_from_rfc3339(job["finished_at"].as_str().unwrap()).unwrap();
    assert!(
        finished - started >= chrono::Duration::seconds(2),
        "second attempt came {:?} after the first",
        finished - started
    );
}

#[tokio::test]
async fn a_job_that_keeps_failing_ends_failed_after_max_attempts() {
    let env = TestEnv::new("exhaust").await;
    let _api = env.start_api().await;
    let _worker = env.start_worker(&[]);
    let id = env
        .submit(&json!({"kind": "generation", "input": {"prompt": "down {{stub status=503}}"}, "max_attempts": 3}))
        .await;
    let job = env.wait_terminal(&id, Duration::from_secs(30)).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["attempts"], 3);
    assert_eq!(job["error"]["code"], "provider_unavailable");
    assert_eq!(env.stub_calls_for(&id).await, 3);
}

#[tokio::test]
async fn a_malformed_provider_answer_is_retried_as_a_bad_response() {
    let env = TestEnv::new("malformed").await;
    let _api = env.start_api().await;
    let _worker = env.start_worker(&[]);
    let id = env
        .submit(&json!({"kind": "generation", "input": {"prompt": "garbled {{stub malformed=true}}"}, "max_attempts": 2}))
        .await;
    let job = env.wait_terminal(&id, Duration::from_secs(30)).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["attempts"], 2);
    assert_eq!(job["error"]["code"], "provider_bad_response");
}
