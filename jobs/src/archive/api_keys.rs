//! Tenants and their API keys.
//!
//! Postgres stores a key's visible prefix and SHA-256, never the key itself: the plaintext
//! exists once, in the answer to [`Archive::create_api_key`]. Lookups go by hash (unique
//! index) and return revoked and expired keys too, so the caller can tell them apart from
//! unknown ones; [`ApiKeyRow::is_usable`] is the one place that decides.

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use super::{Archive, ArchiveError};
use crate::api_key::{ApiKey, KeyHash, Scope};
use crate::ids::TenantId;

/// The columns an [`ApiKeyRow`] is read from.
const KEY_COLUMNS: &str =
    "id, tenant, prefix, scopes, created_at, expires_at, last_used_at, revoked_at, disabled_at";

/// An API key as Postgres knows it: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRow {
    /// Its id (shown in listings, used to revoke).
    pub id: Uuid,
    /// The tenant it acts for.
    pub tenant: TenantId,
    /// The visible `lh_xxxxxxxx` part of the key.
    pub prefix: String,
    /// What it allows.
    pub scopes: Vec<Scope>,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it last authenticated a request.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When the scheduler found it expired and disabled it.
    pub disabled_at: Option<DateTime<Utc>>,
}

impl ApiKeyRow {
    /// Whether the key may authenticate a request at `now`: not revoked, not expired (nor
    /// disabled for having expired).
    pub fn is_usable(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none()
            && self.disabled_at.is_none()
            && self.expires_at.is_none_or(|expires| now < expires)
    }

    /// Whether the key grants `scope`.
    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

impl Archive {
    /// Records a tenant if it is not known yet.
    pub async fn ensure_tenant(&self, tenant: &TenantId) -> Result<(), ArchiveError> {
        sqlx::query("INSERT INTO tenants (name) VALUES ($1) ON CONFLICT (name) DO NOTHING")
            .bind(tenant.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Issues a key for `tenant` (recording the tenant if needed) and returns the plaintext,
    /// which is not stored anywhere: hand it to its owner now or never.
    ///
    /// Scopes are stored once each, in [`Scope::ALL`] order.
    pub async fn create_api_key(
        &self,
        tenant: &TenantId,
        scopes: &[Scope],
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(ApiKey, ApiKeyRow), ArchiveError> {
        let key = ApiKey::generate();
        let scopes: Vec<&str> = Scope::ALL
            .into_iter()
            .filter(|s| scopes.contains(s))
            .map(Scope::as_str)
            .collect();

        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO tenants (name) VALUES ($1) ON CONFLICT (name) DO NOTHING")
            .bind(tenant.as_str())
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO api_keys (id, tenant, prefix, key_hash, scopes, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {KEY_COLUMNS}"
        )))
        .bind(Uuid::now_v7())
        .bind(tenant.as_str())
        .bind(key.prefix())
        .bind(&key.hash().as_bytes()[..])
        .bind(scopes)
        .bind(expires_at)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;

        let row = key_from_row(&row)?;
        Ok((key, row))
    }

    /// The key with this hash, whatever its state (revoked and expired keys included).
    pub async fn find_api_key(&self, hash: &KeyHash) -> Result<Option<ApiKeyRow>, ArchiveError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = $1"
        )))
        .bind(&hash.as_bytes()[..])
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    /// Records that a key was just used.
    pub async fn touch_api_key(&self, id: Uuid) -> Result<(), ArchiveError> {
        sqlx::query("UPDATE api_keys SET last_used_at = now() WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every key of `tenant`, or of every tenant; by tenant, then oldest first.
    pub async fn list_api_keys(
        &self,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<ApiKeyRow>, ArchiveError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE ($1::text IS NULL OR tenant = $1) \
             ORDER BY tenant, created_at, id"
        )))
        .bind(tenant.map(TenantId::as_str))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    /// Revokes a key. Returns `false` when there is no such key or it was already revoked
    /// (the first revocation time is kept).
    pub async fn revoke_api_key(&self, id: Uuid) -> Result<bool, ArchiveError> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// Reads a row selected with [`KEY_COLUMNS`].
///
/// A scope this version does not know (written by a newer one) is left out: the key then
/// grants less, never more.
fn key_from_row(row: &PgRow) -> Result<ApiKeyRow, ArchiveError> {
    let id: Uuid = row.try_get("id")?;
    let tenant: String = row.try_get("tenant")?;
    let scopes: Vec<String> = row.try_get("scopes")?;
    let scopes = scopes
        .iter()
        .filter_map(|s| match s.parse::<Scope>() {
            Ok(scope) => Some(scope),
            Err(e) => {
                tracing::warn!(key_id = %id, error = %e, "ignoring an unknown scope");
                None
            }
        })
        .collect();
    Ok(ApiKeyRow {
        id,
        tenant: TenantId::parse(&tenant)
            .map_err(|e| ArchiveError::corrupt(format!("api key {id}: tenant: {e}")))?,
        prefix: row.try_get("prefix")?,
        scopes,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
        disabled_at: row.try_get("disabled_at")?,
    })
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::archive::test_db::TestDb;

    fn tenant(name: &str) -> TenantId {
        TenantId::parse(name).unwrap()
    }

    #[tokio::test]
    async fn a_created_key_is_found_by_its_hash_until_revoked() {
        let db = TestDb::new().await;
        let archive = &db.archive;
        let acme = tenant("acme");

        let (key, created) = archive
            .create_api_key(
                &acme,
                &[Scope::JobsRead, Scope::JobsWrite, Scope::JobsRead],
                None,
            )
            .await
            .unwrap();
        assert_eq!(created.tenant, acme);
        assert_eq!(created.prefix, key.prefix());
        assert_eq!(created.scopes, [Scope::JobsWrite, Scope::JobsRead]);
        assert!(created.has_scope(Scope::JobsRead) && !created.has_scope(Scope::Admin));
        assert!(created.is_usable(Utc::now()));

        // Only the prefix and the hash are stored.
        let stored: Vec<u8> = sqlx::query("SELECT key_hash FROM api_keys WHERE id = $1")
            .bind(created.id)
            .fetch_one(archive.pool())
            .await
            .unwrap()
            .get("key_hash");
        assert_eq!(stored, key.hash().as_bytes());

        let parsed = ApiKey::parse(key.expose()).unwrap();
        let found = archive.find_api_key(&parsed.hash()).await.unwrap();
        assert_eq!(found.as_ref(), Some(&created));
        assert_eq!(
            archive
                .find_api_key(&ApiKey::generate().hash())
                .await
                .unwrap(),
            None
        );

        archive.touch_api_key(created.id).await.unwrap();
        let touched = archive.find_api_key(&key.hash()).await.unwrap().unwrap();
        assert!(touched.last_used_at.is_some());

        assert!(archive.revoke_api_key(created.id).await.unwrap());
        assert!(!archive.revoke_api_key(created.id).await.unwrap());
        assert!(!archive.revoke_api_key(Uuid::now_v7()).await.unwrap());
        let revoked = archive.find_api_key(&key.hash()).await.unwrap().unwrap();
        assert!(revoked.revoked_at.is_some());
        assert!(!revoked.is_usable(Utc::now()));
    }

    #[tokio::test]
    async fn an_expired_key_is_found_but_not_usable() {
        let db = TestDb::new().await;
        let archive = &db.archive;
        let past = Utc::now() - Duration::hours(1);
        let (key, _) = archive
            .create_api_key(&tenant("acme"), &[Scope::JobsRead], Some(past))
            .await
            .unwrap();
        let row = archive.find_api_key(&key.hash()).await.unwrap().unwrap();
        assert!(row.revoked_at.is_none());
        assert!(!row.is_usable(Utc::now()));
        assert!(row.is_usable(past - Duration::seconds(1)));
    }

    #[tokio::test]
    async fn keys_are_listed_per_tenant_or_all() {
        let db = TestDb::new().await;
        let archive = &db.archive;
        archive.ensure_tenant(&tenant("acme")).await.unwrap();
        archive.ensure_tenant(&tenant("acme")).await.unwrap();
        let (_, a1) = archive
            .create_api_key(&tenant("acme"), &[Scope::Admin], None)
            .await
            .unwrap();
        let (_, a2) = archive
            .create_api_key(&tenant("acme"), &[], None)
            .await
            .unwrap();
        let (_, g1) = archive
            .create_api_key(&tenant("globex"), &[Scope::JobsRead], None)
            .await
            .unwrap();

        let acme = archive.list_api_keys(Some(&tenant("acme"))).await.unwrap();
        assert_eq!(acme, [a1.clone(), a2.clone()]);
        let all = archive.list_api_keys(None).await.unwrap();
        assert_eq!(all, [a1, a2, g1]);
        assert!(
            archive
                .list_api_keys(Some(&tenant("initech")))
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn usability_depends_on_revocation_and_expiry_only() {
        let now = Utc::now();
        let row = ApiKeyRow {
            id: Uuid::now_v7(),
            tenant: tenant("acme"),
            prefix: "lh_abcdefgh".into(),
            scopes: vec![Scope::JobsRead],
            created_at: now,
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
            disabled_at: None,
        };
        assert!(row.is_usable(now));
        let expiring = ApiKeyRow {
            expires_at: Some(now),
            ..row.clone()
        };
        assert!(!expiring.is_usable(now));
        assert!(expiring.is_usable(now - Duration::milliseconds(1)));
        let revoked = ApiKeyRow {
            revoked_at: Some(now),
            ..row
        };
        assert!(!revoked.is_usable(now - Duration::days(1)));
    }
}
