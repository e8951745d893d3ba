//! The audit trail: every admin action and watch change, who and when.

use anyhow::Context;
use sqlx::PgPool;

/// Records `actor` doing `action` to `target`.
pub async fn record(
    pool: &PgPool,
    actor: &str,
    action: &str,
    target: Option<&str>,
    detail: serde_json::Value,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (actor, action, target, detail, request_id) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(actor)
    .bind(action)
    .bind(target)
    .bind(detail)
    .bind(super::error::current_request_id())
    .execute(pool)
    .await
    .context("writing the audit log")?;
    Ok(())
}
