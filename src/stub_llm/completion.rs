//! The `POST /v1/chat/completions` handler: counting, fault decision, latency, reply.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use super::directive::{self, Directive};
use super::openai::{self, ChatRequest};
use super::state::StubState;

/// Header naming the job a request belongs to; counters and `fail=` are keyed by it.
pub const JOB_HEADER: &str = "x-longhaul-job-id";

/// Echoed text is cut to this many characters.
const MAX_ECHO_CHARS: usize = 200;

/// What a request will be answered with.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Fault {
        status: u16,
        retry_after: Option<u64>,
    },
    Hang,
    Malformed,
    Success,
}

/// Handles one chat-completions request.
pub async fn chat_completions(
    State(state): State<Arc<StubState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let job = headers
        .get(JOB_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let call = state.begin_call(job);
    let response = respond(&state, call.call_number(), &body).await;
    call.answered();
    response
}

async fn respond(state: &StubState, call_number: u64, body: &[u8]) -> Response {
    let request: ChatRequest = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(err) => return openai::error(400, &format!("invalid request body: {err}"), None),
    };
    if request.messages.is_empty() {
        return openai::error(400, "`messages` must not be empty", None);
    }
    let last_user = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map(|m| m.text())
        .unwrap_or_default();
    let parsed = match directive::extract(&last_user) {
        Ok(parsed) => parsed,
        Err(err) => return openai::error(400, &err.to_string(), None),
    };
    let directive = parsed.directive;
    if let Some(ms) = directive.outage_ms {
        state.outage_from_directive(ms, directive.retry_after);
    }
    let outcome = decide(state, &directive, call_number);

    let latency = directive
        .latency_ms
        .map_or(state.latency, Duration::from_millis);
    if outcome == Outcome::Hang {
        std::future::pending::<()>().await;
    }
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    match outcome {
        Outcome::Fault {
            status,
            retry_after,
        } => openai::error(
            status,
            &format!("stub fault: status {status} (call {call_number})"),
            retry_after,
        ),
        Outcome::Malformed => openai::malformed(),
        Outcome::Hang | Outcome::Success => {
            let echo: String = parsed.text.chars().take(MAX_ECHO_CHARS).collect();
            let content = format!("stub reply: {echo}");
            let prompt_tokens = request
                .messages
                .iter()
                .map(|m| openai::words(&m.text()))
                .sum::<u64>()
                .max(1);
            openai::success(request.model.as_deref(), &content, prompt_tokens)
        }
    }
}

/// Precedence: global outage, then `fail=` for this call number, `status=`, `hang`, `malformed`.
fn decide(state: &StubState, directive: &Directive, call_number: u64) -> Outcome {
    if let Some(outage) = state.active_outage() {
        return Outcome::Fault {
            status: outage.status,
            retry_after: outage.retry_after,
        };
    }
    let scheduled = usize::try_from(call_number.saturating_sub(1))
        .ok()
        .and_then(|i| directive.fail.get(i));
    if let Some(&status) = scheduled.or(directive.status.as_ref()) {
        return Outcome::Fault {
            status,
            retry_after: directive.retry_after,
        };
    }
    if directive.hang {
        Outcome::Hang
    } else if directive.malformed {
        Outcome::Malformed
    } else {
        Outcome::Success
    }
}
