//! Scratch databases and tables for the benchmarks and the soak test, and
//! the psql baselines they are measured against.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::db;
use crate::ingest::Observation;
use crate::ingest::copy::BinaryCopy;
use shelfwatch_runtime::Secret;

/// A throwaway database on the configured server.
pub struct ScratchDb {
    admin: PgConnectOptions,
    name: String,
    pub pool: PgPool,
    pub url: String,
}

impl ScratchDb {
    /// Creates (or re-creates) database `name` and migrates it.
    pub async fn create(base_url: &Secret, name: &str) -> anyhow::Result<Self> {
        let base = db::connect_options(base_url.expose())?;
        let admin = base.clone().database("postgres");
        let admin_pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(admin.clone())
            .await
            .context("connecting to the postgres maintenance database")?;
        let quoted = db::quote_ident(name);
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {quoted}"
        )))
        .execute(&admin_pool)
        .await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {quoted}")))
            .execute(&admin_pool)
            .await
            .with_context(|| format!("creating database {name}"))?;
        admin_pool.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(base.clone().database(name))
            .await?;
        db::migrate(&pool).await?;
        let url = replace_database(base_url.expose(), name)?;
        Ok(Self {
            admin,
            name: name.to_owned(),
            pool,
            url,
        })
    }

    /// An existing database (kept by an earlier run), migrated if needed.
    pub async fn open(base_url: &Secret, name: &str) -> anyhow::Result<Self> {
        let base = db::connect_options(base_url.expose())?;
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(base.clone().database(name))
            .await
            .with_context(|| format!("opening database {name}"))?;
        db::migrate(&pool).await?;
        Ok(Self {
            admin: base.clone().database("postgres"),
            name: name.to_owned(),
            url: replace_database(base_url.expose(), name)?,
            pool,
        })
    }

    /// Closes the pool and drops the database, unless `keep`.
    pub async fn drop(self, keep: bool) -> anyhow::Result<()> {
        self.pool.close().await;
        if keep {
            eprintln!("kept database {}", self.name);
            return Ok(());
        }
        let admin_pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(self.admin)
            .await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {}",
            db::quote_ident(&self.name)
        )))
        .execute(&admin_pool)
        .await?;
        Ok(())
    }
}

fn replace_database(url: &str, name: &str) -> anyhow::Result<String> {
    let (head, tail) = url
        .rsplit_once('/')
        .context("the database URL has no /database part")?;
    let query = tail.split_once('?').map(|(_, q)| format!("?{q}"));
    Ok(format!("{head}/{name}{}", query.unwrap_or_default()))
}

/// Flushes dirty buffers so a timed phase does not pay for the previous
/// one's writes. Needs superuser; elsewhere it is skipped.
pub async fn checkpoint(pool: &PgPool) {
    if let Err(e) = sqlx::query("CHECKPOINT").execute(pool).await {
        tracing::debug!(error = %e, "CHECKPOINT skipped");
    }
}

/// Vacuums and analyses the database, or only `price_daily`.
pub async fn vacuum_analyze(pool: &PgPool, only_price_daily: bool) -> anyhow::Result<()> {
    let sql = if only_price_daily {
        "VACUUM ANALYZE price_daily"
    } else {
        "VACUUM ANALYZE"
    };
    sqlx::query(sql).execute(pool).await?;
    Ok(())
}

/// Rows in `price_daily`.
pub async fn count_daily(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM price_daily")
        .fetch_one(pool)
        .await?)
}

/// Rows in `price_observations`.
pub async fn count_observations(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM price_observations")
            .fetch_one(pool)
            .await?,
    )
}

/// Empties `price_observations` (listings and retailers stay) and makes
/// sure its partitions cover `first` to `last`: an identical table for the
/// COPY baseline.
pub async fn reset_observations(
    pool: &PgPool,
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM price_observations")
        .execute(pool)
        .await?;
    sqlx::query("SELECT shelfwatch_ensure_partitions($1, $2)")
        .bind(first)
        .bind(last)
        .execute(pool)
        .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct ListingKey {
    retailer_sku: String,
    id: i64,
}

/// Writes the same rows the ingest path stored as a binary COPY file for
/// the baseline ([`psql_copy_observations`]), with listing ids looked up in
/// `pool`.
pub async fn write_copy_file(
    pool: &PgPool,
    rows: &[Observation],
    path: &Path,
) -> anyhow::Result<()> {
    let ids: std::collections::HashMap<String, i64> =
        sqlx::query_as::<_, ListingKey>("SELECT retailer_sku, id FROM listings")
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|k| (k.retailer_sku, k.id))
            .collect();
    let mut enc = BinaryCopy::with_capacity(rows.len() * 100);
    for o in rows {
        let id = *ids.get(&o.sku).context("listing missing in baseline")?;
        enc.row(11)
            .int8(id)
            .timestamptz(o.observed_at)
            .int8(o.price_pence)
            .null()
            .null()
            .null()
            .text("none")
            .null()
            .int8(o.effective_price_pence())
            .bool(o.in_stock)
            .null();
    }
    std::fs::write(path, enc.finish()).with_context(|| format!("writing {}", path.display()))
}

/// The baseline of the ingest benchmark: psql's binary `\copy` of the file
/// [`write_copy_file`] wrote into `price_observations`. Returns its wall
/// time.
pub fn psql_copy_observations(url: &str, file: &Path) -> anyhow::Result<Duration> {
    psql(
        url,
        &format!(
            "\\copy price_observations (listing_id, observed_at, price_pence, \
             was_price_pence, unit_price_pence, unit_price_per, promo_kind, promo_text, \
             effective_price_pence, in_stock, scrape_run_id) FROM '{}' (FORMAT binary)",
            file.display()
        ),
    )
}

/// The table the import benchmark's baseline copies its CSV file into: the
/// file's columns, typed, keyed as observations are (listing, time).
pub async fn create_csv_table(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query(
        "CREATE TABLE bench_csv (
             retailer text NOT NULL, sku text NOT NULL, title text NOT NULL,
             observed_at timestamptz NOT NULL, price_pence bigint NOT NULL,
             promo_text text, in_stock boolean,
             PRIMARY KEY (retailer, sku, observed_at))",
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Rows in the import benchmark's baseline table.
pub async fn count_csv_table(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM bench_csv")
        .fetch_one(pool)
        .await?)
}

/// The baseline of the import benchmark: psql's `\copy` of the CSV file
/// (whose header is `columns`) into [`create_csv_table`]'s table. Returns
/// its wall time.
pub fn psql_copy_csv(url: &str, columns: &str, file: &Path) -> anyhow::Result<Duration> {
    psql(
        url,
        &format!(
            "\\copy bench_csv ({columns}) FROM '{}' (FORMAT csv, HEADER)",
            file.display()
        ),
    )
}

/// The baseline of the forecast's read: psql's `\copy` of the same query
/// to /dev/null. Returns its wall time.
pub fn psql_copy_daily_out(url: &str) -> anyhow::Result<Duration> {
    psql(
        url,
        "\\copy (SELECT listing_id, (extract(epoch FROM day) / 86400)::int, close_pence, \
         any_promo FROM price_daily ORDER BY listing_id, day) TO '/dev/null'",
    )
}

fn psql(url: &str, command: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", command])
        .output()
        .context("running psql (install postgresql-client)")?;
    let elapsed = started.elapsed();
    if !out.status.success() {
        bail!("psql failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(elapsed)
}

/// Fills an empty database with `listings` listings of one retailer and
/// `days` days of synthetic daily prices up to today, written straight into
/// `price_daily` (the forecast reads nothing else): a regular price per
/// listing, promotions of 3-7 days at 25% off on 14-, 21- or 28-day cycles.
/// Then vacuums and analyses `price_daily`.
pub async fn fill_price_daily(pool: &PgPool, listings: i64, days: i32) -> anyhow::Result<()> {
    grow_price_daily(pool, listings, days).await
}

/// [`fill_price_daily`] for a database that may already hold some of the
/// listings: adds listings until there are `listings`, each with `days`
/// days of prices, leaving the ones there as they are.
pub async fn grow_price_daily(pool: &PgPool, listings: i64, days: i32) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO retailers (slug, name) VALUES ('bench', 'bench') ON CONFLICT (slug) DO NOTHING",
    )
    .execute(pool)
    .await?;
    let (have, last_id): (i64, i64) =
        sqlx::query_as("SELECT count(*), coalesce(max(id), 0) FROM listings")
            .fetch_one(pool)
            .await?;
    sqlx::query(
        "INSERT INTO listings (retailer_id, retailer_sku, title, first_seen, last_seen)
         SELECT (SELECT id FROM retailers WHERE slug = 'bench'), 'sku-' || g, 'Product ' || g,
                now(), now()
         FROM generate_series($1 + 1, $2) g",
    )
    .bind(have)
    .bind(listings)
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO price_daily (listing_id, day, open_pence, close_pence, min_pence, max_pence,
             mean_pence, sum_pence, observations, promo_observations, any_promo,
             min_effective_pence, in_stock_observations, first_at, last_at)
         SELECT l.id, x.day, y.p, y.p, y.p, y.p, y.p, y.p, 1, x.promo::int, x.promo, y.p, 1,
                x.day + interval '8 hours', x.day + interval '8 hours'
         FROM listings l
         CROSS JOIN generate_series(0, $1 - 1) AS d
         CROSS JOIN LATERAL (SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                                    - ($1 - 1 - d) * interval '1 day' AS day,
                                    (d + l.id * 7) % (14 + (l.id % 3) * 7) < 3 + l.id % 5 AS promo) x
         CROSS JOIN LATERAL (SELECT CASE WHEN x.promo THEN (100 + l.id % 400) * 3 / 4
                                         ELSE 100 + l.id % 400 END AS p) y
         WHERE l.id > $2",
    )
    .bind(days)
    .bind(last_id)
    .execute(pool)
    .await?;
    vacuum_analyze(pool, true).await
}

/// Records a bare forecast run for the forecast benchmark's write phase;
/// returns its id.
pub async fn start_forecast_run(pool: &PgPool, model_version: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO forecast_runs (model_version, params) VALUES ($1, '{}') RETURNING id",
    )
    .bind(model_version)
    .fetch_one(pool)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_is_replaced_in_urls() {
        assert_eq!(
            replace_database("postgres://u:p@h:5/db?sslmode=disable", "x").unwrap(),
            "postgres://u:p@h:5/x?sslmode=disable"
        );
        assert_eq!(
            replace_database("postgres://u:p@h:5/db", "x").unwrap(),
            "postgres://u:p@h:5/x"
        );
    }
}
