//! `X-Request-Id`: taken from the request when the client sends one, generated otherwise,
//! and echoed on every response.

use axum::http::HeaderName;
use tower::ServiceBuilder;
use tower::layer::util::{Identity, Stack};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

/// The header.
pub(crate) const HEADER: &str = "x-request-id";

/// The layers that set and propagate the id (outermost first).
pub(crate) fn layers() -> ServiceBuilder<
    Stack<PropagateRequestIdLayer, Stack<SetRequestIdLayer<MakeRequestUuid>, Identity>>,
> {
    let name = HeaderName::from_static(HEADER);
    ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(name.clone(), MakeRequestUuid))
        .layer(PropagateRequestIdLayer::new(name))
}
