//! The API's edges: bad input, auth, tenant isolation, problem+json, request ids.

use serde_json::{Value, json};

use crate::harness::TestEnv;

async fn assert_nothing_enqueued(env: &TestEnv) {
    let mut redis = env.redis().await;
    for kind in ["generation", "interpretation"] {
        let n: u64 = redis::cmd("LLEN")
            .arg(env.redis_key(&format!("ready:{kind}")))
            .query_async(&mut redis)
            .await
            .unwrap();
        assert_eq!(n, 0, "a rejected request enqueued a {kind} job");
    }
    let tenant: u64 = redis::cmd("ZCARD")
        .arg(env.redis_key("tenant:acme"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(tenant, 0);
}

#[tokio::test]
async fn bad_input_gets_a_4xx_problem_with_a_stable_code_and_nothing_is_enqueued() {
    let env = TestEnv::builder("badinput")
        .env("LONGHAUL_MAX_BODY_BYTES", "2048")
        .build()
        .await;
    let _api = env.start_api().await;
    let cases: Vec<(&str, String, u16, &str, Option<&str>)> = vec![
        (
            "missing kind",
            json!({"input": {"prompt": "x"}}).to_string(),
            422,
            "validation_failed",
            Some("kind"),
        ),
        (
            "unknown kind",
            json!({"kind": "poem", "input": {"prompt": "x"}}).to_string(),
            422,
            "validation_failed",
            Some("kind"),
        ),
        (
            "empty prompt",
            json!({"kind": "generation", "input": {"prompt": ""}}).to_string(),
            422,
            "validation_failed",
            Some("input.prompt"),
        ),
        (
            "blank prompt",
            json!({"kind": "generation", "input": {"prompt": "   "}}).to_string(),
            422,
            "validation_failed",
            Some("input.prompt"),
        ),
        (
            "no subject",
            json!({"kind": "interpretation", "input": {}}).to_string(),
            422,
            "validation_failed",
            Some("input.subject"),
        ),
        (
            "unknown field",
            json!({"kind": "generation", "input": {"prompt": "x"}, "priority": 1}).to_string(),
            422,
            "validation_failed",
            None,
        ),
        (
            "wrong type",
            json!({"kind": "generation", "input": {"prompt": "x"}, "max_attempts": "many"})
                .to_string(),
            422,
            "validation_failed",
            None,
        ),
        (
            "attempts out of range",
            json!({"kind": "generation", "input": {"prompt": "x"}, "max_attempts": 99}).to_string(),
            422,
            "validation_failed",
            Some("max_attempts"),
        ),
        (
            "non-JSON body",
            "kind=generation".to_owned(),
            400,
            "invalid_json",
            None,
        ),
        (
            "JSON but not an object",
            "[1,2]".to_owned(),
            400,
            "invalid_json",
            None,
        ),
        (
            "body over the limit",
            json!({"kind": "generation", "input": {"prompt": "x".repeat(4096)}}).to_string(),
            413,
            "payload_too_large",
            None,
        ),
    ];
    for (case, body, status, code, field) in cases {
        let r = env
            .http
            .post(format!("{}/v1/jobs", env.api()))
            .bearer_auth(&env.key)
            .header("content-type", "application/json")
            .header("x-request-id", format!("req-{}", case.replace(' ', "-")))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{case}");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{case}"
        );
        let problem: Value = r.json().await.unwrap();
        assert_eq!(problem["code"], code, "{case}: {problem}");
        assert_eq!(problem["status"], status, "{case}");
        assert_eq!(
            problem["request_id"],
            format!("req-{}", case.replace(' ', "-")),
            "{case}"
        );
        if let Some(field) = field {
            let fields: Vec<&str> = problem["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["field"].as_str().unwrap())
                .collect();
            assert!(fields.contains(&field), "{case}: {problem}");
        }
    }
    assert_nothing_enqueued(&env).await;
}

#[tokio::test]
async fn requests_without_a_valid_key_get_401() {
    let env = TestEnv::new("noauth").await;
    let _api = env.start_api().await;
    let body = json!({"kind": "generation", "input": {"prompt": "x"}}).to_string();
    let no_header = env
        .http
        .post(format!("{}/v1/jobs", env.api()))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(no_header.status(), 401);
    assert_eq!(no_header.headers()["www-authenticate"], "Bearer");
    let problem: Value = no_header.json().await.unwrap();
    assert_eq!(problem["code"], "unauthorized");
    for bad in [
        "lh_aaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
        "garbage",
        "",
    ] {
        let r = env
            .http
            .post(format!("{}/v1/jobs", env.api()))
            .bearer_auth(bad)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{bad:?}");
    }
    let r = env
        .http
        .get(format!("{}/v1/jobs", env.api()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_nothing_enqueued(&env).await;
}

#[tokio::test]
async fn a_tenant_never_sees_another_tenants_jobs() {
    let env = TestEnv::new("tenants").await;
    let _api = env.start_api().await;
    let other = env.create_key("globex").await;
    let id = env
        .submit(&json!({"kind": "generation", "input": {"prompt": "secret"}}))
        .await;

    let (code, body) = env.get_job_as(&other, &id).await;
    assert_eq!(code, 404, "{body}");
    assert_eq!(body["code"], "not_found");
    let list: Value = env
        .http
        .get(format!("{}/v1/jobs", env.api()))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().map(Vec::len), Some(0), "{list}");
    let (code, _) = env.get_job_as(&env.key, &id).await;
    assert_eq!(code, 200);
    let (code, _) = env.get_job_as(&env.key, "not-a-uuid").await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_unknown_routes_are_problems() {
    let env = TestEnv::new("reqid").await;
    let _api = env.start_api().await;
    let r = env
        .http
        .get(format!("{}/healthz", env.api()))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    let r = env
        .http
        .get(format!("{}/nope", env.api()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers().contains_key("x-request-id"));
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = env
        .http
        .delete(format!("{}/healthz", env.api()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}
