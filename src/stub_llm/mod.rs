//! `longhaul stub-llm`: an OpenAI-compatible chat-completions stub with fault injection.
//!
//! Answers deterministic replies, counts calls per `x-longhaul-job-id`, and injects
//! faults requested by `{{stub key=value ...}}` directives in the last user message
//! (see [`directive`]). `/stub/*` routes expose counters and control the global outage.

mod completion;
mod directive;
mod openai;
mod routes;
mod server;
mod state;

#[cfg(test)]
mod tests;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use state::StubState;

/// Options of the stub (also the clap args of `longhaul stub-llm`).
#[derive(Debug, Clone, clap::Args)]
pub struct StubArgs {
    /// Address to bind; port 0 picks a free port.
    #[arg(long, env = "LONGHAUL_STUB_ADDR", default_value = "127.0.0.1:0")]
    pub addr: SocketAddr,
    /// Latency added to every completion, in milliseconds (a request directive overrides it).
    #[arg(long, env = "LONGHAUL_STUB_LATENCY_MS", default_value_t = 0)]
    pub latency_ms: u64,
}

/// Binds, prints exactly one line `stub-llm listening on http://<ip>:<port>` to STDOUT
/// (flushed), then serves HTTP/1.1 and h2c until the process ends.
pub async fn run(args: StubArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("stub-llm: cannot bind {}", args.addr))?;
    let local = listener
        .local_addr()
        .context("stub-llm: cannot read the bound address")?;
    let state = Arc::new(StubState::new(Duration::from_millis(args.latency_ms)));
    let router = routes::router(state);

    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "stub-llm listening on http://{local}")
        .and_then(|()| stdout.flush())
        .context("stub-llm: cannot write the listening line to stdout")?;
    drop(stdout);
    tracing::info!(%local, latency_ms = args.latency_ms, "stub-llm serving");

    server::serve(listener, router).await
}
