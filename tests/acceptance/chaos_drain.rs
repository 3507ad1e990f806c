//! SIGTERM drains a worker host: no new claims, in-flight jobs finish within the grace while
//! their leases keep being renewed (so no other host runs them again), queued jobs are left
//! for the next worker, and the supervisor exits 0.

use std::collections::HashSet;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::harness::{TestEnv, generation};

#[tokio::test]
async fn sigterm_lets_in_flight_jobs_finish_within_the_grace_and_leaves_queued_jobs_to_the_next_worker()
 {
    let env = TestEnv::builder("drain")
        .stub_latency_ms(5_000)
        .build()
        .await;
    let _api = env.start_api().await;
    let done = env.subscribe_done().await;
    let ids = env
        .submit_all((0..250).map(|i| generation(&format!("job {i}"))))
        .await;
    // 2 processes x 100 slots: 200 jobs run, 50 stay queued.
    let mut worker = env.start_worker(&[
        ("LONGHAUL_WORKER_PROCESSES", "2"),
        ("LONGHAUL_WORKER_CONCURRENCY", "100"),
        ("LONGHAUL_SHUTDOWN_GRACE_SECS", "30"),
    ]);
    env.wait_until(
        Duration::from_secs(30),
        "200 jobs in flight at the provider",
        async || env.stub_in_flight().await["in_flight"] == 200,
    )
    .await;
    worker.signal(Signal::SIGTERM);
    let called: HashSet<String> = env.stub_calls_by_job().await.into_keys().collect();
    let (in_flight, queued): (Vec<String>, Vec<String>) =
        ids.iter().cloned().partition(|id| called.contains(id));
    assert_eq!((in_flight.len(), queued.len()), (200, 50));

    assert_eq!(
        worker.wait_exit(Duration::from_secs(35)).await,
        Some(Some(0)),
        "the worker did not exit 0 within the grace:\n{}",
        worker.log_text()
    );
    let calls = env.stub_calls_by_job().await;
    for id in &in_flight {
        let (_, job) = env.get_job_as(&env.key, id).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(job["attempts"], 1, "{job}");
        assert_eq!(calls.get(id).copied(), Some(1), "provider calls of {id}");
    }
    for id in &queued {
        let (_, job) = env.get_job_as(&env.key, id).await;
        assert_eq!(job["status"], "queued", "untouched by the drain: {job}");
        assert_eq!(job["attempts"], 0, "{job}");
        assert_eq!(calls.get(id), None, "a queued job was called: {id}");
    }

    // The next worker runs what was left.
    let _next = env.start_worker(&[]);
    let jobs = env
        .wait_all_terminal(&queued, Duration::from_secs(60))
        .await;
    let calls = env.stub_calls_by_job().await;
    for (id, job) in queued.iter().zip(&jobs) {
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(job["attempts"], 1, "{job}");
        assert_eq!(calls.get(id).copied(), Some(1), "provider calls of {id}");
    }
    done.assert_exactly_once(&ids).await;
}

#[tokio::test]
async fn a_drain_longer_than_the_lease_keeps_its_jobs_so_another_host_never_runs_them_twice() {
    let env = TestEnv::builder("long-drain")
        .stub_latency_ms(60_000)
        .env("LONGHAUL_LEASE_SECS", "10")
        .env("LONGHAUL_SHUTDOWN_GRACE_SECS", "90")
        .build()
        .await;
    let _api = env.start_api().await;
    let done = env.subscribe_done().await;
    let ids = env
        .submit_all((0..20).map(|i| generation(&format!("long {i}"))))
        .await;
    let mut draining = env.start_worker(&[]);
    env.wait_until(
        Duration::from_secs(30),
        "20 jobs in flight at the provider",
        async || env.stub_in_flight().await["in_flight"] == 20,
    )
    .await;
    let host_pids: HashSet<i32> = draining.started_worker_pids().into_iter().collect();
    for (id, pid) in ids.iter().zip(env.worker_pids_of(&ids).await) {
        assert!(
            pid.is_some_and(|p| host_pids.contains(&p)),
            "{id} runs on {pid:?}, not on the first host {host_pids:?}"
        );
    }

    // A second host comes up, then the first is told to stop. Its drain (about 60 s) lasts
    // several leases: the second host must not rescue those jobs.
    let second = env.start_worker(&[]);
    env.wait_until(
        Duration::from_secs(30),
        "the second host's worker processes started",
        async || second.started_worker_pids().len() == 2,
    )
    .await;
    draining.signal(Signal::SIGTERM);

    let jobs = env.wait_all_terminal(&ids, Duration::from_secs(150)).await;
    let calls = env.stub_calls_by_job().await;
    for (id, job) in ids.iter().zip(&jobs) {
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(job["attempts"], 1, "{job}");
        assert_eq!(calls.get(id).copied(), Some(1), "provider calls of {id}");
    }
    assert_eq!(
        draining.wait_exit(Duration::from_secs(30)).await,
        Some(Some(0)),
        "the draining host did not exit 0:\n{}",
        draining.log_text()
    );
    done.assert_exactly_once(&ids).await;
}
