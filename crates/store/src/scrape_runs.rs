//! The record of each scrape run (table `scrape_runs`), and the retailer
//! row a run belongs to.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// A retailer as its scrape config describes it.
#[derive(Debug, Clone, Copy)]
pub struct RetailerInfo<'a> {
    pub slug: &'a str,
    pub name: &'a str,
    pub currency: &'a str,
    pub base_url: &'a str,
}

/// Creates the retailer, or brings its name, currency and base URL up to
/// date. Returns its id.
pub async fn register_retailer(pool: &PgPool, retailer: RetailerInfo<'_>) -> anyhow::Result<i64> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO retailers (slug, name, currency, base_url) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (slug) DO UPDATE SET name = EXCLUDED.name, currency = EXCLUDED.currency, \
         base_url = EXCLUDED.base_url RETURNING id",
    )
    .bind(retailer.slug)
    .bind(retailer.name)
    .bind(retailer.currency)
    .bind(retailer.base_url)
    .fetch_one(pool)
    .await?;
    Ok(id)
}

/// The id of the retailer `slug`, created with its slug as its name when it
/// does not exist yet; an existing row is left as it is.
pub async fn ensure_retailer(pool: &PgPool, slug: &str) -> anyhow::Result<i64> {
    sqlx::query("INSERT INTO retailers (slug, name) VALUES ($1, $1) ON CONFLICT (slug) DO NOTHING")
        .bind(slug)
        .execute(pool)
        .await?;
    let id: i64 = sqlx::query_scalar("SELECT id FROM retailers WHERE slug = $1")
        .bind(slug)
        .fetch_one(pool)
        .await?;
    Ok(id)
}

/// A run just recorded as started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartedRun {
    pub id: i64,
    /// Products seen by the retailer's last finished run that saw any.
    pub previous_products: Option<u32>,
}

/// Records the start of a run of `retailer_id`, with the product count of
/// its last finished (succeeded, partial or suspect) run that saw any.
pub async fn start(
    pool: &PgPool,
    retailer_id: i64,
    started_at: DateTime<Utc>,
) -> anyhow::Result<StartedRun> {
    let previous: Option<i32> = sqlx::query_scalar(
        "SELECT products FROM scrape_runs WHERE retailer_id = $1 AND finished_at IS NOT NULL \
         AND status IN ('succeeded', 'partial', 'suspect') AND products > 0 \
         ORDER BY started_at DESC LIMIT 1",
    )
    .bind(retailer_id)
    .fetch_optional(pool)
    .await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO scrape_runs (retailer_id, previous_products, started_at) \
         VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(retailer_id)
    .bind(previous)
    .bind(started_at)
    .fetch_one(pool)
    .await?;
    Ok(StartedRun {
        id,
        previous_products: previous.and_then(|p| u32::try_from(p).ok()),
    })
}

/// How a run ended, as stored when it is closed.
#[derive(Debug, Clone, Copy)]
pub struct FinishedRun<'a> {
    pub id: i64,
    pub status: &'a str,
    pub pages: u32,
    pub products: u32,
    /// Pages that failed.
    pub errors: u32,
    pub parse_errors: u32,
    pub retries: u32,
    pub browser_restarts: u32,
    pub spooled: u64,
    pub message: Option<&'a str>,
    pub finished_at: DateTime<Utc>,
}

/// Closes a run with its outcome and counts.
pub async fn finish(pool: &PgPool, run: &FinishedRun<'_>) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE scrape_runs SET finished_at = $11, status = $2, pages = $3, products = $4, \
         errors = $5, parse_errors = $6, retries = $7, browser_restarts = $8, spooled = $9, \
         message = $10 WHERE id = $1",
    )
    .bind(run.id)
    .bind(run.status)
    .bind(run.pages as i32)
    .bind(run.products as i32)
    .bind(run.errors as i32)
    .bind(run.parse_errors as i32)
    .bind(run.retries as i32)
    .bind(run.browser_restarts as i32)
    .bind(run.spooled as i32)
    .bind(run.message)
    .bind(run.finished_at)
    .execute(pool)
    .await?;
    Ok(())
}
