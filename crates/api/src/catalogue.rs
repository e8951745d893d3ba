//! Retailers and products: search, one product across retailers, its
//! price history and its forecast.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use shelfwatch_domain::action::Action;
use shelfwatch_domain::effective::{EffectivePrice, effective_price};
use shelfwatch_store::PgPool;
use shelfwatch_store::catalogue::{
    self as store, Bucket, OfferRow, PriceHistoryFilter, ProductCursor, ProductFilter, ProductRow,
    SearchTerms,
};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Path, Query};
use super::model::{self, Money, UnitPrice, rfc3339, rfc3339_opt};
use super::{App, AppState};

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
    let rows = store::retailers(&app.pool).await?;
    Ok(Json(RetailerList {
        data: rows
            .into_iter()
            .map(|r| Retailer {
                slug: r.slug,
                name: r.name,
                currency: r.currency,
                base_url: r.base_url,
                listings: r.listings,
            })
            .collect(),
    }))
}

/// The id of the retailer with `slug`: a slug of the wrong shape is a
/// 400, a well-formed one no retailer has a 404 (as an unknown id).
pub async fn retailer_id(app: &App, slug: &str) -> ApiResult<i64> {
    let slug = model::retailer_slug(slug)?;
    app.retailer_ids
        .get(&app.pool, slug.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("unknown retailer {:?}", slug.as_str())))
}

/// The id of the retailer a query names, if it names one.
pub async fn retailer_filter(app: &App, slug: Option<&str>) -> ApiResult<Option<i64>> {
    match slug {
        Some(slug) => Ok(Some(retailer_id(app, slug).await?)),
        None => Ok(None),
    }
}

/// A canonical product: what a shopper means, whichever retailer sells it.
#[derive(Debug, Serialize, ToSchema)]
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

impl From<ProductRow> for Product {
    fn from(r: ProductRow) -> Self {
        Product {
            id: r.id,
            name: r.name,
            brand: r.brand,
            category: r.category,
            pack_count: r.pack_count,
            pack_each: r.pack_each,
            base_unit: r.base_unit,
            gtin: r.gtin,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProductQuery {
    /// Words to find in the name or brand: each word matches as a prefix or
    /// by spelling ("beans" finds "Beanz"); results come best match first.
    /// At least one letter or digit.
    #[param(max_length = 200, pattern = r"^[^\u0000]*[^\W_][^\u0000]*$")]
    pub q: Option<String>,
    /// Exact category (case-insensitive).
    #[param(max_length = 200, pattern = r"^[^\u0000]*$")]
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

/// Search products by name and brand (word prefixes and spelling
/// variants), by category and by retailer; sorted by name, or best match
/// first when searching.
#[utoipa::path(
    get, path = "/v1/products", tag = "catalogue",
    params(ProductQuery),
    responses((status = 200, description = "A page of products, by name (best match first with `q`)", body = ProductPage)),
    security((), ("api_key" = []), ("bearer" = []))
)]
pub async fn list_products(
    State(app): State<AppState>,
    caller: Caller,
    Query(query): Query<ProductQuery>,
) -> ApiResult<Json<ProductPage>> {
    caller.require_read(&app)?;
    let limit = model::limit(query.limit, 20, 100)?;
    let search = match &query.q {
        Some(q) if q.chars().count() > 200 => {
            return Err(ApiError::bad_request("q is longer than 200 characters"));
        }
        Some(q) => Some(
            SearchTerms::parse(q)
                .ok_or_else(|| ApiError::bad_request("q has no words to search for"))?,
        ),
        None => None,
    };
    // A search pages by rank, a list by name: each has its own cursor.
    let after = match (query.cursor.as_deref(), &search) {
        (None, _) => None,
        (Some(c), Some(_)) => {
            let (rank, name, id): (i64, String, i64) = model::decode_cursor(c)?;
            Some(ProductCursor::Ranked(rank, name, id))
        }
        (Some(c), None) => {
            let (name, id): (String, i64) = model::decode_cursor(c)?;
            Some(ProductCursor::Name(name, id))
        }
    };
    model::check_category(query.category.as_deref())?;
    let retailer_id = retailer_filter(&app, query.retailer.as_deref()).await?;
    let filter = ProductFilter {
        search,
        category: query.category,
        retailer_id,
        after,
        limit,
    };
    let page = store::products(&app.pool, &filter).await?;
    let next_cursor = page.last_if_more().map(|p| match p.search_rank {
        Some(rank) => model::encode_cursor(&(rank, &p.name, p.id)),
        None => model::encode_cursor(&(&p.name, p.id)),
    });
    Ok(Json(ProductPage {
        data: page.items.into_iter().map(Product::from).collect(),
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
    /// What one item costs after a multibuy (per item) or loyalty price:
    /// the price recommendations and watches count. The shelf price when
    /// the offer is none of those.
    pub effective_price: Money,
    /// What the effective price takes ("when you buy 2", "with a
    /// Clubcard"), when it is below the shelf price.
    pub condition: Option<String>,
    /// Price per kg, litre or item.
    pub unit_price: Option<UnitPrice>,
    /// `none`, `multibuy`, `loyalty`, `price_cut` or `clearance`.
    pub promo_kind: String,
    pub promo_text: Option<String>,
    pub in_stock: bool,
    /// Cheapest in-stock offer (by effective price) in its currency.
    pub cheapest_now: bool,
    /// The latest recommendation for this listing; never `buy_now` while
    /// the offer is out of stock.
    pub recommendation: Option<OfferRecommendation>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
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

/// The cheapest in-stock offer in one currency, by effective price.
#[derive(Debug, Serialize, ToSchema)]
pub struct Cheapest {
    pub listing_id: i64,
    pub retailer: String,
    pub effective_price: Money,
    /// The product's recommendation in this currency: this offer's.
    pub recommendation: Option<OfferRecommendation>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductDetail {
    #[serde(flatten)]
    pub product: Product,
    /// Offers, cheapest first within each currency.
    pub offers: Vec<Offer>,
    /// The cheapest in-stock offer now, one per currency, with the
    /// product's recommendation there.
    pub cheapest: Vec<Cheapest>,
}

async fn product(pool: &PgPool, id: i64) -> ApiResult<Product> {
    store::product(pool, id)
        .await?
        .map(Product::from)
        .ok_or_else(|| ApiError::not_found(format!("no product {id}")))
}

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
    // One round trip: the product, its offers and their recommendations.
    let page = shelfwatch_store::product_page::product_page(&app.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no product {id}")))?;
    let product = Product::from(page.product);
    let mut rows: Vec<(OfferRow, EffectivePrice, _)> = page
        .offers
        .into_iter()
        .map(|(r, rec)| {
            let e = effective_price(
                r.price_pence,
                r.promo_text.as_deref(),
                r.effective_price_pence,
            );
            (r, e, rec)
        })
        .collect();
    // By currency, in stock first, cheapest by the price that counts first.
    rows.sort_by(|(a, ea, _), (b, eb, _)| {
        (
            &a.currency,
            !a.in_stock,
            ea.pence,
            &a.retailer,
            a.listing_id,
        )
            .cmp(&(
                &b.currency,
                !b.in_stock,
                eb.pence,
                &b.retailer,
                b.listing_id,
            ))
    });
    let mut offers = Vec::with_capacity(rows.len());
    let mut cheapest: Vec<Cheapest> = Vec::new();
    for (row, effective, recommendation) in rows {
        let currency = row.currency;
        let recommendation = recommendation
            // A buy from a run before the offer went out of stock is no buy now.
            .filter(|r| row.in_stock || r.action != Action::BuyNow.as_str())
            .map(|r| OfferRecommendation {
                run_id: r.run_id,
                as_of: r.as_of,
                action: r.action,
                confidence: r.confidence,
                expected_change: Money::new(r.expected_change_pence, &currency),
                message: r.message,
            });
        // Rows come cheapest in-stock first within each currency.
        let cheapest_now = row.in_stock
            && !cheapest
                .iter()
                .any(|c| c.effective_price.currency == currency);
        if cheapest_now {
            cheapest.push(Cheapest {
                listing_id: row.listing_id,
                retailer: row.retailer.clone(),
                effective_price: Money::new(effective.pence, &currency),
                recommendation: recommendation.clone(),
            });
        }
        offers.push(Offer {
            listing_id: row.listing_id,
            retailer: row.retailer,
            title: row.title,
            url: row.url,
            observed_at: row.observed_at,
            price: Money::new(row.price_pence, &currency),
            was_price: row.was_price_pence.map(|w| Money::new(w, &currency)),
            effective_price: Money::new(effective.pence, &currency),
            condition: effective.condition.map(|c| c.to_string()),
            unit_price: row
                .unit_price_pence
                .zip(row.unit_price_per)
                .map(|(p, per)| UnitPrice {
                    price: Money::new(p, &currency),
                    per,
                }),
            promo_kind: row.promo_kind,
            promo_text: row.promo_text,
            in_stock: row.in_stock,
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
    /// Start (inclusive): an RFC 3339 time (a `YYYY-MM-DD` date is read as
    /// its midnight UTC). Default: 90 days before `to`. At most ten years
    /// before `to` (an earlier one is raised); a range ending before it
    /// starts holds no prices. Times before 1970 or after 9999 are moved to
    /// those ends. The answer's `from` and `to` are the range it covers.
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// End (exclusive): an RFC 3339 time or date. Default: now.
    #[param(format = DateTime)]
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

/// Most days of history one request covers (ten years).
const MAX_HISTORY_DAYS: i64 = 3660;

/// The header row of the CSV price history.
pub const PRICES_CSV_HEADER: &str = "listing_id,retailer,currency,start,open_pence,close_pence,\
min_pence,max_pence,mean_pence,min_effective_pence,any_promo,observations";

/// Daily or weekly price history of a product at each retailer, from the
/// daily aggregates, as JSON or CSV.
///
/// With `Accept: text/csv` the same points come as CSV for spreadsheets: a
/// header row, then one row per listing and bucket, prices in whole minor
/// units (pence), times RFC 3339 in UTC.
#[utoipa::path(
    get, path = "/v1/products/{id}/prices", tag = "catalogue",
    params(("id" = i64, Path, description = "Product id"), PriceQuery),
    responses(
        (status = 200, description = "Price history per listing: JSON, or CSV when the request's `Accept` prefers `text/csv`",
            content(
                (PriceHistory = "application/json"),
                (String = "text/csv", example = json!("listing_id,retailer,currency,start,open_pence,close_pence,min_pence,max_pence,mean_pence,min_effective_pence,any_promo,observations\n12,tesco,GBP,2026-09-01T00:00:00Z,140,125,125,140,133,110,true,2\n")),
            ),
            headers(("Vary" = String, description = "`Accept`: the representation depends on it")),
        ),
        (status = 404, description = "No such product", body = super::error::Problem, content_type = "application/problem+json"),
    ),
    security((), ("api_key" = []), ("bearer" = []))
)]
pub async fn product_prices(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(query): Query<PriceQuery>,
) -> ApiResult<Response> {
    caller.require_read(&app)?;
    let to = match &query.to {
        Some(t) => model::parse_time("to", t)?,
        None => Utc::now(),
    };
    let from = match &query.from {
        Some(t) => model::parse_time("from", t)?,
        None => to - Duration::days(90),
    };
    // At most ten years per request: an earlier `from` is raised to ten
    // years before `to` (the answer's `from` says which range it covers).
    let from = from.max(to - Duration::days(MAX_HISTORY_DAYS));
    let interval = query.interval.unwrap_or_default();
    let retailer = retailer_filter(&app, query.retailer.as_deref()).await?;
    product(&app.pool, id).await?;
    let filter = PriceHistoryFilter {
        product_id: id,
        bucket: match interval {
            Interval::Day => Bucket::Day,
            Interval::Week => Bucket::Week,
        },
        from,
        to,
        retailer_id: retailer,
    };
    // A range that ends before it starts holds no prices.
    let rows = if from < to {
        store::price_history(&app.pool, &filter).await?
    } else {
        Vec::new()
    };
    let vary = [(header::VARY, HeaderValue::from_static("accept"))];
    if model::wants_csv(&headers) {
        let content_type = HeaderValue::from_static("text/csv; charset=utf-8");
        let body = prices_csv(&rows);
        return Ok((vary, [(header::CONTENT_TYPE, content_type)], body).into_response());
    }
    let mut series: Vec<PriceSeries> = Vec::new();
    for row in rows {
        let currency = row.currency;
        let m = |v: i64| Money::new(v, &currency);
        let point = PricePoint {
            start: row.bucket,
            open: m(row.open_pence),
            close: m(row.close_pence),
            min: m(row.min_pence),
            max: m(row.max_pence),
            mean: m(row.mean_pence.round() as i64),
            min_effective: m(row.min_effective_pence),
            any_promo: row.any_promo,
            observations: row.observations,
        };
        match series.last_mut() {
            Some(s) if s.listing_id == row.listing_id => s.points.push(point),
            _ => series.push(PriceSeries {
                listing_id: row.listing_id,
                retailer: row.retailer,
                currency,
                points: vec![point],
            }),
        }
    }
    let history = PriceHistory {
        product_id: id,
        interval,
        from,
        to,
        series,
    };
    Ok((vary, Json(history)).into_response())
}

/// The price history as CSV. Every field is a number, a boolean, a
/// retailer slug (`a-z`, `0-9`, `-`), a currency code or a time, so none
/// needs quoting.
fn prices_csv(rows: &[store::PriceBucketRow]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(64 * (rows.len() + 1));
    out.push_str(PRICES_CSV_HEADER);
    out.push('\n');
    for r in rows {
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            r.listing_id,
            r.retailer,
            r.currency,
            r.bucket
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            r.open_pence,
            r.close_pence,
            r.min_pence,
            r.max_pence,
            r.mean_pence.round() as i64,
            r.min_effective_pence,
            r.any_promo,
            r.observations
        );
    }
    out
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
    let rows = store::latest_forecasts(&app.pool, id).await?;
    let mut forecasts: Vec<ListingForecast> = Vec::new();
    for row in rows {
        let currency = row.currency;
        let point = ForecastPoint {
            day: row.day,
            predicted: Money::new(row.predicted_pence, &currency),
            lower: Money::new(row.lower_pence, &currency),
            upper: Money::new(row.upper_pence, &currency),
        };
        match forecasts.last_mut() {
            Some(f) if f.listing_id == row.listing_id => f.points.push(point),
            _ => forecasts.push(ListingForecast {
                listing_id: row.listing_id,
                retailer: row.retailer,
                currency,
                run_id: row.run_id,
                model_version: row.model_version,
                run_at: row.finished_at,
                as_of: row.as_of,
                points: vec![point],
            }),
        }
    }
    Ok(Json(ProductForecast {
        product_id: id,
        forecasts,
    }))
}
