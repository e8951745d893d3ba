//! The forecast job against a real database filled through the real ingest
//! path.

use chrono::{Duration, TimeZone, Utc};
use shelfwatch_forecast::load::Shard;
use shelfwatch_forecast::recommend::Action;
use shelfwatch_forecast::{self as forecast, Params, RunOutcome, backtest};
use shelfwatch_store::ingest::csv_import::{ImportOptions, import_file};
use shelfwatch_store::ingest::{Ingestor, Observation};
use sqlx::PgPool;

use crate::ingest::obs;
use crate::support::TestDb;

pub async fn sample_db() -> TestDb {
    let db = TestDb::new().await;
    let mut ing = Ingestor::new(db.pool.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let opts = ImportOptions {
        batch_size: 5000,
        rejects: Some(dir.path().join("r.csv")),
        progress: false,
    };
    import_file(
        &mut ing,
        &crate::support::repo_path("samples/prices.csv"),
        &opts,
    )
    .await
    .unwrap();
    db
}

/// The fields the forecast issue promises other tools in `backtest --json`.
pub const BACKTEST_JSON_FIELDS: [&str; 7] = [
    "series",
    "mase_wma",
    "mase_naive",
    "brier",
    "brier_skill",
    "ece",
    "reliability",
];

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn forecasts_and_recommends_every_listing_once_per_unchanged_input() {
    let db = sample_db().await;
    let params = Params::default();
    let first = forecast::run_once(&db.pool, &params, Shard::ALL)
        .await
        .unwrap();
    let RunOutcome::Completed { run_id, series } = first else {
        panic!("{first:?}");
    };
    assert_eq!(series, 36, "every listing seen on the last day");
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM recommendations").await,
        36
    );
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM forecasts").await,
        36 * 7
    );
    // Confidences are probabilities, and not all the same.
    let (lo, hi, distinct): (f64, f64, i64) = sqlx::query_as(
        "SELECT min(confidence), max(confidence), count(DISTINCT round(confidence::numeric, 3))
         FROM recommendations",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(lo > 0.0 && hi < 1.0 && distinct > 3, "{lo} {hi} {distinct}");
    // Messages match their action.
    let bad: i64 = count(
        &db.pool,
        "SELECT count(*) FROM recommendations WHERE NOT (
            (action = 'buy_now' AND message LIKE 'Good time to buy: £%drop detected%, %confidence')
         OR (action = 'wait' AND message LIKE 'Wait: a drop of at least £% is likely within 7 days (%confidence)%')
         OR (action = 'hold' AND confidence >= 0.495 AND message LIKE 'Price is stable (%confidence)%')
         OR (action = 'hold' AND confidence < 0.495
             AND message LIKE 'Price may change within 7 days (%chance it stays stable)%'))",
    )
    .await;
    assert_eq!(bad, 0);
    // The run records its model version and the fitted models.
    let (version, has_models): (String, bool) = sqlx::query_as(
        "SELECT model_version, params ? 'confidence_models' FROM forecast_runs WHERE id = $1",
    )
    .bind(run_id)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(version, forecast::MODEL_VERSION);
    assert!(has_models);

    // Same data: nothing changes.
    let again = forecast::run_once(&db.pool, &params, Shard::ALL)
        .await
        .unwrap();
    assert_eq!(again, RunOutcome::Unchanged { run_id });
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM forecast_runs").await,
        1
    );
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM recommendations").await,
        36
    );
}

#[tokio::test]
async fn shards_split_the_listings_between_them() {
    let db = sample_db().await;
    let params = Params::default();
    let mut total = 0;
    for i in 0..3 {
        let shard = Shard { index: i, count: 3 };
        match forecast::run_once(&db.pool, &params, shard).await.unwrap() {
            RunOutcome::Completed { series, .. } => total += series,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(total, 36);
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(DISTINCT listing_id) FROM recommendations"
        )
        .await,
        36
    );
}

#[tokio::test]
async fn awkward_histories_get_sane_forecasts() {
    let db = TestDb::new().await;
    let mut ing = Ingestor::new(db.pool.clone()).await.unwrap();
    let day0 = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
    let mut rows: Vec<Observation> = Vec::new();
    for d in 0..40 {
        let t = day0 + Duration::days(d);
        // Constant price every day.
        rows.push(obs("tesco", "constant", t, 100));
        // Seen only every third day (gaps).
        if d % 3 == 0 {
            rows.push(obs("tesco", "gappy", t, 200 + d));
        }
        // Vanished after day 20.
        if d <= 20 {
            rows.push(obs("tesco", "vanished", t, 150));
        }
    }
    // A single observation, on the last day.
    rows.push(obs("tesco", "single", day0 + Duration::days(39), 300));
    ing.ingest(&rows).await.unwrap();

    let outcome = forecast::run_once(&db.pool, &Params::default(), Shard::ALL)
        .await
        .unwrap();
    assert!(
        matches!(outcome, RunOutcome::Completed { series: 3, .. }),
        "{outcome:?}"
    );
    let recs: Vec<(String, String, i64, f64)> = sqlx::query_as(
        "SELECT l.retailer_sku, r.action, r.current_pence, r.confidence
         FROM recommendations r JOIN listings l ON l.id = r.listing_id ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let skus: Vec<&str> = recs.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        skus,
        ["constant", "gappy", "single"],
        "the vanished listing is left out"
    );
    for (sku, action, price, confidence) in &recs {
        assert!((0.0..=1.0).contains(confidence), "{sku}");
        match sku.as_str() {
            "constant" => assert_eq!((action.as_str(), *price), ("hold", 100)),
            // Last seen on day 39 at 200 + 39.
            "gappy" => assert_eq!(*price, 239),
            "single" => assert_eq!((action.as_str(), *price), ("hold", 300)),
            _ => unreachable!(),
        }
    }
    let constant_band: (i64, i64, i64) = sqlx::query_as(
        "SELECT min(lower_pence), max(predicted_pence), max(upper_pence) FROM forecasts f
         JOIN listings l ON l.id = f.listing_id WHERE l.retailer_sku = 'constant'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(constant_band.1, 100);
    // The band holds the central 80% of what followed like claims on other
    // days and listings (here also the rising gappy one): within a
    // meaningful move of the constant price.
    assert!(
        constant_band.0 >= 95 && constant_band.2 <= 105,
        "{constant_band:?}"
    );
}

#[tokio::test]
async fn backtest_reports_mase_and_calibration_on_stored_history() {
    let db = sample_db().await;
    let report = backtest::run(&db.pool, &Params::default(), None)
        .await
        .unwrap();
    assert_eq!(report.series, 36);
    assert!(report.claims > 500, "{}", report.claims);
    assert_eq!(report.mase.len(), 2);
    assert!(report.mase.iter().all(|m| m.points > 0));
    // The recommendation forecast never does worse than naive on this
    // history, at either horizon.
    for m in &report.mase {
        assert!(m.model.unwrap() <= m.naive.unwrap() + 1e-9, "{report:?}");
    }
    // Two months of training are too little to beat the base rate of the
    // claims made (see BENCHMARKS.md), but the probabilities stay close to
    // the frequencies.
    assert!(
        report.ece.unwrap() < 0.1 && report.brier.unwrap() < 0.1,
        "{report:?}"
    );
    let coverage = report.band_coverage.unwrap();
    assert!((0.6..=0.97).contains(&coverage), "{report:?}");
    // Cuts shown only as a lower shelf price count: buy_now is said.
    let buy_now = &report.actions[Action::BuyNow.index()].calibration;
    assert!(buy_now.claims > 0, "{report:?}");
    let stated: usize = report.reliability.iter().map(|b| b.count).sum();
    assert_eq!(stated, report.claims);
    let json = serde_json::to_value(&report).unwrap();
    for key in BACKTEST_JSON_FIELDS {
        assert!(json.get(key).is_some(), "{key}");
    }
}

/// Every run stores a reliability table measured out of sample: on the
/// demo store's history, claims made in the four weeks before the last
/// horizon by models that never saw those weeks, scored against what the
/// shelves did.
#[tokio::test]
async fn a_run_stores_its_out_of_sample_reliability_table() {
    let db = TestDb::new().await;
    let to = chrono::NaiveDate::from_ymd_opt(2025, 9, 1).unwrap();
    let (_store, _dir, path) = crate::matching::demo_history_csv(to - Duration::days(119), to);
    crate::import::import_path(&db, &path).await;
    let params = Params::default();
    let started = std::time::Instant::now();
    let outcome = forecast::run_once(&db.pool, &params, Shard::ALL)
        .await
        .unwrap();
    println!(
        "forecast run, measurement included: {:?}",
        started.elapsed()
    );
    let RunOutcome::Completed { run_id, series } = outcome else {
        panic!("{outcome:?}");
    };
    let bins = shelfwatch_store::calibration::for_run(&db.pool, run_id)
        .await
        .unwrap();
    assert!(!bins.is_empty());
    for b in &bins {
        assert!(
            b.bin_low <= b.stated_mean && b.stated_mean <= b.bin_high,
            "{b:?}"
        );
        assert!((0.0..=1.0).contains(&b.observed_rate), "{b:?}");
        assert!(b.n > 0, "{b:?}");
        // Claims whose whole horizon is known by the run's last day, made
        // in the window before it.
        assert_eq!(b.claims_until, to - Duration::days(7), "{b:?}");
        let window = i64::from(forecast::reliability::WINDOW_DAYS);
        assert!(
            b.claims_from >= b.claims_until - Duration::days(window - 1),
            "{b:?}"
        );
    }
    let total = |pick: &dyn Fn(&str) -> bool| -> i64 {
        bins.iter()
            .filter(|b| pick(&b.action))
            .map(|b| i64::from(b.n))
            .sum()
    };
    let all = total(&|a| a == "all");
    assert_eq!(all, total(&|a| a != "all"), "each claim has one action");
    // A claim for every listing on most days of the window.
    assert!(
        all as usize >= series * 20,
        "{all} claims for {series} listings"
    );
    let ece = bins
        .iter()
        .filter(|b| b.action == "all")
        .map(|b| f64::from(b.n) * (b.stated_mean - b.observed_rate).abs())
        .sum::<f64>()
        / all as f64;
    println!("out-of-sample ECE over {all} claims: {ece:.3}");
    assert!(ece < 0.2, "{bins:?}");
}

/// A weekly panel from the 1970s, imported through the CSV path: dates
/// before 2000 are accepted, the cadence is detected, only observed days
/// are scored, and a horizon with nothing to score gives null figures
/// while longer ones give real ones.
#[tokio::test]
async fn weekly_history_from_the_seventies_is_scored_on_observed_days() {
    use std::fmt::Write as _;
    let db = TestDb::new().await;
    let start = chrono::NaiveDate::from_ymd_opt(1975, 1, 2).unwrap();
    let mut csv = String::from("retailer,sku,title,observed_at,price_pence\n");
    for k in 0..3i64 {
        let regular = 90 + 20 * k;
        for week in 0..120i64 {
            // A cut of a fifth every 5 + k weeks, one or two weeks long,
            // and the regular price up 10% after week 60.
            let regular = if week >= 60 {
                regular * 11 / 10
            } else {
                regular
            };
            let cut = week % (5 + k) < 1 + week % 2;
            let price = if cut { regular * 4 / 5 } else { regular };
            let day = start + Duration::weeks(week);
            writeln!(csv, "dominicks,w{k},Weekly {k},{day}T00:00:00Z,{price}").unwrap();
        }
    }
    let imported = crate::import::import_text(&db, &csv).await;
    assert_eq!(imported.rows, 360);

    // Score the last 20 weeks.
    let last = start + Duration::weeks(119);
    let from = last - Duration::weeks(20);
    let from_day =
        shelfwatch_forecast::load::epoch_day(from.and_hms_opt(0, 0, 0).unwrap().and_utc());
    let report = |horizon: usize| {
        let pool = db.pool.clone();
        async move {
            let params = Params {
                horizon,
                ..Params::default()
            };
            backtest::run(&pool, &params, Some(from_day)).await.unwrap()
        }
    };
    // One day ahead of a weekly series is never observed: nothing is
    // scored, and every figure is null, not 0.
    let one = report(1).await;
    assert_eq!(one.cadences, [(7, 3)]);
    assert_eq!(one.claims, 0);
    assert!(one.mase.iter().all(|m| m.points == 0), "{:?}", one.mase);
    let json = serde_json::to_value(&one).unwrap();
    for key in [
        "mase_naive",
        "mase_model",
        "band_coverage",
        "brier",
        "brier_skill",
        "ece",
    ] {
        assert!(json[key].is_null(), "{key}: {json}");
    }
    // A week, four weeks and about two months ahead: real figures.
    for horizon in [7, 28, 56] {
        let r = report(horizon).await;
        let at = r.mase.last().unwrap();
        assert_eq!(at.horizon, horizon);
        assert!(at.points > 0, "horizon {horizon}: {:?}", r.mase);
        // Only observed origins and targets: a multiple of 7 days apart.
        let naive = at.naive.unwrap();
        assert!(naive > 0.0, "horizon {horizon}: {naive}");
        assert!(at.model.is_some() && at.seasonal_naive.is_some());
        let coverage = at.band_coverage.unwrap();
        assert!((0.0..=1.0).contains(&coverage));
        assert!(r.claims > 0 && r.brier.is_some(), "horizon {horizon}");
        // Claims are made on observed days only: one a week per listing.
        assert!(r.claims <= 3 * 21, "horizon {horizon}: {}", r.claims);
    }
}

#[tokio::test]
async fn product_offers_compare_retailers_for_matched_products() {
    let db = TestDb::new().await;
    let mut ing = Ingestor::new(db.pool.clone()).await.unwrap();
    let day0 = Utc.with_ymd_and_hms(2026, 5, 1, 8, 0, 0).unwrap();
    let mut rows = Vec::new();
    for d in 0..30 {
        let t = day0 + Duration::days(d);
        let mut a = obs("tesco", "beans-t", t, 135);
        a.pack = Some(shelfwatch_domain::quantity::parse_pack("415g").unwrap());
        let mut b = obs("aldi", "beans-a", t, 99);
        b.pack = Some(shelfwatch_domain::quantity::parse_pack("4 x 415g").unwrap());
        // On the last day Tesco's multi-buy makes it cheapest per tin.
        if d == 29 {
            a.promo = Some(shelfwatch_domain::promo::parse_promo("2 for £1.50").unwrap());
        }
        let unmatched = obs("tesco", "other", t, 50);
        rows.extend([a, b, unmatched]);
    }
    ing.ingest(&rows).await.unwrap();
    let product: i64 =
        sqlx::query_scalar("INSERT INTO products (name) VALUES ('Baked beans') RETURNING id")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    sqlx::query("UPDATE listings SET product_id = $1 WHERE retailer_sku IN ('beans-t', 'beans-a')")
        .bind(product)
        .execute(&db.pool)
        .await
        .unwrap();
    forecast::run_once(&db.pool, &Params::default(), Shard::ALL)
        .await
        .unwrap();

    // retailer, effective price, unit price, cheapest now, cheapest per unit, action
    type Offer = (String, i64, Option<i64>, bool, bool, Option<String>);
    let offers: Vec<Offer> = sqlx::query_as(
        "SELECT retailer, effective_price_pence, unit_price_pence, cheapest_now,
                cheapest_per_unit, action
         FROM product_offers ORDER BY retailer",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        offers.len(),
        2,
        "the unmatched listing is left out: {offers:?}"
    );
    let (aldi, tesco) = (&offers[0], &offers[1]);
    assert_eq!(aldi.0, "aldi");
    // Tesco: 75p a tin on the multi-buy, cheapest now; Aldi: 99p for four
    // tins (1660 g), 60p per kg against Tesco's 325p per kg.
    assert_eq!((tesco.1, tesco.3), (75, true));
    assert_eq!((aldi.1, aldi.3), (99, false));
    assert_eq!(aldi.2, Some(60));
    assert!(aldi.4 && !tesco.4, "{offers:?}");
    assert!(
        tesco.5.is_some() && aldi.5.is_some(),
        "each offer carries its recommendation"
    );
}

/// Histories whose right answer is known, imported as a CSV, forecast, and
/// read back through the API as a shopper's app would.
mod scenarios {
    use std::fmt::Write as _;

    use chrono::{Duration, NaiveDate};
    use serde_json::Value;

    use super::*;

    const DAYS: i64 = 120;

    /// One CSV row: day, price, was-price, promo text, in stock.
    type Day = (i64, i64, Option<i64>, Option<&'static str>, bool);

    fn plain(from: i64, to: i64, price: i64) -> Vec<Day> {
        (from..to).map(|d| (d, price, None, None, true)).collect()
    }

    fn histories() -> Vec<(&'static str, Vec<Day>)> {
        let mut out = Vec::new();
        // The shelf says "Was £1.55 Now £1.30"; the history remembers £1.70
        // from before a permanent change to £1.55.
        let mut was = plain(0, 50, 170);
        was.extend(plain(50, DAYS - 3, 155));
        was.extend(
            (DAYS - 3..DAYS).map(|d| (d, 130, Some(155), Some("Was £1.55 Now £1.30"), true)),
        );
        out.push(("was-price", was));
        // The same permanent change, and no promotion after it.
        let mut fall = plain(0, 50, 170);
        fall.extend(plain(50, DAYS, 155));
        out.push(("permanent-fall", fall));
        // A permanent rise.
        let mut rise = plain(0, 60, 100);
        rise.extend(plain(60, DAYS, 120));
        out.push(("permanent-rise", rise));
        // 200p, showing 150p while out of stock.
        let mut oos = plain(0, DAYS - 2, 200);
        oos.extend((DAYS - 2..DAYS).map(|d| (d, 150, None, None, false)));
        out.push(("out-of-stock", oos));
        // 120p on the shelf while "2 for £1.50" runs.
        let mut multi = plain(0, DAYS - 3, 120);
        multi.extend((DAYS - 3..DAYS).map(|d| (d, 120, None, Some("2 for £1.50"), true)));
        out.push(("multibuy", multi));
        // Listings with a promotion cycle, so the models have examples:
        // cut by a fifth for 5 days every 21 days.
        for k in 0..12 {
            let regular = 100 + 10 * k;
            let days = (0..DAYS)
                .map(|d| {
                    let cut = (d + k) % 21 < 5;
                    (
                        d,
                        if cut { regular * 4 / 5 } else { regular },
                        None,
                        None,
                        true,
                    )
                })
                .collect();
            out.push((
                [
                    "cycle-a", "cycle-b", "cycle-c", "cycle-d", "cycle-e", "cycle-f", "cycle-g",
                    "cycle-h", "cycle-i", "cycle-j", "cycle-k", "cycle-l",
                ][k as usize],
                days,
            ));
        }
        out
    }

    async fn forecast_and_serve() -> crate::api::Api {
        let db = TestDb::new().await;
        let start = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let mut csv = String::from(
            "retailer,sku,title,observed_at,price_pence,was_price_pence,promo_text,in_stock\n",
        );
        for (sku, days) in histories() {
            for (d, price, was, promo, stock) in days {
                let day = start + Duration::days(d);
                writeln!(
                    csv,
                    "tesco,{sku},{sku},{day}T08:00:00Z,{price},{},{},{stock}",
                    was.map(|w| w.to_string()).unwrap_or_default(),
                    promo.unwrap_or_default()
                )
                .unwrap();
            }
        }
        crate::import::import_text(&db, &csv).await;
        // Every listing its own product, so its forecast can be read.
        sqlx::query(
            "WITH p AS (INSERT INTO products (name) SELECT retailer_sku FROM listings RETURNING id, name)
             UPDATE listings l SET product_id = p.id FROM p WHERE p.name = l.retailer_sku",
        )
        .execute(&db.pool)
        .await
        .unwrap();
        forecast::run_once(&db.pool, &Params::default(), Shard::ALL)
            .await
            .unwrap();
        crate::api::serve(db, |_| {}).await
    }

    async fn recommendation(api: &crate::api::Api, sku: &str) -> Value {
        let page = api.json("/v1/recommendations?limit=100").await;
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["title"] == sku)
            .cloned()
            .unwrap_or_else(|| panic!("no recommendation for {sku}: {page}"))
    }

    #[tokio::test]
    async fn recommendations_say_what_the_shelf_shows() {
        let api = forecast_and_serve().await;

        // The drop named is the shelf's was-price minus today's price.
        let r = recommendation(&api, "was-price").await;
        assert_eq!(r["action"], "buy_now", "{r}");
        let message = r["message"].as_str().unwrap();
        assert!(
            message.starts_with("Good time to buy: £0.25 drop detected"),
            "{r}"
        );
        assert_eq!(r["regular_price"]["amount_minor"], 155, "{r}");

        // No drop after a permanent change, down or up.
        for sku in ["permanent-fall", "permanent-rise"] {
            let r = recommendation(&api, sku).await;
            assert_ne!(r["action"], "buy_now", "{r}");
            assert!(
                !r["message"].as_str().unwrap().contains("drop detected"),
                "{r}"
            );
        }

        // Out of stock: never buy_now, and the message says so.
        let r = recommendation(&api, "out-of-stock").await;
        assert_ne!(r["action"], "buy_now", "{r}");
        assert!(
            r["message"].as_str().unwrap().contains("out of stock"),
            "{r}"
        );

        // A multi-buy is a buy, at its price per item, and says what it takes.
        let r = recommendation(&api, "multibuy").await;
        assert_eq!(r["action"], "buy_now", "{r}");
        let message = r["message"].as_str().unwrap();
        assert!(message.contains("£0.75 each when you buy 2"), "{r}");
        assert!(
            message.starts_with("Good time to buy: £0.45 drop detected"),
            "{r}"
        );
    }

    /// A listing whose promotions come every 21 days, at its regular price
    /// three days before the next one is due, is told to wait; the
    /// confidence is the wait model's, learned from the cycles, and the
    /// band reaches down to the drop it expects.
    #[tokio::test]
    async fn a_promotion_cycle_due_soon_says_wait() {
        let api = forecast_and_serve().await;
        // cycle-e (k = 4): cut while (day + 4) % 21 < 5; the last day, 119,
        // is at (119 + 4) % 21 = 18, regular price, next cut in 3 days.
        let r = recommendation(&api, "cycle-e").await;
        assert_eq!(r["action"], "wait", "{r}");
        assert_eq!(r["current_price"]["amount_minor"], 140, "{r}");
        let message = r["message"].as_str().unwrap();
        assert!(
            message.starts_with("Wait: a drop of at least £0.07 is likely within 7 days ("),
            "{r}"
        );
        let confidence = r["confidence"].as_f64().unwrap();
        assert!((0.5..1.0).contains(&confidence), "{r}");
        let product = r["product_id"].as_i64().unwrap();
        let f = api.json(&format!("/v1/products/{product}/forecast")).await;
        let points = f["forecasts"][0]["points"].as_array().unwrap();
        let last = points.last().unwrap();
        assert!(
            last["lower"]["amount_minor"].as_i64().unwrap() <= 140 - 7,
            "{f}"
        );
        // Listings with no cycle are not told to wait, and the confidence
        // is not one number for every listing.
        let page = api.json("/v1/recommendations?limit=100").await;
        let recs = page["data"].as_array().unwrap();
        for r in recs {
            let title = r["title"].as_str().unwrap();
            if !title.starts_with("cycle-") {
                assert_ne!(r["action"], "wait", "{r}");
            }
        }
        let distinct: std::collections::BTreeSet<i64> = recs
            .iter()
            .map(|r| (r["confidence"].as_f64().unwrap() * 1000.0).round() as i64)
            .collect();
        assert!(distinct.len() > 3, "{distinct:?}");
    }

    #[tokio::test]
    async fn every_claim_sits_inside_its_band() {
        let api = forecast_and_serve().await;
        let page = api.json("/v1/recommendations?limit=100").await;
        let recs = page["data"].as_array().unwrap();
        assert_eq!(recs.len(), histories().len());
        for r in recs {
            let product = r["product_id"].as_i64().unwrap();
            let f = api.json(&format!("/v1/products/{product}/forecast")).await;
            let points = f["forecasts"][0]["points"].as_array().unwrap();
            assert_eq!(points.len(), 7, "{f}");
            let price = r["current_price"]["amount_minor"].as_i64().unwrap();
            let confidence = r["confidence"].as_f64().unwrap();
            let amount = |p: &Value, k: &str| p[k]["amount_minor"].as_i64().unwrap();
            for p in points {
                let (lo, mid, hi) = (
                    amount(p, "lower"),
                    amount(p, "predicted"),
                    amount(p, "upper"),
                );
                assert!(lo <= mid && mid <= hi, "{r} {p}");
                if r["action"] == "buy_now" && confidence >= 0.9 {
                    assert!(
                        lo >= price,
                        "a likely buy's band stays at or above {price}: {r} {p}"
                    );
                }
            }
        }
    }
}
