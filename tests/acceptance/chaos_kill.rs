//! Worker processes killed with SIGKILL: the supervisor replaces them, their jobs are rescued
//! about one lease later and run again, every job still reaches exactly one terminal status,
//! and a job that kills its worker on every attempt ends `failed` (worker_lost) instead of
//! looping.

use std::collections::HashMap;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::json;

use crate::harness::{TestEnv, generation, signal_pid};

#[tokio::test]
async fn a_worker_killed_with_sigkill_is_replaced_and_only_its_jobs_run_again() {
    let env = TestEnv::builder("kill9")
        .stub_latency_ms(3_000)
        .env("LONGHAUL_LEASE_SECS", "3")
        .build()
        .await;
    let _api = env.start_api().await;
    let done = env.subscribe_done().await;
    let ids = env
        .submit_all((0..200).map(|i| generation(&format!("job {i}"))))
        .await;
    let worker = env.start_worker(&[
        ("LONGHAUL_WORKER_PROCESSES", "2"),
        ("LONGHAUL_WORKER_CONCURRENCY", "150"),
    ]);
    env.wait_until(
        Duration::from_secs(30),
        "all 200 jobs in flight at the provider",
        async || env.stub_in_flight().await["in_flight"] == 200,
    )
    .await;

    // Kill the child running the most jobs, mid-call.
    let pids = env.worker_pids_of(&ids).await;
    let mut per_pid: HashMap<i32, usize> = HashMap::new();
    for pid in pids.iter().flatten() {
        *per_pid.entry(*pid).or_default() += 1;
    }
    let (&victim, _) = per_pid
        .iter()
        .max_by_key(|(_, n)| **n)
        .expect("running jobs name their worker");
    assert!(
        per_pid.len() == 2 && pids.iter().all(Option::is_some),
        "both children run jobs and every running job names its worker: {per_pid:?}"
    );
    signal_pid(victim, Signal::SIGKILL);

    let jobs = env.wait_all_terminal(&ids, Duration::from_secs(120)).await;
    let calls = env.stub_calls_by_job().await;
    for ((id, job), pid) in ids.iter().zip(&jobs).zip(&pids) {
        let rerun = *pid == Some(victim);
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(job["attempts"], if rerun { 2 } else { 1 }, "{job}");
        assert_eq!(
            calls.get(id).copied(),
            Some(if rerun { 2 } else { 1 }),
            "provider calls of {id} (ran on the killed child: {rerun})"
        );
    }
    done.assert_exactly_once(&ids).await;

    // The supervisor saw the SIGKILL and started a replacement in the same slot.
    let slot_of = |pid: i32| {
        worker
            .log_events("worker process started")
            .into_iter()
            .find(|e| e["pid"] == pid)
            .map(|e| e["child"].clone())
    };
    let slot = slot_of(victim).expect("the killed child was started by this supervisor");
    let died = worker.log_events("worker process died; restarting");
    assert!(
        died.iter()
            .any(|e| e["child"] == slot
                && e["reason"].as_str().is_some_and(|r| r.contains("SIGKILL"))),
        "no restart line naming SIGKILL for child {slot}: {died:?}"
    );
    let started = worker.started_worker_pids();
    assert!(
        started
            .iter()
            .any(|pid| *pid != victim && slot_of(*pid) == Some(slot.clone())),
        "child {slot} was not replaced: started {started:?}"
    );
}

#[tokio::test]
async fn a_job_that_kills_its_worker_on_every_attempt_fails_with_worker_lost_while_others_flow() {
    let env = TestEnv::builder("crashloop")
        .env("LONGHAUL_LEASE_SECS", "2")
        .build()
        .await;
    let _api = env.start_api().await;
    let done = env.subscribe_done().await;
    let worker = env.start_worker(&[]);
    let doomed = env
        .submit(&json!({"kind": "generation", "input": {"prompt": "doomed {{stub latency_ms=3000}}"}, "max_attempts": 3}))
        .await;

    // Each attempt: once its provider call is out, kill whichever child runs it; meanwhile
    // ordinary jobs keep arriving.
    let mut others = Vec::new();
    for attempt in 1..=3u64 {
        let pid = env
            .wait_for(
                Duration::from_secs(30),
                &format!("attempt {attempt} of the doomed job calling the provider"),
                async || {
                    let (_, job) = env.get_job_as(&env.key, &doomed).await;
                    let running = job["status"] == "running" && job["attempts"] == attempt;
                    if running && env.stub_calls_for(&doomed).await == attempt {
                        env.worker_pid_of(&doomed).await
                    } else {
                        None
                    }
                },
            )
            .await;
        signal_pid(pid, Signal::SIGKILL);
        let batch = if attempt == 3 { 6 } else { 7 };
        others.extend(
            env.submit_all((0..batch).map(|i| generation(&format!("bystander {attempt}.{i}"))))
                .await,
        );
    }

    let job = env.wait_terminal(&doomed, Duration::from_secs(60)).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "worker_lost", "{job}");
    assert_eq!(job["attempts"], 3, "{job}");
    assert_eq!(env.stub_calls_for(&doomed).await, 3);

    let jobs = env
        .wait_all_terminal(&others, Duration::from_secs(60))
        .await;
    let calls = env.stub_calls_by_job().await;
    for (id, job) in others.iter().zip(&jobs) {
        assert_eq!(job["status"], "succeeded", "{job}");
        let attempts = job["attempts"].as_u64().unwrap();
        let called = calls.get(id).copied().unwrap_or(0);
        assert!(
            (1..=attempts).contains(&called),
            "{id}: {called} provider calls in {attempts} attempts"
        );
    }
    let mut all = others;
    all.push(doomed);
    done.assert_exactly_once(&all).await;
    assert_eq!(
        worker.log_events("worker process died; restarting").len(),
        3,
        "one restart per kill"
    );
}
