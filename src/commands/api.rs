//! `longhaul api`.

use std::net::SocketAddr;

use anyhow::Context;
use longhaul_jobs::Config;

/// Serves the API until SIGTERM/SIGINT, then finishes in-flight requests.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let addr = bind_addr(&config)?;
    longhaul_api::serve(&config, addr, crate::shutdown::signal()).await?;
    Ok(())
}

/// `LONGHAUL_BIND:PORT`.
pub fn bind_addr(config: &Config) -> anyhow::Result<SocketAddr> {
    format!("{}:{}", config.bind, config.port)
        .parse()
        .with_context(|| {
            format!(
                "LONGHAUL_BIND/PORT do not form an address: {}:{}",
                config.bind, config.port
            )
        })
}
