//! Native flavour: `price_daily` maintained incrementally. The ingest path
//! aggregates the observations it has just inserted by (listing, UTC day)
//! and merges those deltas into `price_daily` in the same transaction:
//! open/close by timestamp, min/max, sums and counts added. The result is
//! what a full recomputation would give (the tests check exactly that).

use std::collections::HashMap;

use anyhow::Context;
use chrono::{DateTime, Duration, DurationRound, Utc};

use super::Observation;
use super::copy::BinaryCopy;
use shelfwatch_domain::promo::PromoKind;

/// One (listing, day) worth of newly inserted observations.
#[derive(Debug, Clone, PartialEq)]
pub struct DayDelta {
    pub listing_id: i64,
    pub day: DateTime<Utc>,
    pub open_pence: i64,
    pub close_pence: i64,
    pub min_pence: i64,
    pub max_pence: i64,
    pub sum_pence: i64,
    pub observations: i64,
    pub promo_observations: i64,
    pub min_effective_pence: i64,
    pub in_stock_observations: i64,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
}

fn day_of(t: DateTime<Utc>) -> DateTime<Utc> {
    // Truncation to whole days cannot fail for the years ingest accepts.
    t.duration_trunc(Duration::days(1)).unwrap_or(t)
}

/// Aggregates rows sorted by (listing id, observed_at) in one pass.
pub fn aggregate<'a>(rows: impl Iterator<Item = (i64, &'a Observation)>) -> Vec<DayDelta> {
    let mut out: Vec<DayDelta> = Vec::new();
    for (listing_id, o) in rows {
        let day = day_of(o.observed_at);
        let price = o.price_pence;
        let promo = i64::from(o.promo_kind() != PromoKind::None);
        let stock = i64::from(o.in_stock);
        let effective = o.effective_price_pence();
        match out.last_mut() {
            Some(d) if d.listing_id == listing_id && d.day == day => {
                // Rows arrive in time order within a day.
                d.close_pence = price;
                d.last_at = o.observed_at;
                d.min_pence = d.min_pence.min(price);
                d.max_pence = d.max_pence.max(price);
                d.sum_pence += price;
                d.observations += 1;
                d.promo_observations += promo;
                d.min_effective_pence = d.min_effective_pence.min(effective);
                d.in_stock_observations += stock;
            }
            _ => out.push(DayDelta {
                listing_id,
                day,
                open_pence: price,
                close_pence: price,
                min_pence: price,
                max_pence: price,
                sum_pence: price,
                observations: 1,
                promo_observations: promo,
                min_effective_pence: effective,
                in_stock_observations: stock,
                first_at: o.observed_at,
                last_at: o.observed_at,
            }),
        }
    }
    out
}

/// `price_daily`'s columns, in the order `encode` writes them.
const COLUMNS: &str = "listing_id, day, open_pence, close_pence, min_pence, max_pence, \
    mean_pence, sum_pence, observations, promo_observations, any_promo, min_effective_pence, \
    in_stock_observations, first_at, last_at";

const STAGE_DDL: &str =
    "CREATE TEMP TABLE IF NOT EXISTS daily_stage (LIKE price_daily) ON COMMIT DELETE ROWS";

const MERGE: &str = "
INSERT INTO price_daily AS d (listing_id, day, open_pence, close_pence, min_pence,
    max_pence, mean_pence, sum_pence, observations, promo_observations, any_promo,
    min_effective_pence, in_stock_observations, first_at, last_at)
SELECT listing_id, day, open_pence, close_pence, min_pence, max_pence, mean_pence,
       sum_pence, observations, promo_observations, any_promo, min_effective_pence,
       in_stock_observations, first_at, last_at
FROM daily_stage
ORDER BY listing_id, day
ON CONFLICT (listing_id, day) DO UPDATE SET
    open_pence = CASE WHEN EXCLUDED.first_at < d.first_at
                      THEN EXCLUDED.open_pence ELSE d.open_pence END,
    close_pence = CASE WHEN EXCLUDED.last_at > d.last_at
                       THEN EXCLUDED.close_pence ELSE d.close_pence END,
    min_pence = LEAST(d.min_pence, EXCLUDED.min_pence),
    max_pence = GREATEST(d.max_pence, EXCLUDED.max_pence),
    sum_pence = d.sum_pence + EXCLUDED.sum_pence,
    observations = d.observations + EXCLUDED.observations,
    mean_pence = (d.sum_pence + EXCLUDED.sum_pence)::float8
                 / (d.observations + EXCLUDED.observations),
    promo_observations = d.promo_observations + EXCLUDED.promo_observations,
    any_promo = d.any_promo OR EXCLUDED.any_promo,
    min_effective_pence = LEAST(d.min_effective_pence, EXCLUDED.min_effective_pence),
    in_stock_observations = d.in_stock_observations + EXCLUDED.in_stock_observations,
    first_at = LEAST(d.first_at, EXCLUDED.first_at),
    last_at = GREATEST(d.last_at, EXCLUDED.last_at)";

/// Merges the deltas into `price_daily`; returns the rows written.
///
/// `last_day` remembers, per listing, the latest day this process has
/// written. Deltas for later days are appends: they go in by one COPY
/// (inside a savepoint) with no merge work. If another writer got there
/// first the COPY fails on the key, is rolled back, and those deltas are
/// merged like the rest.
pub async fn merge(
    tx: &mut sqlx::PgConnection,
    deltas: &[DayDelta],
    last_day: &mut HashMap<i64, DateTime<Utc>>,
) -> anyhow::Result<u64> {
    let (appends, mut merges): (Vec<&DayDelta>, Vec<&DayDelta>) = deltas
        .iter()
        .partition(|d| last_day.get(&d.listing_id).is_some_and(|l| d.day > *l));
    let mut written = 0;
    if deltas.len() <= super::SMALL_BATCH {
        // Small batches (a scraped page): one statement, no COPY.
        let all: Vec<&DayDelta> = deltas.iter().collect();
        written = merge_small(tx, &all).await?;
        for d in deltas {
            let e = last_day.entry(d.listing_id).or_insert(d.day);
            *e = (*e).max(d.day);
        }
        return Ok(written);
    }
    if !appends.is_empty() {
        if append(tx, &appends).await? {
            written += appends.len() as u64;
        } else {
            merges.extend(appends);
        }
    }
    if !merges.is_empty() {
        merges.sort_by_key(|d| (d.listing_id, d.day));
        written += merge_staged(tx, &merges).await?;
    }
    for d in deltas {
        let e = last_day.entry(d.listing_id).or_insert(d.day);
        *e = (*e).max(d.day);
    }
    Ok(written)
}

/// The deltas as one binary COPY stream of `price_daily` rows.
fn encode(rows: &[&DayDelta]) -> Vec<u8> {
    let mut enc = BinaryCopy::with_capacity(rows.len() * 160);
    for d in rows {
        enc.row(15)
            .int8(d.listing_id)
            .timestamptz(d.day)
            .int8(d.open_pence)
            .int8(d.close_pence)
            .int8(d.min_pence)
            .int8(d.max_pence)
            .float8(d.sum_pence as f64 / d.observations as f64)
            .int8(d.sum_pence)
            .int8(d.observations)
            .int8(d.promo_observations)
            .bool(d.promo_observations > 0)
            .int8(d.min_effective_pence)
            .int8(d.in_stock_observations)
            .timestamptz(d.first_at)
            .timestamptz(d.last_at);
    }
    enc.finish()
}

async fn append(tx: &mut sqlx::PgConnection, rows: &[&DayDelta]) -> anyhow::Result<bool> {
    let sql = format!("COPY price_daily ({COLUMNS}) FROM STDIN (FORMAT binary)");
    super::copy_unless_duplicate(tx, &sql, &encode(rows))
        .await
        .context("appending daily rows")
}

async fn merge_staged(tx: &mut sqlx::PgConnection, deltas: &[&DayDelta]) -> anyhow::Result<u64> {
    sqlx::query(STAGE_DDL)
        .execute(&mut *tx)
        .await
        .context("creating the daily staging table")?;
    let sql = format!("COPY daily_stage ({COLUMNS}) FROM STDIN (FORMAT binary)");
    let mut copy = tx
        .copy_in_raw(&sql)
        .await
        .context("starting COPY of daily deltas")?;
    copy.send(encode(deltas).as_slice())
        .await
        .context("sending daily deltas")?;
    copy.finish()
        .await
        .context("finishing COPY of daily deltas")?;
    let done = sqlx::query(MERGE)
        .execute(&mut *tx)
        .await
        .context("merging daily deltas into price_daily")?;
    Ok(done.rows_affected())
}

/// [`MERGE`] with the deltas bound as arrays instead of staged by COPY.
/// A COPY costs the client's CopyData and CopyDone as two small writes,
/// which Nagle's algorithm and the server's delayed ACK hold up ~40 ms;
/// for a few rows that dwarfs the work.
async fn merge_small(tx: &mut sqlx::PgConnection, deltas: &[&DayDelta]) -> anyhow::Result<u64> {
    let sql = MERGE.replace(
        "FROM daily_stage",
        "FROM UNNEST($1::bigint[], $2::timestamptz[], $3::bigint[], $4::bigint[], \
         $5::bigint[], $6::bigint[], $7::float8[], $8::bigint[], $9::bigint[], $10::bigint[], \
         $11::boolean[], $12::bigint[], $13::bigint[], $14::timestamptz[], $15::timestamptz[]) \
         AS s(listing_id, day, open_pence, close_pence, min_pence, max_pence, mean_pence, \
         sum_pence, observations, promo_observations, any_promo, min_effective_pence, \
         in_stock_observations, first_at, last_at)",
    );
    let col = |f: fn(&DayDelta) -> i64| deltas.iter().map(|d| f(d)).collect::<Vec<i64>>();
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(col(|d| d.listing_id))
        .bind(deltas.iter().map(|d| d.day).collect::<Vec<_>>())
        .bind(col(|d| d.open_pence))
        .bind(col(|d| d.close_pence))
        .bind(col(|d| d.min_pence))
        .bind(col(|d| d.max_pence))
        .bind(
            deltas
                .iter()
                .map(|d| d.sum_pence as f64 / d.observations as f64)
                .collect::<Vec<f64>>(),
        )
        .bind(col(|d| d.sum_pence))
        .bind(col(|d| d.observations))
        .bind(col(|d| d.promo_observations))
        .bind(
            deltas
                .iter()
                .map(|d| d.promo_observations > 0)
                .collect::<Vec<bool>>(),
        )
        .bind(col(|d| d.min_effective_pence))
        .bind(col(|d| d.in_stock_observations))
        .bind(deltas.iter().map(|d| d.first_at).collect::<Vec<_>>())
        .bind(deltas.iter().map(|d| d.last_at).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await
        .context("merging daily deltas into price_daily")?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use shelfwatch_domain::retailer::RetailerSlug;

    fn obs(h: u32, d: u32, price: i64) -> Observation {
        Observation::new(
            RetailerSlug::parse("t").unwrap(),
            "s",
            "x",
            Utc.with_ymd_and_hms(2026, 1, d, h, 0, 0).unwrap(),
            price,
        )
    }

    #[test]
    fn groups_consecutive_rows_by_listing_and_day() {
        let rows = [obs(8, 1, 120), obs(20, 1, 100), obs(8, 2, 90)];
        let mut out_of_stock = obs(9, 2, 80);
        out_of_stock.in_stock = false;
        let input: Vec<(i64, &Observation)> = vec![
            (1, &rows[0]),
            (1, &rows[1]),
            (1, &rows[2]),
            (2, &out_of_stock),
        ];
        let d = aggregate(input.into_iter());
        assert_eq!(d.len(), 3);
        assert_eq!(
            (
                d[0].open_pence,
                d[0].close_pence,
                d[0].min_pence,
                d[0].max_pence
            ),
            (120, 100, 100, 120)
        );
        assert_eq!((d[0].sum_pence, d[0].observations), (220, 2));
        assert_eq!(d[1].observations, 1);
        assert_eq!((d[2].listing_id, d[2].in_stock_observations), (2, 0));
        assert_eq!(d[0].day, Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
    }
}
