//! `longhaul up`: API, worker supervisor and scheduler in one process tree, for a laptop or a
//! single host. Without LONGHAUL_AI_BASE_URL it also runs the stub provider and says so.

use std::net::SocketAddr;

use anyhow::Context;
use longhaul_jobs::Config;
use tokio::io::AsyncBufReadExt;

/// Runs everything until SIGTERM/SIGINT, then drains the worker processes.
pub async fn run(mut config: Config) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the longhaul executable")?;
    let mut stub = None;
    if config.ai.base_url.is_none() {
        let (child, url) = start_stub(&exe).await?;
        tracing::warn!(
            url = %url,
            "LONGHAUL_AI_BASE_URL is not set: using the built-in STUB provider; answers are canned, not from a model"
        );
        config.ai.base_url = Some(url.parse().context("stub URL")?);
        stub = Some(child);
    }
    let base_url = config.ai.base_url_or_default().to_string();
    let worker_command = {
        let exe = exe.clone();
        move |index: usize| {
            let mut cmd = tokio::process::Command::new(&exe);
            cmd.arg("worker")
                .arg("--child")
                .arg(index.to_string())
                .env("LONGHAUL_AI_BASE_URL", &base_url);
            cmd
        }
    };
    let addr: SocketAddr = super::api::bind_addr(&config)?;
    let api = tokio::spawn({
        let config = config.clone();
        async move { longhaul_api::serve(&config, addr, crate::shutdown::signal()).await }
    });
    let scheduler = tokio::spawn(longhaul_scheduler::run(
        config.clone(),
        crate::shutdown::signal(),
    ));
    let workers = longhaul_worker::run_supervisor(
        config.worker.processes,
        config.worker.shutdown_grace,
        &worker_command,
        super::worker::host_endpoint(&config)?,
    )
    .await;
    let api = api.await;
    let _ = scheduler.await;
    if let Some(mut stub) = stub {
        let _ = stub.kill().await;
    }
    workers?;
    api.context("api task")??;
    Ok(())
}

/// Starts `longhaul stub-llm` on a free port and returns it with its base URL.
async fn start_stub(exe: &std::path::Path) -> anyhow::Result<(tokio::process::Child, String)> {
    let mut child = tokio::process::Command::new(exe)
        .arg("stub-llm")
        .arg("--addr")
        .arg("127.0.0.1:0")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting the stub provider")?;
    let stdout = child.stdout.take().context("stub stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    while let Some(line) = lines.next_line().await? {
        if let Some(url) = line.strip_prefix("stub-llm listening on ") {
            return Ok((child, format!("{}/v1", url.trim())));
        }
    }
    anyhow::bail!("the stub provider exited before listening")
}
