//! [`JsonBody`]: a strict JSON body extractor. Errors are precise (line, column, field) and
//! come back as problem+json: 400 for bytes that are not JSON, 422 for JSON of the wrong
//! shape, 413 above the size limit. It also carries the body's [`BodyDigest`], so an
//! Idempotency-Key can tell a repeat from a different request.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::problem::ApiError;
use crate::state::AppState;

/// A deserialized JSON body.
pub(crate) struct JsonBody<T> {
    pub value: T,
    /// Empty unless the request carries an `Idempotency-Key` (nothing else compares bodies).
    pub digest: BodyDigest,
}

/// SHA-256 of a body's canonical form: the parsed JSON written back with object keys sorted
/// and no whitespace, so bodies that differ only in key order or spacing are the same request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BodyDigest(String);

impl BodyDigest {
    fn of(value: &serde_json::Value) -> Self {
        let mut canonical = Vec::new();
        write_canonical(value, &mut canonical);
        Self(hex::encode(Sha256::digest(&canonical)))
    }

    /// Lowercase hex.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// Writes `value` with sorted keys, whatever order the map type keeps.
fn write_canonical(value: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(Value::from(key.as_str()).to_string().as_bytes());
                out.push(b':');
                write_canonical(value, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        // Only an Idempotency-Key compares bodies: skip the canonical digest otherwise (it
        // is a large share of a submit's CPU).
        let compared = req.headers().contains_key("idempotency-key");
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge {
                    limit: state.max_body_bytes,
                }
            } else {
                ApiError::InvalidJson(rejection.body_text())
            }
        })?;
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
        if !value.is_object() {
            return Err(ApiError::InvalidJson(
                "the body must be a JSON object".into(),
            ));
        }
        let digest = if compared {
            BodyDigest::of(&value)
        } else {
            BodyDigest(String::new())
        };
        serde_json::from_value(value)
            .map(|value| JsonBody { value, digest })
            .map_err(|e| {
                ApiError::Validation(vec![longhaul_jobs::job::ValidationError {
                    field: "body".into(),
                    message: e.to_string(),
                }])
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(text: &str) -> BodyDigest {
        BodyDigest::of(&serde_json::from_str(text).unwrap())
    }

    #[test]
    fn key_order_and_spacing_do_not_change_the_digest_but_values_do() {
        let a = digest(r#"{"kind":"generation","input":{"prompt":"hi","max_tokens":5}}"#);
        let b = digest(r#"{ "input": {"max_tokens": 5, "prompt": "hi"}, "kind": "generation" }"#);
        assert_eq!(a, b);
        assert_ne!(
            a,
            digest(r#"{"kind":"generation","input":{"prompt":"hi","max_tokens":6}}"#)
        );
        assert_ne!(
            a,
            digest(r#"{"kind":"generation","input":[{"prompt":"hi","max_tokens":5}]}"#)
        );
        assert_eq!(a.as_str().len(), 64);
    }
}
