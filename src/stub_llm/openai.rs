//! OpenAI chat-completions wire format: the request we read and the bodies we answer.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Model name answered when the request names none.
const DEFAULT_MODEL: &str = "stub-model";

/// The fields of a chat-completions request the stub uses; others are ignored.
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    /// Requested model.
    #[serde(default)]
    pub model: Option<String>,
    /// Conversation so far.
    pub messages: Vec<ChatMessage>,
}

/// One message of the conversation.
#[derive(Debug, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, ...
    #[serde(default)]
    pub role: String,
    /// A string, an array of content parts, or null.
    #[serde(default)]
    pub content: Value,
}

impl ChatMessage {
    /// The message text: a string content as is, the `text` parts of an array joined by newlines.
    pub fn text(&self) -> String {
        match &self.content {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|part| part.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        }
    }
}

#[derive(Debug, Serialize)]
struct ChatResponse<'a> {
    id: String,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    usage: Usage,
}

#[derive(Debug, Serialize)]
struct Choice<'a> {
    index: u32,
    message: AssistantMessage<'a>,
    finish_reason: &'static str,
}

#[derive(Debug, Serialize)]
struct AssistantMessage<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Debug, Serialize)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
}

/// Whitespace-separated word count.
pub fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// 200 response with one assistant choice.
pub fn success(model: Option<&str>, content: &str, prompt_tokens: u64) -> Response {
    let completion_tokens = words(content);
    let body = ChatResponse {
        id: format!("chatcmpl-{}", random_id()),
        object: "chat.completion",
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        model: model.filter(|m| !m.is_empty()).unwrap_or(DEFAULT_MODEL),
        choices: [Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                content,
            },
            finish_reason: "stop",
        }],
        usage: Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        },
    };
    Json(body).into_response()
}

/// OpenAI-style error `{"error":{"message","type","code"}}` with the given status.
///
/// `retry_after` becomes a `Retry-After` header on 429 and 5xx answers.
pub fn error(status: u16, message: &str, retry_after: Option<u64>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let kind = match status.as_u16() {
        429 => "rate_limit_error",
        500.. => "server_error",
        _ => "invalid_request_error",
    };
    let body = json!({"error": {"message": message, "type": kind, "code": null}});
    let mut response = (status, Json(body)).into_response();
    if let Some(secs) = retry_after.filter(|_| status.as_u16() == 429 || status.is_server_error()) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// 200 with a truncated JSON body, as a broken provider might send.
pub fn malformed() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"id":"chatcmpl-broken","choices": ["#,
    )
        .into_response()
}

fn random_id() -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}
