//! The TimescaleDB flavour, against a real TimescaleDB (the WebAssembly
//! build that `.ci/run` starts: `tools/timescale/server.mjs`). It takes one
//! connection at a time, so this is one sequential test on its own pool.
//! Set TIMESCALE_TEST_URL to run it; CI always does.

use chrono::{Duration, TimeZone, Utc};
use shelfwatch_store::db::{self, Flavour};
use shelfwatch_store::ingest::Ingestor;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;

use crate::ingest::obs;
use crate::support::TestDb;

type DailyRow = (String, String, i64, i64, i64, i64, i64, bool, i64);

const DAILY: &str = "SELECT r.slug, to_char(d.day AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
        d.open_pence, d.close_pence, d.min_pence, d.max_pence, d.observations, d.any_promo,
        d.min_effective_pence
    FROM price_daily d JOIN listings l ON l.id = d.listing_id
    JOIN retailers r ON r.id = l.retailer_id
    ORDER BY 1, 2";

#[tokio::test]
async fn timescaledb_flavour_matches_native() {
    let Ok(url) = std::env::var("TIMESCALE_TEST_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must set TIMESCALE_TEST_URL (see .ci/run)"
        );
        eprintln!("SKIPPED: TIMESCALE_TEST_URL is not set");
        return;
    };
    let ts = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(120))
        .connect_with(PgConnectOptions::from_str(&url).unwrap())
        .await
        .unwrap();
    assert_eq!(db::migrate(&ts).await.unwrap(), Flavour::Timescale);
    // Migrating again is a no-op.
    assert_eq!(db::migrate(&ts).await.unwrap(), Flavour::Timescale);
    let hypertables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM timescaledb_information.hypertables
         WHERE hypertable_name = 'price_observations'",
    )
    .fetch_one(&ts)
    .await
    .unwrap();
    assert_eq!(hypertables, 1);
    let caggs: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM timescaledb_information.continuous_aggregates
         WHERE view_name = 'price_daily'",
    )
    .fetch_one(&ts)
    .await
    .unwrap();
    assert_eq!(caggs, 1);
    // The release docker-compose.yml runs is the one tested here.
    let version: String =
        sqlx::query_scalar("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
            .fetch_one(&ts)
            .await
            .unwrap();
    let tested = crate::observability::TIMESCALEDB_TESTED;
    assert!(
        version.starts_with(&format!("{tested}.")),
        "TimescaleDB {version} here, {tested} in docker-compose.yml"
    );

    let native = TestDb::new().await;
    let t0 = Utc.with_ymd_and_hms(2026, 2, 1, 6, 0, 0).unwrap();
    let mut rows = Vec::new();
    for i in 0..60 {
        let mut o = obs(
            if i % 2 == 0 { "tesco" } else { "aldi" },
            "beans",
            t0 + Duration::hours(i * 7),
            100 + (i * 13) % 30,
        );
        if i % 5 == 0 {
            o.promo = Some(shelfwatch_domain::promo::parse_promo("2 for £1.50").unwrap());
        }
        rows.push(o);
    }
    for pool in [&ts, &native.pool] {
        let mut ing = Ingestor::new(pool.clone()).await.unwrap();
        // Out of order, then everything again.
        let (a, b) = rows.split_at(35);
        assert_eq!(ing.ingest(b).await.unwrap().inserted, 25);
        assert_eq!(ing.ingest(a).await.unwrap().inserted, 35);
        let again = ing.ingest(&rows).await.unwrap();
        assert_eq!((again.inserted, again.duplicates), (0, 60));
    }
    let from_ts: Vec<DailyRow> = sqlx::query_as(DAILY).fetch_all(&ts).await.unwrap();
    let from_native: Vec<DailyRow> = sqlx::query_as(DAILY).fetch_all(&native.pool).await.unwrap();
    assert!(!from_ts.is_empty());
    assert_eq!(from_ts, from_native);

    // The forecast job reads the continuous aggregate like the table.
    let params = shelfwatch_forecast::Params::default();
    let shard = shelfwatch_forecast::load::Shard::ALL;
    let run = shelfwatch_forecast::run_once(&ts, &params, shard)
        .await
        .unwrap();
    let shelfwatch_forecast::RunOutcome::Completed { run_id, series } = run else {
        panic!("{run:?}");
    };
    assert_eq!(series, 2);
    assert_eq!(
        shelfwatch_forecast::run_once(&ts, &params, shard)
            .await
            .unwrap(),
        shelfwatch_forecast::RunOutcome::Unchanged { run_id }
    );
}
