//! Availability seen without a price: a tile shown out of stock that shows
//! no price is kept as a sighting, so availability history is not lost.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// One tile seen out of stock with no price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockSighting {
    pub retailer: String,
    pub sku: String,
    pub title: String,
    pub url: Option<String>,
    pub observed_at: DateTime<Utc>,
}

/// Records the sightings: each listing is created when new (its title and
/// URL kept otherwise), and its sighting stored once per time. Returns how
/// many sightings were new.
pub async fn record_out_of_stock(
    pool: &PgPool,
    sightings: &[StockSighting],
) -> anyhow::Result<u64> {
    let mut tx = pool.begin().await?;
    let mut inserted = 0;
    for s in sightings {
        let listing: i64 = sqlx::query_scalar(
            "INSERT INTO listings (retailer_id, retailer_sku, title, url, first_seen, last_seen) \
             SELECT r.id, $2, $3, $4, $5, $5 FROM retailers r WHERE r.slug = $1 \
             ON CONFLICT (retailer_id, retailer_sku) DO UPDATE \
             SET last_seen = GREATEST(listings.last_seen, EXCLUDED.last_seen) \
             RETURNING id",
        )
        .bind(&s.retailer)
        .bind(&s.sku)
        .bind(&s.title)
        .bind(&s.url)
        .bind(s.observed_at)
        .fetch_one(&mut *tx)
        .await?;
        inserted += sqlx::query(
            "INSERT INTO stock_sightings (listing_id, observed_at, in_stock) VALUES ($1, $2, false) \
             ON CONFLICT DO NOTHING",
        )
        .bind(listing)
        .bind(s.observed_at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    tx.commit().await?;
    Ok(inserted)
}
