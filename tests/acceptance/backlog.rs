//! A backlog piles up while no worker runs, and drains completely once workers start:
//! no unbounded script work, no job lost, no job run twice.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::TestEnv;

const JOBS: usize = 20_000;

#[tokio::test]
async fn twenty_thousand_jobs_queued_while_no_worker_runs_all_succeed_once_workers_start() {
    let env = Arc::new(TestEnv::new("backlog").await);
    let _api = env.start_api().await;

    // Submit with 32 concurrent clients.
    let mut tasks = Vec::new();
    for client in 0..32 {
        let env = env.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in (client..JOBS).step_by(32) {
                ids.push(env.submit(&json!({"kind": if i % 2 == 0 { "generation" } else { "interpretation" }, "input": if i % 2 == 0 { json!({"prompt": format!("job {i}")}) } else { json!({"subject": {"n": i}}) }})).await);
            }
            ids
        }));
    }
    let mut ids = HashSet::new();
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    assert_eq!(ids.len(), JOBS);
    let mut redis = env.redis().await;
    let ready: u64 = redis::cmd("LLEN")
        .arg(env.redis_key("ready:generation"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(
        ready as usize,
        JOBS / 2,
        "all generation jobs wait while no worker runs"
    );

    let _worker = env.start_worker(&[("LONGHAUL_WORKER_CONCURRENCY", "64")]);
    let pg = env.pg().await;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let (done,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM jobs WHERE status = 'succeeded'")
                .fetch_one(&pg)
                .await
                .unwrap();
        if done as usize == JOBS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {done} of {JOBS} jobs archived as succeeded"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (other,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM jobs WHERE status <> 'succeeded' OR attempts <> 1")
            .fetch_one(&pg)
            .await
            .unwrap();
    assert_eq!(other, 0);

    let calls = env.stub_calls().await;
    assert_eq!(
        calls["total"].as_u64(),
        Some(JOBS as u64),
        "one provider call per job"
    );
    let by_job = calls["by_job"].as_object().unwrap();
    assert_eq!(by_job.len(), JOBS);
    for id in &ids {
        assert_eq!(by_job.get(id).and_then(|c| c.as_u64()), Some(1), "job {id}");
    }
}
