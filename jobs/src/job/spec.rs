//! [`JobSpec`]: a submission that passed validation, and the rules it passed.

use serde::{Deserialize, Serialize};

use super::input::{GenerationInput, Input, InterpretationInput, Prompt};
use super::kind::JobKind;
use super::request::SubmitRequest;

/// Bounds a submission must respect; they come from configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `max_attempts` when the request gives none.
    pub default_max_attempts: u32,
    /// Per-attempt timeout of `generation` jobs when the request gives none; also the
    /// highest a request may ask.
    pub generation_timeout_secs: u32,
    /// The same for `interpretation` jobs.
    pub interpretation_timeout_secs: u32,
}

impl Limits {
    /// The same timeout for every kind.
    pub const fn uniform(default_max_attempts: u32, timeout_secs: u32) -> Self {
        Self {
            default_max_attempts,
            generation_timeout_secs: timeout_secs,
            interpretation_timeout_secs: timeout_secs,
        }
    }

    /// The per-attempt timeout (default and cap) of `kind`.
    pub fn timeout_secs(&self, kind: JobKind) -> u32 {
        match kind {
            JobKind::Generation => self.generation_timeout_secs,
            JobKind::Interpretation => self.interpretation_timeout_secs,
        }
    }

    /// No request may ask for more attempts than this.
    pub const MAX_ATTEMPTS_CEILING: u32 = 25;
    /// Serialized metadata above this size is rejected (it is stored on every job).
    pub const MAX_METADATA_BYTES: usize = 16 * 1024;
    /// Serialized interpretation subjects above this size are rejected.
    pub const MAX_SUBJECT_BYTES: usize = 256 * 1024;
    /// Model names are identifiers, not documents.
    pub const MAX_MODEL_CHARS: usize = 200;
    /// Deepest nesting of `input.subject` and `metadata` (a value inside an object inside
    /// an object is depth 3): deeper data is rarely meaningful, and it is costly to walk.
    pub const MAX_JSON_DEPTH: usize = 32;
    /// Most keys in `metadata`: it is a label set, not a document store.
    pub const MAX_METADATA_KEYS: usize = 64;
}

/// How deeply `value` nests: 1 for a scalar or an empty container.
pub fn json_depth(value: &serde_json::Value) -> usize {
    // Iterative, so a hostile document cannot overflow the stack here.
    let mut deepest = 0;
    let mut stack = vec![(value, 1)];
    while let Some((value, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        match value {
            serde_json::Value::Array(items) => stack.extend(items.iter().map(|v| (v, depth + 1))),
            serde_json::Value::Object(map) => stack.extend(map.values().map(|v| (v, depth + 1))),
            _ => {}
        }
    }
    deepest
}

/// One problem with a submission, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ValidationError {
    /// JSON-pointer-like path of the field (`input.prompt`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl ValidationError {
    fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// A job as the system stores and runs it: every field valid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The kind, which decides the queue.
    pub kind: JobKind,
    /// The kind's input.
    pub input: Input,
    /// Requested model; `None` means the configured default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Receiver URL for the completion webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// Attempts allowed, including the first.
    pub max_attempts: u32,
    /// Per-attempt timeout.
    pub timeout_secs: u32,
    /// Whether the result cache may be used.
    pub cache: bool,
    /// Client data echoed back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

impl JobSpec {
    /// Validates a submission, reporting every problem at once.
    pub fn parse(req: SubmitRequest, limits: &Limits) -> Result<Self, Vec<ValidationError>> {
        let mut errors = Vec::new();

        let kind = match req.kind.as_deref() {
            None => {
                errors.push(ValidationError::new("kind", "is required"));
                None
            }
            Some(k) => match k.parse::<JobKind>() {
                Ok(kind) => Some(kind),
                Err(e) => {
                    errors.push(ValidationError::new("kind", e.to_string()));
                    None
                }
            },
        };

        let input = match (kind, req.input) {
            (_, None) => {
                errors.push(ValidationError::new("input", "is required"));
                None
            }
            (None, Some(_)) => None,
            (Some(kind), Some(raw)) => parse_input(kind, raw, &mut errors),
        };

        let model = match req.model {
            Some(m) if m.trim().is_empty() || m.chars().count() > Limits::MAX_MODEL_CHARS => {
                errors.push(ValidationError::new(
                    "model",
                    format!("must be 1 to {} characters", Limits::MAX_MODEL_CHARS),
                ));
                None
            }
            other => other,
        };

        let webhook_url = req.webhook.and_then(|w| match url::Url::parse(&w.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                Some(u.to_string())
            }
            _ => {
                errors.push(ValidationError::new(
                    "webhook.url",
                    "must be an absolute http(s) URL",
                ));
                None
            }
        });

        let max_attempts = req.max_attempts.unwrap_or(limits.default_max_attempts);
        if !(1..=Limits::MAX_ATTEMPTS_CEILING).contains(&max_attempts) {
            errors.push(ValidationError::new(
                "max_attempts",
                format!("must be 1 to {}", Limits::MAX_ATTEMPTS_CEILING),
            ));
        }

        let cap = kind.map_or(u32::MAX, |k| limits.timeout_secs(k));
        let timeout_secs = req.timeout_secs.unwrap_or(cap);
        if !(1..=cap).contains(&timeout_secs) {
            errors.push(ValidationError::new(
                "timeout_secs",
                format!("must be 1 to {cap}"),
            ));
        }

        let metadata = match req.metadata {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Object(map)) => {
                if serde_json::to_vec(&map).map_or(0, |v| v.len()) > Limits::MAX_METADATA_BYTES {
                    errors.push(ValidationError::new(
                        "metadata",
                        format!("must be at most {} bytes", Limits::MAX_METADATA_BYTES),
                    ));
                } else if map.len() > Limits::MAX_METADATA_KEYS {
                    errors.push(ValidationError::new(
                        "metadata",
                        format!("must have at most {} keys", Limits::MAX_METADATA_KEYS),
                    ));
                } else if map.values().map(json_depth).max().unwrap_or(0) + 1
                    > Limits::MAX_JSON_DEPTH
                {
                    errors.push(ValidationError::new(
                        "metadata",
                        format!("must nest at most {} levels deep", Limits::MAX_JSON_DEPTH),
                    ));
                }
                Some(map)
            }
            Some(_) => {
                errors.push(ValidationError::new("metadata", "must be an object"));
                None
            }
        };

        match (kind, input) {
            (Some(kind), Some(input)) if errors.is_empty() => Ok(JobSpec {
                kind,
                input,
                model,
                webhook_url,
                max_attempts,
                timeout_secs,
                cache: req.cache.unwrap_or(true),
                metadata,
            }),
            _ => Err(errors),
        }
    }
}

fn parse_input(
    kind: JobKind,
    raw: serde_json::Value,
    errors: &mut Vec<ValidationError>,
) -> Option<Input> {
    if !raw.is_object() {
        errors.push(ValidationError::new("input", "must be an object"));
        return None;
    }
    match kind {
        JobKind::Generation => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Raw {
                prompt: Option<String>,
                system: Option<String>,
                max_tokens: Option<u32>,
                temperature: Option<f32>,
            }
            let raw: Raw = match serde_json::from_value(raw) {
                Ok(r) => r,
                Err(e) => {
                    errors.push(ValidationError::new("input", e.to_string()));
                    return None;
                }
            };
            let prompt = match raw.prompt.map(Prompt::parse) {
                None => {
                    errors.push(ValidationError::new("input.prompt", "is required"));
                    None
                }
                Some(Err(msg)) => {
                    errors.push(ValidationError::new("input.prompt", msg));
                    None
                }
                Some(Ok(p)) => Some(p),
            };
            if let Some(t) = raw.temperature
                && !(0.0..=2.0).contains(&t)
            {
                errors.push(ValidationError::new("input.temperature", "must be 0 to 2"));
            }
            if raw.max_tokens == Some(0) {
                errors.push(ValidationError::new("input.max_tokens", "must be positive"));
            }
            if raw
                .system
                .as_ref()
                .is_some_and(|s| s.chars().count() > Prompt::MAX_CHARS)
            {
                errors.push(ValidationError::new(
                    "input.system",
                    format!("must be at most {} characters", Prompt::MAX_CHARS),
                ));
            }
            Some(Input::Generation(GenerationInput {
                prompt: prompt?,
                system: raw.system,
                max_tokens: raw.max_tokens,
                temperature: raw.temperature,
            }))
        }
        JobKind::Interpretation => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Raw {
                subject: Option<serde_json::Value>,
                instructions: Option<String>,
            }
            let raw: Raw = match serde_json::from_value(raw) {
                Ok(r) => r,
                Err(e) => {
                    errors.push(ValidationError::new("input", e.to_string()));
                    return None;
                }
            };
            let subject = match raw.subject {
                None | Some(serde_json::Value::Null) => {
                    errors.push(ValidationError::new("input.subject", "is required"));
                    return None;
                }
                Some(s) => s,
            };
            if serde_json::to_vec(&subject).map_or(0, |v| v.len()) > Limits::MAX_SUBJECT_BYTES {
                errors.push(ValidationError::new(
                    "input.subject",
                    format!("must be at most {} bytes", Limits::MAX_SUBJECT_BYTES),
                ));
            } else if json_depth(&subject) > Limits::MAX_JSON_DEPTH {
                errors.push(ValidationError::new(
                    "input.subject",
                    format!("must nest at most {} levels deep", Limits::MAX_JSON_DEPTH),
                ));
            }
            if raw
                .instructions
                .as_ref()
                .is_some_and(|s| s.chars().count() > Prompt::MAX_CHARS)
            {
                errors.push(ValidationError::new(
                    "input.instructions",
                    format!("must be at most {} characters", Prompt::MAX_CHARS),
                ));
            }
            Some(Input::Interpretation(InterpretationInput {
                subject,
                instructions: raw.instructions,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LIMITS: Limits = Limits {
        default_max_attempts: 5,
        generation_timeout_secs: 300,
        interpretation_timeout_secs: 120,
    };

    fn parse(body: serde_json::Value) -> Result<JobSpec, Vec<ValidationError>> {
        JobSpec::parse(serde_json::from_value(body).unwrap(), &LIMITS)
    }

    fn fields(errors: Vec<ValidationError>) -> Vec<String> {
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_generation_request_gets_configured_defaults() {
        let spec = parse(json!({"kind": "generation", "input": {"prompt": "hi"}})).unwrap();
        assert_eq!(spec.kind, JobKind::Generation);
        assert_eq!(spec.max_attempts, 5);
        assert_eq!(spec.timeout_secs, 300);
        assert!(spec.cache);
    }

    #[test]
    fn every_problem_is_reported_by_field() {
        let errors = parse(json!({"input": {"prompt": " "}, "max_attempts": 0})).unwrap_err();
        assert_eq!(fields(errors), ["kind", "max_attempts"]);
        let errors = parse(json!({"kind": "generation", "input": {"prompt": " "}})).unwrap_err();
        assert_eq!(fields(errors), ["input.prompt"]);
        let errors = parse(json!({"kind": "poetry", "input": {}})).unwrap_err();
        assert_eq!(fields(errors), ["kind"]);
    }

    #[test]
    fn a_timeout_above_the_configured_cap_is_rejected() {
        let errors =
            parse(json!({"kind": "generation", "input": {"prompt": "x"}, "timeout_secs": 301}))
                .unwrap_err();
        assert_eq!(fields(errors), ["timeout_secs"]);
    }

    #[test]
    fn interpretation_needs_a_subject_and_rejects_unknown_input_fields() {
        let errors =
            parse(json!({"kind": "interpretation", "input": {"instructions": "x"}})).unwrap_err();
        assert_eq!(fields(errors), ["input.subject"]);
        let errors = parse(json!({"kind": "interpretation", "input": {"subject": 1, "extra": 2}}))
            .unwrap_err();
        assert_eq!(fields(errors), ["input"]);
    }

    #[test]
    fn deep_or_wide_client_json_is_rejected_by_field() {
        let mut deep = json!(1);
        for _ in 0..Limits::MAX_JSON_DEPTH {
            deep = json!([deep]);
        }
        assert_eq!(json_depth(&deep), Limits::MAX_JSON_DEPTH + 1);
        let errors = parse(json!({"kind": "interpretation", "input": {"subject": deep.clone()}}))
            .unwrap_err();
        assert_eq!(fields(errors), ["input.subject"]);
        let errors = parse(json!({"kind": "generation", "input": {"prompt": "x"}, "metadata": {"a": deep[0].clone()}}))
            .unwrap_err();
        assert_eq!(fields(errors), ["metadata"]);
        let shallow = deep[0][0].clone();
        assert!(parse(json!({"kind": "interpretation", "input": {"subject": shallow}})).is_ok());
        let wide: serde_json::Map<String, serde_json::Value> = (0..=Limits::MAX_METADATA_KEYS)
            .map(|i| (format!("k{i}"), json!(i)))
            .collect();
        let errors =
            parse(json!({"kind": "generation", "input": {"prompt": "x"}, "metadata": wide}))
                .unwrap_err();
        assert_eq!(fields(errors), ["metadata"]);
    }

    #[test]
    fn a_stored_spec_reads_back_as_the_same_kind() {
        for body in [
            json!({"kind": "generation", "input": {"prompt": "p"}}),
            json!({"kind": "interpretation", "input": {"subject": {"prompt": "looks like one"}}}),
        ] {
            let spec = parse(body).unwrap();
            let back: JobSpec =
                serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
            assert_eq!(back, spec);
        }
    }
}
