use chrono::{DateTime, Duration, TimeZone, Utc};
use shelfwatch_domain::promo::parse_promo;
use shelfwatch_domain::quantity::parse_pack;
use shelfwatch_domain::retailer::RetailerSlug;
use shelfwatch_store::ingest::{Ingestor, Observation};
use sqlx::PgPool;

use crate::support::TestDb;

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, day, hour, 0, 0).unwrap()
}

pub fn obs(retailer: &str, sku: &str, t: DateTime<Utc>, price: i64) -> Observation {
    Observation::new(
        RetailerSlug::parse(retailer).unwrap(),
        sku,
        format!("Title of {sku}"),
        t,
        price,
    )
}

/// Rows of price_daily that differ from a full recomputation over
/// price_observations (both directions). Zero means the incremental
/// maintenance is exact.
pub async fn daily_mismatches(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "WITH full_agg AS (
            SELECT listing_id, time_bucket('1 day', observed_at) AS day,
                   (array_agg(price_pence ORDER BY observed_at))[1] AS open_pence,
                   (array_agg(price_pence ORDER BY observed_at DESC))[1] AS close_pence,
                   min(price_pence) AS min_pence, max(price_pence) AS max_pence,
                   round(avg(price_pence)::numeric, 6) AS mean_pence,
                   sum(price_pence)::bigint AS sum_pence, count(*) AS observations,
                   count(*) FILTER (WHERE promo_kind <> 'none') AS promo_observations,
                   bool_or(promo_kind <> 'none') AS any_promo,
                   min(effective_price_pence) AS min_effective_pence,
                   count(*) FILTER (WHERE in_stock) AS in_stock_observations,
                   min(observed_at) AS first_at, max(observed_at) AS last_at
            FROM price_observations GROUP BY 1, 2),
         stored AS (
            SELECT listing_id, day, open_pence, close_pence, min_pence, max_pence,
                   round(mean_pence::numeric, 6), sum_pence, observations, promo_observations,
                   any_promo, min_effective_pence, in_stock_observations, first_at, last_at
            FROM price_daily)
         SELECT (SELECT count(*) FROM (SELECT * FROM full_agg EXCEPT SELECT * FROM stored) a)
              + (SELECT count(*) FROM (SELECT * FROM stored EXCEPT SELECT * FROM full_agg) b)",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn stores_observations_and_daily_aggregates() {
    let db = TestDb::new().await;
    let mut ing = Ingestor::new(db.pool.clone()).await.unwrap();
    let batch = vec![
        obs("tesco", "a", at(2, 8), 120),
        obs("tesco", "a", at(2, 18), 100),
        obs("tesco", "a", at(3, 8), 110),
        obs("aldi", "a", at(2, 9), 95),
    ];
    let r = ing.ingest(&batch).await.unwrap();
    assert_eq!((r.received, r.inserted, r.duplicates), (4, 4, 0));
    assert_eq!(r.days_refreshed, 3);
    assert_eq!(count(&db.pool, "SELECT count(*) FROM listings").await, 2);
    let (open, close, min, max, mean, n): (i64, i64, i64, i64, f64, i64) = sqlx::query_as(
        "SELECT open_pence, close_pence, min_pence, max_pence, mean_pence, observations
         FROM price_daily d JOIN listings l ON l.id = d.listing_id
         JOIN retailers r ON r.id = l.retailer_id
         WHERE r.slug = 'tesco' AND d.day = '2026-01-02Z'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((open, close, min, max, n), (120, 100, 100, 120, 2));
    assert!((mean - 110.0).abs() < 1e-9);
    assert_eq!(daily_mismatches(&db.pool).await, 0);
}

#[tokio::test]
async fn sending_the_same_observations_twice_stores_them_once() {
    let db = TestDb::new().await;
    let mut ing = Ingestor::new(db.pool.clone()).await.unwrap();
    let batch: Vec<_> = (1..=20)
        .map(|d| obs("tesco", "beans", at(d, 12), 100 + i64::from(d)))
        .collect();
    ing.ingest(&batch).await.unwrap();
    let again = ing.ingest(&batch).await.unwrap();
    assert_eq!((again.inserted, again.duplicates), (0, 20));
    assert_eq!(again.days_refreshed, 0);
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM price_observations").await,
        20
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT sum(observations)::bigint FROM price_daily"
        )
        .await,
        20
    );
    // A fresh ingestor (another process) sending them again changes nothing.
    let mut other = Ingestor::new(db.pool.clone()).await.unwrap();
    assert_eq!(other.ingest(&batch).await.unwrap().inserted, 0);
    assert_eq!(daily_mismatches(&db.pool).await, 0);
}

#[tokio::test]
async fn out_of_order_and_overlapping_batches_keep_daily_exact() {
    let db = TestDb::new().await;
    let mut ing = Ingestor::new(db.pool.clone()).await.unwrap();
    // A deterministic shuffle of 3 listings x 10 days x 4 scrapes, sent in
    // overlapping batches, later observations sometimes first.
    let mut all = Vec::new();
    for l in 0..3 {
        for d in 1..=10 {
            for h in [6, 12, 18, 23] {
                let price = 100 + ((l * 31 + d * 7 + h) % 40) as i64;
                let mut o = obs("tesco", &format!("sku{l}"), at(d, h), price);
                if (d + h) % 5 == 0 {
                    o.promo = Some(parse_promo("2 for £1.50").unwrap());
                    o.promo_text = Some("2 for £1.50".into());
                }
                o.in_stock = h != 23 || d % 3 != 0;
                all.push(o);
            }
        }
    }
    let mut seed = 42u64;
    for i in (1..all.len()).rev() {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        all.swap(i, (seed >> 33) as usize % (i + 1));
    }
    let mut stored = 0;
    for window in all.chunks(17).collect::<Vec<_>>().windows(2) {
        // Each batch re-sends the previous chunk too.
        let batch: Vec<_> = window.concat();
        stored += ing.ingest(&batch).await.unwrap().inserted;
    }
    assert_eq!(stored as usize, all.len());
    assert_eq!(daily_mismatches(&db.pool).await, 0);
    let promo_days = count(&db.pool, "SELECT count(*) FROM price_daily WHERE any_promo").await;
    assert!(promo_days > 0);
}

#[tokio::test]
async fn promotions_units_and_listing_details_are_stored() {
    let db = TestDb::new().await;
    let mut ing = Ingestor::new(db.pool.clone()).await.unwrap();
    let mut a = obs("tesco", "beans", at(5, 8), 120);
    a.pack = Some(parse_pack("4 x 415g").unwrap());
    a.promo = Some(parse_promo("Was £1.50 Now £1.20").unwrap());
    a.promo_text = Some("Was £1.50 Now £1.20".into());
    a.url = Some("http://shop/beans".into());
    let mut b = obs("tesco", "beans", at(6, 8), 150);
    b.title = "Heinz Beanz 4x415g (new title)".into();
    b.promo = Some(parse_promo("Clubcard Price £1.00").unwrap());
    ing.ingest(&[b, a]).await.unwrap();

    let (was, unit, per, kind, eff): (Option<i64>, Option<i64>, Option<String>, String, i64) =
        sqlx::query_as(
            "SELECT was_price_pence, unit_price_pence, unit_price_per, promo_kind,
                    effective_price_pence
             FROM price_observations WHERE observed_at = '2026-01-05 08:00Z'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(was, Some(150));
    // 120p for 1660 g is 72.3p per kg.
    assert_eq!((unit, per.as_deref()), (Some(72), Some("kg")));
    assert_eq!((kind.as_str(), eff), ("price_cut", 120));
    let (kind, eff): (String, i64) = sqlx::query_as(
        "SELECT promo_kind, effective_price_pence FROM price_observations
         WHERE observed_at = '2026-01-06 08:00Z'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((kind.as_str(), eff), ("loyalty", 100));
    let (title, url, each, first, last): (
        String,
        Option<String>,
        Option<i64>,
        DateTime<Utc>,
        DateTime<Utc>,
    ) = sqlx::query_as("SELECT title, url, pack_each, first_seen, last_seen FROM listings")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(title, "Heinz Beanz 4x415g (new title)", "latest title wins");
    assert_eq!(url.as_deref(), Some("http://shop/beans"));
    assert_eq!(each, Some(415));
    assert_eq!((first, last), (at(5, 8), at(6, 8)));
}

#[tokio::test]
async fn invalid_observations_are_refused_with_the_reason() {
    let db = TestDb::new().await;
    let mut ing = Ingestor::new(db.pool.clone()).await.unwrap();
    let good = obs("tesco", "a", at(1, 1), 100);
    let mut bad = obs("tesco", "b", at(1, 1), 100);
    bad.was_price_pence = Some(90);
    let err = format!("{:#}", ing.ingest(&[good, bad]).await.unwrap_err());
    assert!(
        err.contains("observation 1") && err.contains("was_price_pence 90"),
        "{err}"
    );
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM price_observations").await,
        0
    );
}

#[tokio::test]
async fn concurrent_ingests_of_overlapping_data_agree() {
    let db = TestDb::new().await;
    let rows: Vec<_> = (0..2000)
        .map(|i| {
            obs(
                "tesco",
                &format!("s{}", i % 50),
                at(1, 0) + Duration::minutes(i64::from(i) * 37),
                100 + i64::from(i % 17),
            )
        })
        .collect();
    let mut tasks = Vec::new();
    for t in 0..4 {
        let pool = db.pool.clone();
        // Every task sends all rows, in a different order and batching.
        let mut mine = rows.clone();
        mine.rotate_left(t * 500);
        tasks.push(tokio::spawn(async move {
            let mut ing = Ingestor::new(pool).await.unwrap();
            let mut n = 0;
            for chunk in mine.chunks(300 + t * 100) {
                n += ing.ingest(chunk).await.unwrap().inserted;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 2000, "each row stored by exactly one task");
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM price_observations").await,
        2000
    );
    assert_eq!(daily_mismatches(&db.pool).await, 0);
}

#[tokio::test]
async fn a_failed_batch_leaves_no_stale_listing_ids_behind() {
    let db = TestDb::new().await;
    let mut ing = Ingestor::new(db.pool.clone()).await.unwrap();
    // Make the observation insert fail after the listing upsert succeeded:
    // a month with no partition and no way to create one.
    sqlx::query("ALTER FUNCTION shelfwatch_ensure_partitions(timestamptz, timestamptz) RENAME TO ensure_off")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query(
        "CREATE FUNCTION shelfwatch_ensure_partitions(timestamptz, timestamptz)
         RETURNS integer LANGUAGE sql AS 'SELECT 0'",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let old = Utc.with_ymd_and_hms(2019, 5, 1, 0, 0, 0).unwrap();
    let err = ing
        .ingest(&[obs("tesco", "new", old, 100)])
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("partition"), "{err:#}");
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM listings").await,
        0,
        "rolled back"
    );
    // The same ingestor, sent the same observation again once partitions
    // can be made, stores it: nothing cached from the failed batch is used.
    sqlx::query("DROP FUNCTION shelfwatch_ensure_partitions(timestamptz, timestamptz)")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("ALTER FUNCTION ensure_off(timestamptz, timestamptz) RENAME TO shelfwatch_ensure_partitions")
        .execute(&db.pool)
        .await
        .unwrap();
    let r = ing.ingest(&[obs("tesco", "new", old, 100)]).await.unwrap();
    assert_eq!(r.inserted, 1);
}
