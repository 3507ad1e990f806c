//! Tests of the stub: the router through `oneshot`, and the real server over h1 and h2c.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::routes::router;
use super::state::StubState;

fn app() -> Router {
    router(Arc::new(StubState::new(Duration::ZERO)))
}

fn chat(job: Option<&str>, user: &str) -> Request<Body> {
    let body = json!({
        "model": "gpt-x",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": user}
        ],
        "temperature": 0.2,
        "unknown": {"nested": true}
    });
    let mut req =
        Request::post("/v1/chat/completions").header(header::CONTENT_TYPE, "application/json");
    if let Some(job) = job {
        req = req.header("x-longhaul-job-id", job);
    }
    req.body(Body::from(body.to_string())).unwrap()
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let res = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    (parts.status, parts.headers, bytes.to_vec())
}

async fn get_json(app: &Router, uri: &str) -> Value {
    let (status, _, body) = send(app, Request::get(uri).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test]
async fn success_reply_is_deterministic() {
    let app = app();
    let (status, _, body) = send(
        &app,
        chat(Some("j1"), "  hello there {{stub latency_ms=1}} friend "),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-x");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "stub reply: hello there  friend"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    // "be brief" (2) + "hello there {{stub latency_ms=1}} friend" (5)
    assert_eq!(v["usage"]["prompt_tokens"], 7);
    assert_eq!(v["usage"]["completion_tokens"], 5);
    assert_eq!(v["usage"]["total_tokens"], 12);

    let long = "x".repeat(500);
    let (_, _, body) = send(&app, chat(None, &long)).await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    let content = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(content.len(), "stub reply: ".len() + 200);
}

#[tokio::test]
async fn bad_requests_get_openai_errors() {
    let app = app();
    for body in ["not json", r#"{"model":"m"}"#, r#"{"messages":[]}"#] {
        let req = Request::post("/chat/completions")
            .body(Body::from(body))
            .unwrap();
        let (status, _, body) = send(&app, req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }
    let (status, _, _) = send(&app, chat(None, "{{stub nope=1}}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(get_json(&app, "/stub/calls").await["total"], 4);
}

#[tokio::test]
async fn fail_list_is_per_job_then_succeeds() {
    let app = app();
    let msg = "go {{stub fail=500,429 retry_after=2}}";
    let (s1, h1, _) = send(&app, chat(Some("a"), msg)).await;
    let (s_other, _, _) = send(&app, chat(Some("b"), msg)).await;
    let (s2, h2, _) = send(&app, chat(Some("a"), msg)).await;
    let (s3, h3, _) = send(&app, chat(Some("a"), msg)).await;
    assert_eq!(
        (s1.as_u16(), s_other.as_u16(), s2.as_u16(), s3.as_u16()),
        (500, 500, 429, 200)
    );
    assert_eq!(h1[header::RETRY_AFTER], "2");
    assert_eq!(h2[header::RETRY_AFTER], "2");
    assert!(h3.get(header::RETRY_AFTER).is_none());

    let calls = get_json(&app, "/stub/calls").await;
    assert_eq!(calls, json!({"total": 4, "by_job": {"a": 3, "b": 1}}));
    let job = get_json(&app, "/stub/calls/a").await;
    assert_eq!(job, json!({"job_id": "a", "calls": 3, "in_flight": 0}));
    let unknown = get_json(&app, "/stub/calls/zzz").await;
    assert_eq!(unknown["calls"], 0);

    let (status, _, _) = send(
        &app,
        Request::post("/stub/reset").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        get_json(&app, "/stub/calls").await,
        json!({"total": 0, "by_job": {}})
    );
    let (s1, _, _) = send(&app, chat(Some("a"), msg)).await;
    assert_eq!(s1, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn status_and_malformed() {
    let app = app();
    let (status, headers, body) =
        send(&app, chat(Some("s"), "{{stub status=400 retry_after=9}}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(headers.get(header::RETRY_AFTER).is_none());
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert!(v["error"]["message"].is_string());

    let (status, _, body) = send(&app, chat(Some("m"), "{{stub malformed=true}}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(serde_json::from_slice::<Value>(&body).is_err());
}

#[tokio::test]
async fn outage_directive_hits_every_job_once() {
    let app = app();
    let (status, headers, _) = send(
        &app,
        chat(Some("x"), "{{stub outage_ms=300 retry_after=1}}"),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::RETRY_AFTER], "1");
    let (status, _, _) = send(&app, chat(Some("y"), "plain")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    tokio::time::sleep(Duration::from_millis(350)).await;
    // A later directive does not restart the outage.
    let (status, _, _) = send(&app, chat(Some("x"), "{{stub outage_ms=300}}")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn outage_endpoint() {
    let app = app();
    let req = Request::post("/stub/outage")
        .body(Body::from(r#"{"ms": 60000, "status": 502}"#))
        .unwrap();
    let (status, _, _) = send(&app, req).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(&app, chat(Some("y"), "plain")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let req = Request::post("/stub/outage")
        .body(Body::from(r#"{"ms": 0}"#))
        .unwrap();
    send(&app, req).await;
    let (status, _, _) = send(&app, chat(Some("y"), "plain")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn dropped_hang_counts_as_closed_early() {
    let app = app();
    let pending = tokio::time::timeout(
        Duration::from_millis(50),
        app.clone().oneshot(chat(Some("h"), "{{stub hang=true}}")),
    )
    .await;
    assert!(pending.is_err(), "hang must not answer");
    assert_eq!(
        get_json(&app, "/stub/closed-early").await,
        json!({"count": 1, "by_job": {"h": 1}})
    );
    assert_eq!(
        get_json(&app, "/stub/in-flight").await,
        json!({"in_flight": 0, "max_in_flight": 1})
    );
    let (status, _, body) = send(&app, Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, b"ok".as_slice())
    );
}

/// Starts the real server on a free port; returns its base URL.
async fn start(latency_ms: u64) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(Arc::new(StubState::new(Duration::from_millis(latency_ms))));
    tokio::spawn(super::server::serve(listener, app));
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn h2c_multiplexes_far_more_than_200_streams() {
    let base = start(400).await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let body = json!({"messages": [{"role": "user", "content": "hi"}]});
    let calls = (0..1500).map(|i| {
        let req = client
            .post(format!("{base}/v1/chat/completions"))
            .header("x-longhaul-job-id", format!("job-{}", i % 7))
            .json(&body);
        async move {
            let res = req.send().await.unwrap();
            assert_eq!(res.version(), reqwest::Version::HTTP_2);
            res.status()
        }
    });
    let statuses = futures::future::join_all(calls).await;
    assert!(statuses.iter().all(|s| *s == reqwest::StatusCode::OK));
    let v: Value = client
        .get(format!("{base}/stub/in-flight"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(v["max_in_flight"].as_u64().unwrap() > 1000, "{v}");
    let v: Value = client
        .get(format!("{base}/stub/calls"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["total"], 1500);
    let per_job: u64 = v["by_job"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(per_job, 1500);
}

#[tokio::test]
async fn http1_client_timeout_counts_as_closed_early() {
    let base = start(0).await;
    let client = reqwest::Client::builder().http1_only().build().unwrap();
    let body = json!({"messages": [{"role": "user", "content": "{{stub hang=true}}"}]});
    let res = client
        .post(format!("{base}/chat/completions"))
        .header("x-longhaul-job-id", "gone")
        .timeout(Duration::from_millis(100))
        .json(&body)
        .send()
        .await;
    assert!(res.unwrap_err().is_timeout());
    let mut closed = Value::Null;
    for _ in 0..50 {
        closed = reqwest::get(format!("{base}/stub/closed-early"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if closed["count"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(closed, json!({"count": 1, "by_job": {"gone": 1}}));
}
