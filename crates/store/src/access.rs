//! Who may call the API and what they did: API keys (stored as SHA-256
//! digests, never the key) and the audit log.

use sqlx::PgPool;

use crate::error::StoreResult;

/// The channel on which a revoked key's id is announced
/// ([`crate::notify`]), so every process holding the key in a cache drops
/// it at once.
pub const KEY_REVOCATIONS: &str = "shelfwatch_api_keys";

/// A key that has not been revoked.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub id: i64,
    pub scopes: Vec<String>,
}

/// The live key whose SHA-256 digest is `key_sha256`, if any.
pub async fn key_by_digest(pool: &PgPool, key_sha256: &[u8]) -> StoreResult<Option<ApiKeyRow>> {
    Ok(sqlx::query_as(
        "SELECT id, scopes FROM api_keys WHERE key_sha256 = $1 AND revoked_at IS NULL",
    )
    .bind(key_sha256)
    .fetch_optional(pool)
    .await?)
}

/// Stores a key by its digest; `prefix` is its first characters, to
/// recognise it in a list. Returns its id.
pub async fn insert_key(
    pool: &PgPool,
    name: &str,
    prefix: &str,
    key_sha256: &[u8],
    scopes: &[&str],
) -> StoreResult<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO api_keys (name, prefix, key_sha256, scopes) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(name)
    .bind(prefix)
    .bind(key_sha256)
    .bind(scopes)
    .fetch_one(pool)
    .await?)
}

/// Revokes key `id`; returns false when there is no live key with that id.
/// The revocation is announced on [`KEY_REVOCATIONS`] in the same
/// transaction, so listeners hear of it exactly when it is committed.
pub async fn revoke_key(pool: &PgPool, id: i64) -> StoreResult<bool> {
    let mut tx = pool.begin().await?;
    let done =
        sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    if done.rows_affected() == 0 {
        tx.rollback().await?;
        return Ok(false);
    }
    crate::notify::notify(&mut *tx, KEY_REVOCATIONS, &id.to_string()).await?;
    tx.commit().await?;
    Ok(true)
}

/// One entry of the audit log.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    /// `key:<id>`, `jwt:<subject>` or `cli`.
    pub actor: &'a str,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub detail: serde_json::Value,
    /// The request that did it, when an HTTP request did.
    pub request_id: Option<String>,
}

/// Appends `entry` to the audit log.
pub async fn record_audit(pool: &PgPool, entry: AuditEntry<'_>) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (actor, action, target, detail, request_id) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(entry.actor)
    .bind(entry.action)
    .bind(entry.target)
    .bind(entry.detail)
    .bind(entry.request_id)
    .execute(pool)
    .await?;
    Ok(())
}
