//! HTTP hardening: security headers on every response, CORS for configured origins only,
//! limits on client JSON, and the API's own request deadline.

use serde_json::{Value, json};

use crate::harness::{TestEnv, generation};

#[tokio::test]
async fn every_response_carries_the_security_headers_and_hsts_when_configured() {
    let env = TestEnv::builder("sechead")
        .env("LONGHAUL_HSTS", "true")
        .build()
        .await;
    let _api = env.start_api().await;
    let id = env.submit(&generation("headers")).await;
    let responses = [
        ("health", env.http.get(format!("{}/healthz", env.api()))),
        (
            "job",
            env.http
                .get(format!("{}/v1/jobs/{id}", env.api()))
                .bearer_auth(&env.key),
        ),
        (
            "unauthorized",
            env.http.get(format!("{}/v1/jobs", env.api())),
        ),
        ("unknown route", env.http.get(format!("{}/nope", env.api()))),
        (
            "submit",
            env.http
                .post(format!("{}/v1/jobs", env.api()))
                .bearer_auth(&env.key)
                .json(&generation("another")),
        ),
    ];
    for (case, request) in responses {
        let r = request.send().await.unwrap();
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{case}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{case}");
        assert_eq!(h["cache-control"], "no-store", "{case}");
        assert!(
            h["strict-transport-security"]
                .to_str()
                .unwrap()
                .starts_with("max-age="),
            "{case}"
        );
        assert!(h.contains_key("x-request-id"), "{case}");
        assert!(!h.contains_key("access-control-allow-origin"), "{case}");
    }
}

#[tokio::test]
async fn cors_answers_preflights_from_allowed_origins_only_and_hsts_is_off_by_default() {
    let env = TestEnv::builder("cors")
        .env(
            "LONGHAUL_CORS_ORIGINS",
            "https://app.example.com, http://localhost:3000",
        )
        .build()
        .await;
    let _api = env.start_api().await;
    let preflight = |origin: &str| {
        env.http
            .request(reqwest::Method::OPTIONS, format!("{}/v1/jobs", env.api()))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type, idempotency-key",
            )
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    let h = allowed.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    let methods = h["access-control-allow-methods"].to_str().unwrap();
    assert!(
        methods.contains("POST") && methods.contains("DELETE"),
        "{methods}"
    );
    let headers = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        headers.contains("authorization") && headers.contains("idempotency-key"),
        "{headers}"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");

    let denied = preflight("https://evil.example.com").await.unwrap();
    assert!(
        !denied.headers().contains_key("access-control-allow-origin"),
        "a preflight from another origin was allowed"
    );

    // A simple request from an allowed origin can read the answer and its rate headers.
    let r = env
        .http
        .post(format!("{}/v1/jobs", env.api()))
        .bearer_auth(&env.key)
        .header("origin", "http://localhost:3000")
        .json(&generation("from a browser"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        exposed.contains("ratelimit-remaining") && exposed.contains("location"),
        "{exposed}"
    );
    assert!(!r.headers().contains_key("strict-transport-security"));
}

#[tokio::test]
async fn deep_or_wide_client_json_is_rejected_by_field() {
    let env = TestEnv::new("jsonlimits").await;
    let _api = env.start_api().await;
    let mut deep = json!("leaf");
    for _ in 0..40 {
        deep = json!({"nested": deep});
    }
    let wide: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("label{i}"), json!(i))).collect();
    for (case, body, field) in [
        (
            "deep subject",
            json!({"kind": "interpretation", "input": {"subject": deep}}),
            "input.subject",
        ),
        (
            "deep metadata",
            json!({"kind": "generation", "input": {"prompt": "x"}, "metadata": {"m": deep}}),
            "metadata",
        ),
        (
            "too many metadata keys",
            json!({"kind": "generation", "input": {"prompt": "x"}, "metadata": wide}),
            "metadata",
        ),
    ] {
        let r = env.post_job_as(&env.key, &body).await;
        assert_eq!(r.status(), 422, "{case}");
        let problem: Value = r.json().await.unwrap();
        assert_eq!(problem["code"], "validation_failed", "{case}");
        assert_eq!(problem["errors"][0]["field"], field, "{case}: {problem}");
    }
    // Nesting beyond what any parser should walk is not JSON we accept at all.
    let mut abyss = String::new();
    for _ in 0..200 {
        abyss.push('[');
    }
    for _ in 0..200 {
        abyss.push(']');
    }
    let r = env
        .http
        .post(format!("{}/v1/jobs", env.api()))
        .bearer_auth(&env.key)
        .body(format!(
            r#"{{"kind":"interpretation","input":{{"subject":{abyss}}}}}"#
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn a_request_over_the_deadline_gets_a_503_timeout_problem() {
    let env = TestEnv::builder("deadline")
        .env("LONGHAUL_REQUEST_TIMEOUT_SECS", "1")
        .build()
        .await;
    let _api = env.start_api().await;
    let id = env.submit(&generation("no worker runs it")).await;
    let started = std::time::Instant::now();
    let r = env
        .http
        .get(format!("{}/v1/jobs/{id}?wait=30", env.api()))
        .bearer_auth(&env.key)
        .header("x-request-id", "slow-one")
        .send()
        .await
        .unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert!(r.headers().contains_key("retry-after"));
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["code"], "timeout", "{problem}");
    assert_eq!(problem["request_id"], "slow-one");
}
