//! The API's routes, one file per resource.

pub(crate) mod admin;
pub(crate) mod cache;
pub(crate) mod health;
pub(crate) mod jobs;
pub(crate) mod metrics;

use crate::problem::ApiError;

/// Any path the API does not serve.
pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// A known path with a method it does not serve.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
