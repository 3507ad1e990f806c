//! Accept loop serving the router over HTTP/1.1 and h2c (HTTP/2 prior knowledge) on one port.
//!
//! `axum::serve` would do the same but keeps hyper's HTTP/2 default of 200 concurrent
//! streams per connection; benchmarks multiplex thousands of calls on a few connections,
//! so the limits are raised here.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// HTTP/2 streams one connection may have open at once.
const MAX_CONCURRENT_STREAMS: u32 = 100_000;
/// HTTP/2 connection-level flow-control window.
const CONNECTION_WINDOW: u32 = 64 * 1024 * 1024;
/// HTTP/2 per-stream flow-control window.
const STREAM_WINDOW: u32 = 1024 * 1024;
/// Client-reset streams tolerated in the accept queue before the connection is refused.
const MAX_PENDING_RESET_STREAMS: usize = 100_000;
/// Pause after an accept error (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `router` on `listener` until the process ends.
pub async fn serve(listener: TcpListener, router: Router) -> anyhow::Result<()> {
    let builder = Arc::new(connection_builder());
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(error = %err, "stub-llm accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "stub-llm set_nodelay failed");
        }
        let builder = Arc::clone(&builder);
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            if let Err(err) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %err, "stub-llm connection ended with error");
            }
        });
    }
}

/// HTTP/1.1 + HTTP/2 connection settings with nothing capped low.
fn connection_builder() -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http2()
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .initial_stream_window_size(STREAM_WINDOW)
        .max_pending_accept_reset_streams(MAX_PENDING_RESET_STREAMS);
    builder
}
