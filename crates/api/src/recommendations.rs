//! The current recommendations, best first.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Postgres, QueryBuilder};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Caller;
use super::catalogue::retailer_id;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Query};
use super::model::{self, Money, rfc3339};

pub use shelfwatch_domain::action::Action;

const RANK_SQL: &str = "(CASE rc.action WHEN 'buy_now' THEN 0 WHEN 'wait' THEN 1 ELSE 2 END)";

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecommendationQuery {
    /// Only this retailer (slug).
    #[param(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub retailer: Option<String>,
    /// Only products in this category (case-insensitive).
    #[param(max_length = 200)]
    pub category: Option<String>,
    /// Only this action.
    pub action: Option<Action>,
    /// Only recommendations at least this confident (0 to 1).
    #[param(minimum = 0.0, maximum = 1.0)]
    pub min_confidence: Option<f64>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` from the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]{1,512}$")]
    pub cursor: Option<String>,
}

/// What to do about one listing's price now.
#[derive(Debug, Serialize, ToSchema)]
pub struct Recommendation {
    pub listing_id: i64,
    /// The canonical product, once matched.
    pub product_id: Option<i64>,
    pub product_name: Option<String>,
    pub category: Option<String>,
    pub retailer: String,
    pub title: String,
    pub action: Action,
    /// Probability (0-1) that `claim` comes true.
    pub confidence: f64,
    /// The checkable statement the confidence is about.
    pub claim: String,
    pub message: String,
    pub current_price: Money,
    pub regular_price: Money,
    /// Against today's price: the drop taken (buy_now) or expected (wait).
    pub expected_change: Money,
    pub run_id: i64,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub as_of: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecommendationPage {
    pub data: Vec<Recommendation>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Row {
    listing_id: i64,
    product_id: Option<i64>,
    product_name: Option<String>,
    category: Option<String>,
    retailer: String,
    currency: String,
    title: String,
    action: String,
    rank: i32,
    confidence: f64,
    claim: String,
    message: String,
    current_pence: i64,
    regular_pence: i64,
    expected_change_pence: i64,
    run_id: i64,
    as_of: DateTime<Utc>,
}

/// The current runs: the newest succeeded run, and the newest succeeded run
/// of each other shard of the same split (`i/n` with the same n).
pub async fn current_runs(pool: &PgPool) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "WITH newest AS (
             SELECT split_part(shard, '/', 2) AS n FROM forecast_runs
             WHERE status = 'succeeded' ORDER BY id DESC LIMIT 1)
         SELECT DISTINCT ON (shard) id FROM forecast_runs, newest
         WHERE status = 'succeeded' AND split_part(shard, '/', 2) = newest.n
         ORDER BY shard, id DESC",
    )
    .fetch_all(pool)
    .await
}

/// The latest run's recommendations, best first: buy now, then wait, then
/// hold; most confident first within each.
#[utoipa::path(
    get, path = "/v1/recommendations", tag = "recommendations",
    params(RecommendationQuery),
    responses((status = 200, description = "A page of recommendations, best first", body = RecommendationPage)),
    security((), ("api_key" = []), ("bearer" = []))
)]
pub async fn list_recommendations(
    State(app): State<AppState>,
    caller: Caller,
    Query(query): Query<RecommendationQuery>,
) -> ApiResult<Json<RecommendationPage>> {
    caller.require_read(&app)?;
    let limit = model::limit(query.limit, 20, 100)?;
    let min_confidence = query.min_confidence.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&min_confidence) {
        return Err(ApiError::bad_request(
            "min_confidence must be between 0 and 1",
        ));
    }
    // The confidence travels as its bit pattern: decimal text need not
    // round-trip exactly, and ties on it are broken by listing id.
    let after = match query.cursor.as_deref() {
        Some(c) => {
            let (rank, bits, listing) = model::decode_cursor::<(i32, u64, i64)>(c)?;
            let confidence = f64::from_bits(bits);
            if !confidence.is_finite() {
                return Err(ApiError::bad_request("cursor is not one this API gave out"));
            }
            Some((rank, confidence, listing))
        }
        None => None,
    };
    let retailer = match &query.retailer {
        Some(slug) => Some(retailer_id(&app.pool, slug).await?),
        None => None,
    };
    if query
        .category
        .as_ref()
        .is_some_and(|c| c.chars().count() > 200)
    {
        return Err(ApiError::bad_request(
            "category is longer than 200 characters",
        ));
    }
    let runs = current_runs(&app.pool).await?;
    if runs.is_empty() {
        return Ok(Json(RecommendationPage {
            data: Vec::new(),
            next_cursor: None,
        }));
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
    if let [run] = runs.as_slice() {
        sql.push("rc.run_id = ").push_bind(*run);
    } else {
        sql.push("rc.run_id = ANY(").push_bind(runs).push(")");
    }
    if let Some(rid) = retailer {
        sql.push(" AND l.retailer_id = ").push_bind(rid);
    }
    if let Some(c) = &query.category {
        sql.push(" AND lower(p.category) = lower(")
            .push_bind(c.clone())
            .push(")");
    }
    if let Some(action) = query.action {
        sql.push(" AND rc.action = ").push_bind(action.as_str());
    }
    if min_confidence > 0.0 {
        sql.push(" AND rc.confidence >= ").push_bind(min_confidence);
    }
    if let Some((rank, confidence, listing)) = after {
        sql.push(format!(" AND ({RANK_SQL} > "))
            .push_bind(rank)
            .push(format!(" OR ({RANK_SQL} = "))
            .push_bind(rank)
            .push(" AND (rc.confidence < ")
            .push_bind(confidence)
            .push(" OR (rc.confidence = ")
            .push_bind(confidence)
            .push(" AND rc.listing_id > ")
            .push_bind(listing)
            .push("))))");
    }
    sql.push(format!(
        " ORDER BY {RANK_SQL}, rc.confidence DESC, rc.listing_id LIMIT "
    ))
    .push_bind(limit + 1);
    let mut rows: Vec<Row> = sql.build_query_as().fetch_all(&app.pool).await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last()
            .map(|r| model::encode_cursor(&(r.rank, r.confidence.to_bits(), r.listing_id)))
    } else {
        None
    };
    let data = rows
        .into_iter()
        .map(|r| {
            let action = r.action.parse::<Action>().unwrap_or(Action::Hold);
            debug_assert_eq!(action.index() as i32, r.rank);
            Recommendation {
                listing_id: r.listing_id,
                product_id: r.product_id,
                product_name: r.product_name,
                category: r.category,
                retailer: r.retailer,
                title: r.title,
                action,
                confidence: r.confidence,
                claim: r.claim,
                message: r.message,
                current_price: Money::new(r.current_pence, &r.currency),
                regular_price: Money::new(r.regular_pence, &r.currency),
                expected_change: Money::new(r.expected_change_pence, &r.currency),
                run_id: r.run_id,
                as_of: r.as_of,
            }
        })
        .collect();
    Ok(Json(RecommendationPage { data, next_cursor }))
}
