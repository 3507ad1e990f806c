//! The AI provider: an OpenAI-compatible chat-completions client.
//!
//! Every failure is classified once, here ([`ProviderError`]): `429`, `5xx`, timeouts and
//! connection failures are worth retrying (honouring `Retry-After`); other `4xx` are not.

mod client;
mod error;
mod messages;
mod wire;

pub use client::{BuildError, Completion, ProviderClient};
pub use error::ProviderError;
