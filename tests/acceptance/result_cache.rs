//! The result cache: identical requests cost one provider call (single-flight while it
//! runs, the cache after), `"cache": false` opts out, tenants do not share unless the scope
//! is global, and admins can see and clear it.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::TestEnv;

async fn create_admin_key(env: &TestEnv) -> String {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_longhaul"))
        .args(["keys", "create", "--tenant", "acme", "--scopes", "admin"])
        .env_clear()
        .envs(env.env_vars())
        .output()
        .await
        .expect("run keys create");
    assert!(out.status.success(), "keys create failed");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Submits `body` as `key`: (HTTP status, body).
async fn post(env: &TestEnv, key: &str, body: &Value) -> (u16, Value) {
    let r = env.post_job_as(key, body).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn total_stub_calls(env: &TestEnv) -> u64 {
    env.stub_calls().await["total"].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn a_hundred_identical_concurrent_jobs_make_one_provider_call_and_a_repeat_none() {
    let env = TestEnv::new("cache-flight").await;
    let _api = env.start_api().await;
    let body = json!({"kind": "generation", "input": {"prompt": "the same question {{stub latency_ms=1500}}", "temperature": 0.2}});

    // All queued before a worker runs: they are claimed together, one leads, the rest join.
    let submits = (0..100).map(|_| env.submit(&body));
    let ids: Vec<String> = futures::future::join_all(submits).await;
    let _worker = env.start_worker(&[]);
    let jobs = env.wait_all_terminal(&ids, Duration::from_secs(60)).await;

    assert_eq!(
        total_stub_calls(&env).await,
        1,
        "{}",
        env.stub_calls().await
    );
    let text = jobs[0]["result"]["text"].clone();
    assert!(
        text.as_str().is_some_and(|t| t.starts_with("stub reply:")),
        "{}",
        jobs[0]
    );
    for job in &jobs {
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(job["result"]["text"], text, "{job}");
    }
    let cached: Vec<&Value> = jobs.iter().filter(|j| j["cached"] == true).collect();
    assert_eq!(
        cached.len(),
        99,
        "all but the computing job are cached or joined"
    );
    for job in cached {
        assert_eq!(job["usage"]["total_tokens"], 0, "{job}");
    }

    // The answer is cached now: a repeat completes at submit, without the provider.
    let started = Instant::now();
    let (status, job) = post(&env, &env.key, &body).await;
    let elapsed = started.elapsed();
    println!("cached submit answered in {elapsed:?} end to end");
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["cached"], true, "{job}");
    assert_eq!(job["result"]["text"], text, "{job}");
    assert_eq!(job["usage"]["total_tokens"], 0, "{job}");
    let (_, read) = env.get_job_as(&env.key, job["id"].as_str().unwrap()).await;
    assert_eq!(read["status"], "succeeded", "{read}");
    assert_eq!(read["cached"], true, "{read}");
    assert_eq!(total_stub_calls(&env).await, 1);

    // The admin view counts the hits and the joins; clearing makes the next one a miss.
    let admin = create_admin_key(&env).await;
    let stats: Value = env
        .http
        .get(format!("{}/v1/cache/stats", env.api()))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["entries"], 1, "{stats}");
    assert_eq!(stats["misses"], 1, "{stats}");
    assert_eq!(
        stats["hits"].as_u64().unwrap() + stats["joins"].as_u64().unwrap(),
        100,
        "{stats}"
    );
    assert!(stats["hit_rate"].as_f64().unwrap() > 0.99, "{stats}");
    let forbidden = env
        .http
        .get(format!("{}/v1/cache/stats", env.api()))
        .bearer_auth(&env.key)
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);
    let cleared = env
        .http
        .delete(format!("{}/v1/cache", env.api()))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 200);
    let (status, _) = post(
        &env,
        &env.key,
        &json!({"kind": "generation", "input": {"prompt": "the same question {{stub latency_ms=1500}}", "temperature": 0.2}}),
    )
    .await;
    assert_eq!(status, 202, "after clearing, the API's L1 and Redis miss");
}

#[tokio::test]
async fn cache_false_calls_the_provider_again_and_tenants_do_not_share_answers() {
    let env = TestEnv::new("cache-optout").await;
    let _api = env.start_api().await;
    let _worker = env.start_worker(&[]);
    let body = json!({"kind": "generation", "input": {"prompt": "private question"}});

    let first = env.submit(&body).await;
    let job = env.wait_terminal(&first, Duration::from_secs(30)).await;
    assert_eq!(job["cached"], false, "{job}");
    assert_eq!(total_stub_calls(&env).await, 1);

    let mut opted_out = body.clone();
    opted_out["cache"] = json!(false);
    let second = env.submit(&opted_out).await;
    let job = env.wait_terminal(&second, Duration::from_secs(30)).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["cached"], false, "{job}");
    assert_eq!(
        total_stub_calls(&env).await,
        2,
        "cache:false calls the provider"
    );

    let globex = env.create_key("globex").await;
    let (status, accepted) = post(&env, &globex, &body).await;
    assert_eq!(
        status, 202,
        "another tenant does not get acme's answer: {accepted}"
    );
    let id = accepted["id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let job = loop {
        let (_, job) = env.get_job_as(&globex, id).await;
        if job["status"] == "succeeded" || Instant::now() > deadline {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["cached"], false, "{job}");
    assert_eq!(total_stub_calls(&env).await, 3);
}

#[tokio::test]
async fn with_a_global_scope_tenants_share_answers() {
    let env = TestEnv::builder("cache-global")
        .env("LONGHAUL_CACHE_SCOPE", "global")
        .build()
        .await;
    let _api = env.start_api().await;
    let _worker = env.start_worker(&[]);
    let body = json!({"kind": "interpretation", "input": {"subject": {"rows": [1, 2]}, "instructions": "sum"}});
    let first = env.submit(&body).await;
    env.wait_terminal(&first, Duration::from_secs(30)).await;

    let globex = env.create_key("globex").await;
    let (status, job) = post(&env, &globex, &body).await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["cached"], true, "{job}");
    assert_eq!(total_stub_calls(&env).await, 1);
}
