//! A provider outage: the circuit breaker opens, jobs wait instead of burning their
//! attempts, and all of them succeed once the provider is back.

use std::time::Duration;

use serde_json::json;

use crate::harness::TestEnv;

#[tokio::test]
async fn during_a_20_second_provider_outage_no_job_exhausts_its_attempts_and_all_succeed_after() {
    let env = TestEnv::new("outage").await;
    let _api = env.start_api().await;
    let outage = env
        .http
        .post(format!("{}/stub/outage", env.stub_url))
        .json(&json!({"ms": 20_000, "status": 503}))
        .send()
        .await
        .unwrap();
    assert!(outage.status().is_success());
    let worker = env.start_worker(&[("LONGHAUL_WORKER_CONCURRENCY", "8")]);

    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(
            env.submit(&json!({"kind": "generation", "input": {"prompt": format!("during outage {i}")}, "max_attempts": 5}))
                .await,
        );
    }
    for id in &ids {
        let job = env.wait_terminal(id, Duration::from_secs(120)).await;
        assert_eq!(
            job["status"], "succeeded",
            "a job gave up during the outage: {job}"
        );
        assert!(job["attempts"].as_u64().unwrap() <= 5);
    }
    let log = worker.log_text();
    assert!(
        log.contains("circuit breaker opened"),
        "the breaker never opened:\n{log}"
    );
    assert!(
        log.contains("circuit breaker closed"),
        "the breaker never closed again"
    );
    // Without the breaker, 30 jobs retried every ~50-800 ms for 20 s would call hundreds of
    // times; with it, claims pause and only probes reach the provider.
    let calls = env.stub_calls().await["total"].as_u64().unwrap();
    assert!(
        calls < 30 + 100,
        "the provider was hammered during the outage: {calls} calls"
    );
}
