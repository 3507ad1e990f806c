//! Webhook receivers: the SSRF guard refuses private, loopback, link-local and metadata
//! addresses (also behind a host name) with a clear problem, unless the dev flag is on.

use serde_json::{Value, json};

use crate::harness::TestEnv;

fn with_webhook(url: &str) -> Value {
    json!({"kind": "generation", "input": {"prompt": "tell me when done"}, "webhook": {"url": url}})
}

#[tokio::test]
async fn webhook_urls_at_private_addresses_are_refused_with_a_problem_unless_allowed() {
    let env = TestEnv::new("webhook-ssrf").await;
    let _api = env.start_api().await;
    for url in [
        "https://127.0.0.1/hook",
        "https://10.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://localhost/hook",
        "http://example.com/hook",
    ] {
        let r = env.post_job_as(&env.key, &with_webhook(url)).await;
        assert_eq!(r.status(), 422, "{url}");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{url}"
        );
        let problem: Value = r.json().await.unwrap();
        assert_eq!(problem["code"], "validation_failed", "{url}: {problem}");
        assert!(
            problem.to_string().contains("webhook.url"),
            "{url}: {problem}"
        );
    }

    let dev = TestEnv::builder("webhook-dev")
        .env("LONGHAUL_WEBHOOK_ALLOW_PRIVATE", "true")
        .build()
        .await;
    let _dev_api = dev.start_api().await;
    dev.submit(&with_webhook("http://127.0.0.1:9/hook")).await;
    dev.submit(&with_webhook("https://localhost/hook")).await;
}
