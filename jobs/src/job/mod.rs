//! What a job is: its kind, its validated input, its status, and the record a client reads.
//!
//! Requests are parsed once, at the edge ([`request::SubmitRequest`] into [`spec::JobSpec`]);
//! everything past that point handles values that are valid by construction.

pub mod input;
pub mod kind;
pub mod outcome;
pub mod record;
pub mod request;
pub mod spec;
pub mod status;

pub use input::{GenerationInput, Input, InterpretationInput, Prompt};
pub use kind::JobKind;
pub use outcome::{ErrorCode, JobError, JobResult, Usage};
pub use record::JobRecord;
pub use request::SubmitRequest;
pub use spec::{JobSpec, Limits, ValidationError};
pub use status::JobStatus;
