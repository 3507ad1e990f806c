//! Each worker env knob is read and has its effect: concurrency caps what is in flight at
//! the provider, the process count is what the supervisor runs, the timeout, attempt budget
//! and shutdown grace are the ones configured.

use std::collections::HashSet;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::json;

use crate::harness::{TestEnv, generation};

/// Runs 20 generation jobs of 300 ms on one worker process with `knobs`; returns the
/// stub's highest count of calls in flight at once.
async fn max_in_flight_with(name: &str, knobs: &[(&str, &str)]) -> u64 {
    let env = TestEnv::builder(name).stub_latency_ms(300).build().await;
    let _api = env.start_api().await;
    let ids = env
        .submit_all((0..20).map(|i| generation(&format!("job {i}"))))
        .await;
    let mut vars = vec![("LONGHAUL_WORKER_PROCESSES", "1")];
    vars.extend_from_slice(knobs);
    let _worker = env.start_worker(&vars);
    for job in env.wait_all_terminal(&ids, Duration::from_secs(60)).await {
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    env.stub_in_flight().await["max_in_flight"]
        .as_u64()
        .expect("max_in_flight")
}

#[tokio::test]
async fn worker_concurrency_4_never_has_more_than_4_calls_in_flight() {
    let max = max_in_flight_with("knob-concurrency", &[("LONGHAUL_WORKER_CONCURRENCY", "4")]).await;
    assert_eq!(max, 4, "highest number of calls in flight at once");
}

#[tokio::test]
async fn generation_concurrency_2_never_has_more_than_2_generation_calls_in_flight() {
    let max = max_in_flight_with(
        "knob-generation",
        &[("LONGHAUL_GENERATION_CONCURRENCY", "2")],
    )
    .await;
    assert_eq!(max, 2, "highest number of calls in flight at once");
}

#[tokio::test]
async fn worker_processes_3_makes_the_supervisor_run_three_worker_processes() {
    let env = TestEnv::new("knob-processes").await;
    let worker = env.start_worker(&[("LONGHAUL_WORKER_PROCESSES", "3")]);
    env.wait_until(
        Duration::from_secs(30),
        "three worker processes started and running",
        async || worker.log_events("worker process started").len() == 6,
    )
    .await;
    let started = worker.started_worker_pids();
    let distinct: HashSet<i32> = started.iter().copied().collect();
    assert_eq!(
        (started.len(), distinct.len()),
        (3, 3),
        "started {started:?}"
    );
    let children: HashSet<i32> = worker.child_pids().into_iter().collect();
    assert_eq!(children, distinct, "the supervisor's live children");
}

#[tokio::test]
async fn job_timeout_secs_1_stops_a_hanging_job_that_asks_no_timeout() {
    let env = TestEnv::builder("knob-timeout")
        .env("LONGHAUL_JOB_TIMEOUT_SECS", "1")
        .build()
        .await;
    let _api = env.start_api().await;
    let _worker = env.start_worker(&[]);
    let id = env
        .submit(&json!({"kind": "generation", "input": {"prompt": "stuck {{stub hang=true}}"}, "max_attempts": 1}))
        .await;
    let job = env.wait_terminal(&id, Duration::from_secs(60)).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "timeout", "{job}");
    assert_eq!(job["attempts"], 1, "{job}");
}

#[tokio::test]
async fn max_attempts_2_is_the_attempt_budget_of_a_job_that_names_none() {
    let env = TestEnv::builder("knob-attempts")
        .env("LONGHAUL_MAX_ATTEMPTS", "2")
        .build()
        .await;
    let _api = env.start_api().await;
    let _worker = env.start_worker(&[]);
    let id = env.submit(&generation("down {{stub status=503}}")).await;
    let job = env.wait_terminal(&id, Duration::from_secs(60)).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "provider_unavailable", "{job}");
    assert_eq!(job["attempts"], 2, "{job}");
    assert_eq!(env.stub_calls_for(&id).await, 2);
}

#[tokio::test]
async fn shutdown_grace_1_gives_an_unfinished_job_back_without_spending_its_attempt() {
    let env = TestEnv::new("knob-grace").await;
    let _api = env.start_api().await;
    let done = env.subscribe_done().await;
    let mut worker = env.start_worker(&[
        ("LONGHAUL_WORKER_PROCESSES", "1"),
        ("LONGHAUL_SHUTDOWN_GRACE_SECS", "1"),
    ]);
    let id = env
        .submit(&generation("long {{stub latency_ms=15000}}"))
        .await;
    env.wait_until(
        Duration::from_secs(30),
        "the job calling the provider",
        async || env.stub_calls_for(&id).await == 1,
    )
    .await;

    worker.signal(Signal::SIGTERM);
    // Far sooner than the 15 s call could end: only the 1 s grace explains an exit here.
    assert_eq!(
        worker.wait_exit(Duration::from_secs(8)).await,
        Some(Some(0)),
        "the worker did not exit 0 soon after its 1 s grace:\n{}",
        worker.log_text()
    );
    let (_, job) = env.get_job_as(&env.key, &id).await;
    assert_eq!(job["status"], "queued", "released, not failed: {job}");
    assert_eq!(job["attempts"], 0, "the attempt was not spent: {job}");
    assert_eq!(
        env.stub_closed_early_for(&id).await,
        1,
        "the call was dropped"
    );

    let _next = env.start_worker(&[]);
    let job = env.wait_terminal(&id, Duration::from_secs(60)).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 1, "{job}");
    done.assert_exactly_once(std::slice::from_ref(&id)).await;
}
