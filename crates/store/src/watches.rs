//! Price watches and their webhook deliveries.
//!
//! - the owner's side: create, list, read and delete watches;
//! - evaluation: an [`Evaluation`] holds the one transaction (and the
//!   advisory lock) in which watches are compared with current prices and
//!   recommendations and deliveries are queued;
//! - delivery: [`lease_due`] takes due deliveries with `FOR UPDATE SKIP
//!   LOCKED`, and [`record_attempt`] records how each attempt went.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};

use shelfwatch_domain::effective::{EffectivePrice, effective_price};

use crate::error::StoreResult;
use crate::page::Page;

/// A watch as its owner sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WatchRow {
    pub id: i64,
    pub product_id: i64,
    pub target_price_pence: Option<i64>,
    pub drop_percent: Option<i32>,
    pub baseline_pence: Option<i64>,
    pub currency: String,
    pub webhook_url: String,
    pub created_at: DateTime<Utc>,
}

const WATCH_COLUMNS: &str = "id, product_id, target_price_pence, drop_percent, baseline_pence, \
                             currency, webhook_url, created_at";

/// A watch to make.
#[derive(Debug, Clone)]
pub struct NewWatch<'a> {
    pub owner: &'a str,
    pub product_id: i64,
    pub target_price_pence: Option<i64>,
    pub drop_percent: Option<i32>,
    /// The cheapest offer now ([`cheapest_now`]), from which a drop is measured.
    pub baseline_pence: Option<i64>,
    pub currency: &'a str,
    pub webhook_url: &'a str,
    /// Key of the webhook signature.
    pub secret: &'a str,
}

/// Whether the product exists.
pub async fn product_exists(pool: &PgPool, product_id: i64) -> StoreResult<bool> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM products WHERE id = $1)")
            .bind(product_id)
            .fetch_one(pool)
            .await?,
    )
}

/// A listing's latest observation, as watches read an offer.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OfferNow {
    pub listing_id: i64,
    pub retailer: String,
    pub observed_at: DateTime<Utc>,
    /// The shelf price.
    pub price_pence: i64,
    pub promo_text: Option<String>,
    /// The price after the promotion as stored at ingest; read through
    /// [`OfferNow::effective`].
    pub effective_price_pence: i64,
}

impl OfferNow {
    /// The price that counts, as recommendations count it.
    pub fn effective(&self) -> EffectivePrice {
        effective_price(
            self.price_pence,
            self.promo_text.as_deref(),
            self.effective_price_pence,
        )
    }
}

/// The cheapest of `offers` by the price that counts (ties: the lowest
/// listing id), with that price.
pub fn cheapest(offers: &[OfferNow]) -> Option<(&OfferNow, EffectivePrice)> {
    offers
        .iter()
        .map(|o| (o, o.effective()))
        .min_by_key(|(o, e)| (e.pence, o.listing_id))
}

/// The latest observation of each listing of a product, in stock, at
/// retailers of a currency (SQL with `$1` the product and `$2` the currency).
const OFFERS_NOW_SQL: &str = "SELECT l.id AS listing_id, r.slug AS retailer, o.observed_at,
            o.price_pence, o.promo_text, o.effective_price_pence
     FROM listings l
     JOIN retailers r ON r.id = l.retailer_id AND r.currency = $2
     CROSS JOIN LATERAL (
         SELECT observed_at, price_pence, promo_text, effective_price_pence, in_stock
         FROM price_observations o
         WHERE o.listing_id = l.id ORDER BY o.observed_at DESC LIMIT 1) o
     WHERE l.product_id = $1 AND o.in_stock";

/// The cheapest current in-stock offer of a product in a currency, by the
/// price that counts ([`cheapest`]).
pub async fn cheapest_now(
    pool: &PgPool,
    product_id: i64,
    currency: &str,
) -> StoreResult<Option<i64>> {
    let offers: Vec<OfferNow> = sqlx::query_as(OFFERS_NOW_SQL)
        .bind(product_id)
        .bind(currency)
        .fetch_all(pool)
        .await?;
    Ok(cheapest(&offers).map(|(_, e)| e.pence))
}

/// Stores a new watch unless its owner already has `max_live` live
/// watches (0: no limit), which is `Ok(None)`. The count and the insert
/// are one transaction under a lock per owner, so concurrent requests
/// cannot pass the limit together. A product that does not exist (deleted
/// meanwhile) is [`StoreError::ForeignKey`](crate::error::StoreError::ForeignKey).
pub async fn create(
    pool: &PgPool,
    watch: &NewWatch<'_>,
    max_live: i64,
) -> StoreResult<Option<WatchRow>> {
    let mut tx = pool.begin().await?;
    if max_live > 0 {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('watches:' || $1, 0))")
            .bind(watch.owner)
            .execute(&mut *tx)
            .await?;
        let live: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM watches WHERE owner = $1 AND deleted_at IS NULL",
        )
        .bind(watch.owner)
        .fetch_one(&mut *tx)
        .await?;
        if live >= max_live {
            return Ok(None);
        }
    }
    let row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO watches (owner, product_id, target_price_pence, drop_percent, baseline_pence,
                              currency, webhook_url, secret)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {WATCH_COLUMNS}"
    )))
    .bind(watch.owner)
    .bind(watch.product_id)
    .bind(watch.target_price_pence)
    .bind(watch.drop_percent)
    .bind(watch.baseline_pence)
    .bind(watch.currency)
    .bind(watch.webhook_url)
    .bind(watch.secret)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(row))
}

/// A page of `owner`'s live watches with ids above `after`, oldest first.
pub async fn page(
    pool: &PgPool,
    owner: &str,
    after: i64,
    limit: i64,
) -> StoreResult<Page<WatchRow>> {
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {WATCH_COLUMNS} FROM watches
         WHERE owner = $1 AND deleted_at IS NULL AND id > $2 ORDER BY id LIMIT $3"
    )))
    .bind(owner)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    Ok(Page::from_overfetch(rows, limit))
}

/// `owner`'s live watch `id`, if there is one (another owner's is none).
pub async fn owned(pool: &PgPool, owner: &str, id: i64) -> StoreResult<Option<WatchRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {WATCH_COLUMNS} FROM watches WHERE id = $1 AND owner = $2 AND deleted_at IS NULL"
    )))
    .bind(id)
    .bind(owner)
    .fetch_optional(pool)
    .await?)
}

/// Deletes watch `id` (softly) and gives up its pending deliveries, in one
/// transaction.
pub async fn delete(pool: &PgPool, id: i64) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE watches SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE webhook_deliveries SET status = 'failed', last_error = 'watch deleted'
         WHERE watch_id = $1 AND status = 'pending'",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

// ---- evaluation -----------------------------------------------------------

/// What a live watch asks for, as evaluation reads it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WatchTerms {
    pub watch_id: i64,
    pub product_id: i64,
    pub product_name: String,
    pub target_price_pence: Option<i64>,
    pub drop_percent: Option<i32>,
    pub baseline_pence: Option<i64>,
    pub currency: String,
}

/// A live watch with the current in-stock offers of its product in its
/// currency (none when there are none).
#[derive(Debug, Clone)]
pub struct PriceState {
    pub watch: WatchTerms,
    /// The price last notified; None while the watch is armed (it has not
    /// fired since the price was last above its threshold).
    pub notified_pence: Option<i64>,
    pub offers: Vec<OfferNow>,
}

/// One row of [`Evaluation::price_states`]: a watch and one of its offers.
#[derive(sqlx::FromRow)]
struct PriceStateRow {
    #[sqlx(flatten)]
    watch: WatchTerms,
    notified_pence: Option<i64>,
    listing_id: Option<i64>,
    retailer: Option<String>,
    observed_at: Option<DateTime<Utc>>,
    price_pence: Option<i64>,
    promo_text: Option<String>,
    effective_price_pence: Option<i64>,
}

/// A current `wait` recommendation for a listing of a watched product.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WaitState {
    #[sqlx(flatten)]
    pub watch: WatchTerms,
    pub listing_id: i64,
    pub retailer: String,
    pub run_id: i64,
    /// The price the recommendation counts (after any offer).
    pub current_pence: i64,
    pub expected_change_pence: i64,
    pub confidence: f64,
    pub message: String,
    /// The price last notified; None while the watch is armed.
    pub notified_pence: Option<i64>,
    /// The listing's latest shelf price and promotion text.
    pub shelf_pence: Option<i64>,
    pub promo_text: Option<String>,
}

/// One evaluation of every watch: a transaction holding the evaluation
/// lock, so two processes never notify the same event twice. Nothing is
/// kept unless [`commit`](Evaluation::commit) is called.
pub struct Evaluation {
    tx: Transaction<'static, Postgres>,
}

impl Evaluation {
    /// Starts an evaluation, waiting for any other to finish.
    pub async fn begin(pool: &PgPool) -> StoreResult<Evaluation> {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('shelfwatch_evaluate_watches'))")
            .execute(&mut *tx)
            .await?;
        Ok(Evaluation { tx })
    }

    /// Every live watch with its product's in-stock offers now, by watch;
    /// the watches stay locked until the end.
    pub async fn price_states(&mut self) -> StoreResult<Vec<PriceState>> {
        let rows: Vec<PriceStateRow> = sqlx::query_as(
            "SELECT w.id AS watch_id, w.product_id, p.name AS product_name, w.target_price_pence,
                    w.drop_percent, w.baseline_pence, w.notified_pence, w.currency,
                    c.listing_id, c.retailer, c.observed_at, c.price_pence, c.promo_text,
                    c.effective_price_pence
             FROM watches w
             JOIN products p ON p.id = w.product_id
             LEFT JOIN LATERAL (
                 SELECT l.id AS listing_id, r.slug AS retailer, o.observed_at, o.price_pence,
                        o.promo_text, o.effective_price_pence
                 FROM listings l
                 JOIN retailers r ON r.id = l.retailer_id AND r.currency = w.currency
                 CROSS JOIN LATERAL (
                     SELECT observed_at, price_pence, promo_text, effective_price_pence, in_stock
                     FROM price_observations o
                     WHERE o.listing_id = l.id ORDER BY o.observed_at DESC LIMIT 1) o
                 WHERE l.product_id = w.product_id AND o.in_stock) c ON true
             WHERE w.deleted_at IS NULL
             ORDER BY w.id, c.listing_id
             FOR UPDATE OF w",
        )
        .fetch_all(&mut *self.tx)
        .await?;
        let mut states: Vec<PriceState> = Vec::new();
        for row in rows {
            let offer = match (
                row.listing_id,
                row.retailer,
                row.observed_at,
                row.price_pence,
                row.effective_price_pence,
            ) {
                (Some(listing_id), Some(retailer), Some(observed_at), Some(price), Some(eff)) => {
                    Some(OfferNow {
                        listing_id,
                        retailer,
                        observed_at,
                        price_pence: price,
                        promo_text: row.promo_text,
                        effective_price_pence: eff,
                    })
                }
                _ => None,
            };
            match states.last_mut() {
                Some(s) if s.watch.watch_id == row.watch.watch_id => s.offers.extend(offer),
                _ => states.push(PriceState {
                    watch: row.watch,
                    notified_pence: row.notified_pence,
                    offers: offer.into_iter().collect(),
                }),
            }
        }
        Ok(states)
    }

    /// Sets the price a drop watch measures from.
    pub async fn set_baseline(&mut self, watch_id: i64, pence: i64) -> StoreResult<()> {
        sqlx::query("UPDATE watches SET baseline_pence = $2 WHERE id = $1")
            .bind(watch_id)
            .bind(pence)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Records the price notified (None: the price rose above the
    /// threshold, so the next crossing notifies again).
    pub async fn set_notified(&mut self, watch_id: i64, pence: Option<i64>) -> StoreResult<()> {
        sqlx::query("UPDATE watches SET notified_pence = $2 WHERE id = $1")
            .bind(watch_id)
            .bind(pence)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// The `wait` recommendations of `runs` for listings of watched
    /// products in the watch's currency, by watch and listing.
    pub async fn wait_states(&mut self, runs: &[i64]) -> StoreResult<Vec<WaitState>> {
        Ok(sqlx::query_as(
            "SELECT w.id AS watch_id, w.product_id, p.name AS product_name,
                    w.target_price_pence, w.drop_percent, w.baseline_pence, w.currency,
                    rc.listing_id, r.slug AS retailer, rc.run_id, rc.current_pence,
                    rc.expected_change_pence, rc.confidence, rc.message, w.notified_pence,
                    o.price_pence AS shelf_pence, o.promo_text
             FROM watches w
             JOIN products p ON p.id = w.product_id
             JOIN listings l ON l.product_id = w.product_id
             JOIN retailers r ON r.id = l.retailer_id AND r.currency = w.currency
             JOIN recommendations rc ON rc.listing_id = l.id AND rc.run_id = ANY($1)
             LEFT JOIN LATERAL (
                 SELECT price_pence, promo_text FROM price_observations o
                 WHERE o.listing_id = l.id ORDER BY o.observed_at DESC LIMIT 1) o ON true
             WHERE w.deleted_at IS NULL AND rc.action = 'wait'
             ORDER BY w.id, rc.listing_id",
        )
        .bind(runs)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    /// Queues a delivery of `body` unless this watch already has one for
    /// `event_key`; returns whether one was queued.
    pub async fn enqueue(
        &mut self,
        watch_id: i64,
        event_key: &str,
        body: &str,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO webhook_deliveries (watch_id, event_key, body) VALUES ($1, $2, $3)
             ON CONFLICT (watch_id, event_key) DO NOTHING",
        )
        .bind(watch_id)
        .bind(event_key)
        .bind(body)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Keeps what the evaluation changed and queued.
    pub async fn commit(self) -> StoreResult<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

// ---- delivery --------------------------------------------------------------

/// A delivery taken for an attempt, with where to send it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueDelivery {
    pub id: i64,
    /// This attempt's number (1 for the first).
    pub attempts: i32,
    pub body: String,
    pub webhook_url: String,
    pub secret: String,
}

/// Takes up to `limit` due deliveries, counting the attempt. A row taken
/// here is not due again for `lease_secs`, so a crashed worker's rows are
/// retried later; concurrent workers skip each other's rows.
pub async fn lease_due(
    pool: &PgPool,
    limit: i64,
    lease_secs: f64,
) -> StoreResult<Vec<DueDelivery>> {
    Ok(sqlx::query_as(
        "UPDATE webhook_deliveries d
         SET attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => $2)
         FROM watches w
         WHERE w.id = d.watch_id AND d.id IN (
             SELECT id FROM webhook_deliveries
             WHERE status = 'pending' AND next_attempt_at <= now()
             ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING d.id, d.attempts, d.body, w.webhook_url, w.secret",
    )
    .bind(limit)
    .bind(lease_secs)
    .fetch_all(pool)
    .await?)
}

/// One attempt at a delivery.
#[derive(Debug, Clone)]
pub struct Attempt<'a> {
    pub delivery_id: i64,
    pub attempt: i32,
    /// The receiver's status code, when it answered.
    pub status_code: Option<i32>,
    pub error: Option<&'a str>,
    pub duration_ms: i32,
}

/// What becomes of a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AttemptOutcome {
    Delivered,
    /// Given up: no more attempts.
    Failed,
    /// Tried again after this many seconds.
    Retry {
        after_secs: f64,
    },
}

/// Records an attempt and its delivery's new state, in one transaction.
pub async fn record_attempt(
    pool: &PgPool,
    attempt: &Attempt<'_>,
    outcome: AttemptOutcome,
) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO webhook_attempts (delivery_id, attempt, status_code, error, duration_ms)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(attempt.delivery_id)
    .bind(attempt.attempt)
    .bind(attempt.status_code)
    .bind(attempt.error)
    .bind(attempt.duration_ms)
    .execute(&mut *tx)
    .await?;
    let update = match outcome {
        AttemptOutcome::Delivered => sqlx::query(
            "UPDATE webhook_deliveries SET status = 'delivered', delivered_at = now(),
                    last_status = $2, last_error = NULL WHERE id = $1",
        )
        .bind(attempt.delivery_id)
        .bind(attempt.status_code),
        AttemptOutcome::Failed => sqlx::query(
            "UPDATE webhook_deliveries SET status = 'failed', last_status = $2, last_error = $3
             WHERE id = $1",
        )
        .bind(attempt.delivery_id)
        .bind(attempt.status_code)
        .bind(attempt.error),
        AttemptOutcome::Retry { after_secs } => sqlx::query(
            "UPDATE webhook_deliveries SET last_status = $2, last_error = $3,
                    next_attempt_at = now() + make_interval(secs => $4) WHERE id = $1",
        )
        .bind(attempt.delivery_id)
        .bind(attempt.status_code)
        .bind(attempt.error)
        .bind(after_secs),
    };
    update.execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}
