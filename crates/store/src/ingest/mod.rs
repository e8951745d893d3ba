//! The one path by which prices enter the database.
//!
//! Scraper and CSV import both hand [`Observation`]s to an [`Ingestor`],
//! which writes them in batches: listings upserted, observations sent by
//! binary COPY into a session-local staging table, then moved into
//! `price_observations` with `ON CONFLICT DO NOTHING` (so a re-sent
//! observation is a no-op) and the `price_daily` days they touched brought
//! up to date. Each batch is one transaction: when `ingest` returns `Ok`,
//! every observation of the batch is stored.

pub mod copy;
pub mod csv_import;
mod daily;
pub mod metrics;

/// The first year an observation may fall in: historical panels (weekly
/// scanner data from the 1980s and 1990s) are imported to measure the
/// forecast on real prices. The API accepts times from the same year on.
pub const FIRST_OBSERVED_YEAR: i32 = 1970;

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::{Context, bail};
use chrono::{DateTime, Datelike, Duration, DurationRound, Utc};
use sqlx::{PgPool, Row};

use serde::Deserialize;

use crate::db::Flavour;
use copy::BinaryCopy;
use shelfwatch_domain::money::MAX_PRICE_PENCE;
use shelfwatch_domain::promo::{Promo, PromoKind};
use shelfwatch_domain::quantity::{BaseUnit, Pack};
use shelfwatch_domain::retailer::RetailerSlug;
use shelfwatch_domain::unit_price::UnitPrice;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestSettings {
    /// Observations written per COPY batch.
    pub batch_size: usize,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            batch_size: 200_000,
        }
    }
}

pub const MAX_SKU_LEN: usize = 200;
pub const MAX_TITLE_LEN: usize = 500;
pub const MAX_PROMO_TEXT_LEN: usize = 500;
pub const MAX_URL_LEN: usize = 2000;
pub const MAX_CATEGORY_LEN: usize = 200;

/// One shelf price seen at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub retailer: RetailerSlug,
    pub sku: String,
    pub title: String,
    pub url: Option<String>,
    pub observed_at: DateTime<Utc>,
    pub price_pence: i64,
    pub was_price_pence: Option<i64>,
    pub unit_price: Option<UnitPrice>,
    pub promo: Option<Promo>,
    pub promo_text: Option<String>,
    pub in_stock: bool,
    pub pack: Option<Pack>,
    /// The aisle the retailer shelves it in ("Food Cupboard"), when known.
    pub category: Option<String>,
    pub scrape_run_id: Option<i64>,
}

impl Observation {
    /// The was price as stored: the was element, else a "Was ... Now ..."
    /// promotion's, and only when above the price.
    pub fn stored_was_price(&self) -> Option<i64> {
        self.was_price_pence
            .or_else(|| self.promo.as_ref().and_then(Promo::was_pence))
            .filter(|w| *w > self.price_pence)
    }

    /// A plain observation with no promotion, unit price or pack.
    pub fn new(
        retailer: RetailerSlug,
        sku: impl Into<String>,
        title: impl Into<String>,
        observed_at: DateTime<Utc>,
        price_pence: i64,
    ) -> Self {
        Self {
            retailer,
            sku: sku.into(),
            title: title.into(),
            url: None,
            observed_at,
            price_pence,
            was_price_pence: None,
            unit_price: None,
            promo: None,
            promo_text: None,
            in_stock: true,
            pack: None,
            category: None,
            scrape_run_id: None,
        }
    }

    pub fn promo_kind(&self) -> PromoKind {
        self.promo.as_ref().map_or(PromoKind::None, Promo::kind)
    }

    /// What one item costs after the promotion.
    pub fn effective_price_pence(&self) -> i64 {
        self.promo
            .as_ref()
            .map_or(self.price_pence, |p| p.effective_price(self.price_pence))
    }

    /// The unit price as stated, or computed from the pack when not stated.
    pub fn unit_price_or_derived(&self) -> Option<UnitPrice> {
        self.unit_price.or_else(|| {
            self.pack
                .as_ref()
                .and_then(|p| shelfwatch_domain::unit_price::unit_price_of(self.price_pence, p))
        })
    }

    /// Checks the invariants the database relies on; the error says which
    /// field is wrong and why.
    pub fn check(&self) -> Result<(), String> {
        if self.sku.trim().is_empty() {
            return Err("sku is empty".into());
        }
        if self.sku.len() > MAX_SKU_LEN {
            return Err(format!("sku is longer than {MAX_SKU_LEN} bytes"));
        }
        if self.title.trim().is_empty() {
            return Err("title is empty".into());
        }
        if self.title.len() > MAX_TITLE_LEN {
            return Err(format!("title is longer than {MAX_TITLE_LEN} bytes"));
        }
        if let Some(c) = &self.category {
            if c.trim().is_empty() || c.trim() != c {
                return Err(format!("category {c:?} is empty or has surrounding spaces"));
            }
            if c.chars().count() > MAX_CATEGORY_LEN {
                return Err(format!(
                    "category is longer than {MAX_CATEGORY_LEN} characters"
                ));
            }
        }
        if self.url.as_ref().is_some_and(|u| u.len() > MAX_URL_LEN) {
            return Err(format!("url is longer than {MAX_URL_LEN} bytes"));
        }
        if self
            .promo_text
            .as_ref()
            .is_some_and(|t| t.len() > MAX_PROMO_TEXT_LEN)
        {
            return Err(format!(
                "promo_text is longer than {MAX_PROMO_TEXT_LEN} bytes"
            ));
        }
        if !(1..=MAX_PRICE_PENCE).contains(&self.price_pence) {
            return Err(format!(
                "price_pence {} is outside 1..={MAX_PRICE_PENCE}",
                self.price_pence
            ));
        }
        if let Some(was) = self.was_price_pence {
            if !(1..=MAX_PRICE_PENCE).contains(&was) {
                return Err(format!(
                    "was_price_pence {was} is outside 1..={MAX_PRICE_PENCE}"
                ));
            }
            if was <= self.price_pence {
                return Err(format!(
                    "was_price_pence {was} is not above price_pence {}",
                    self.price_pence
                ));
            }
        }
        if let Some(u) = self.unit_price
            && u.pence <= 0
        {
            return Err(format!("unit price {} is not positive", u.pence));
        }
        let year = self.observed_at.year();
        if !(FIRST_OBSERVED_YEAR..=2100).contains(&year) {
            return Err(format!(
                "observed_at {} is outside the years 1970 to 2100",
                self.observed_at.to_rfc3339()
            ));
        }
        Ok(())
    }
}

/// Unit-price denominations as stored: per kg, per litre, each.
pub fn unit_label(per: BaseUnit) -> &'static str {
    match per {
        BaseUnit::Gram => "kg",
        BaseUnit::Millilitre => "l",
        BaseUnit::Each => "each",
    }
}

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub received: u64,
    /// Observations newly stored.
    pub inserted: u64,
    /// Observations that were already stored (re-sent) and left alone.
    pub duplicates: u64,
    /// `price_daily` rows created or updated (native flavour) or day buckets
    /// refreshed (TimescaleDB).
    pub days_refreshed: u64,
}

impl std::ops::AddAssign for BatchReport {
    fn add_assign(&mut self, o: Self) {
        self.received += o.received;
        self.inserted += o.inserted;
        self.duplicates += o.duplicates;
        self.days_refreshed += o.days_refreshed;
    }
}

/// Writes observations. Keep one per task; it caches ids it has resolved.
pub struct Ingestor {
    pool: PgPool,
    flavour: Flavour,
    retailers: HashMap<RetailerSlug, i64>,
    /// Listings as last written or read, keyed by (retailer id, sku), so a
    /// batch only touches listing rows whose details it changes.
    listings: HashMap<(i64, String), CachedListing>,
    /// Months (year, month) whose partition is known to exist.
    months: HashSet<(i32, u32)>,
    /// Per listing, the latest `price_daily` day this ingestor wrote.
    last_day: HashMap<i64, DateTime<Utc>>,
    /// Whether this role may check a large batch's foreign keys once per
    /// key instead of once per row ([`check_keys_in_bulk`]); None until
    /// first asked.
    bulk_keys: Option<bool>,
    /// Whether sightings of known listings wait for
    /// [`Ingestor::flush_sightings`] instead of being written per batch.
    defer_sightings: bool,
    /// This batch's sightings (listing id, first, last), while deferred.
    batch_sightings: Vec<(i64, DateTime<Utc>, DateTime<Utc>)>,
    /// Sightings of committed batches not written yet, by listing id.
    deferred: HashMap<i64, (DateTime<Utc>, DateTime<Utc>)>,
}

/// A known listing seen earlier or later than recorded.
struct Sighting {
    id: i64,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    key: (i64, String),
}

#[derive(Debug, Clone)]
struct CachedListing {
    id: i64,
    title: String,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    has_url: bool,
    has_pack: bool,
    category: Option<String>,
}

const OBS_COLUMNS: &str = "listing_id, observed_at, price_pence, was_price_pence, \
    unit_price_pence, unit_price_per, promo_kind, promo_text, effective_price_pence, \
    in_stock, scrape_run_id";
const OBS_FIELDS: i16 = 11;

/// Batches up to this many rows are written with array-bound statements
/// rather than COPY: a COPY's two small writes (data, then CopyDone) wait
/// ~40 ms on Nagle's algorithm and the server's delayed ACK, which is most
/// of the cost of storing one scraped page.
pub(crate) const SMALL_BATCH: usize = 1_000;

/// Inserts observations bound as arrays; returns the keys it stored.
const SMALL_INSERT: &str = "INSERT INTO price_observations (listing_id, observed_at, \
    price_pence, was_price_pence, unit_price_pence, unit_price_per, promo_kind, promo_text, \
    effective_price_pence, in_stock, scrape_run_id)
    SELECT * FROM UNNEST($1::bigint[], $2::timestamptz[], $3::bigint[], $4::bigint[],
        $5::bigint[], $6::text[], $7::text[], $8::text[], $9::bigint[], $10::boolean[],
        $11::bigint[])
    ON CONFLICT (listing_id, observed_at) DO NOTHING
    RETURNING listing_id, observed_at";

const STAGE_DDL: &str = "CREATE TEMP TABLE IF NOT EXISTS ingest_stage (
    listing_id bigint, observed_at timestamptz, price_pence bigint,
    was_price_pence bigint, unit_price_pence bigint, unit_price_per text,
    promo_kind text, promo_text text, effective_price_pence bigint,
    in_stock boolean, scrape_run_id bigint) ON COMMIT DELETE ROWS";

/// Moves staged rows that are not stored yet; returns the keys it stored.
const STAGE_INSERT: &str = "INSERT INTO price_observations (listing_id, observed_at, \
    price_pence, was_price_pence, unit_price_pence, unit_price_per, promo_kind, promo_text, \
    effective_price_pence, in_stock, scrape_run_id)
    SELECT listing_id, observed_at, price_pence, was_price_pence, unit_price_pence,
        unit_price_per, promo_kind, promo_text, effective_price_pence, in_stock, scrape_run_id
    FROM ingest_stage
    ORDER BY listing_id, observed_at
    ON CONFLICT (listing_id, observed_at) DO NOTHING
    RETURNING listing_id, observed_at";

/// A stored row's key as the database keeps it: listing id and
/// microseconds (PostgreSQL's precision; observations may carry
/// nanoseconds).
type StoredKey = (i64, i64);

/// One observation ready to write: its listing id resolved.
struct Pending<'a> {
    listing_id: i64,
    obs: &'a Observation,
}

impl Ingestor {
    pub async fn new(pool: PgPool) -> anyhow::Result<Self> {
        metrics::init();
        let flavour = crate::db::flavour(&pool).await?;
        Ok(Self {
            pool,
            flavour,
            retailers: HashMap::new(),
            listings: HashMap::new(),
            months: HashSet::new(),
            last_day: HashMap::new(),
            bulk_keys: None,
            defer_sightings: false,
            batch_sightings: Vec::new(),
            deferred: HashMap::new(),
        })
    }

    pub fn flavour(&self) -> Flavour {
        self.flavour
    }

    /// Holds back the first and last sightings of listings already stored
    /// until [`Ingestor::flush_sightings`], instead of updating every
    /// listing a batch sees in each batch: a bulk import of a time-ordered
    /// file would otherwise rewrite every listing once per batch. New
    /// listings and changed details are still written with their batch.
    pub fn defer_sightings(&mut self) {
        self.defer_sightings = true;
    }

    /// Writes the sightings held back since [`Ingestor::defer_sightings`]
    /// (those of committed batches) in one transaction, and writes them
    /// per batch again from then on.
    pub async fn flush_sightings(&mut self) -> anyhow::Result<()> {
        self.defer_sightings = false;
        if self.deferred.is_empty() {
            return Ok(());
        }
        let rows: Vec<(i64, DateTime<Utc>, DateTime<Utc>)> = self
            .deferred
            .iter()
            .map(|(id, (first, last))| (*id, *first, *last))
            .collect();
        let mut tx = self
            .pool
            .begin()
            .await
            .context("starting to record sightings")?;
        record_sightings(&mut tx, rows).await?;
        tx.commit().await.context("committing listing sightings")?;
        self.deferred.clear();
        Ok(())
    }

    /// Stores one batch. Every observation must pass [`Observation::check`];
    /// callers reject bad input before it gets here.
    ///
    /// The common case, observations not stored before, is one binary COPY
    /// straight into `price_observations` (inside a savepoint). If any of
    /// them is already stored, the savepoint is rolled back and the batch
    /// goes through a staging table and `ON CONFLICT DO NOTHING` instead.
    /// Either way only the rows actually inserted are folded into
    /// `price_daily`, in the same transaction (native flavour).
    #[tracing::instrument(skip_all, fields(rows = batch.len()))]
    pub async fn ingest(&mut self, batch: &[Observation]) -> anyhow::Result<BatchReport> {
        if batch.is_empty() {
            return Ok(BatchReport::default());
        }
        for (i, o) in batch.iter().enumerate() {
            if let Err(reason) = o.check() {
                bail!(
                    "observation {i} of the batch ({} {}): {reason}",
                    o.retailer,
                    o.sku
                );
            }
        }
        let started = std::time::Instant::now();
        let result = self.write_retrying(batch).await;
        let m = &metrics::METRICS;
        m.batch_duration.observe(started.elapsed().as_secs_f64());
        match &result {
            Ok(report) => {
                m.batches.with_label_values(&["ok"]).inc();
                m.rows
                    .with_label_values(&["stored"])
                    .inc_by(report.inserted);
                m.rows
                    .with_label_values(&["duplicate"])
                    .inc_by(report.duplicates);
            }
            Err(_) => m.batches.with_label_values(&["error"]).inc(),
        }
        result
    }

    async fn write_retrying(&mut self, batch: &[Observation]) -> anyhow::Result<BatchReport> {
        let mut attempt = 1;
        loop {
            let result = self.write(batch).await;
            if result.is_err() {
                // What was cached during a failed batch may not exist:
                // listing ids from a rolled-back transaction, months whose
                // partition creation is unconfirmed.
                self.listings.clear();
                self.months.clear();
                self.last_day.clear();
            }
            match result {
                // A batch is idempotent, so one that lost a deadlock or a
                // serialization conflict to a concurrent writer is retried.
                Err(e) if attempt < 5 && is_retryable(&e) => {
                    tracing::warn!(attempt, error = %e, "ingest batch conflicted; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn write(&mut self, batch: &[Observation]) -> anyhow::Result<BatchReport> {
        self.batch_sightings.clear();
        self.ensure_retailers(batch).await?;
        self.ensure_partitions(batch).await?;

        let started = std::time::Instant::now();
        let mut tx = self.pool.begin().await.context("starting ingest batch")?;
        let listing_ids = self.upsert_listings(&mut tx, batch).await?;
        let listings_done = started.elapsed();
        // Key order: faster index inserts, and concurrent ingests of
        // overlapping data lock rows in the same order (no deadlocks).
        let mut rows: Vec<Pending<'_>> = batch
            .iter()
            .zip(listing_ids)
            .map(|(obs, listing_id)| Pending { listing_id, obs })
            .collect();
        rows.sort_by_key(|r| (r.listing_id, r.obs.observed_at));
        rows.dedup_by_key(|r| (r.listing_id, r.obs.observed_at));
        let encoded_at;
        let inserted: Vec<&Pending<'_>> = if rows.len() <= SMALL_BATCH {
            encoded_at = started.elapsed();
            let stored = insert_small(&mut tx, &rows).await?;
            rows.iter()
                .filter(|r| stored.contains(&(r.listing_id, r.obs.observed_at.timestamp_micros())))
                .collect()
        } else {
            let encoded = encode_rows(&rows);
            encoded_at = started.elapsed();
            let bulk = self.flavour == Flavour::Native
                && self.may_check_keys_in_bulk(&mut tx).await?
                && check_keys_in_bulk(&mut tx, &rows).await?;
            let inserted = if copy_direct(&mut tx, &encoded).await? {
                rows.iter().collect()
            } else {
                let stored = copy_via_stage(&mut tx, &encoded).await?;
                rows.iter()
                    .filter(|r| {
                        stored.contains(&(r.listing_id, r.obs.observed_at.timestamp_micros()))
                    })
                    .collect()
            };
            if bulk {
                sqlx::query("SET LOCAL session_replication_role = origin")
                    .execute(&mut *tx)
                    .await
                    .context("restoring per-row key checks")?;
            }
            inserted
        };

        let copied_at = started.elapsed();
        let mut days = 0;
        if self.flavour == Flavour::Native && !inserted.is_empty() {
            let deltas = daily::aggregate(inserted.iter().map(|r| (r.listing_id, r.obs)));
            days = daily::merge(&mut tx, &deltas, &mut self.last_day).await?;
        }
        let merged_at = started.elapsed();
        if self.flavour == Flavour::Native && !inserted.is_empty() {
            metrics::METRICS
                .aggregate_duration
                .with_label_values(&[self.flavour.as_str()])
                .observe((merged_at - copied_at).as_secs_f64());
        }
        tx.commit().await.context("committing ingest batch")?;
        for (id, first, last) in self.batch_sightings.drain(..) {
            let e = self.deferred.entry(id).or_insert((first, last));
            *e = (e.0.min(first), e.1.max(last));
        }
        tracing::debug!(
            listings_ms = listings_done.as_millis() as u64,
            encode_ms = (encoded_at - listings_done).as_millis() as u64,
            copy_ms = (copied_at - encoded_at).as_millis() as u64,
            daily_ms = (merged_at - copied_at).as_millis() as u64,
            commit_ms = (started.elapsed() - merged_at).as_millis() as u64,
            "ingest batch phases"
        );

        if self.flavour == Flavour::Timescale
            && let (Some(first), Some(last)) = (
                inserted.iter().map(|r| r.obs.observed_at).min(),
                inserted.iter().map(|r| r.obs.observed_at).max(),
            )
        {
            let refresh_started = std::time::Instant::now();
            days = u64::try_from(refresh_daily(&self.pool, first, last).await?).unwrap_or(0);
            metrics::METRICS
                .aggregate_duration
                .with_label_values(&[self.flavour.as_str()])
                .observe(refresh_started.elapsed().as_secs_f64());
        }
        let received = batch.len() as u64;
        let inserted = inserted.len() as u64;
        Ok(BatchReport {
            received,
            inserted,
            duplicates: received.saturating_sub(inserted),
            days_refreshed: days,
        })
    }

    async fn ensure_retailers(&mut self, batch: &[Observation]) -> anyhow::Result<()> {
        let missing: Vec<&RetailerSlug> = batch
            .iter()
            .map(|o| &o.retailer)
            .filter(|r| !self.retailers.contains_key(*r))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let slugs: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
        // Unknown retailers are created with their slug as name; retailer
        // configs fill in the rest.
        sqlx::query(
            "INSERT INTO retailers (slug, name) SELECT s, s FROM UNNEST($1::text[]) AS s \
             ON CONFLICT (slug) DO NOTHING",
        )
        .bind(&slugs)
        .execute(&self.pool)
        .await
        .context("registering retailers")?;
        let rows = sqlx::query("SELECT slug, id FROM retailers WHERE slug = ANY($1)")
            .bind(&slugs)
            .fetch_all(&self.pool)
            .await
            .context("reading retailer ids")?;
        for row in rows {
            let slug: String = row.try_get("slug")?;
            let id: i64 = row.try_get("id")?;
            let slug = RetailerSlug::parse(&slug).map_err(anyhow::Error::msg)?;
            self.retailers.insert(slug, id);
        }
        Ok(())
    }

    async fn ensure_partitions(&mut self, batch: &[Observation]) -> anyhow::Result<()> {
        let months: HashSet<(i32, u32)> = batch
            .iter()
            .map(|o| (o.observed_at.year(), o.observed_at.month()))
            .filter(|m| !self.months.contains(m))
            .collect();
        if months.is_empty() {
            return Ok(());
        }
        let first = batch.iter().map(|o| o.observed_at).min();
        let last = batch.iter().map(|o| o.observed_at).max();
        sqlx::query("SELECT shelfwatch_ensure_partitions($1, $2)")
            .bind(first)
            .bind(last)
            .execute(&self.pool)
            .await
            .context("creating time partitions for the batch")?;
        // The function covers every month between first and last.
        self.months.extend(months);
        Ok(())
    }

    /// Upserts the batch's listings that are new or whose details it
    /// changes (a newer title, an earlier first or later last sighting),
    /// and returns each observation's listing id.
    async fn upsert_listings(
        &mut self,
        tx: &mut sqlx::PgConnection,
        batch: &[Observation],
    ) -> anyhow::Result<Vec<i64>> {
        struct Seen<'a> {
            title: &'a str,
            url: Option<&'a str>,
            pack: Option<Pack>,
            category: Option<&'a str>,
            first: DateTime<Utc>,
            last: DateTime<Utc>,
        }
        // Sorted by key so concurrent ingests lock listings in one order.
        let mut distinct: BTreeMap<(i64, &str), Seen<'_>> = BTreeMap::new();
        for o in batch {
            let retailer_id = self.retailer_id(&o.retailer)?;
            distinct
                .entry((retailer_id, o.sku.as_str()))
                .and_modify(|s| {
                    // The latest observation's details win; older ones only
                    // fill gaps.
                    if o.observed_at >= s.last {
                        s.title = &o.title;
                        s.url = o.url.as_deref().or(s.url);
                        s.pack = o.pack.or(s.pack);
                        s.category = o.category.as_deref().or(s.category);
                        s.last = o.observed_at;
                    } else {
                        s.url = s.url.or(o.url.as_deref());
                        s.pack = s.pack.or(o.pack);
                        s.category = s.category.or(o.category.as_deref());
                    }
                    s.first = s.first.min(o.observed_at);
                })
                .or_insert(Seen {
                    title: &o.title,
                    url: o.url.as_deref(),
                    pack: o.pack,
                    category: o.category.as_deref(),
                    first: o.observed_at,
                    last: o.observed_at,
                });
        }
        // Known listings whose only change is a later or earlier sighting
        // get a plain UPDATE by id; new or changed ones the full upsert.
        let mut sightings: Vec<Sighting> = Vec::new();
        distinct.retain(
            |(r, sku), seen| match self.listings.get(&(*r, (*sku).to_owned())) {
                None => true,
                Some(c) => {
                    let details_change = (seen.last > c.last_seen && seen.title != c.title)
                        || (seen.url.is_some() && !c.has_url)
                        || (seen.pack.is_some() && !c.has_pack)
                        || (seen.last >= c.last_seen
                            && seen.category.is_some()
                            && seen.category != c.category.as_deref());
                    if details_change {
                        return true;
                    }
                    if seen.first < c.first_seen || seen.last > c.last_seen {
                        sightings.push(Sighting {
                            id: c.id,
                            first: seen.first,
                            last: seen.last,
                            key: (*r, (*sku).to_owned()),
                        });
                    }
                    false
                }
            },
        );
        if !sightings.is_empty() {
            if self.defer_sightings {
                // Written by flush_sightings once the batch is committed.
                self.batch_sightings
                    .extend(sightings.iter().map(|s| (s.id, s.first, s.last)));
            } else {
                let rows: Vec<(i64, DateTime<Utc>, DateTime<Utc>)> =
                    sightings.iter().map(|s| (s.id, s.first, s.last)).collect();
                record_sightings(tx, rows).await?;
            }
            for s in &sightings {
                if let Some(c) = self.listings.get_mut(&s.key) {
                    c.first_seen = c.first_seen.min(s.first);
                    c.last_seen = c.last_seen.max(s.last);
                }
            }
        }
        if !distinct.is_empty() {
            let n = distinct.len();
            let (mut rid, mut sku, mut title, mut url) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            let mut category = Vec::with_capacity(n);
            let (mut pcount, mut peach, mut punit, mut first, mut last) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            for ((r, s), seen) in &distinct {
                rid.push(*r);
                sku.push(*s);
                title.push(seen.title);
                url.push(seen.url);
                pcount.push(
                    seen.pack
                        .map(|p| i32::try_from(p.count).unwrap_or(i32::MAX)),
                );
                peach.push(seen.pack.map(|p| i64::try_from(p.each).unwrap_or(i64::MAX)));
                punit.push(seen.pack.map(|p| p.unit.as_str()));
                category.push(seen.category);
                first.push(seen.first);
                last.push(seen.last);
            }
            let rows = sqlx::query(
                "INSERT INTO listings AS l (retailer_id, retailer_sku, title, url, pack_count,
                     pack_each, base_unit, first_seen, last_seen, category)
                 SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[],
                     $5::int[], $6::bigint[], $7::text[], $8::timestamptz[], $9::timestamptz[],
                     $10::text[])
                 ON CONFLICT (retailer_id, retailer_sku) DO UPDATE SET
                     title = CASE WHEN EXCLUDED.last_seen >= l.last_seen
                                  THEN EXCLUDED.title ELSE l.title END,
                     url = COALESCE(CASE WHEN EXCLUDED.last_seen >= l.last_seen
                                         THEN EXCLUDED.url END, l.url, EXCLUDED.url),
                     pack_count = COALESCE(EXCLUDED.pack_count, l.pack_count),
                     pack_each = COALESCE(EXCLUDED.pack_each, l.pack_each),
                     base_unit = COALESCE(EXCLUDED.base_unit, l.base_unit),
                     category = COALESCE(CASE WHEN EXCLUDED.last_seen >= l.last_seen
                                              THEN EXCLUDED.category END,
                                         l.category, EXCLUDED.category),
                     first_seen = LEAST(l.first_seen, EXCLUDED.first_seen),
                     last_seen = GREATEST(l.last_seen, EXCLUDED.last_seen)
                 RETURNING id, retailer_id, retailer_sku, title, first_seen, last_seen,
                     url IS NOT NULL AS has_url, pack_each IS NOT NULL AS has_pack, category",
            )
            .bind(&rid)
            .bind(&sku)
            .bind(&title)
            .bind(&url)
            .bind(&pcount)
            .bind(&peach)
            .bind(&punit)
            .bind(&first)
            .bind(&last)
            .bind(&category)
            .fetch_all(&mut *tx)
            .await
            .context("upserting listings")?;
            for row in rows {
                self.listings.insert(
                    (row.try_get("retailer_id")?, row.try_get("retailer_sku")?),
                    CachedListing {
                        id: row.try_get("id")?,
                        title: row.try_get("title")?,
                        first_seen: row.try_get("first_seen")?,
                        last_seen: row.try_get("last_seen")?,
                        has_url: row.try_get("has_url")?,
                        has_pack: row.try_get("has_pack")?,
                        category: row.try_get("category")?,
                    },
                );
            }
        }
        let mut key = (0i64, String::new());
        batch
            .iter()
            .map(|o| {
                key.0 = self.retailer_id(&o.retailer)?;
                key.1.clear();
                key.1.push_str(&o.sku);
                self.listings
                    .get(&key)
                    .map(|c| c.id)
                    .with_context(|| format!("listing {} {} was not stored", o.retailer, o.sku))
            })
            .collect()
    }

    /// Whether this role may set `session_replication_role` (a superuser,
    /// or one granted it), asked once inside a savepoint of `tx`.
    async fn may_check_keys_in_bulk(
        &mut self,
        tx: &mut sqlx::PgConnection,
    ) -> anyhow::Result<bool> {
        if let Some(known) = self.bulk_keys {
            return Ok(known);
        }
        sqlx::query("SAVEPOINT bulk_keys")
            .execute(&mut *tx)
            .await
            .context("setting a savepoint")?;
        let allowed = sqlx::query("SET LOCAL session_replication_role = origin")
            .execute(&mut *tx)
            .await
            .is_ok();
        let end = if allowed {
            "RELEASE SAVEPOINT bulk_keys"
        } else {
            "ROLLBACK TO SAVEPOINT bulk_keys"
        };
        sqlx::query(end)
            .execute(&mut *tx)
            .await
            .context("ending the savepoint")?;
        if !allowed {
            tracing::info!(
                "this database role may not set session_replication_role: large ingest \
                 batches check their listing keys row by row"
            );
        }
        self.bulk_keys = Some(allowed);
        Ok(allowed)
    }

    fn retailer_id(&self, slug: &RetailerSlug) -> anyhow::Result<i64> {
        self.retailers
            .get(slug)
            .copied()
            .with_context(|| format!("retailer {slug} was not registered"))
    }
}

/// The batch as one binary COPY stream of `price_observations` rows.
fn encode_rows(rows: &[Pending<'_>]) -> Vec<u8> {
    let mut enc = BinaryCopy::with_capacity(rows.len() * 120);
    for Pending { listing_id, obs: o } in rows {
        let unit = o.unit_price_or_derived();
        enc.row(OBS_FIELDS)
            .int8(*listing_id)
            .timestamptz(o.observed_at)
            .int8(o.price_pence)
            .opt_int8(o.stored_was_price())
            .opt_int8(unit.map(|u| u.pence))
            .opt_text(unit.map(|u| unit_label(u.per)))
            .text(o.promo_kind().as_str())
            .opt_text(o.promo_text.as_deref())
            .int8(o.effective_price_pence())
            .bool(o.in_stock)
            .opt_int8(o.scrape_run_id);
    }
    enc.finish()
}

/// Checks a large batch's foreign keys once per distinct key, then turns
/// off the per-row checks for the rest of the transaction's COPY (the
/// caller turns them back on).
///
/// PostgreSQL checks a foreign key with one lookup and row lock per
/// inserted row, which is most of the cost of COPYing observations (a
/// million rows: about 8 s of 11.6 s here). The same guarantee, set-wise:
/// every listing and scrape run the batch names is locked `FOR KEY SHARE`
/// (as the per-row check locks it, so it cannot be deleted or re-keyed
/// until commit) and must exist; only then does the transaction set
/// `session_replication_role = replica`, as `pg_restore --disable-triggers`
/// does, which skips the per-row triggers. Constraints that are not
/// triggers (the primary key, the checks) still hold row by row. Returns
/// false, changing nothing, when a key is missing: the per-row checks then
/// report it.
async fn check_keys_in_bulk(
    tx: &mut sqlx::PgConnection,
    rows: &[Pending<'_>],
) -> anyhow::Result<bool> {
    let mut listings: Vec<i64> = rows.iter().map(|r| r.listing_id).collect();
    listings.dedup(); // rows are sorted by listing
    let mut runs: Vec<i64> = rows.iter().filter_map(|r| r.obs.scrape_run_id).collect();
    runs.sort_unstable();
    runs.dedup();
    if !lock_all(tx, "listings", &listings).await?
        || (!runs.is_empty() && !lock_all(tx, "scrape_runs", &runs).await?)
    {
        return Ok(false);
    }
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .context("checking keys by batch")?;
    Ok(true)
}

/// Widens listings' first and last sightings to `rows` (id, first, last).
async fn record_sightings(
    tx: &mut sqlx::PgConnection,
    mut rows: Vec<(i64, DateTime<Utc>, DateTime<Utc>)>,
) -> anyhow::Result<()> {
    rows.sort_by_key(|r| r.0);
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let firsts: Vec<DateTime<Utc>> = rows.iter().map(|r| r.1).collect();
    let lasts: Vec<DateTime<Utc>> = rows.iter().map(|r| r.2).collect();
    // Lock in id order first: an UPDATE ... FROM joins in no particular
    // order, and two batches locking the same listings in different orders
    // would deadlock.
    sqlx::query("SELECT 1 FROM listings WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
        .bind(&ids)
        .execute(&mut *tx)
        .await
        .context("locking listings")?;
    sqlx::query(
        "UPDATE listings AS l
         SET first_seen = LEAST(l.first_seen, v.first_seen),
             last_seen = GREATEST(l.last_seen, v.last_seen)
         FROM UNNEST($1::bigint[], $2::timestamptz[], $3::timestamptz[])
              AS v (id, first_seen, last_seen)
         WHERE l.id = v.id
           AND (v.first_seen < l.first_seen OR v.last_seen > l.last_seen)",
    )
    .bind(&ids)
    .bind(&firsts)
    .bind(&lasts)
    .execute(&mut *tx)
    .await
    .context("recording listing sightings")?;
    Ok(())
}

/// Locks rows `ids` (sorted) of `table` `FOR KEY SHARE`, in id order;
/// whether every one exists.
async fn lock_all(
    tx: &mut sqlx::PgConnection,
    table: &'static str,
    ids: &[i64],
) -> anyhow::Result<bool> {
    let found: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM (SELECT 1 FROM {table} WHERE id = ANY($1)
                               ORDER BY id FOR KEY SHARE) AS k"
    )))
    .bind(ids)
    .fetch_one(&mut *tx)
    .await
    .with_context(|| format!("locking the batch's {table}"))?;
    Ok(usize::try_from(found).ok() == Some(ids.len()))
}

/// Inserts a small batch in one statement ([`SMALL_INSERT`]).
async fn insert_small(
    tx: &mut sqlx::PgConnection,
    rows: &[Pending<'_>],
) -> anyhow::Result<HashSet<StoredKey>> {
    let n = rows.len();
    let (mut ids, mut at, mut price, mut was) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut unit_pence, mut unit_per, mut kind, mut text) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut effective, mut stock, mut run) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for Pending { listing_id, obs: o } in rows {
        let unit = o.unit_price_or_derived();
        ids.push(*listing_id);
        at.push(o.observed_at);
        price.push(o.price_pence);
        was.push(o.stored_was_price());
        unit_pence.push(unit.map(|u| u.pence));
        unit_per.push(unit.map(|u| unit_label(u.per)));
        kind.push(o.promo_kind().as_str());
        text.push(o.promo_text.as_deref());
        effective.push(o.effective_price_pence());
        stock.push(o.in_stock);
        run.push(o.scrape_run_id);
    }
    let stored = sqlx::query(SMALL_INSERT)
        .bind(ids)
        .bind(at)
        .bind(price)
        .bind(was)
        .bind(unit_pence)
        .bind(unit_per)
        .bind(kind)
        .bind(text)
        .bind(effective)
        .bind(stock)
        .bind(run)
        .fetch_all(&mut *tx)
        .await
        .context("storing observations")?;
    stored
        .iter()
        .map(|r| {
            let at: DateTime<Utc> = r.try_get("observed_at")?;
            Ok((r.try_get("listing_id")?, at.timestamp_micros()))
        })
        .collect()
}

/// COPYs the rows straight into `price_observations` inside a savepoint.
/// Returns false (savepoint rolled back) when some row is already stored.
async fn copy_direct(tx: &mut sqlx::PgConnection, encoded: &[u8]) -> anyhow::Result<bool> {
    let sql = format!("COPY price_observations ({OBS_COLUMNS}) FROM STDIN (FORMAT binary)");
    copy_unless_duplicate(tx, &sql, encoded)
        .await
        .context("copying observations")
}

/// Runs one binary `COPY ... FROM STDIN` inside a savepoint. If it fails
/// because a row's key is already stored, the savepoint is rolled back (the
/// transaction goes on) and the answer is false; other errors are errors.
pub(crate) async fn copy_unless_duplicate(
    tx: &mut sqlx::PgConnection,
    copy_sql: &str,
    encoded: &[u8],
) -> anyhow::Result<bool> {
    sqlx::query("SAVEPOINT copy_unless_duplicate")
        .execute(&mut *tx)
        .await
        .context("setting a savepoint")?;
    let result = async {
        let mut copy = tx.copy_in_raw(copy_sql).await?;
        copy.send(encoded).await?;
        copy.finish().await
    }
    .await;
    match result {
        Ok(_) => {
            sqlx::query("RELEASE SAVEPOINT copy_unless_duplicate")
                .execute(&mut *tx)
                .await
                .context("releasing the savepoint")?;
            Ok(true)
        }
        Err(e) if is_unique_violation(&e) => {
            sqlx::query("ROLLBACK TO SAVEPOINT copy_unless_duplicate")
                .execute(&mut *tx)
                .await
                .context("rolling back to the savepoint")?;
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// Deadlock (40P01) or serialization failure (40001) anywhere in the chain.
fn is_retryable(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<sqlx::Error>()
            .and_then(|e| e.as_database_error())
            .and_then(|d| d.code())
            .is_some_and(|c| c == "40P01" || c == "40001")
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "23505")
}

/// The slow path for batches that repeat stored observations: stage, then
/// insert what is new. Returns the keys actually inserted.
async fn copy_via_stage(
    tx: &mut sqlx::PgConnection,
    encoded: &[u8],
) -> anyhow::Result<HashSet<StoredKey>> {
    sqlx::query(STAGE_DDL)
        .execute(&mut *tx)
        .await
        .context("creating the staging table")?;
    let sql = format!("COPY ingest_stage ({OBS_COLUMNS}) FROM STDIN (FORMAT binary)");
    let mut copy = tx
        .copy_in_raw(&sql)
        .await
        .context("starting COPY into the staging table")?;
    copy.send(encoded).await.context("sending observations")?;
    copy.finish().await.context("finishing COPY")?;
    let rows = sqlx::query(STAGE_INSERT)
        .fetch_all(&mut *tx)
        .await
        .context("storing new observations")?;
    rows.iter()
        .map(|r| {
            let at: DateTime<Utc> = r.try_get("observed_at")?;
            Ok((r.try_get("listing_id")?, at.timestamp_micros()))
        })
        .collect()
}

/// Brings `price_daily` up to date for the days that [first, last] spans
/// (TimescaleDB flavour: a continuous-aggregate refresh, which must run
/// outside a transaction). Returns the number of day buckets covered.
pub async fn refresh_daily(
    pool: &PgPool,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
) -> anyhow::Result<i64> {
    let day = Duration::days(1);
    let start = first.duration_trunc(day).context("rounding to a day")?;
    let end = last.duration_trunc(day).context("rounding to a day")? + day;
    // Timestamps are formatted by chrono, not taken from input.
    let sql = format!(
        "CALL refresh_continuous_aggregate('price_daily', '{}'::timestamptz, '{}'::timestamptz)",
        start.to_rfc3339(),
        end.to_rfc3339()
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(pool)
        .await
        .context("refreshing the price_daily continuous aggregate")?;
    Ok((end - start).num_days())
}
