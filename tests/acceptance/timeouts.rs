//! Timeouts stop the work: a hung provider call is dropped when the attempt's timeout passes,
//! its slot goes to the next job, and the attempt counts as a retryable failure.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{TestEnv, generation};

fn finished_at(job: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(job["finished_at"].as_str().expect("finished_at"))
        .expect("RFC 3339 finished_at")
}

#[tokio::test]
async fn a_hung_provider_call_is_dropped_at_its_timeout_and_the_job_fails_with_timeout_after_max_attempts()
 {
    let env = TestEnv::new("hang").await;
    let _api = env.start_api().await;
    let done = env.subscribe_done().await;
    // One process with one generation slot: the normal job can only run in a freed slot.
    let _worker = env.start_worker(&[
        ("LONGHAUL_WORKER_PROCESSES", "1"),
        ("LONGHAUL_GENERATION_CONCURRENCY", "1"),
    ]);
    let hung = env
        .submit(&json!({"kind": "generation", "input": {"prompt": "stuck {{stub hang=true}}"}, "timeout_secs": 2, "max_attempts": 3}))
        .await;
    let normal = env.submit(&generation("quick")).await;

    let normal_job = env.wait_terminal(&normal, Duration::from_secs(60)).await;
    assert_eq!(normal_job["status"], "succeeded", "{normal_job}");
    let hung_job = env.wait_terminal(&hung, Duration::from_secs(60)).await;
    assert_eq!(hung_job["status"], "failed", "{hung_job}");
    assert_eq!(hung_job["error"]["code"], "timeout", "{hung_job}");
    assert_eq!(hung_job["attempts"], 3, "{hung_job}");
    assert!(
        finished_at(&normal_job) < finished_at(&hung_job),
        "the normal job waited for the hung one to exhaust its attempts: {normal_job} {hung_job}"
    );

    // Each timed-out attempt closed its request instead of leaving it running.
    env.wait_until(
        Duration::from_secs(10),
        "3 requests of the hung job closed early at the stub",
        async || env.stub_closed_early_for(&hung).await == 3,
    )
    .await;
    assert_eq!(env.stub_calls_for(&hung).await, 3);
    assert_eq!(env.stub_calls_for(&normal).await, 1);
    done.assert_exactly_once(&[hung, normal]).await;
}
