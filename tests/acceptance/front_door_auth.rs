//! Who may call the API: scoped and expiring API keys (401 vs 403), and JWT Bearer tokens
//! (signature, expiry, audience, issuer, tenant and scopes from claims).

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::harness::{TestEnv, generation};

const JWT_SECRET: &str = "front-door-test-secret-of-at-least-32-bytes";
const AUDIENCE: &str = "longhaul-api";
const ISSUER: &str = "https://auth.example.com";

/// Creates a key with `scopes` (comma-separated) through the CLI.
async fn create_scoped_key(env: &TestEnv, tenant: &str, scopes: &str) -> String {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_longhaul"))
        .args(["keys", "create", "--tenant", tenant, "--scopes", scopes])
        .env_clear()
        .envs(env.env_vars())
        .output()
        .await
        .expect("run keys create");
    assert!(
        out.status.success(),
        "keys create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn list_as(env: &TestEnv, token: &str) -> (u16, Value) {
    let r = env
        .http
        .get(format!("{}/v1/jobs", env.api()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

async fn cancel_as(env: &TestEnv, token: &str, id: &str) -> u16 {
    env.http
        .delete(format!("{}/v1/jobs/{id}", env.api()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_key_without_the_routes_scope_gets_403_and_an_expired_key_401() {
    let env = TestEnv::new("scopes").await;
    let reader = create_scoped_key(&env, "acme", "jobs:read").await;
    let writer = create_scoped_key(&env, "acme", "jobs:write").await;
    let admin = create_scoped_key(&env, "acme", "admin").await;
    let expired = create_scoped_key(&env, "acme", "jobs:read,jobs:write").await;
    let pg = env.pg().await;
    sqlx::query("UPDATE api_keys SET expires_at = now() - interval '1 minute' WHERE prefix = $1")
        .bind(&expired[..11])
        .execute(&pg)
        .await
        .unwrap();
    let _api = env.start_api().await;

    // Read-only key: reads, but submitting and cancelling are forbidden (and enqueue nothing).
    let r = env.post_job_as(&reader, &generation("not allowed")).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["code"], "forbidden", "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("jobs:write"));
    let id = env.submit(&generation("by the full key")).await;
    assert_eq!(env.get_job_as(&reader, &id).await.0, 200);
    assert_eq!(list_as(&env, &reader).await.0, 200);
    assert_eq!(cancel_as(&env, &reader, &id).await, 403);

    // Write-only key: submits and cancels, but reading is forbidden.
    let r = env.post_job_as(&writer, &generation("by the writer")).await;
    assert_eq!(r.status(), 202);
    let (code, problem) = env.get_job_as(&writer, &id).await;
    assert_eq!(code, 403, "{problem}");
    assert_eq!(problem["code"], "forbidden");
    assert_eq!(list_as(&env, &writer).await.0, 403);
    assert_eq!(cancel_as(&env, &writer, &id).await, 200);

    // admin includes both.
    assert_eq!(env.get_job_as(&admin, &id).await.0, 200);
    assert_eq!(
        env.post_job_as(&admin, &generation("by admin"))
            .await
            .status(),
        202
    );

    // Expired: 401 whatever the scopes, with the Bearer challenge.
    let r = env.post_job_as(&expired, &generation("too late")).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(env.get_job_as(&expired, &id).await.0, 401);

    let mut redis = env.redis().await;
    let jobs: u64 = redis::cmd("ZCARD")
        .arg(env.redis_key("tenant:acme"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(jobs, 3, "only the allowed submits enqueued");
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims(tenant: &str, scope: &str) -> Value {
    json!({
        "tenant": tenant,
        "scope": scope,
        "aud": AUDIENCE,
        "iss": ISSUER,
        "iat": now(),
        "exp": now() + 300,
    })
}

fn mint(claims: &Value) -> String {
    mint_with(claims, JWT_SECRET)
}

fn mint_with(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn jwt_bearer_tokens_are_verified_and_act_for_their_tenant_and_scopes() {
    let env = TestEnv::builder("jwt")
        .env("LONGHAUL_JWT_HS256_SECRET", JWT_SECRET)
        .env("LONGHAUL_JWT_AUDIENCE", AUDIENCE)
        .env("LONGHAUL_JWT_ISSUER", ISSUER)
        .build()
        .await;
    let api = env.start_api().await;

    // A valid token submits and reads its tenant's jobs, API-key jobs of that tenant included.
    let token = mint(&claims("acme", "jobs:read jobs:write"));
    let r = env
        .post_job_as(&token, &generation("from a frontend"))
        .await;
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, job) = env.get_job_as(&token, &id).await;
    assert_eq!(code, 200, "{job}");
    assert_eq!(env.get_job_as(&env.key, &id).await.0, 200, "same tenant");
    let by_key = env.submit(&generation("from a backend")).await;
    let (code, page) = list_as(&env, &token).await;
    assert_eq!(code, 200);
    let ids: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&id.as_str()) && ids.contains(&by_key.as_str()),
        "{page}"
    );

    // Scopes as an array work too; a read-only token cannot submit.
    let mut array = claims("acme", "");
    array.as_object_mut().unwrap().remove("scope");
    array["scopes"] = json!(["jobs:read"]);
    let read_only = mint(&array);
    assert_eq!(env.get_job_as(&read_only, &id).await.0, 200);
    let r = env.post_job_as(&read_only, &generation("no")).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "forbidden");

    // Another tenant's token does not see acme's job.
    let globex = mint(&claims("globex", "jobs:read jobs:write"));
    assert_eq!(env.get_job_as(&globex, &id).await.0, 404);

    // Every bad token is 401.
    let with = |key: &str, value: Value| {
        let mut c = claims("acme", "jobs:read jobs:write");
        if value.is_null() {
            c.as_object_mut().unwrap().remove(key);
        } else {
            c[key] = value;
        }
        c
    };
    let bad = [
        ("expired", mint(&with("exp", json!(now() - 300)))),
        ("wrong audience", mint(&with("aud", json!("another-api")))),
        (
            "wrong issuer",
            mint(&with("iss", json!("https://evil.example.com"))),
        ),
        ("not yet valid", mint(&with("nbf", json!(now() + 300)))),
        ("no tenant", mint(&with("tenant", Value::Null))),
        (
            "bad signature",
            mint_with(
                &claims("acme", "jobs:read jobs:write"),
                "another-secret-that-is-at-least-32-bytes",
            ),
        ),
        ("garbage", "not.a.jwt".to_owned()),
    ];
    for (case, token) in &bad {
        let r = env.post_job_as(token, &generation(case)).await;
        assert_eq!(r.status(), 401, "{case}");
        let problem: Value = r.json().await.unwrap();
        assert_eq!(problem["code"], "unauthorized", "{case}");
        assert_eq!(env.get_job_as(token, &id).await.0, 401, "{case}");
    }

    // Tokens never reach the logs.
    let log = api.log_text();
    for token in std::iter::once(&token).chain(bad.iter().map(|(_, t)| t)) {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!log.contains(signature), "a token was logged");
    }
}
