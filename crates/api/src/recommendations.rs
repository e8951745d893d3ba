//! The current recommendations, best first.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shelfwatch_store::recommendations::{self as store, RecommendationFilter, RecommendationKey};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Caller;
use super::catalogue::retailer_filter;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Query};
use super::model::{self, Money, rfc3339};

pub use shelfwatch_domain::action::Action;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecommendationQuery {
    /// Only this retailer (slug).
    #[param(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub retailer: Option<String>,
    /// Only products in this category (case-insensitive).
    #[param(max_length = 200, pattern = r"^[^\u0000]*$")]
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
            Some(RecommendationKey {
                rank,
                confidence,
                listing_id: listing,
            })
        }
        None => None,
    };
    let retailer = retailer_filter(&app, query.retailer.as_deref()).await?;
    model::check_category(query.category.as_deref())?;
    let filter = RecommendationFilter {
        runs: app.runs.get().await?,
        retailer_id: retailer,
        category: query.category,
        action: query.action,
        min_confidence,
        after,
        limit,
    };
    let page = store::page(&app.pool, &filter).await?;
    let next_cursor = page.last_if_more().map(|r| {
        let key = r.key();
        model::encode_cursor(&(key.rank, key.confidence.to_bits(), key.listing_id))
    });
    let data = page
        .items
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
