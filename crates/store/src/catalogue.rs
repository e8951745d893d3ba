//! What the catalogue reads: retailers, products and their search, each
//! listing's latest offer and recommendation, price history from the daily
//! aggregate, and the latest forecasts.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, QueryBuilder};

use crate::error::StoreResult;
use crate::page::Page;

/// A retailer with the number of shelf entries seen there.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RetailerRow {
    pub slug: String,
    pub name: String,
    pub currency: String,
    pub base_url: Option<String>,
    pub listings: i64,
}

/// Every retailer, by slug.
pub async fn retailers(pool: &PgPool) -> StoreResult<Vec<RetailerRow>> {
    Ok(sqlx::query_as(
        "SELECT r.slug, r.name, r.currency, r.base_url,
                (SELECT count(*) FROM listings l WHERE l.retailer_id = r.id) AS listings
         FROM retailers r ORDER BY r.slug",
    )
    .fetch_all(pool)
    .await?)
}

/// The id of the retailer with `slug`, if there is one.
pub async fn retailer_id(pool: &PgPool, slug: &str) -> StoreResult<Option<i64>> {
    Ok(
        sqlx::query_scalar("SELECT id FROM retailers WHERE slug = $1")
            .bind(slug)
            .fetch_optional(pool)
            .await?,
    )
}

/// A canonical product.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProductRow {
    pub id: i64,
    pub name: String,
    pub brand: Option<String>,
    pub category: Option<String>,
    pub pack_count: Option<i32>,
    pub pack_each: Option<i64>,
    pub base_unit: Option<String>,
    pub gtin: Option<String>,
    /// How well it matched a search (higher first); set only by a search.
    #[sqlx(default)]
    pub search_rank: Option<i64>,
}

const PRODUCT_COLUMNS: &str =
    "p.id, p.name, p.brand, p.category, p.pack_count, p.pack_each, p.base_unit, p.gtin";

/// The product with `id`, if there is one.
pub async fn product(pool: &PgPool, id: i64) -> StoreResult<Option<ProductRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {PRODUCT_COLUMNS} FROM products p WHERE p.id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// Free text to search for. A product matches when every word is a
/// prefix of a word of its name or brand (full text), or when every word
/// is spelled like one (pg_trgm word similarity, so "beans" finds
/// "Beanz"). Built by [`SearchTerms::parse`], so it always has a word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchTerms {
    tsquery: String,
    words: Vec<String>,
}

impl SearchTerms {
    /// The terms of `text` (at most 16 words), or None when it has no words.
    pub fn parse(text: &str) -> Option<SearchTerms> {
        let words: Vec<String> = text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .take(16)
            .map(str::to_lowercase)
            .collect();
        let tsquery = words
            .iter()
            .map(|w| format!("{w}:*"))
            .collect::<Vec<_>>()
            .join(" & ");
        (!words.is_empty()).then_some(SearchTerms { tsquery, words })
    }

    /// The `to_tsquery('simple', ...)` text.
    pub fn as_tsquery(&self) -> &str {
        &self.tsquery
    }

    /// The lowercased words, for trigram similarity.
    pub fn words(&self) -> &[String] {
        &self.words
    }
}

/// Where a page of products starts: after the last product of the
/// previous page, in the order the list is sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductCursor {
    /// By name, then id.
    Name(String, i64),
    /// A search: by rank (higher first), then name, then id.
    Ranked(i64, String, i64),
}

/// Which products to list, by name then id.
#[derive(Debug, Clone, Default)]
pub struct ProductFilter {
    /// Words in the name or brand.
    pub search: Option<SearchTerms>,
    /// Exact category, ignoring case.
    pub category: Option<String>,
    /// Only products this retailer sells.
    pub retailer_id: Option<i64>,
    /// Start after this product, the last of the previous page.
    pub after: Option<ProductCursor>,
    /// Page size.
    pub limit: i64,
}

/// A page of products matching `filter`: by name, or for a search best
/// match first. A search's rank is 1000 for a full-text match plus 1000
/// times the mean trigram word similarity of its words, so exact words
/// come before spelling variants, and closer variants before looser ones.
pub async fn products(pool: &PgPool, filter: &ProductFilter) -> StoreResult<Page<ProductRow>> {
    let mut sql: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("SELECT * FROM (SELECT {PRODUCT_COLUMNS}, "));
    match &filter.search {
        Some(terms) => {
            sql.push("(CASE WHEN p.search @@ to_tsquery('simple', ")
                .push_bind(terms.as_tsquery().to_owned())
                .push(") THEN 1000 ELSE 0 END + round(1000 * (SELECT avg(word_similarity(w, p.search_text)) FROM unnest(")
                .push_bind(terms.words().to_vec())
                .push("::text[]) AS w))::bigint) AS search_rank FROM products p WHERE (p.search @@ to_tsquery('simple', ")
                .push_bind(terms.as_tsquery().to_owned())
                .push(")");
            // Every word like a word of the name or brand (`<%` uses the
            // trigram index and pg_trgm.word_similarity_threshold, 0.6 by
            // default: "beans" is 0.67 like "beanz").
            sql.push(" OR (true");
            for w in terms.words() {
                sql.push(" AND ")
                    .push_bind(w.clone())
                    .push(" <% p.search_text");
            }
            sql.push("))");
        }
        None => {
            sql.push("NULL::bigint AS search_rank FROM products p WHERE true");
        }
    }
    sql.push(") p WHERE true");
    if let Some(category) = &filter.category {
        sql.push(" AND lower(p.category) = lower(")
            .push_bind(category.clone())
            .push(")");
    }
    if let Some(rid) = filter.retailer_id {
        sql.push(
            " AND EXISTS (SELECT 1 FROM listings l WHERE l.product_id = p.id AND l.retailer_id = ",
        )
        .push_bind(rid)
        .push(")");
    }
    match &filter.after {
        None => {}
        Some(ProductCursor::Name(name, id)) => {
            sql.push(" AND (p.name, p.id) > (")
                .push_bind(name.clone())
                .push(", ")
                .push_bind(*id)
                .push(")");
        }
        Some(ProductCursor::Ranked(rank, name, id)) => {
            sql.push(" AND (p.search_rank < ")
                .push_bind(*rank)
                .push(" OR (p.search_rank = ")
                .push_bind(*rank)
                .push(" AND (p.name, p.id) > (")
                .push_bind(name.clone())
                .push(", ")
                .push_bind(*id)
                .push(")))");
        }
    }
    if filter.search.is_some() {
        sql.push(" ORDER BY p.search_rank DESC, p.name, p.id LIMIT ");
    } else {
        sql.push(" ORDER BY p.name, p.id LIMIT ");
    }
    sql.push_bind(filter.limit + 1);
    let rows = sql.build_query_as().fetch_all(pool).await?;
    Ok(Page::from_overfetch(rows, filter.limit))
}

/// One listing of a product with its latest observation
/// ([`crate::product_page`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OfferRow {
    pub listing_id: i64,
    pub retailer: String,
    pub currency: String,
    pub title: String,
    pub url: Option<String>,
    pub observed_at: DateTime<Utc>,
    pub price_pence: i64,
    pub was_price_pence: Option<i64>,
    pub effective_price_pence: i64,
    pub unit_price_pence: Option<i64>,
    pub unit_price_per: Option<String>,
    pub promo_kind: String,
    pub promo_text: Option<String>,
    pub in_stock: bool,
}

/// A listing's latest recommendation from a succeeded run
/// ([`crate::product_page`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ListingRecommendationRow {
    pub listing_id: i64,
    pub run_id: i64,
    pub as_of: DateTime<Utc>,
    pub action: String,
    pub confidence: f64,
    pub expected_change_pence: i64,
    pub message: String,
}

/// The width of a price-history bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Day,
    /// Weeks start on Monday.
    Week,
}

impl Bucket {
    fn interval(self) -> &'static str {
        match self {
            Bucket::Day => "1 day",
            Bucket::Week => "7 days",
        }
    }
}

/// Which price history to read.
#[derive(Debug, Clone)]
pub struct PriceHistoryFilter {
    pub product_id: i64,
    pub bucket: Bucket,
    /// Inclusive.
    pub from: DateTime<Utc>,
    /// Exclusive.
    pub to: DateTime<Utc>,
    /// Only this retailer's listings.
    pub retailer_id: Option<i64>,
}

/// One bucket of one listing's daily aggregates.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PriceBucketRow {
    pub listing_id: i64,
    pub retailer: String,
    pub currency: String,
    pub bucket: DateTime<Utc>,
    pub open_pence: i64,
    pub close_pence: i64,
    pub min_pence: i64,
    pub max_pence: i64,
    pub mean_pence: f64,
    pub min_effective_pence: i64,
    pub any_promo: bool,
    pub observations: i64,
}

/// A product's price history per listing and bucket, by retailer, listing
/// and time.
pub async fn price_history(
    pool: &PgPool,
    filter: &PriceHistoryFilter,
) -> StoreResult<Vec<PriceBucketRow>> {
    Ok(sqlx::query_as(
        "SELECT l.id AS listing_id, r.slug AS retailer, r.currency,
                time_bucket($2::interval, d.day) AS bucket,
                (array_agg(d.open_pence ORDER BY d.day))[1] AS open_pence,
                (array_agg(d.close_pence ORDER BY d.day DESC))[1] AS close_pence,
                min(d.min_pence)::bigint AS min_pence, max(d.max_pence)::bigint AS max_pence,
                (sum(d.sum_pence)::float8 / sum(d.observations)::float8) AS mean_pence,
                min(d.min_effective_pence)::bigint AS min_effective_pence,
                bool_or(d.any_promo) AS any_promo,
                sum(d.observations)::bigint AS observations
         FROM listings l
         JOIN retailers r ON r.id = l.retailer_id
         JOIN price_daily d ON d.listing_id = l.id
         WHERE l.product_id = $1 AND d.day >= $3 AND d.day < $4
           AND ($5::bigint IS NULL OR l.retailer_id = $5)
         GROUP BY l.id, r.slug, r.currency, bucket
         ORDER BY r.slug, l.id, bucket",
    )
    .bind(filter.product_id)
    .bind(filter.bucket.interval())
    .bind(filter.from)
    .bind(filter.to)
    .bind(filter.retailer_id)
    .fetch_all(pool)
    .await?)
}

/// One day of a listing's latest forecast, with its run.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ForecastPointRow {
    pub listing_id: i64,
    pub retailer: String,
    pub currency: String,
    pub run_id: i64,
    pub model_version: String,
    pub finished_at: Option<DateTime<Utc>>,
    pub as_of: Option<DateTime<Utc>>,
    pub day: DateTime<Utc>,
    pub predicted_pence: i64,
    pub lower_pence: i64,
    pub upper_pence: i64,
}

/// The latest succeeded forecast of each of a product's listings, by
/// retailer, listing and day.
pub async fn latest_forecasts(
    pool: &PgPool,
    product_id: i64,
) -> StoreResult<Vec<ForecastPointRow>> {
    Ok(sqlx::query_as(
        "WITH latest AS (
             SELECT DISTINCT ON (f.listing_id) f.listing_id, f.run_id
             FROM listings l
             JOIN forecasts f ON f.listing_id = l.id
             JOIN forecast_runs fr ON fr.id = f.run_id AND fr.status = 'succeeded'
             WHERE l.product_id = $1
             ORDER BY f.listing_id, f.run_id DESC)
         SELECT l.id AS listing_id, r.slug AS retailer, r.currency, fr.id AS run_id,
                fr.model_version, fr.finished_at, fr.as_of,
                f.day, f.predicted_pence, f.lower_pence, f.upper_pence
         FROM latest
         JOIN listings l ON l.id = latest.listing_id
         JOIN retailers r ON r.id = l.retailer_id
         JOIN forecast_runs fr ON fr.id = latest.run_id
         JOIN forecasts f ON f.run_id = latest.run_id AND f.listing_id = latest.listing_id
         ORDER BY r.slug, l.id, f.day",
    )
    .bind(product_id)
    .fetch_all(pool)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::SearchTerms;

    #[test]
    fn search_words_become_prefix_terms() {
        let terms = |q: &str| SearchTerms::parse(q).map(|t| t.as_tsquery().to_owned());
        assert_eq!(terms("Baked  beans!").as_deref(), Some("baked:* & beans:*"));
        assert_eq!(
            SearchTerms::parse("Baked  BEANS!").unwrap().words(),
            ["baked", "beans"]
        );
        assert_eq!(terms("'&|!"), None);
        assert_eq!(terms("crème").as_deref(), Some("crème:*"));
    }
}
