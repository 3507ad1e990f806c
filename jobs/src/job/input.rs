//! The validated inputs of each job kind.

use serde::{Deserialize, Serialize};

/// A prompt: not blank, at most [`Prompt::MAX_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "String", into = "String")]
pub struct Prompt(String);

impl Prompt {
    /// 100k characters: far above any model's context window in tokens, low enough
    /// that one request cannot make Redis hold megabytes per job.
    pub const MAX_CHARS: usize = 100_000;

    /// Parses a prompt, rejecting a blank or oversized one.
    pub fn parse(s: String) -> Result<Self, String> {
        if s.trim().is_empty() {
            Err("must not be empty".into())
        } else if s.chars().count() > Self::MAX_CHARS {
            Err(format!("must be at most {} characters", Self::MAX_CHARS))
        } else {
            Ok(Self(s))
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Prompt {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<Prompt> for String {
    fn from(value: Prompt) -> Self {
        value.0
    }
}

/// Input of a `generation` job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerationInput {
    /// What to generate from.
    #[schema(value_type = String, min_length = 1, max_length = 100_000)]
    pub prompt: Prompt,
    /// An optional system message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 100_000)]
    pub system: Option<String>,
    /// Upper bound on generated tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub max_tokens: Option<u32>,
    /// Sampling temperature, 0 to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 2)]
    pub temperature: Option<f32>,
}

/// Input of an `interpretation` job: structured data to be explained in prose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InterpretationInput {
    /// Any JSON value.
    pub subject: serde_json::Value,
    /// What to focus on, in the client's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 100_000)]
    pub instructions: Option<String>,
}

/// The input of a job, by kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
// The variants are disjoint: each denies the other's required field (see `deny_unknown_fields`).
pub enum Input {
    /// See [`GenerationInput`].
    Generation(GenerationInput),
    /// See [`InterpretationInput`].
    Interpretation(InterpretationInput),
}
