//! Redis restarts under load: the API refuses submits while Redis is away, every process
//! rides out the outage, and every accepted job still ends, each called once.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{RedisServer, TestEnv, generation};

#[tokio::test]
async fn a_redis_restart_during_1000_jobs_loses_none_and_no_process_exits() {
    let mut redis = RedisServer::start().await;
    let env = TestEnv::builder("redis-restart")
        .redis_url(redis.url())
        .stub_latency_ms(200)
        .build()
        .await;
    let mut api = env.start_api().await;
    let ids = env
        .submit_all((0..1000).map(|i| generation(&format!("job {i}"))))
        .await;
    let mut worker = env.start_worker(&[("LONGHAUL_WORKER_CONCURRENCY", "16")]);
    env.wait_until(
        Duration::from_secs(120),
        "a third of the jobs called at the provider",
        async || env.stub_calls().await["total"].as_u64() >= Some(333),
    )
    .await;

    redis.stop();
    let refused = env.post_job_as(&env.key, &generation("while down")).await;
    assert_eq!(refused.status(), 503);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = refused.json().await.expect("problem JSON");
    assert_eq!(problem["code"], "unavailable", "{problem}");
    redis.restart().await;

    let jobs = env.wait_all_terminal(&ids, Duration::from_secs(300)).await;
    let calls = env.stub_calls_by_job().await;
    for (id, job) in ids.iter().zip(&jobs) {
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(calls.get(id).copied(), Some(1), "provider calls of {id}");
    }
    api.assert_running();
    worker.assert_running();
    let died = worker.log_events("worker process died; restarting");
    assert!(died.is_empty(), "worker processes died: {died:?}");
}
