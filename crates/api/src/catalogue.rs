//! Retailers and products: search, one product across retailers, its
//! price history and its forecast.

use std::collections::HashMap;

use axum::extract::State;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Postgres, QueryBuilder};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Path, Query};
use super::model::{self, Money, UnitPrice, rfc3339, rfc3339_opt};

/// A retailer whose shelves are read.
#[derive(Debug, Serialize, ToSchema)]
pub struct Retailer {
    #[schema(example = "tesco")]
    pub slug: String,
    pub name: String,
    /// ISO 4217 code of the retailer's prices.
    #[schema(example = "GBP")]
    pub currency: String,
    pub base_url: Option<String>,
    /// Shelf entries seen at this retailer.
    pub listings: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RetailerList {
    pub data: Vec<Retailer>,
}

/// Every retailer, by slug.
#[utoipa::path(
    get, path = "/v1/retailers", tag = "catalogue",
    responses((status = 200, description = "The retailers", body = RetailerList)),
    security((), ("api_key" = []), ("bearer" = []))
)]
pub async fn list_retailers(
    State(app): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<RetailerList>> {
    caller.require_read(&app)?;
    let rows: Vec<(String, String, String, Option<String>, i64)> = sqlx::query_as(
        "SELECT r.slug, r.name, r.currency, r.base_url,
                (SELECT count(*) FROM listings l WHERE l.retailer_id = r.id)
         FROM retailers r ORDER BY r.slug",
    )
    .fetch_all(&app.pool)
    .await?;
    Ok(Json(RetailerList {
        data: rows
            .into_iter()
            .map(|(slug, name, currency, base_url, listings)| Retailer {
                slug,
                name,
                currency,
                base_url,
                listings,
            })
            .collect(),
    }))
}

/// The id of the retailer with `slug`; an unknown one is the caller's mistake.
pub async fn retailer_id(pool: &PgPool, slug: &str) -> ApiResult<i64> {
    let slug = model::retailer_slug(slug)?;
    sqlx::query_scalar("SELECT id FROM retailers WHERE slug = $1")
        .bind(slug.as_str())
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| ApiError::bad_request(format!("unknown retailer {:?}", slug.as_str())))
}

/// A canonical product: what a shopper means, whichever retailer sells it.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Product {
    pub id: i64,
    pub name: String,
    pub brand: Option<String>,
    pub category: Option<String>,
    /// Items in a pack (`4` in `4 x 330ml`).
    pub pack_count: Option<i32>,
    /// Size of each item in `base_unit` (`330` in `4 x 330ml`).
    pub pack_each: Option<i64>,
    /// `g`, `ml` or `each`.
    pub base_unit: Option<String>,
    pub gtin: Option<String>,
}

const PRODUCT_COLUMNS: &str =
    "p.id, p.name, p.brand, p.category, p.pack_count, p.pack_each, p.base_unit, p.gtin";

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProductQuery {
    /// Words to find in the name or brand (each word matches as a prefix).
    #[param(max_length = 200)]
    pub q: Option<String>,
    /// Exact category (case-insensitive).
    #[param(max_length = 200)]
    pub category: Option<String>,
    /// Only products this retailer sells (slug).
    #[param(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub retailer: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` from the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]{1,512}$")]
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductPage {
    pub data: Vec<Product>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Turns free text into a prefix-matching full-text query, or None when it
/// has no words.
fn search_query(q: &str) -> Option<String> {
    let words: Vec<String> = q
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(16)
        .map(|w| format!("{}:*", w.to_lowercase()))
        .collect();
    (!words.is_empty()).then(|| words.join(" & "))
}

/// Search products by name and brand, by category and by retailer; sorted
/// by name.
#[utoipa::path(
    get, path = "/v1/products", tag = "catalogue",
    params(ProductQuery),
    responses((status = 200, description = "A page of products, by name", body = ProductPage)),
    security((), ("api_key" = []), ("bearer" = []))
)]
pub async fn list_products(
    State(app): State<AppState>,
    caller: Caller,
    Query(query): Query<ProductQuery>,
) -> ApiResult<Json<ProductPage>> {
    caller.require_read(&app)?;
    let limit = model::limit(query.limit, 20, 100)?;
    let after: Option<(String, i64)> = query
        .cursor
        .as_deref()
        .map(model::decode_cursor)
        .transpose()?;
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT {PRODUCT_COLUMNS} FROM products p WHERE true"
    ));
    if let Some(q) = &query.q {
        if q.chars().count() > 200 {
            return Err(ApiError::bad_request("q is longer than 200 characters"));
        }
        let Some(tsquery) = search_query(q) else {
            return Err(ApiError::bad_request("q has no words to search for"));
        };
        sql.push(" AND p.search @@ to_tsquery('simple', ")
            .push_bind(tsquery)
            .push(")");
    }
    if let Some(category) = &query.category {
        if category.chars().count() > 200 {
            return Err(ApiError::bad_request(
                "category is longer than 200 characters",
            ));
        }
        sql.push(" AND lower(p.category) = lower(")
            .push_bind(category.clone())
            .push(")");
    }
    if let Some(slug) = &query.retailer {
        let rid = retailer_id(&app.pool, slug).await?;
        sql.push(
            " AND EXISTS (SELECT 1 FROM listings l WHERE l.product_id = p.id AND l.retailer_id = ",
        )
        .push_bind(rid)
        .push(")");
    }
    if let Some((name, id)) = after {
        sql.push(" AND (p.name, p.id) > (")
            .push_bind(name)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    sql.push(" ORDER BY p.name, p.id LIMIT ")
        .push_bind(limit + 1);
    let mut rows: Vec<Product> = sql.build_query_as().fetch_all(&app.pool).await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|p| model::encode_cursor(&(&p.name, p.id)))
    } else {
        None
    };
    Ok(Json(ProductPage {
        data: rows,
        next_cursor,
    }))
}

/// One retailer's current offer for a product, from its latest observation.
#[derive(Debug, Serialize, ToSchema)]
pub struct Offer {
    pub listing_id: i64,
    pub retailer: String,
    /// The retailer's shelf title.
    pub title: String,
    pub url: Option<String>,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub observed_at: DateTime<Utc>,
    /// The shelf price.
    pub price: Money,
    /// The "was" price of a price cut.
    pub was_price: Option<Money>,
    /// What one item costs after the promotion.
    pub effective_price: Money,
    /// Price per kg, litre or item.
    pub unit_price: Option<UnitPrice>,
    /// `none`, `multibuy`, `loyalty`, `price_cut` or `clearance`.
    pub promo_kind: String,
    pub promo_text: Option<String>,
    pub in_stock: bool,
    /// Cheapest in-stock offer (after promotions) in its currency.
    pub cheapest_now: bool,
    /// The latest recommendation for this listing.
    pub recommendation: Option<OfferRecommendation>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OfferRecommendation {
    /// `buy_now`, `wait` or `hold`.
    pub action: String,
    /// Probability (0-1) that the claim holds.
    pub confidence: f64,
    pub expected_change: Money,
    pub message: String,
    pub run_id: i64,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub as_of: DateTime<Utc>,
}

/// The cheapest in-stock offer in one currency.
#[derive(Debug, Serialize, ToSchema)]
pub struct Cheapest {
    pub listing_id: i64,
    pub retailer: String,
    pub effective_price: Money,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductDetail {
    #[serde(flatten)]
    pub product: Product,
    /// Offers, cheapest first within each currency.
    pub offers: Vec<Offer>,
    /// The cheapest in-stock offer now, one per currency.
    pub cheapest: Vec<Cheapest>,
}

async fn product(pool: &PgPool, id: i64) -> ApiResult<Product> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {PRODUCT_COLUMNS} FROM products p WHERE p.id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no product {id}")))
}

type OfferRow = (
    i64,
    String,
    String,
    String,
    Option<String>,
    DateTime<Utc>,
    i64,
    Option<i64>,
    i64,
    Option<i64>,
    Option<String>,
    String,
    Option<String>,
    bool,
);

type RecRow = (i64, i64, DateTime<Utc>, String, f64, i64, String);

/// A product with each retailer's current price, unit price, promotion and
/// recommendation, and the cheapest offer now.
#[utoipa::path(
    get, path = "/v1/products/{id}", tag = "catalogue",
    params(("id" = i64, Path, description = "Product id")),
    responses(
        (status = 200, description = "The product and its offers", body = ProductDetail),
        (status = 404, description = "No such product", body = super::error::Problem, content_type = "application/problem+json"),
    ),
    security((), ("api_key" = []), ("bearer" = []))
)]
pub async fn get_product(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<ProductDetail>> {
    caller.require_read(&app)?;
    let product = product(&app.pool, id).await?;
    let rows: Vec<OfferRow> = sqlx::query_as(
        "SELECT l.id, r.slug, r.currency, l.title, l.url, o.observed_at, o.price_pence,
                o.was_price_pence, o.effective_price_pence, o.unit_price_pence, o.unit_price_per,
                o.promo_kind, o.promo_text, o.in_stock
         FROM listings l
         JOIN retailers r ON r.id = l.retailer_id
         CROSS JOIN LATERAL (
             SELECT * FROM price_observations o
             WHERE o.listing_id = l.id ORDER BY o.observed_at DESC LIMIT 1
         ) o
         WHERE l.product_id = $1
         ORDER BY r.currency, o.in_stock DESC, o.effective_price_pence, r.slug, l.id",
    )
    .bind(id)
    .fetch_all(&app.pool)
    .await?;
    let listing_ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let recs: Vec<RecRow> = sqlx::query_as(
        "SELECT DISTINCT ON (rc.listing_id) rc.listing_id, rc.run_id, rc.as_of, rc.action,
                rc.confidence, rc.expected_change_pence, rc.message
         FROM recommendations rc
         JOIN forecast_runs fr ON fr.id = rc.run_id AND fr.status = 'succeeded'
         WHERE rc.listing_id = ANY($1)
         ORDER BY rc.listing_id, rc.run_id DESC",
    )
    .bind(&listing_ids)
    .fetch_all(&app.pool)
    .await?;
    let mut recs: HashMap<i64, RecRow> = recs.into_iter().map(|r| (r.0, r)).collect();
    let mut offers = Vec::with_capacity(rows.len());
    let mut cheapest: Vec<Cheapest> = Vec::new();
    for row in rows {
        let (listing_id, retailer, currency, title, url, observed_at, price, was, effective) = (
            row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8,
        );
        let (unit_pence, unit_per, promo_kind, promo_text, in_stock) =
            (row.9, row.10, row.11, row.12, row.13);
        // Rows come cheapest in-stock first within each currency.
        let cheapest_now = in_stock
            && !cheapest
                .iter()
                .any(|c| c.effective_price.currency == currency);
        if cheapest_now {
            cheapest.push(Cheapest {
                listing_id,
                retailer: retailer.clone(),
                effective_price: Money::new(effective, &currency),
            });
        }
        let recommendation = recs.remove(&listing_id).map(|r| OfferRecommendation {
            run_id: r.1,
            as_of: r.2,
            action: r.3,
            confidence: r.4,
            expected_change: Money::new(r.5, &currency),
            message: r.6,
        });
        offers.push(Offer {
            listing_id,
            retailer,
            title,
            url,
            observed_at,
            price: Money::new(price, &currency),
            was_price: was.map(|w| Money::new(w, &currency)),
            effective_price: Money::new(effective, &currency),
            unit_price: unit_pence.zip(unit_per).map(|(p, per)| UnitPrice {
                price: Money::new(p, &currency),
                per,
            }),
            promo_kind,
            promo_text,
            in_stock,
            cheapest_now,
            recommendation,
        });
    }
    Ok(Json(ProductDetail {
        product,
        offers,
        cheapest,
    }))
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    #[default]
    Day,
    Week,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PriceQuery {
    /// Only this retailer (slug).
    #[param(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub retailer: Option<String>,
    /// Start (inclusive): RFC 3339 time or date. Default: 90 days before `to`.
    pub from: Option<String>,
    /// End (exclusive): RFC 3339 time or date. Default: now.
    pub to: Option<String>,
    /// Bucket size: `day` (default) or `week` (weeks start on Monday).
    pub interval: Option<Interval>,
}

/// One bucket of price history.
#[derive(Debug, Serialize, ToSchema)]
pub struct PricePoint {
    /// Bucket start (UTC midnight; Monday for weeks).
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub start: DateTime<Utc>,
    pub open: Money,
    pub close: Money,
    pub min: Money,
    pub max: Money,
    /// Mean shelf price, rounded to the minor unit.
    pub mean: Money,
    /// Lowest price after promotions.
    pub min_effective: Money,
    pub any_promo: bool,
    pub observations: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PriceSeries {
    pub listing_id: i64,
    pub retailer: String,
    pub currency: String,
    pub points: Vec<PricePoint>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PriceHistory {
    pub product_id: i64,
    pub interval: Interval,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub from: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub to: DateTime<Utc>,
    /// One series per listing (retailer) of the product.
    pub series: Vec<PriceSeries>,
}

type PriceRow = (
    i64,
    String,
    String,
    DateTime<Utc>,
    i64,
    i64,
    i64,
    i64,
    f64,
    i64,
    bool,
    i64,
);

/// Daily or weekly price history of a product at each retailer, from the
/// daily aggregates.
#[utoipa::path(
    get, path = "/v1/products/{id}/prices", tag = "catalogue",
    params(("id" = i64, Path, description = "Product id"), PriceQuery),
    responses(
        (status = 200, description = "Price history per listing", body = PriceHistory),
        (status = 404, description = "No such product", body = super::error::Problem, content_type = "application/problem+json"),
    ),
    security((), ("api_key" = []), ("bearer" = []))
)]
pub async fn product_prices(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Query(query): Query<PriceQuery>,
) -> ApiResult<Json<PriceHistory>> {
    caller.require_read(&app)?;
    let to = match &query.to {
        Some(t) => model::parse_time("to", t)?,
        None => Utc::now(),
    };
    let from = match &query.from {
        Some(t) => model::parse_time("from", t)?,
        None => to - Duration::days(90),
    };
    if from >= to {
        return Err(ApiError::bad_request("from must be before to"));
    }
    if to - from > Duration::days(3660) {
        return Err(ApiError::bad_request(
            "at most ten years of history per request",
        ));
    }
    let interval = query.interval.unwrap_or_default();
    let retailer = match &query.retailer {
        Some(slug) => Some(retailer_id(&app.pool, slug).await?),
        None => None,
    };
    product(&app.pool, id).await?;
    let width = match interval {
        Interval::Day => "1 day",
        Interval::Week => "7 days",
    };
    let rows: Vec<PriceRow> = sqlx::query_as(
        "SELECT l.id, r.slug, r.currency, time_bucket($2::interval, d.day) AS bucket,
                (array_agg(d.open_pence ORDER BY d.day))[1],
                (array_agg(d.close_pence ORDER BY d.day DESC))[1],
                min(d.min_pence)::bigint, max(d.max_pence)::bigint,
                (sum(d.sum_pence)::float8 / sum(d.observations)::float8),
                min(d.min_effective_pence)::bigint, bool_or(d.any_promo),
                sum(d.observations)::bigint
         FROM listings l
         JOIN retailers r ON r.id = l.retailer_id
         JOIN price_daily d ON d.listing_id = l.id
         WHERE l.product_id = $1 AND d.day >= $3 AND d.day < $4
           AND ($5::bigint IS NULL OR l.retailer_id = $5)
         GROUP BY l.id, r.slug, r.currency, bucket
         ORDER BY r.slug, l.id, bucket",
    )
    .bind(id)
    .bind(width)
    .bind(from)
    .bind(to)
    .bind(retailer)
    .fetch_all(&app.pool)
    .await?;
    let mut series: Vec<PriceSeries> = Vec::new();
    for row in rows {
        let currency = row.2.clone();
        let m = |v: i64| Money::new(v, &currency);
        let point = PricePoint {
            start: row.3,
            open: m(row.4),
            close: m(row.5),
            min: m(row.6),
            max: m(row.7),
            mean: m(row.8.round() as i64),
            min_effective: m(row.9),
            any_promo: row.10,
            observations: row.11,
        };
        match series.last_mut() {
            Some(s) if s.listing_id == row.0 => s.points.push(point),
            _ => series.push(PriceSeries {
                listing_id: row.0,
                retailer: row.1,
                currency: row.2,
                points: vec![point],
            }),
        }
    }
    Ok(Json(PriceHistory {
        product_id: id,
        interval,
        from,
        to,
        series,
    }))
}

/// One forecast day with its band.
#[derive(Debug, Serialize, ToSchema)]
pub struct ForecastPoint {
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub day: DateTime<Utc>,
    pub predicted: Money,
    pub lower: Money,
    pub upper: Money,
}

/// The latest forecast of one listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListingForecast {
    pub listing_id: i64,
    pub retailer: String,
    pub currency: String,
    pub run_id: i64,
    pub model_version: String,
    /// When the run finished.
    #[serde(serialize_with = "rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub run_at: Option<DateTime<Utc>>,
    /// The last day of data the run saw.
    #[serde(serialize_with = "rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub as_of: Option<DateTime<Utc>>,
    pub points: Vec<ForecastPoint>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductForecast {
    pub product_id: i64,
    pub forecasts: Vec<ListingForecast>,
}

type ForecastRow = (
    i64,
    String,
    String,
    i64,
    String,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    DateTime<Utc>,
    i64,
    i64,
    i64,
);

/// The latest forecast of each of the product's listings, with bands,
/// model version and run time.
#[utoipa::path(
    get, path = "/v1/products/{id}/forecast", tag = "catalogue",
    params(("id" = i64, Path, description = "Product id")),
    responses(
        (status = 200, description = "Latest forecast per listing", body = ProductForecast),
        (status = 404, description = "No such product", body = super::error::Problem, content_type = "application/problem+json"),
    ),
    security((), ("api_key" = []), ("bearer" = []))
)]
pub async fn product_forecast(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<ProductForecast>> {
    caller.require_read(&app)?;
    product(&app.pool, id).await?;
    let rows: Vec<ForecastRow> = sqlx::query_as(
        "WITH latest AS (
             SELECT DISTINCT ON (f.listing_id) f.listing_id, f.run_id
             FROM listings l
             JOIN forecasts f ON f.listing_id = l.id
             JOIN forecast_runs fr ON fr.id = f.run_id AND fr.status = 'succeeded'
             WHERE l.product_id = $1
             ORDER BY f.listing_id, f.run_id DESC)
         SELECT l.id, r.slug, r.currency, fr.id, fr.model_version, fr.finished_at, fr.as_of,
                f.day, f.predicted_pence, f.lower_pence, f.upper_pence
         FROM latest
         JOIN listings l ON l.id = latest.listing_id
         JOIN retailers r ON r.id = l.retailer_id
         JOIN forecast_runs fr ON fr.id = latest.run_id
         JOIN forecasts f ON f.run_id = latest.run_id AND f.listing_id = latest.listing_id
         ORDER BY r.slug, l.id, f.day",
    )
    .bind(id)
    .fetch_all(&app.pool)
    .await?;
    let mut forecasts: Vec<ListingForecast> = Vec::new();
    for row in rows {
        let currency = row.2.clone();
        let point = ForecastPoint {
            day: row.7,
            predicted: Money::new(row.8, &currency),
            lower: Money::new(row.9, &currency),
            upper: Money::new(row.10, &currency),
        };
        match forecasts.last_mut() {
            Some(f) if f.listing_id == row.0 => f.points.push(point),
            _ => forecasts.push(ListingForecast {
                listing_id: row.0,
                retailer: row.1,
                currency: row.2,
                run_id: row.3,
                model_version: row.4,
                run_at: row.5,
                as_of: row.6,
                points: vec![point],
            }),
        }
    }
    Ok(Json(ProductForecast {
        product_id: id,
        forecasts,
    }))
}

#[cfg(test)]
mod tests {
    use super::search_query;

    #[test]
    fn search_words_become_prefix_terms() {
        assert_eq!(
            search_query("Baked  beans!").as_deref(),
            Some("baked:* & beans:*")
        );
        assert_eq!(search_query("'&|!"), None);
        assert_eq!(search_query("crème").as_deref(), Some("crème:*"));
    }
}
