//! `longhaul keys create|list|revoke`.

use anyhow::{Context, bail};
use longhaul_jobs::api_key::Scope;
use longhaul_jobs::archive::Archive;
use longhaul_jobs::{Config, TenantId};

use crate::cli::KeysCommand;

/// Runs a keys subcommand. Output goes to stdout; logs to stderr.
pub async fn run(config: Config, command: KeysCommand) -> anyhow::Result<()> {
    let archive = Archive::connect_lazy(&config.database_url)?;
    match command {
        KeysCommand::Create { tenant, scopes } => {
            let tenant = TenantId::parse(&tenant).context("--tenant")?;
            let scopes = scopes
                .iter()
                .map(|s| s.trim().parse::<Scope>())
                .collect::<Result<Vec<_>, _>>()
                .context("--scopes (jobs:write, jobs:read, admin)")?;
            if scopes.is_empty() {
                bail!("--scopes: give at least one scope");
            }
            let (key, row) = archive.create_api_key(&tenant, &scopes, None).await?;
            println!("{}", key.expose());
            eprintln!(
                "created key {} for tenant {} (id {}); it is shown once: store it now",
                row.prefix, row.tenant, row.id
            );
        }
        KeysCommand::List { tenant } => {
            let tenant = tenant
                .map(|t| TenantId::parse(&t))
                .transpose()
                .context("--tenant")?;
            let now = chrono::Utc::now();
            for row in archive.list_api_keys(tenant.as_ref()).await? {
                let scopes: Vec<&str> = row.scopes.iter().map(|s| s.as_str()).collect();
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    row.id,
                    row.prefix,
                    row.tenant,
                    scopes.join(","),
                    if row.is_usable(now) {
                        "active"
                    } else {
                        "inactive"
                    }
                );
            }
        }
        KeysCommand::Revoke { id } => {
            let id: uuid::Uuid = id
                .parse()
                .context("the key id is a UUID (see `keys list`)")?;
            if !archive.revoke_api_key(id).await? {
                bail!("no active key with id {id}");
            }
            eprintln!("revoked key {id}");
        }
    }
    Ok(())
}
