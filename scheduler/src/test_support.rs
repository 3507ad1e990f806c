//! Test fixtures: a Redis key prefix and a Postgres database of one's own, on the real
//! servers (`LONGHAUL_TEST_REDIS_URL`, `LONGHAUL_TEST_PG_ADMIN_URL`), removed when dropped.

use longhaul_jobs::archive::Archive;
use longhaul_jobs::job::{JobSpec, Limits};
use longhaul_jobs::store::RedisStore;
use longhaul_jobs::{Config, JobId};
use sqlx::{Connection, Executor, PgConnection};

use crate::task::TaskContext;

fn redis_url() -> String {
    std::env::var("LONGHAUL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn admin_url() -> String {
    std::env::var("LONGHAUL_TEST_PG_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// The configuration every test context starts from (defaults, overridden by tests).
pub(crate) fn config() -> Config {
    Config::from_lookup(|name| match name {
        "REDIS_URL" => Some(redis_url()),
        "DATABASE_URL" => Some(admin_url()),
        _ => None,
    })
    .expect("default configuration")
}

/// A store under a fresh prefix; its keys are deleted when dropped.
pub(crate) struct TestRedis {
    pub(crate) store: RedisStore,
    prefix: String,
}

impl TestRedis {
    pub(crate) async fn new() -> Self {
        let prefix = format!("sch{}", uuid::Uuid::now_v7().simple());
        let store = RedisStore::connect(&redis_url(), &prefix)
            .await
            .expect("redis reachable");
        Self { store, prefix }
    }

    /// `{prefix}:rest`.
    pub(crate) fn key(&self, rest: &str) -> String {
        format!("{{{}}}:{rest}", self.prefix)
    }

    /// A context whose database is never used (tasks that touch Redis only).
    pub(crate) fn context_without_db(&self) -> TaskContext {
        let archive = Archive::connect_lazy("postgres://nobody@127.0.0.1:1/none").expect("url");
        TaskContext::new(self.store.clone(), archive, &config())
    }

    /// A context over this Redis prefix and `db`.
    pub(crate) fn context(&self, db: &TestDb) -> TaskContext {
        TaskContext::new(self.store.clone(), db.archive.clone(), &config())
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(redis_url()) else {
            return;
        };
        let Ok(mut conn) = client.get_connection() else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{{{}}}*", self.prefix))
            .query(&mut conn)
            .unwrap_or_default();
        for chunk in keys.chunks(500) {
            let _: Result<(), _> = redis::cmd("UNLINK").arg(chunk).query(&mut conn);
        }
    }
}

/// A migrated database of one's own, dropped (best effort) when this value is.
pub(crate) struct TestDb {
    pub(crate) archive: Archive,
    name: String,
}

impl TestDb {
    pub(crate) async fn new() -> Self {
        let name = format!("lh_s_{}", uuid::Uuid::now_v7().simple());
        let mut admin = PgConnection::connect(&admin_url())
            .await
            .expect("postgres reachable");
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create the test database");
        admin.close().await.ok();
        let base = admin_url();
        let url = format!(
            "{}/{name}",
            &base[..base.rfind('/').expect("a database part")]
        );
        let archive = Archive::connect_lazy(&url).expect("test database URL");
        archive.migrate().await.expect("migrations apply");
        Self { archive, name }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime: a thread with its own runtime cleans up.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut admin) = PgConnection::connect(&admin_url()).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    admin.execute(sqlx::AssertSqlSafe(sql)).await.ok();
                    admin.close().await.ok();
                }
            });
        })
        .join();
    }
}

/// A valid generation job allowing `max_attempts` attempts.
pub(crate) fn spec(max_attempts: u32) -> JobSpec {
    let request = serde_json::json!({
        "kind": "generation",
        "input": {"prompt": "say hello"},
        "max_attempts": max_attempts,
    });
    JobSpec::parse(
        serde_json::from_value(request).expect("a request"),
        &Limits::uniform(3, 60),
    )
    .expect("a valid spec")
}

/// A job's status in Redis.
pub(crate) async fn job_status(store: &RedisStore, id: JobId) -> String {
    store
        .get(id)
        .await
        .expect("redis")
        .expect("the job exists")
        .status
        .to_string()
}

/// Inserts `n` archived jobs of `tenant` and `kind` in `status` that finished `age` (a
/// Postgres interval) ago.
pub(crate) async fn insert_jobs(
    db: &TestDb,
    tenant: &str,
    kind: &str,
    status: &str,
    n: i32,
    age: &str,
) {
    sqlx::query(
        "INSERT INTO jobs (id, tenant, kind, status, attempts, max_attempts, spec, created_at, \
         finished_at) \
         SELECT gen_random_uuid(), $1, $2, $3, 1, 1, '{}', now() - $5::interval - interval '1 minute', \
                now() - $5::interval \
         FROM generate_series(1, $4)",
    )
    .bind(tenant)
    .bind(kind)
    .bind(status)
    .bind(n)
    .bind(age)
    .execute(db.archive.pool())
    .await
    .expect("insert jobs");
}
