//! The OpenAPI document: served without auth, covering every route, and checked against the
//! running API by a schema-driven fuzzer (Schemathesis, via `api/fuzz/schemathesis.sh`).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::TestEnv;

#[tokio::test]
async fn the_openapi_document_describes_every_route_and_error() {
    let env = TestEnv::new("openapi").await;
    let _api = env.start_api().await;
    let r = env
        .http
        .get(format!("{}/openapi.json", env.api()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let doc: Value = r.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for (path, methods) in [
        ("/v1/jobs", &["get", "post"][..]),
        ("/v1/jobs/{id}", &["get", "delete"]),
        ("/v1/jobs/{id}/retry", &["post"]),
        ("/healthz", &["get"]),
        ("/readyz", &["get"]),
        ("/openapi.json", &["get"]),
    ] {
        for method in methods {
            let op = &doc["paths"][path][method];
            assert!(op.is_object(), "{method} {path} is not documented");
            if path.starts_with("/v1") {
                for status in ["401", "403", "429"] {
                    assert!(
                        op["responses"][status]["content"]["application/problem+json"].is_object(),
                        "{method} {path} does not document its {status} problem"
                    );
                }
            }
        }
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let codes = doc["components"]["schemas"]["ProblemCode"].to_string();
    for code in [
        "unauthorized",
        "forbidden",
        "rate_limited",
        "quota_exceeded",
        "idempotency_key_reused",
        "validation_failed",
        "payload_too_large",
    ] {
        assert!(
            codes.contains(&format!("\"{code}\"")),
            "{code} missing: {codes}"
        );
    }
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_that_contradicts_the_schema() {
    let env = TestEnv::new("fuzz").await;
    let _api = env.start_api().await;
    // A worker, so the fuzzer also meets running and finished jobs.
    let _worker = env.start_worker(&[("LONGHAUL_WORKER_PROCESSES", "1")]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/api/fuzz/schemathesis.sh");
    let started = Instant::now();
    let out = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::process::Command::new("bash")
            .arg(script)
            .arg(env.api())
            .env("LONGHAUL_FUZZ_KEY", &env.key)
            .env("LONGHAUL_FUZZ_MAX_EXAMPLES", "60")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the fuzz run ends within 5 minutes")
    .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(3) => {
            println!(
                "SKIPPED: Schemathesis could not be installed (python3 venv or pip): {stderr}"
            );
            return;
        }
        Some(0) => {
            // Warnings (e.g. an operation that only ever answered 4xx) are worth reading.
            if let Some(at) = stdout.find("WARNINGS") {
                println!("{}", &stdout[at..]);
            }
            let summary = stdout.lines().rev().take(6).collect::<Vec<_>>();
            println!(
                "schemathesis passed in {:?}: {summary:?}",
                started.elapsed()
            );
        }
        other => panic!("schemathesis found problems (exit {other:?}):\n{stdout}\n{stderr}"),
    }
}
