//! The OpenAPI document of the API, served at `GET /openapi.json`. It is generated from the
//! code (utoipa): each handler's `#[utoipa::path]` annotation, and the very types the
//! handlers deserialize and serialize, so it cannot drift from what the API does.

use std::sync::LazyLock;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{health, jobs};
use crate::state::AppState;

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "longhaul",
        description = "Background jobs for long AI calls: submit a job, get `202` at once, then \
            poll or long-poll it.\n\n\
            Every `/v1` route takes `Authorization: Bearer <api key | JWT>`. API keys carry \
            scopes (`jobs:write` to submit, cancel and retry; `jobs:read` to read; `admin` \
            includes both). A missing or invalid credential is `401`, a valid one without \
            the route's scope `403`. Each tenant has a submit and a read rate (`429 \
            rate_limited` with `Retry-After`; `RateLimit-*` headers on every `/v1` answer) \
            and a cap on jobs queued at once (`429 quota_exceeded`). Errors are RFC 9457 \
            `application/problem+json` with a stable `code`."
    ),
    paths(
        jobs::submit,
        jobs::list,
        jobs::read,
        jobs::cancel,
        jobs::retry,
        health::healthz,
        health::readyz,
        openapi_json,
    ),
    components(schemas(crate::problem::ProblemCode)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "jobs", description = "Submit, read, list, cancel and retry jobs"),
        (name = "health", description = "Liveness and readiness (no auth)"),
        (name = "meta", description = "This document (no auth)"),
    )
)]
pub(crate) struct ApiDoc;

/// Declares the `bearer` security scheme the operations refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (`lh_…`, from `longhaul keys create`) or a JWT signed with \
                         the configured key, with `tenant`, `scope`/`scopes`, `aud`, `iss` and \
                         `exp` claims.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as JSON, rendered once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!(r#"{{"error":"the OpenAPI document failed to render: {e}"}}"#))
});

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/openapi.json", get(openapi_json))
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    security(()),
    responses((status = 200, description = "The OpenAPI document", body = serde_json::Value)),
)]
pub(crate) async fn openapi_json() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_covers_every_route_and_the_bearer_scheme() {
        let doc: serde_json::Value = serde_json::from_str(&DOCUMENT).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for (path, methods) in [
            ("/v1/jobs", &["get", "post"][..]),
            ("/v1/jobs/{id}", &["get", "delete"]),
            ("/v1/jobs/{id}/retry", &["post"]),
            ("/healthz", &["get"]),
            ("/readyz", &["get"]),
            ("/openapi.json", &["get"]),
        ] {
            for method in methods {
                assert!(paths[path][method].is_object(), "{method} {path}");
            }
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        let codes = doc["components"]["schemas"]["ProblemCode"].to_string();
        for code in [
            "forbidden",
            "rate_limited",
            "quota_exceeded",
            "idempotency_key_reused",
        ] {
            assert!(codes.contains(code), "{code} missing from {codes}");
        }
    }
}
