//! The kinds of job longhaul runs. Each kind has its own ready queue, so its concurrency is tuned on its own.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A kind of job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Free text generation from a prompt.
    Generation,
    /// Structured data turned into a written interpretation.
    Interpretation,
}

impl JobKind {
    /// Every kind, in a fixed order (one worker pool each).
    pub const ALL: [JobKind; 2] = [JobKind::Generation, JobKind::Interpretation];

    /// The name used in the API, in Redis keys and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Generation => "generation",
            JobKind::Interpretation => "interpretation",
        }
    }
}

/// A string that names no job kind.
#[derive(Debug, thiserror::Error)]
#[error("unknown kind {0:?}: expected \"generation\" or \"interpretation\"")]
pub struct UnknownKind(pub String);

impl FromStr for JobKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "generation" => Ok(JobKind::Generation),
            "interpretation" => Ok(JobKind::Interpretation),
            other => Err(UnknownKind(other.to_owned())),
        }
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
