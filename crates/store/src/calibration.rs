//! The reliability table a forecast run stores beside its results
//! (`forecast_calibration`): stated confidence against how often the claims
//! came true, measured out of sample when the run is made.

use anyhow::Context;
use chrono::NaiveDate;
use sqlx::{PgConnection, PgPool};

/// One confidence bin of one action ("all" for every claim).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CalibrationBin {
    pub action: String,
    pub bin_low: f64,
    pub bin_high: f64,
    pub stated_mean: f64,
    pub observed_rate: f64,
    pub n: i32,
    pub claims_from: NaiveDate,
    pub claims_until: NaiveDate,
}

/// Stores run `run_id`'s reliability table, replacing any it had.
/// Runs on the caller's connection (the forecast run's transaction).
pub async fn store(
    conn: &mut PgConnection,
    run_id: i64,
    bins: &[CalibrationBin],
) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM forecast_calibration WHERE run_id = $1")
        .bind(run_id)
        .execute(&mut *conn)
        .await
        .context("replacing the run's reliability table")?;
    let column = |f: fn(&CalibrationBin) -> f64| bins.iter().map(f).collect::<Vec<f64>>();
    sqlx::query(
        "INSERT INTO forecast_calibration (run_id, action, bin_low, bin_high, stated_mean,
             observed_rate, n, claims_from, claims_until)
         SELECT $1, * FROM unnest($2::text[], $3::float8[], $4::float8[], $5::float8[],
             $6::float8[], $7::int4[], $8::date[], $9::date[])",
    )
    .bind(run_id)
    .bind(bins.iter().map(|b| b.action.clone()).collect::<Vec<_>>())
    .bind(column(|b| b.bin_low))
    .bind(column(|b| b.bin_high))
    .bind(column(|b| b.stated_mean))
    .bind(column(|b| b.observed_rate))
    .bind(bins.iter().map(|b| b.n).collect::<Vec<_>>())
    .bind(bins.iter().map(|b| b.claims_from).collect::<Vec<_>>())
    .bind(bins.iter().map(|b| b.claims_until).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await
    .context("storing the run's reliability table")?;
    Ok(())
}

/// Run `run_id`'s reliability table, by action and bin.
pub async fn for_run(pool: &PgPool, run_id: i64) -> anyhow::Result<Vec<CalibrationBin>> {
    sqlx::query_as(
        "SELECT action, bin_low, bin_high, stated_mean, observed_rate, n, claims_from,
                claims_until
         FROM forecast_calibration WHERE run_id = $1 ORDER BY action, bin_low",
    )
    .bind(run_id)
    .fetch_all(pool)
    .await
    .context("reading the run's reliability table")
}
