//! The attempt token fences every write: an attempt paused past its lease (SIGSTOP), whose
//! job was meanwhile rescued and finished by another worker host, changes nothing when it
//! wakes up and finishes its own provider call.

use std::time::Duration;

use crate::harness::{Paused, TestEnv, generation};

#[tokio::test]
async fn a_paused_attempt_resumed_after_its_job_was_rescued_cannot_overwrite_the_result() {
    let env = TestEnv::builder("stale")
        .env("LONGHAUL_LEASE_SECS", "2")
        .build()
        .await;
    let _api = env.start_api().await;
    let done = env.subscribe_done().await;
    // Two worker hosts, one process each: the job can be rescued onto the other one.
    let _first_host = env.start_worker(&[("LONGHAUL_WORKER_PROCESSES", "1")]);
    let _second_host = env.start_worker(&[("LONGHAUL_WORKER_PROCESSES", "1")]);
    let id = env
        .submit(&generation("slow {{stub latency_ms=4000}}"))
        .await;

    // Pause the process running attempt 1 once its provider call is out.
    let paused_pid = env
        .wait_for(
            Duration::from_secs(30),
            "attempt 1 calling the provider",
            async || match env.stub_calls_for(&id).await {
                1 => env.worker_pid_of(&id).await,
                _ => None,
            },
        )
        .await;
    let paused = Paused::stop(paused_pid);

    let rescuer = env
        .wait_for(
            Duration::from_secs(30),
            "the job rescued and running again",
            async || {
                let (_, job) = env.get_job_as(&env.key, &id).await;
                if job["attempts"] == 2 && job["status"] == "running" {
                    env.worker_pid_of(&id).await
                } else {
                    None
                }
            },
        )
        .await;
    assert_ne!(rescuer, paused_pid, "attempt 2 runs on the other host");
    let job = env.wait_terminal(&id, Duration::from_secs(60)).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 2, "{job}");

    // Wake the paused attempt: its provider answer is waiting for it. Nothing may change.
    paused.resume();
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (_, now) = env.get_job_as(&env.key, &id).await;
        assert_eq!(now, job, "the resumed stale attempt changed the job");
    }
    assert_eq!(env.stub_calls_for(&id).await, 2);
    done.assert_exactly_once(std::slice::from_ref(&id)).await;
}
