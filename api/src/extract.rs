//! Path and query extractors whose rejections are problems like every other error (axum's
//! own answer plain-text `400`s).

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use longhaul_jobs::JobId;
use serde::de::DeserializeOwned;

use crate::problem::ApiError;

/// The `{id}` of a job route. Anything that is not a job id is simply not found.
pub(crate) struct JobPath(pub JobId);

impl<S: Send + Sync> FromRequestParts<S> for JobPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound)?;
        raw.parse().map(JobPath).map_err(|_| ApiError::NotFound)
    }
}

/// Query parameters; a query that does not fit `T` (a repeated parameter, say) is `422`.
pub(crate) struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(params) = Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::InvalidParameter {
                field: "query",
                message: e.body_text(),
            })?;
        Ok(Params(params))
    }
}
