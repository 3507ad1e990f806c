//! Finished jobs outlive their Redis copy: the archive answers once Redis has expired it.

use std::time::Duration;

use serde_json::json;

use crate::harness::TestEnv;

#[tokio::test]
async fn a_finished_job_is_still_readable_from_postgres_after_redis_expired_it() {
    let env = TestEnv::builder("retention")
        .env("LONGHAUL_RESULT_TTL_SECS", "1")
        .build()
        .await;
    let _api = env.start_api().await;
    let _worker = env.start_worker(&[]);
    let id = env
        .submit(
            &json!({"kind": "generation", "input": {"prompt": "keep me"}, "metadata": {"k": "v"}}),
        )
        .await;
    let live = env.wait_terminal(&id, Duration::from_secs(30)).await;
    assert_eq!(live["status"], "succeeded");

    env.wait_redis_forgot(&id).await;

    let (code, archived) = env.get_job_as(&env.key, &id).await;
    assert_eq!(code, 200, "{archived}");
    for field in [
        "id",
        "kind",
        "status",
        "attempts",
        "result",
        "usage",
        "cached",
        "metadata",
        "created_at",
        "started_at",
        "finished_at",
    ] {
        assert_eq!(
            archived[field], live[field],
            "field {field} differs: live {live} archived {archived}"
        );
    }
    // Still isolated by tenant, and listed.
    let other = env.create_key("globex").await;
    assert_eq!(env.get_job_as(&other, &id).await.0, 404);
    let list: serde_json::Value = env
        .http
        .get(format!("{}/v1/jobs", env.api()))
        .bearer_auth(&env.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"][0]["id"], id.as_str());
}
