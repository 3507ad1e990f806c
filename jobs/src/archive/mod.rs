//! The durable Postgres side of longhaul: the history of finished jobs, tenants and API keys.
//!
//! Redis holds live jobs; when one finishes, the archiver copies it here ([`Archive::upsert_jobs`])
//! so it can still be read once Redis has let it go. The schema lives in `migrations/` at the
//! workspace root and is embedded in the binary ([`Archive::migrate`]).
//!
//! - `jobs`: the jobs history: upsert, get, list with a keyset cursor ([`JobQuery`]).
//! - `api_keys`: tenants and API keys: create, find by hash, touch, list, revoke ([`ApiKeyRow`]).
//! - `housekeeping`: the scheduler's side: key expiry and purge, job retention, hourly usage
//!   rollups ([`UsageRow`]).
//!
//! Every query is checked at run time (no `query!` macros), so building needs no database.

mod api_keys;
mod error;
mod housekeeping;
mod jobs;

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

pub use api_keys::ApiKeyRow;
pub use error::ArchiveError;
pub use housekeeping::{Rollup, UsageRow};
pub use jobs::JobQuery;

/// Connections per process: the archive sees batched writes and point reads, not a hot path.
const MAX_CONNECTIONS: u32 = 10;
/// How long a query waits for a free connection before failing (and readiness reporting it).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The Postgres side of longhaul. Cheap to clone: clones share one pool.
#[derive(Clone, Debug)]
pub struct Archive {
    pool: PgPool,
}

impl Archive {
    /// Lazy pool: the process starts even when Postgres is down (readiness reports it).
    ///
    /// Fails only when `database_url` cannot be parsed.
    pub fn connect_lazy(database_url: &str) -> Result<Self, ArchiveError> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy(database_url)?;
        Ok(Self { pool })
    }

    /// The underlying pool, for callers that need a transaction of their own.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies the migrations embedded from `migrations/`. Safe to run from several
    /// processes at once: sqlx serialises them with an advisory lock.
    pub async fn migrate(&self) -> Result<(), ArchiveError> {
        sqlx::migrate!("../migrations").run(&self.pool).await?;
        Ok(())
    }

    /// Checks that Postgres answers (`SELECT 1`).
    pub async fn ping(&self) -> Result<(), ArchiveError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// A throwaway database per test, on the Postgres named by `LONGHAUL_TEST_PG_ADMIN_URL`.
#[cfg(test)]
pub(crate) mod test_db {
    use sqlx::{Connection, Executor, PgConnection};

    use super::Archive;

    /// Where test databases are created from.
    const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

    /// A migrated database that is dropped (best effort) when this value is.
    pub(crate) struct TestDb {
        pub(crate) archive: Archive,
        admin_url: String,
        name: String,
    }

    impl TestDb {
        /// Creates `lh_t_<random hex>`, connects to it and runs the migrations.
        pub(crate) async fn new() -> TestDb {
            let admin_url = std::env::var("LONGHAUL_TEST_PG_ADMIN_URL")
                .unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
            let name = format!("lh_t_{}", hex::encode(rand::random::<[u8; 8]>()));
            let mut admin = PgConnection::connect(&admin_url)
                .await
                .expect("connect to the admin database");
            admin
                .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .await
                .expect("create the test database");
            admin.close().await.ok();

            let mut url = url::Url::parse(&admin_url).expect("admin URL");
            url.set_path(&name);
            let db = TestDb {
                archive: Archive::connect_lazy(url.as_str()).expect("test database URL"),
                admin_url,
                name,
            };
            db.archive.migrate().await.expect("migrations apply");
            db
        }
    }

    impl Drop for TestDb {
        fn drop(&mut self) {
            // Drop runs inside the test's runtime, which cannot be blocked on; a thread with
            // its own runtime does the async clean-up. FORCE ends the pool's connections.
            let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
            let cleanup = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async {
                    if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        admin.execute(sqlx::AssertSqlSafe(sql)).await.ok();
                        admin.close().await.ok();
                    }
                });
            });
            cleanup.join().ok();
        }
    }
}
