//! Everything `/v1/products/{id}` shows, in one round trip: the product,
//! each listing's latest observation, and each listing's latest
//! recommendation from a succeeded run.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::catalogue::{ListingRecommendationRow, OfferRow, ProductRow};
use crate::error::StoreResult;

/// A product with its offers, each with its latest recommendation if it
/// has one. Offers come in no particular order.
#[derive(Debug, Clone)]
pub struct ProductPage {
    pub product: ProductRow,
    pub offers: Vec<(OfferRow, Option<ListingRecommendationRow>)>,
}

/// One row of the query: the product, and one offer with its
/// recommendation (all null for a product with no listing).
#[derive(sqlx::FromRow)]
struct Row {
    #[sqlx(flatten)]
    product: ProductRow,
    listing_id: Option<i64>,
    retailer: Option<String>,
    currency: Option<String>,
    title: Option<String>,
    url: Option<String>,
    observed_at: Option<DateTime<Utc>>,
    price_pence: Option<i64>,
    was_price_pence: Option<i64>,
    effective_price_pence: Option<i64>,
    unit_price_pence: Option<i64>,
    unit_price_per: Option<String>,
    promo_kind: Option<String>,
    promo_text: Option<String>,
    in_stock: Option<bool>,
    rec_run_id: Option<i64>,
    rec_as_of: Option<DateTime<Utc>>,
    rec_action: Option<String>,
    rec_confidence: Option<f64>,
    rec_expected_change_pence: Option<i64>,
    rec_message: Option<String>,
}

impl Row {
    fn offer(&mut self) -> Option<(OfferRow, Option<ListingRecommendationRow>)> {
        let listing_id = self.listing_id?;
        let offer = OfferRow {
            listing_id,
            retailer: self.retailer.take()?,
            currency: self.currency.take()?,
            title: self.title.take()?,
            url: self.url.take(),
            observed_at: self.observed_at?,
            price_pence: self.price_pence?,
            was_price_pence: self.was_price_pence,
            effective_price_pence: self.effective_price_pence?,
            unit_price_pence: self.unit_price_pence,
            unit_price_per: self.unit_price_per.take(),
            promo_kind: self.promo_kind.take()?,
            promo_text: self.promo_text.take(),
            in_stock: self.in_stock?,
        };
        let recommendation = (|| {
            Some(ListingRecommendationRow {
                listing_id,
                run_id: self.rec_run_id?,
                as_of: self.rec_as_of?,
                action: self.rec_action.take()?,
                confidence: self.rec_confidence?,
                expected_change_pence: self.rec_expected_change_pence?,
                message: self.rec_message.take()?,
            })
        })();
        Some((offer, recommendation))
    }
}

/// The one statement; `benches/anchor/app.py` runs the same text (a test
/// checks), so the benchmark's anchor does the same database work.
const PAGE_SQL: &str =
    "SELECT p.id, p.name, p.brand, p.category, p.pack_count, p.pack_each, p.base_unit,
                p.gtin,
                o.listing_id, o.retailer, o.currency, o.title, o.url, o.observed_at,
                o.price_pence, o.was_price_pence, o.effective_price_pence, o.unit_price_pence,
                o.unit_price_per, o.promo_kind, o.promo_text, o.in_stock,
                rc.run_id AS rec_run_id, rc.as_of AS rec_as_of, rc.action AS rec_action,
                rc.confidence AS rec_confidence,
                rc.expected_change_pence AS rec_expected_change_pence,
                rc.message AS rec_message
         FROM products p
         LEFT JOIN LATERAL (
             SELECT l.id AS listing_id, r.slug AS retailer, r.currency, l.title, l.url,
                    ob.observed_at, ob.price_pence, ob.was_price_pence,
                    ob.effective_price_pence, ob.unit_price_pence, ob.unit_price_per,
                    ob.promo_kind, ob.promo_text, ob.in_stock
             FROM listings l
             JOIN retailers r ON r.id = l.retailer_id
             CROSS JOIN LATERAL (
                 SELECT * FROM price_observations ob
                 WHERE ob.listing_id = l.id ORDER BY ob.observed_at DESC LIMIT 1
             ) ob
             WHERE l.product_id = p.id
         ) o ON true
         LEFT JOIN LATERAL (
             SELECT rc.run_id, rc.as_of, rc.action, rc.confidence, rc.expected_change_pence,
                    rc.message
             FROM recommendations rc
             JOIN forecast_runs fr ON fr.id = rc.run_id AND fr.status = 'succeeded'
             WHERE rc.listing_id = o.listing_id
             ORDER BY rc.run_id DESC LIMIT 1
         ) rc ON true
         WHERE p.id = $1";

/// The page of product `id`, if there is such a product.
pub async fn product_page(pool: &PgPool, id: i64) -> StoreResult<Option<ProductPage>> {
    let rows: Vec<Row> = sqlx::query_as(PAGE_SQL).bind(id).fetch_all(pool).await?;
    let mut rows = rows.into_iter();
    let Some(mut first) = rows.next() else {
        return Ok(None);
    };
    let mut offers: Vec<_> = first.offer().into_iter().collect();
    offers.extend(rows.filter_map(|mut r| r.offer()));
    Ok(Some(ProductPage {
        product: first.product,
        offers,
    }))
}

#[cfg(test)]
mod tests {
    use super::PAGE_SQL;

    fn words(sql: &str) -> Vec<&str> {
        sql.split_whitespace().collect()
    }

    #[test]
    fn the_benchmark_anchor_runs_the_same_statement() {
        let app = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benches/anchor/app.py"),
        )
        .unwrap();
        let start = app.find("PAGE = \"\"\"").unwrap() + "PAGE = \"\"\"".len();
        let len = app[start..].find("\"\"\"").unwrap();
        let anchor = app[start..start + len].replace("%s", "$1");
        assert_eq!(words(&anchor), words(PAGE_SQL));
    }
}
