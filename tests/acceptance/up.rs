//! `longhaul up`: api, worker and scheduler in one process tree, with the stub provider when
//! no provider is configured, draining on SIGTERM like the worker does.

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::json;

use crate::harness::TestEnv;

#[tokio::test]
async fn up_runs_every_role_with_a_clearly_announced_stub_and_drains_on_sigterm() {
    let env = TestEnv::new("up").await;
    let mut up = env.spawn(
        "up",
        &["up"],
        &[
            ("LONGHAUL_AI_BASE_URL", ""),
            ("LONGHAUL_SHUTDOWN_GRACE_SECS", "10"),
        ],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while env
        .http
        .get(format!("{}/healthz", env.api()))
        .send()
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "up never served the API:\n{}",
            up.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let id = env
        .submit(&json!({"kind": "generation", "input": {"prompt": "from up"}}))
        .await;
    let job = env.wait_terminal(&id, Duration::from_secs(30)).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["text"], "stub reply: from up");
    // The job ran on up's own stub, not the test's.
    assert_eq!(env.stub_calls_for(&id).await, 0);
    assert!(
        up.log_text().contains("STUB provider"),
        "up must say it runs the stub"
    );

    up.signal(Signal::SIGTERM);
    assert_eq!(
        up.wait_exit(Duration::from_secs(30)).await,
        Some(Some(0)),
        "{}",
        up.log_text()
    );
    assert!(up.log_text().contains("all worker processes exited"));
}
