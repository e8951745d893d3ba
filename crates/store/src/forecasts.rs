//! Forecast runs, forecasts and recommendations: what the batch job reads
//! and writes.
//!
//! The job reads `price_daily` through `COPY (SELECT ...) TO STDOUT`,
//! parsed straight from the stream ([`read_daily`]), a chunk of listings at
//! a time, and writes each chunk's results with binary COPY into one
//! transaction per run ([`RunWriter`]), which marks the run succeeded at the
//! end: a run that fails half way leaves nothing behind.

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use serde::Serialize;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use crate::ingest::copy::BinaryCopy;
use shelfwatch_domain::action::Action;

/// Which listings a run covers: those whose id is `index` modulo `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Reads `i/n` with 0 <= i < n.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let (i, n) = text
            .split_once('/')
            .with_context(|| format!("shard {text:?} is not of the form i/n (e.g. 0/4)"))?;
        let index: u32 = i
            .trim()
            .parse()
            .with_context(|| format!("shard {text:?}: {i:?} is not a number"))?;
        let count: u32 = n
            .trim()
            .parse()
            .with_context(|| format!("shard {text:?}: {n:?} is not a number"))?;
        if count == 0 || index >= count {
            bail!("shard {text:?}: need 0 <= i < n");
        }
        Ok(Self { index, count })
    }

    /// The condition selecting the shard's rows by `column`.
    fn sql_filter(&self, column: &str) -> String {
        if self.count == 1 {
            "TRUE".to_owned()
        } else {
            format!("{column} % {} = {}", self.count, self.index)
        }
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Which listings' daily rows to read.
#[derive(Debug, Clone, Copy)]
pub enum Listings<'a> {
    /// Every listing of the shard.
    Shard(Shard),
    /// The shard's listings with ids in `first..=last` (one key range of
    /// the primary key, so the index gives the rows in order).
    Range { shard: Shard, first: i64, last: i64 },
    /// These listings.
    Ids(&'a [i64]),
}

impl Listings<'_> {
    /// The condition selecting the rows by `column`.
    fn sql_filter(&self, column: &str) -> String {
        match self {
            Listings::Shard(shard) => shard.sql_filter(column),
            Listings::Range { shard, first, last } => format!(
                "{column} BETWEEN {first} AND {last} AND {}",
                shard.sql_filter(column)
            ),
            Listings::Ids([]) => "FALSE".to_owned(),
            Listings::Ids(ids) => {
                let list: Vec<String> = ids.iter().map(i64::to_string).collect();
                format!("{column} = ANY('{{{}}}'::bigint[])", list.join(","))
            }
        }
    }
}

/// Every listing's id, ascending.
pub async fn listing_ids(pool: &PgPool) -> anyhow::Result<Vec<i64>> {
    sqlx::query_scalar("SELECT id FROM listings ORDER BY id")
        .fetch_all(pool)
        .await
        .context("listing the listings")
}

/// The latest succeeded run whose inputs had this fingerprint.
pub async fn succeeded_run_with_fingerprint(
    pool: &PgPool,
    fingerprint: &str,
) -> anyhow::Result<Option<i64>> {
    sqlx::query_scalar(
        "SELECT id FROM forecast_runs WHERE status = 'succeeded' AND input_fingerprint = $1
         ORDER BY id DESC LIMIT 1",
    )
    .bind(fingerprint)
    .fetch_optional(pool)
    .await
    .context("looking for an identical earlier run")
}

/// What a shard's `price_daily` holds, summed: equal summaries mean equal
/// inputs to a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct DailySummary {
    pub rows: i64,
    pub observations: i64,
    pub sum_pence: i64,
    pub last_at: Option<DateTime<Utc>>,
}

/// Summarises the `price_daily` rows of `listings`.
pub async fn daily_summary(pool: &PgPool, listings: Listings<'_>) -> anyhow::Result<DailySummary> {
    let sql = format!(
        "SELECT count(*) AS rows, coalesce(sum(observations), 0)::bigint AS observations, \
         coalesce(sum(sum_pence), 0)::bigint AS sum_pence, max(last_at) AS last_at \
         FROM price_daily WHERE {}",
        listings.sql_filter("listing_id")
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_one(pool)
        .await
        .context("summarising price_daily")
}

/// The last day with data in the shard.
pub async fn latest_day(pool: &PgPool, shard: Shard) -> anyhow::Result<Option<DateTime<Utc>>> {
    let sql = format!(
        "SELECT max(day) FROM price_daily WHERE {}",
        shard.sql_filter("listing_id")
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(pool)
        .await
        .context("finding the latest day of price_daily")
}

/// One row of `price_daily` as the forecast reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DailyClose {
    pub listing_id: i64,
    /// Days since 1970-01-01.
    pub day: i32,
    pub close_pence: f64,
    pub any_promo: bool,
}

/// Streams the daily closes of `listings` before day `until_day + 1` (days
/// since 1970-01-01), sorted by (listing, day), to `row`, over `conn`: one
/// text-format COPY out, parsed line by line as it arrives, with nothing
/// buffered beyond the current network chunk.
pub async fn read_daily(
    conn: &mut PgConnection,
    listings: Listings<'_>,
    until_day: i32,
    mut row: impl FnMut(DailyClose),
) -> anyhow::Result<()> {
    let sql = format!(
        "COPY (SELECT listing_id, (extract(epoch FROM day) / 86400)::int, close_pence, any_promo \
         FROM price_daily WHERE day < to_timestamp({}) AND {} ORDER BY listing_id, day) \
         TO STDOUT",
        (i64::from(until_day) + 1) * 86_400,
        listings.sql_filter("listing_id")
    );
    let mut stream = conn
        .copy_out_raw(&sql)
        .await
        .context("reading price_daily")?;
    let mut carry: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.try_next().await.context("reading price_daily")? {
        carry.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(end) = carry[start..].iter().position(|b| *b == b'\n') {
            row(parse_daily_line(&carry[start..start + end])?);
            start += end + 1;
        }
        carry.drain(..start);
    }
    if !carry.is_empty() {
        row(parse_daily_line(&carry)?);
    }
    Ok(())
}

/// One line of [`read_daily`]'s COPY: listing, day, close, promo, by tabs.
fn parse_daily_line(line: &[u8]) -> anyhow::Result<DailyClose> {
    let text = std::str::from_utf8(line).context("price_daily COPY output is not UTF-8")?;
    let mut f = text.split('\t');
    let (Some(l), Some(d), Some(p), Some(pr)) = (f.next(), f.next(), f.next(), f.next()) else {
        bail!("unexpected price_daily COPY line {text:?}");
    };
    Ok(DailyClose {
        listing_id: l.parse().context("listing id")?,
        day: d.parse().context("day")?,
        close_pence: p.parse().context("close price")?,
        any_promo: pr == "t",
    })
}

/// A listing's latest observation: what its shelf showed last.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LatestObservation {
    pub listing_id: i64,
    pub price_pence: i64,
    pub was_price_pence: Option<i64>,
    pub promo_text: Option<String>,
    pub effective_price_pence: i64,
    pub in_stock: bool,
}

/// The latest observation of each of `listing_ids` before `until`.
pub async fn latest_observations<'c>(
    db: impl sqlx::PgExecutor<'c>,
    listing_ids: &[i64],
    until: DateTime<Utc>,
) -> anyhow::Result<Vec<LatestObservation>> {
    sqlx::query_as(
        "SELECT l.id AS listing_id, o.price_pence, o.was_price_pence, o.promo_text,
                o.effective_price_pence, o.in_stock
         FROM unnest($1::bigint[]) AS l(id)
         CROSS JOIN LATERAL (
             SELECT price_pence, was_price_pence, promo_text, effective_price_pence, in_stock
             FROM price_observations
             WHERE listing_id = l.id AND observed_at < $2
             ORDER BY observed_at DESC LIMIT 1) o",
    )
    .bind(listing_ids)
    .bind(until)
    .fetch_all(db)
    .await
    .context("reading what the shelves show today")
}

/// A run about to be computed.
#[derive(Debug, Clone, Copy)]
pub struct NewRun<'a, P> {
    pub model_version: &'a str,
    /// Stored as JSON.
    pub params: &'a P,
    pub as_of: DateTime<Utc>,
    pub shard: Shard,
    pub input_fingerprint: &'a str,
}

/// Records a run as running; returns its id.
pub async fn start_run<P: Serialize + Sync>(
    pool: &PgPool,
    run: &NewRun<'_, P>,
) -> anyhow::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO forecast_runs (model_version, params, as_of, shard, input_fingerprint)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(run.model_version)
    .bind(sqlx::types::Json(run.params))
    .bind(run.as_of)
    .bind(run.shard.to_string())
    .bind(run.input_fingerprint)
    .fetch_one(pool)
    .await
    .context("recording the forecast run")
}

/// Marks a run failed with `message`. (Its results were never committed.)
pub async fn fail_run(pool: &PgPool, run_id: i64, message: &str) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE forecast_runs SET status = 'failed', finished_at = now(), message = $2
         WHERE id = $1",
    )
    .bind(run_id)
    .bind(message)
    .execute(pool)
    .await
    .context("marking the forecast run failed")?;
    Ok(())
}

/// One day of a listing's forecast path, in pence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForecastDay {
    pub predicted_pence: i64,
    pub lower_pence: i64,
    pub upper_pence: i64,
}

/// A listing's recommendation and forecast path, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    pub listing_id: i64,
    pub action: Action,
    /// The claim, in words.
    pub claim: String,
    pub current_pence: i64,
    pub regular_pence: i64,
    pub expected_change_pence: i64,
    pub confidence: f64,
    pub message: String,
    /// Days 1, 2, ... after `as_of`.
    pub path: Vec<ForecastDay>,
}

/// Writes a run's recommendations and forecasts, with binary COPY, and
/// marks it succeeded with its confidence models (stored as JSON in its
/// params), in one transaction. Returns how many listings were written.
pub async fn store_results<M: Serialize + Sync>(
    pool: &PgPool,
    run_id: i64,
    as_of: DateTime<Utc>,
    recommendations: &[Recommendation],
    models: &M,
) -> anyhow::Result<usize> {
    let mut writer = RunWriter::begin(pool, run_id, as_of).await?;
    writer.write(recommendations).await?;
    writer.finish(models, &serde_json::json!({})).await
}

/// A transaction for reading `price_daily` a chunk of listings at a time:
/// repeatable read, so every chunk sees the same data, and planned for
/// chunk reads, each an index scan in key order over its listings.
/// (Otherwise the planner may pick a whole-table scan and a sort for a
/// chunk that is a few percent of the table, once per chunk, and
/// JIT-compile each query.)
pub async fn begin_chunked_reads(pool: &PgPool) -> anyhow::Result<Transaction<'static, Postgres>> {
    let mut tx = pool
        .begin()
        .await
        .context("opening the run's transaction")?;
    for setting in [
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
        "SET LOCAL enable_seqscan = off",
        "SET LOCAL enable_sort = off",
        "SET LOCAL jit = off",
        "SET LOCAL max_parallel_workers_per_gather = 0",
    ] {
        sqlx::query(setting)
            .execute(&mut *tx)
            .await
            .context("opening the run's transaction")?;
    }
    Ok(tx)
}

/// A run's results, written a chunk at a time into one transaction that
/// [`RunWriter::finish`] commits with the run marked succeeded. Dropped
/// unfinished (an error, a panic), it rolls back: no reader ever sees part
/// of a run. The run's reads can go through the same connection
/// ([`RunWriter::conn`]), so the whole run needs one.
pub struct RunWriter {
    tx: Transaction<'static, Postgres>,
    run_id: i64,
    as_of: DateTime<Utc>,
    written: usize,
}

impl RunWriter {
    /// Opens the run's transaction ([`begin_chunked_reads`]).
    pub async fn begin(pool: &PgPool, run_id: i64, as_of: DateTime<Utc>) -> anyhow::Result<Self> {
        let tx = begin_chunked_reads(pool).await?;
        Ok(Self {
            tx,
            run_id,
            as_of,
            written: 0,
        })
    }

    /// The transaction's connection, for the run's reads.
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Listings written so far.
    pub fn written(&self) -> usize {
        self.written
    }

    /// Adds `recommendations` and their forecast paths to the run.
    pub async fn write(&mut self, recommendations: &[Recommendation]) -> anyhow::Result<()> {
        if recommendations.is_empty() {
            return Ok(());
        }
        let (run_id, as_of) = (self.run_id, self.as_of);
        let days: usize = recommendations.iter().map(|r| r.path.len()).sum();
        let mut rec = BinaryCopy::with_capacity(recommendations.len() * 200);
        let mut fc = BinaryCopy::with_capacity(days * 60);
        for r in recommendations {
            rec.row(10)
                .int8(run_id)
                .int8(r.listing_id)
                .timestamptz(as_of)
                .text(r.action.as_str())
                .text(&r.claim)
                .int8(r.current_pence)
                .int8(r.regular_pence)
                .int8(r.expected_change_pence)
                .float8(r.confidence)
                .text(&r.message);
            for (h, point) in r.path.iter().enumerate() {
                fc.row(6)
                    .int8(run_id)
                    .int8(r.listing_id)
                    .timestamptz(as_of + chrono::Duration::days(h as i64 + 1))
                    .int8(point.predicted_pence)
                    .int8(point.lower_pence)
                    .int8(point.upper_pence);
            }
        }
        for (sql, bytes) in [
            (
                "COPY recommendations (run_id, listing_id, as_of, action, claim, current_pence, \
                 regular_pence, expected_change_pence, confidence, message) \
                 FROM STDIN (FORMAT binary)",
                rec.finish(),
            ),
            (
                "COPY forecasts (run_id, listing_id, day, predicted_pence, lower_pence, \
                 upper_pence) FROM STDIN (FORMAT binary)",
                fc.finish(),
            ),
        ] {
            let mut copy = self.tx.copy_in_raw(sql).await.context("storing results")?;
            copy.send(bytes.as_slice())
                .await
                .context("storing results")?;
            copy.finish().await.context("storing results")?;
        }
        self.written += recommendations.len();
        Ok(())
    }

    /// Marks the run succeeded with `models` and `extra` (merged into its
    /// params), files its recommendations for the page, announces it and
    /// commits. Returns how many listings were written.
    pub async fn finish<M: Serialize + Sync>(
        mut self,
        models: &M,
        extra: &serde_json::Value,
    ) -> anyhow::Result<usize> {
        let run_id = self.run_id;
        // Back to the usual plans for the statements over the whole run.
        sqlx::raw_sql(
            "RESET enable_seqscan; RESET enable_sort; RESET jit; \
             RESET max_parallel_workers_per_gather",
        )
        .execute(&mut *self.tx)
        .await
        .context("finishing the forecast run")?;
        sqlx::query(
            "UPDATE forecast_runs SET status = 'succeeded', finished_at = now(), series = $2,
                 params = params || jsonb_build_object('confidence_models', $3::jsonb)
                          || $4::jsonb
             WHERE id = $1",
        )
        .bind(run_id)
        .bind(i32::try_from(self.written).unwrap_or(i32::MAX))
        .bind(sqlx::types::Json(models))
        .bind(sqlx::types::Json(extra))
        .execute(&mut *self.tx)
        .await
        .context("finishing the forecast run")?;
        // File each recommendation under its retailer and category, the
        // columns the recommendations page filters on.
        sqlx::query(
            "UPDATE recommendations rc
             SET retailer_id = l.retailer_id, category = lower(p.category)
             FROM listings l
             LEFT JOIN products p ON p.id = l.product_id
             WHERE rc.run_id = $1 AND l.id = rc.listing_id",
        )
        .bind(run_id)
        .execute(&mut *self.tx)
        .await
        .context("filing the recommendations for the page")?;
        crate::notify::notify(
            &mut *self.tx,
            crate::recommendations::FORECAST_RUNS,
            &run_id.to_string(),
        )
        .await
        .context("announcing the forecast run")?;
        self.tx
            .commit()
            .await
            .context("committing the forecast run")?;
        Ok(self.written)
    }
}

/// A one-line query to try on the recommendations, for people at a psql
/// prompt.
pub const TRY_IN_PSQL: &str =
    "SELECT action, confidence, message FROM recommendations ORDER BY confidence DESC LIMIT 5";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_filter() {
        assert_eq!(Shard::parse("1/4").unwrap(), Shard { index: 1, count: 4 });
        assert!(Shard::parse("4/4").is_err());
        assert!(Shard::parse("x").is_err());
        assert_eq!(Shard::ALL.sql_filter("l"), "TRUE");
        assert_eq!(Shard::parse("2/3").unwrap().sql_filter("l"), "l % 3 = 2");
        let range = Listings::Range {
            shard: Shard { index: 1, count: 2 },
            first: 5,
            last: 9,
        };
        assert_eq!(range.sql_filter("l"), "l BETWEEN 5 AND 9 AND l % 2 = 1");
        assert_eq!(
            Listings::Ids(&[3, 4]).sql_filter("l"),
            "l = ANY('{3,4}'::bigint[])"
        );
        assert_eq!(Listings::Ids(&[]).sql_filter("l"), "FALSE");
    }

    #[test]
    fn daily_lines_parse_by_tabs() {
        assert_eq!(
            parse_daily_line(b"7\t19000\t123.5\tt").unwrap(),
            DailyClose {
                listing_id: 7,
                day: 19000,
                close_pence: 123.5,
                any_promo: true,
            }
        );
        assert!(!parse_daily_line(b"7\t19000\t123.5\tf").unwrap().any_promo);
        assert!(parse_daily_line(b"7\t19000").is_err());
    }
}
