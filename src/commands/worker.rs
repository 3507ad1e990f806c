//! `longhaul worker`: the supervisor, and (with the hidden `--child N`) one worker process.

use anyhow::Context;
use longhaul_jobs::Config;

/// Runs the prefork supervisor until it has drained its children.
pub async fn supervise(config: Config) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the longhaul executable")?;
    let command = move |index: usize| {
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.arg("worker").arg("--child").arg(index.to_string());
        cmd
    };
    longhaul_worker::run_supervisor(
        config.worker.processes,
        config.worker.shutdown_grace,
        &command,
        host_endpoint(&config)?,
    )
    .await?;
    Ok(())
}

/// Where the supervisor serves the host's `/metrics` and `/readyz`
/// (`LONGHAUL_BIND:LONGHAUL_WORKER_METRICS_PORT`), unless the port is 0.
pub fn host_endpoint(config: &Config) -> anyhow::Result<Option<longhaul_worker::HostEndpoint>> {
    let Some(port) = config.worker.metrics_port else {
        return Ok(None);
    };
    let ip: std::net::IpAddr = config
        .bind
        .parse()
        .with_context(|| format!("LONGHAUL_BIND is not an IP address: {}", config.bind))?;
    Ok(Some(longhaul_worker::HostEndpoint {
        addr: (ip, port).into(),
        redis_url: config.redis_url.clone(),
        redis_prefix: config.redis_prefix.clone(),
    }))
}

/// Runs worker process number `index`.
pub async fn child(config: Config, index: usize) -> anyhow::Result<()> {
    if !longhaul_worker::supervisor::die_with_parent() {
        anyhow::bail!("the supervisor exited before this worker process started");
    }
    let id = worker_id(index);
    longhaul_worker::run_child(config, id).await?;
    Ok(())
}

/// `host-pid-index`: unique per process, readable in `worker` fields and logs.
fn worker_id(index: usize) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!("{host}-{}-{index}", std::process::id())
}
