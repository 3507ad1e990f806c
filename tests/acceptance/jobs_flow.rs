//! The happy path: jobs of both kinds run against the provider and are readable and listable.

use std::time::Duration;

use serde_json::json;

use crate::harness::TestEnv;

#[tokio::test]
async fn a_generation_and_an_interpretation_job_succeed_with_the_providers_text_and_usage() {
    let env = TestEnv::new("kinds").await;
    let _api = env.start_api().await;
    let _worker = env.start_worker(&[]);

    let generation = env
        .submit(&json!({"kind": "generation", "input": {"prompt": "write a haiku about queues"}, "metadata": {"order": 7}}))
        .await;
    let interpretation = env
        .submit(&json!({"kind": "interpretation", "input": {"subject": {"revenue": [1, 2, 3]}, "instructions": "explain the trend"}}))
        .await;

    let job = env
        .wait_terminal(&generation, Duration::from_secs(30))
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["kind"], "generation");
    assert_eq!(
        job["result"]["text"],
        "stub reply: write a haiku about queues"
    );
    assert_eq!(job["result"]["finish_reason"], "stop");
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["metadata"]["order"], 7);
    assert!(job["usage"]["total_tokens"].as_u64().unwrap() > 0, "{job}");
    assert_eq!(
        job["usage"]["total_tokens"].as_u64(),
        Some(
            job["usage"]["prompt_tokens"].as_u64().unwrap()
                + job["usage"]["completion_tokens"].as_u64().unwrap()
        )
    );
    assert!(job["started_at"].is_string() && job["finished_at"].is_string());

    let job = env
        .wait_terminal(&interpretation, Duration::from_secs(30))
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["kind"], "interpretation");
    let text = job["result"]["text"].as_str().unwrap();
    assert!(
        text.starts_with("stub reply: explain the trend") && text.contains("revenue"),
        "{text}"
    );
    assert!(job["usage"]["completion_tokens"].as_u64().unwrap() > 0);

    assert_eq!(env.stub_calls_for(&generation).await, 1);
    assert_eq!(env.stub_calls_for(&interpretation).await, 1);
}

#[tokio::test]
async fn submit_answers_202_with_a_location_and_the_job_is_queued_until_a_worker_runs() {
    let env = TestEnv::new("accepted").await;
    let _api = env.start_api().await;
    let r = env
        .post_job_as(
            &env.key,
            &json!({"kind": "generation", "input": {"prompt": "hi"}}),
        )
        .await;
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(r.headers().contains_key("x-request-id"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        location,
        format!("/v1/jobs/{}", body["id"].as_str().unwrap())
    );
    assert_eq!(body["status"], "queued");
    assert_eq!(body["links"]["self"], location);

    let (code, job) = env.get_job_as(&env.key, body["id"].as_str().unwrap()).await;
    assert_eq!(code, 200);
    assert_eq!(job["status"], "queued");
    assert_eq!(job["attempts"], 0);
}

#[tokio::test]
async fn the_list_is_newest_first_filters_by_status_and_pages_with_a_cursor() {
    let env = TestEnv::new("list").await;
    let _api = env.start_api().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            env.submit(&json!({"kind": "generation", "input": {"prompt": format!("p{i}")}}))
                .await,
        );
    }
    let page = |query: String| {
        let env = &env;
        async move {
            let r = env
                .http
                .get(format!("{}/v1/jobs?{query}", env.api()))
                .bearer_auth(&env.key)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    let first = page("limit=3".into()).await;
    let got: Vec<&str> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[4].as_str(), &ids[3], &ids[2]]);
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next cursor")
        .to_owned();
    let second = page(format!("limit=3&cursor={cursor}")).await;
    let got: Vec<&str> = second["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[1].as_str(), &ids[0]]);
    assert!(second["next_cursor"].is_null());

    let none = page("status=succeeded".into()).await;
    assert_eq!(none["data"].as_array().unwrap().len(), 0);
    let queued = page("status=queued&kind=generation".into()).await;
    assert_eq!(queued["data"].as_array().unwrap().len(), 5);

    let r = env
        .http
        .get(format!("{}/v1/jobs?limit=0", env.api()))
        .bearer_auth(&env.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let r = env
        .http
        .get(format!("{}/v1/jobs?status=done", env.api()))
        .bearer_auth(&env.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_first_job_instead_of_a_second_one() {
    let env = TestEnv::new("idem").await;
    let _api = env.start_api().await;
    let body = json!({"kind": "generation", "input": {"prompt": "once"}});
    let send = || {
        env.http
            .post(format!("{}/v1/jobs", env.api()))
            .bearer_auth(&env.key)
            .header("idempotency-key", "order-42")
            .body(body.to_string())
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 202);
    let first: serde_json::Value = first.json().await.unwrap();
    let second = send().await.unwrap();
    assert_eq!(second.status(), 200);
    let second: serde_json::Value = second.json().await.unwrap();
    assert_eq!(first["id"], second["id"]);

    let mut redis = env.redis().await;
    let queued: u64 = redis::cmd("LLEN")
        .arg(env.redis_key("ready:generation"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(
        queued, 1,
        "a duplicate submit must not enqueue a second job"
    );
}
