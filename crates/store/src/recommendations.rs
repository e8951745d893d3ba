//! The current recommendations, read for the API and for watches.

use chrono::{DateTime, Utc};
use shelfwatch_domain::action::Action;
use sqlx::{PgPool, Postgres, QueryBuilder};

use crate::error::StoreResult;
use crate::page::Page;

/// The channel on which each succeeded forecast run's id is announced
/// ([`crate::notify`]), so a process keeping [`current_runs`] in memory
/// reloads them the moment a run lands.
pub const FORECAST_RUNS: &str = "shelfwatch_forecast_runs";

/// The current runs: the newest succeeded run, and the newest succeeded run
/// of each other shard of the same split (`i/n` with the same n).
pub async fn current_runs(pool: &PgPool) -> StoreResult<Vec<i64>> {
    Ok(sqlx::query_scalar(
        "WITH newest AS (
             SELECT split_part(shard, '/', 2) AS n FROM forecast_runs
             WHERE status = 'succeeded' ORDER BY id DESC LIMIT 1)
         SELECT DISTINCT ON (shard) id FROM forecast_runs, newest
         WHERE status = 'succeeded' AND split_part(shard, '/', 2) = newest.n
         ORDER BY shard, id DESC",
    )
    .fetch_all(pool)
    .await?)
}

/// Best first: buy now, then wait, then hold ([`Action::index`]).
const RANK_SQL: &str = "(CASE rc.action WHEN 'buy_now' THEN 0 WHEN 'wait' THEN 1 ELSE 2 END)";

/// Where a page of recommendations ends: its last row's sort key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecommendationKey {
    pub rank: i32,
    pub confidence: f64,
    pub listing_id: i64,
}

/// Which recommendations to list, best first.
#[derive(Debug, Clone, Default)]
pub struct RecommendationFilter {
    /// The runs to read ([`current_runs`]); none gives an empty page.
    pub runs: Vec<i64>,
    pub retailer_id: Option<i64>,
    /// Exact product category, ignoring case.
    pub category: Option<String>,
    pub action: Option<Action>,
    /// Only those at least this confident (0: all).
    pub min_confidence: f64,
    /// Start after this key, the last of the previous page.
    pub after: Option<RecommendationKey>,
    /// Page size.
    pub limit: i64,
}

/// One recommendation with its listing, product and retailer.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RecommendationRow {
    pub listing_id: i64,
    pub product_id: Option<i64>,
    pub product_name: Option<String>,
    pub category: Option<String>,
    pub retailer: String,
    pub currency: String,
    pub title: String,
    pub action: String,
    pub rank: i32,
    pub confidence: f64,
    pub claim: String,
    pub message: String,
    pub current_pence: i64,
    pub regular_pence: i64,
    pub expected_change_pence: i64,
    pub run_id: i64,
    pub as_of: DateTime<Utc>,
}

impl RecommendationRow {
    /// The row's sort key, the cursor of the page it ends.
    pub fn key(&self) -> RecommendationKey {
        RecommendationKey {
            rank: self.rank,
            confidence: self.confidence,
            listing_id: self.listing_id,
        }
    }
}

/// A page of recommendations matching `filter`: buy now, then wait, then
/// hold; most confident first within each; ties by listing.
pub async fn page(
    pool: &PgPool,
    filter: &RecommendationFilter,
) -> StoreResult<Page<RecommendationRow>> {
    if filter.runs.is_empty() {
        return Ok(Page::from_overfetch(Vec::new(), filter.limit));
    }
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT rc.listing_id, l.product_id, p.name AS product_name, p.category,
                r.slug AS retailer, r.currency, l.title, rc.action, {RANK_SQL} AS rank,
                rc.confidence, rc.claim, rc.message, rc.current_pence, rc.regular_pence,
                rc.expected_change_pence, rc.run_id, rc.as_of
         FROM recommendations rc
         JOIN listings l ON l.id = rc.listing_id
         JOIN retailers r ON r.id = l.retailer_id
         LEFT JOIN products p ON p.id = l.product_id
         WHERE "
    ));
    // One run (the usual case) lets the index give the order directly.
    if let [run] = filter.runs.as_slice() {
        sql.push("rc.run_id = ").push_bind(*run);
    } else {
        sql.push("rc.run_id = ANY(")
            .push_bind(filter.runs.clone())
            .push(")");
    }
    // Filter on the recommendation's own columns (filed when the run is
    // stored, kept current by triggers), so an index gives the page in
    // order.
    if let Some(rid) = filter.retailer_id {
        sql.push(" AND rc.retailer_id = ").push_bind(rid);
    }
    if let Some(c) = &filter.category {
        sql.push(" AND rc.category = lower(")
            .push_bind(c.clone())
            .push(")");
    }
    // By rank rather than by name: the rank is an index column.
    if let Some(action) = filter.action {
        sql.push(format!(" AND {RANK_SQL} = "))
            .push_bind(action.index() as i32);
    }
    if filter.min_confidence > 0.0 {
        sql.push(" AND rc.confidence >= ")
            .push_bind(filter.min_confidence);
    }
    if let Some(key) = filter.after {
        sql.push(format!(" AND ({RANK_SQL} > "))
            .push_bind(key.rank)
            .push(format!(" OR ({RANK_SQL} = "))
            .push_bind(key.rank)
            .push(" AND (rc.confidence < ")
            .push_bind(key.confidence)
            .push(" OR (rc.confidence = ")
            .push_bind(key.confidence)
            .push(" AND rc.listing_id > ")
            .push_bind(key.listing_id)
            .push("))))");
    }
    sql.push(format!(
        " ORDER BY {RANK_SQL}, rc.confidence DESC, rc.listing_id LIMIT "
    ))
    .push_bind(filter.limit + 1);
    let rows = sql.build_query_as().fetch_all(pool).await?;
    Ok(Page::from_overfetch(rows, filter.limit))
}
