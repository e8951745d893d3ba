//! Product matching on listings stored through the ingest path: automatic
//! matches across retailers, and manual overrides that win.

use chrono::Utc;
use shelfwatch_domain::quantity::parse_pack;
use shelfwatch_domain::retailer::RetailerSlug;
use shelfwatch_scrape::matching;
use shelfwatch_store::ingest::{Ingestor, Observation};

use crate::support::TestDb;

fn obs(retailer: &str, sku: &str, title: &str, pack: &str) -> Observation {
    let mut o = Observation::new(
        RetailerSlug::parse(retailer).unwrap(),
        sku,
        title,
        Utc::now(),
        150,
    );
    o.pack = Some(parse_pack(pack).unwrap());
    o
}

async fn product_of(db: &TestDb, retailer: &str, sku: &str) -> (Option<i64>, Option<String>) {
    sqlx::query_as(
        "SELECT l.product_id, l.match_method FROM listings l JOIN retailers r ON r.id = l.retailer_id \
         WHERE r.slug = $1 AND l.retailer_sku = $2",
    )
    .bind(retailer)
    .bind(sku)
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn listings_match_across_retailers_and_overrides_win() {
    let db = TestDb::new().await;
    let mut ingestor = Ingestor::new(db.pool.clone()).await.unwrap();
    ingestor
        .ingest(&[
            obs(
                "shopa",
                "a1",
                "Heinz Baked Beans in Tomato Sauce 415g",
                "415g",
            ),
            obs("shopb", "b1", "Heinz Beanz 415G", "415g"),
            obs("shopa", "a2", "Heinz Baked Beans 4 x 415g", "4 x 415g"),
            obs("shopb", "b2", "Branston Baked Beans 410g", "410g"),
        ])
        .await
        .unwrap();
    let first = matching::run(&db.pool).await.unwrap();
    assert_eq!(first.matched_products, 1, "{first:?}");
    let (a1, m) = product_of(&db, "shopa", "a1").await;
    assert_eq!(m.as_deref(), Some("auto"));
    assert_eq!(product_of(&db, "shopb", "b1").await.0, a1);
    assert_ne!(
        product_of(&db, "shopa", "a2").await.0,
        a1,
        "a multipack is another product"
    );
    assert_eq!(
        matching::run(&db.pool).await.unwrap().changed,
        0,
        "a second pass changes nothing"
    );

    // An analyst says b2 is the same product as a1 (wrongly, but overrides win),
    // and that b1 stands alone.
    sqlx::query(
        "INSERT INTO product_overrides (retailer_id, retailer_sku, product_id, note) \
         SELECT id, 'b2', $1, 'test' FROM retailers WHERE slug = 'shopb' \
         UNION ALL SELECT id, 'b1', NULL, 'test' FROM retailers WHERE slug = 'shopb'",
    )
    .bind(a1)
    .execute(&db.pool)
    .await
    .unwrap();
    let second = matching::run(&db.pool).await.unwrap();
    assert_eq!(second.overridden, 2);
    assert_eq!(
        product_of(&db, "shopb", "b2").await,
        (a1, Some("override".to_owned()))
    );
    let (b1, m) = product_of(&db, "shopb", "b1").await;
    assert_eq!(m.as_deref(), Some("override"));
    assert!(b1.is_some() && b1 != a1, "b1 gets a product of its own");
    // a1 has no partner at shopb any more: it stands alone, on its product.
    assert_eq!(
        product_of(&db, "shopa", "a1").await,
        (a1, Some("single".to_owned()))
    );
    assert_eq!(matching::run(&db.pool).await.unwrap().changed, 0);
}
