//! What the admin endpoints read: recent scrape and forecast runs.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::error::StoreResult;

/// A scrape run, with its retailer's slug (None: all retailers).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ScrapeRunRow {
    pub id: i64,
    pub retailer: Option<String>,
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub pages: i32,
    pub products: i32,
    pub errors: i32,
    pub message: Option<String>,
}

/// The `limit` most recent scrape runs, most recent first.
pub async fn recent_scrape_runs(pool: &PgPool, limit: i64) -> StoreResult<Vec<ScrapeRunRow>> {
    Ok(sqlx::query_as(
        "SELECT s.id, r.slug AS retailer, s.status, s.started_at, s.finished_at, s.pages,
                s.products, s.errors, s.message
         FROM scrape_runs s LEFT JOIN retailers r ON r.id = s.retailer_id
         ORDER BY s.id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// A forecast run.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ForecastRunRow {
    pub id: i64,
    pub model_version: String,
    pub shard: String,
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub as_of: Option<DateTime<Utc>>,
    pub series: i32,
    pub message: Option<String>,
}

/// The `limit` most recent forecast runs, most recent first.
pub async fn recent_forecast_runs(pool: &PgPool, limit: i64) -> StoreResult<Vec<ForecastRunRow>> {
    Ok(sqlx::query_as(
        "SELECT id, model_version, shard, status, started_at, finished_at, as_of, series, message
         FROM forecast_runs ORDER BY id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
