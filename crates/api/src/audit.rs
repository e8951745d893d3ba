//! The audit trail: every admin action and watch change, who and when.

use anyhow::Context;
use shelfwatch_store::PgPool;
use shelfwatch_store::access::{self, AuditEntry};

/// Records `actor` doing `action` to `target`, with the current request's id.
pub async fn record(
    pool: &PgPool,
    actor: &str,
    action: &str,
    target: Option<&str>,
    detail: serde_json::Value,
) -> anyhow::Result<()> {
    let entry = AuditEntry {
        actor,
        action,
        target,
        detail,
        request_id: super::error::current_request_id(),
    };
    access::record_audit(pool, entry)
        .await
        .context("writing the audit log")
}
