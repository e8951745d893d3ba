//! A product's offers as a shopper, the product page and watches see them:
//! one price counts (a multibuy's per-item or a loyalty price), the
//! product's recommendation is its cheapest in-stock offer's, and a watch
//! fires once until the price has risen above its target again. Through
//! import, the forecast job and the API, against a real database.

use std::fmt::Write as _;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use reqwest::StatusCode;
use serde_json::Value;
use shelfwatch_api::auth::{Scope, create_key};
use shelfwatch_forecast::{self as forecast, Params, load::Shard};
use shelfwatch_store::ingest::{Ingestor, Observation};
use sqlx::PgPool;

use crate::api::{Api, serve};
use crate::import::import_text;
use crate::ingest::obs;
use crate::support::TestDb;

const DAYS: i64 = 90;

/// One CSV row: day, price, promo text, in stock.
type Day = (i64, i64, Option<&'static str>, bool);

fn plain(from: i64, to: i64, price: i64) -> Vec<Day> {
    (from..to).map(|d| (d, price, None, true)).collect()
}

/// The last `n` days of `DAYS` at `price` with `promo`, after `regular`.
fn ending(regular: i64, n: i64, price: i64, promo: Option<&'static str>, stock: bool) -> Vec<Day> {
    let mut days = plain(0, DAYS - n, regular);
    days.extend((DAYS - n..DAYS).map(|d| (d, price, promo, stock)));
    days
}

/// One product, "Crisps 6x25g", at four shops, and listings with a
/// promotion cycle (each its own product) so the models have examples.
fn histories() -> Vec<(&'static str, &'static str, Vec<Day>)> {
    let mut out = vec![
        // The lowest shelf price, but out of stock.
        ("aldo", "crisps", ending(100, 2, 60, None, false)),
        // 120p on the shelf, 75p each in a "2 for £1.50": the cheapest that counts.
        (
            "bexco",
            "crisps",
            ending(120, 3, 120, Some("2 for £1.50"), true),
        ),
        // 90p, no offer.
        ("cumbers", "crisps", plain(0, DAYS, 90)),
        // 100p with "Half price": a percentage states no price, 100p counts.
        (
            "dunns",
            "crisps",
            ending(100, 3, 100, Some("Half price"), true),
        ),
    ];
    for k in 0..10 {
        let regular = 100 + 10 * k;
        let days = (0..DAYS)
            .map(|d| {
                let cut = (d + k) % 21 < 5;
                let price = if cut { regular * 4 / 5 } else { regular };
                (d, price, None, true)
            })
            .collect();
        let sku = [
            "cycle-a", "cycle-b", "cycle-c", "cycle-d", "cycle-e", "cycle-f", "cycle-g", "cycle-h",
            "cycle-i", "cycle-j",
        ][k as usize];
        out.push(("aldo", sku, days));
    }
    out
}

/// Imports the histories, makes the crisps one product and each cycle
/// listing its own, runs the forecast and serves the API. Returns the
/// crisps product id.
async fn forecast_and_serve() -> (Api, i64) {
    let db = TestDb::new().await;
    let start = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    let mut csv = String::from("retailer,sku,title,observed_at,price_pence,promo_text,in_stock\n");
    for (shop, sku, days) in histories() {
        for (d, price, promo, stock) in days {
            let day = start + Duration::days(d);
            writeln!(
                csv,
                "{shop},{sku},{sku} at {shop},{day}T08:00:00Z,{price},{},{stock}",
                promo.unwrap_or_default()
            )
            .unwrap();
        }
    }
    import_text(&db, &csv).await;
    sqlx::query(
        "WITH p AS (INSERT INTO products (name) SELECT DISTINCT retailer_sku FROM listings
                    RETURNING id, name)
         UPDATE listings l SET product_id = p.id FROM p WHERE p.name = l.retailer_sku",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let product: i64 = sqlx::query_scalar("SELECT id FROM products WHERE name = 'crisps'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    forecast::run_once(&db.pool, &Params::default(), Shard::ALL)
        .await
        .unwrap();
    (serve(db, |_| {}).await, product)
}

async fn listing(pool: &PgPool, shop: &str, sku: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT l.id FROM listings l JOIN retailers r ON r.id = l.retailer_id
         WHERE r.slug = $1 AND l.retailer_sku = $2",
    )
    .bind(shop)
    .bind(sku)
    .fetch_one(pool)
    .await
    .unwrap()
}

fn offer_of(detail: &Value, listing: i64) -> Value {
    detail["offers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["listing_id"] == listing)
        .cloned()
        .unwrap_or_else(|| panic!("no offer of listing {listing}: {detail}"))
}

async fn create_watch(api: &Api, body: Value) -> Value {
    let (_, key) = create_key(&api.db.pool, "shopper", &[Scope::Watch])
        .await
        .unwrap();
    let r = api
        .http
        .post(format!("{}/v1/watches", api.base))
        .header("x-api-key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json().await.unwrap()
}

/// The bodies queued for delivery, oldest first.
async fn deliveries(pool: &PgPool) -> Vec<Value> {
    let bodies: Vec<String> = sqlx::query_scalar("SELECT body FROM webhook_deliveries ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap();
    bodies
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect()
}

#[tokio::test]
async fn a_products_recommendation_is_its_cheapest_in_stock_offers() {
    let (api, product) = forecast_and_serve().await;
    let pool = api.db.pool.clone();
    let (aldo, bexco, cumbers, dunns) = (
        listing(&pool, "aldo", "crisps").await,
        listing(&pool, "bexco", "crisps").await,
        listing(&pool, "cumbers", "crisps").await,
        listing(&pool, "dunns", "crisps").await,
    );
    let detail = api.json(&format!("/v1/products/{product}")).await;

    // Cheapest in stock by the price that counts: bexco's 75p each in a
    // multibuy, not cumbers' 90p shelf price, not dunns' "Half price" (no
    // price of its own), not aldo's 60p out of stock.
    let order: Vec<i64> = detail["offers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["listing_id"].as_i64().unwrap())
        .collect();
    assert_eq!(order, [bexco, cumbers, dunns, aldo], "{detail}");
    let cheapest = &detail["cheapest"][0];
    assert_eq!(cheapest["listing_id"], bexco, "{detail}");
    assert_eq!(cheapest["effective_price"]["amount_minor"], 75, "{detail}");
    let b = offer_of(&detail, bexco);
    assert_eq!(b["cheapest_now"], true);
    assert_eq!(b["price"]["amount_minor"], 120);
    assert_eq!(b["condition"], "when you buy 2", "{b}");
    let d = offer_of(&detail, dunns);
    assert_eq!(d["effective_price"]["amount_minor"], 100, "{d}");
    assert_eq!(d["condition"], Value::Null, "{d}");

    // The product's recommendation is bexco's: a buy at 75p each.
    let rec = &cheapest["recommendation"];
    assert_eq!(rec, &b["recommendation"], "{detail}");
    assert_eq!(rec["action"], "buy_now", "{detail}");
    let message = rec["message"].as_str().unwrap();
    assert!(message.contains("£0.75 each when you buy 2"), "{message}");

    // Out of stock is never a buy, on the product page or in the list.
    let a = offer_of(&detail, aldo);
    assert_eq!(a["in_stock"], false);
    assert_ne!(a["recommendation"]["action"], "buy_now", "{a}");
    let page = api.json("/v1/recommendations?limit=100").await;
    let listed: Vec<&Value> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["product_id"] == product)
        .collect();
    assert_eq!(listed.len(), 4, "{page}");
    for r in &listed {
        if r["listing_id"] == aldo {
            assert_ne!(r["action"], "buy_now", "{r}");
        }
        // The list counts the same price the product page shows.
        let shown = offer_of(&detail, r["listing_id"].as_i64().unwrap());
        if shown["in_stock"] == true {
            assert_eq!(
                r["current_price"]["amount_minor"], shown["effective_price"]["amount_minor"],
                "{r} {shown}"
            );
        }
    }
}

#[tokio::test]
async fn watches_fire_on_the_price_recommendations_count_with_what_it_takes() {
    let (api, product) = forecast_and_serve().await;
    let pool = api.db.pool.clone();
    let bexco = listing(&pool, "bexco", "crisps").await;
    // dunns' "Half price" was stored at 50p; only bexco's 75p each counts.
    let watch = create_watch(
        &api,
        serde_json::json!({"product_id": product, "target_price_pence": 80,
                           "webhook_url": "http://127.0.0.1:9/hook"}),
    )
    .await;
    assert_eq!(shelfwatch_alerts::evaluate_watches(&pool).await.unwrap(), 1);
    let sent = deliveries(&pool).await;
    let event = &sent[0];
    assert_eq!(event["event"], "price_at_target", "{event}");
    assert_eq!(event["watch_id"], watch["id"]);
    assert_eq!(event["listing_id"], bexco, "{event}");
    assert_eq!(event["retailer"], "bexco");
    assert_eq!(event["shelf_price"]["amount_minor"], 120, "{event}");
    assert_eq!(event["effective_price"]["amount_minor"], 75, "{event}");
    assert_eq!(event["price"]["amount_minor"], 75, "{event}");
    assert_eq!(event["promotion"], "2 for £1.50", "{event}");
    assert_eq!(event["threshold"]["amount_minor"], 80);
    assert_eq!(
        event["message"],
        "crisps is £0.75 each when you buy 2 at bexco (shelf price £1.20), \
         at or below your target of £0.80",
        "{event}"
    );
    // The recommendation for that offer counts the same price.
    let detail = api.json(&format!("/v1/products/{product}")).await;
    let rec_price = api.json("/v1/recommendations?limit=100").await["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["listing_id"] == bexco)
        .map(|r| r["current_price"]["amount_minor"].clone())
        .unwrap();
    assert_eq!(rec_price, event["effective_price"]["amount_minor"]);
    assert_eq!(
        detail["cheapest"][0]["effective_price"],
        event["effective_price"]
    );

    // A target the shelf meets only through "Half price" is not met.
    sqlx::query("UPDATE watches SET target_price_pence = 60, notified_pence = NULL")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        shelfwatch_alerts::evaluate_watches(&pool).await.unwrap(),
        0,
        "{:?}",
        deliveries(&pool).await
    );
    assert_eq!(deliveries(&pool).await.len(), 1);
}

/// One observation of the watched listing `hours` after the first.
fn seen(hours: i64, price: i64, promo: Option<&str>) -> Observation {
    let t = Utc.with_ymd_and_hms(2026, 3, 1, 8, 0, 0).unwrap() + Duration::hours(hours);
    let mut o = obs("bexco", "tea", t, price);
    o.title = "Tea bags x80".into();
    if let Some(text) = promo {
        o.promo = Some(shelfwatch_domain::promo::parse_promo(text).unwrap());
        o.promo_text = Some(text.into());
    }
    o
}

#[tokio::test]
async fn a_watch_fires_again_only_after_the_price_rose_above_its_target() {
    let db = TestDb::new().await;
    let pool = db.pool.clone();
    let mut ing = Ingestor::new(pool.clone()).await.unwrap();
    ing.ingest(&[seen(0, 150, None)]).await.unwrap();
    sqlx::query(
        "WITH p AS (INSERT INTO products (name) VALUES ('Tea bags x80') RETURNING id)
         UPDATE listings SET product_id = (SELECT id FROM p)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let product: i64 = sqlx::query_scalar("SELECT id FROM products")
        .fetch_one(&pool)
        .await
        .unwrap();
    let api = serve(db, |_| {}).await;
    create_watch(
        &api,
        serde_json::json!({"product_id": product, "target_price_pence": 100,
                           "webhook_url": "http://127.0.0.1:9/hook"}),
    )
    .await;
    let notified = async || -> Option<i64> {
        sqlx::query_scalar("SELECT notified_pence FROM watches")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    // (hours, shelf price, offer, deliveries queued by the evaluation)
    let steps: [(i64, i64, Option<&str>, usize); 6] = [
        // Above the target: armed, nothing.
        (1, 150, None, 0),
        // At the target: fires.
        (2, 95, None, 1),
        // Stays low, and falls further: no second delivery.
        (3, 95, None, 0),
        (4, 80, None, 0),
        // Back above the target: re-armed, nothing sent.
        (5, 130, None, 0),
        // Below it again through a multibuy (65p each): fires again.
        (6, 130, Some("2 for £1.30"), 1),
    ];
    for (hours, price, promo, queued) in steps {
        ing.ingest(&[seen(hours, price, promo)]).await.unwrap();
        assert_eq!(
            shelfwatch_alerts::evaluate_watches(&pool).await.unwrap(),
            queued,
            "after {price}p {promo:?} at hour {hours}"
        );
        let armed = notified().await.is_none();
        assert_eq!(armed, hours == 1 || hours == 5, "armed at hour {hours}");
    }
    let sent = deliveries(&pool).await;
    let prices: Vec<i64> = sent
        .iter()
        .map(|e| e["effective_price"]["amount_minor"].as_i64().unwrap())
        .collect();
    assert_eq!(prices, [95, 65]);
    assert_eq!(sent[1]["shelf_price"]["amount_minor"], 130);
    assert_eq!(sent[1]["promotion"], "2 for £1.30");
    assert_eq!(sent[0]["promotion"], Value::Null);
    assert_eq!(
        sent[0]["message"],
        "Tea bags x80 is £0.95 at bexco, at or below your target of £1.00"
    );
}
