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

/// Pairwise matching quality against the demo store's ground truth: of the
/// listing pairs that are one product, how many share a product id
/// (recall), and of the pairs sharing one, how many are one product
/// (precision).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairScore {
    pub true_pairs: u32,
    pub false_pairs: u32,
    pub missed_pairs: u32,
}

impl PairScore {
    pub fn precision(&self) -> f64 {
        f64::from(self.true_pairs) / f64::from(self.true_pairs + self.false_pairs).max(1.0)
    }
    pub fn recall(&self) -> f64 {
        f64::from(self.true_pairs) / f64::from(self.true_pairs + self.missed_pairs).max(1.0)
    }
}

/// Scores `(truth key, title, product id)` triples pairwise; returns the
/// missed and false pairs' titles for the failure message too.
pub fn score_pairs(listings: &[(String, String, Option<i64>)]) -> (PairScore, Vec<String>) {
    let mut score = PairScore {
        true_pairs: 0,
        false_pairs: 0,
        missed_pairs: 0,
    };
    let mut wrong = Vec::new();
    for (i, a) in listings.iter().enumerate() {
        for b in &listings[i + 1..] {
            let same_truth = a.0 == b.0;
            let same_matched = a.2.is_some() && a.2 == b.2;
            match (same_truth, same_matched) {
                (true, true) => score.true_pairs += 1,
                (false, true) => {
                    score.false_pairs += 1;
                    wrong.push(format!("wrongly together: {:?} / {:?}", a.1, b.1));
                }
                (true, false) => {
                    score.missed_pairs += 1;
                    wrong.push(format!("missed: {:?} / {:?}", a.1, b.1));
                }
                (false, false) => {}
            }
        }
    }
    (score, wrong)
}

/// The demo store (seed 42, dated `to`) and its history `from..=to` as an
/// import CSV in a temporary directory.
pub fn demo_history_csv(
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
) -> (
    shelfwatch_demo_store::DemoStore,
    tempfile::TempDir,
    std::path::PathBuf,
) {
    let store = shelfwatch_demo_store::DemoStore::new(42, to);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.csv");
    let file = std::fs::File::create(&path).unwrap();
    store
        .history_csv(from, to, std::io::BufWriter::new(file))
        .unwrap();
    (store, dir, path)
}

/// The demo store's catalogue, imported as one day of history and matched:
/// recall at least 0.98 with precision 1.0 (issue 13). The figure in
/// BENCHMARKS.md comes from this test's output line.
#[tokio::test]
async fn demo_catalogue_matches_its_ground_truth() {
    use sqlx::Row;

    let db = TestDb::new().await;
    let day = chrono::NaiveDate::from_ymd_opt(2025, 9, 1).unwrap();
    let (store, _dir, path) = demo_history_csv(day, day);
    crate::import::import_path(&db, &path).await;
    matching::run(&db.pool).await.unwrap();

    let key_of: std::collections::HashMap<(String, String), String> = store
        .truth(day)
        .into_iter()
        .map(|t| ((t.retailer.slug().to_owned(), t.sku), t.product_key))
        .collect();
    let rows = sqlx::query(
        "SELECT r.slug, l.retailer_sku, l.title, l.product_id FROM listings l \
         JOIN retailers r ON r.id = l.retailer_id ORDER BY l.id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), key_of.len());
    let listings: Vec<(String, String, Option<i64>)> = rows
        .iter()
        .map(|r| {
            let key = (
                r.get::<String, _>("slug"),
                r.get::<String, _>("retailer_sku"),
            );
            (key_of[&key].clone(), r.get("title"), r.get("product_id"))
        })
        .collect();
    let (score, wrong) = score_pairs(&listings);
    let products: std::collections::BTreeSet<Option<i64>> = listings.iter().map(|l| l.2).collect();
    let truths: std::collections::BTreeSet<&String> = listings.iter().map(|l| &l.0).collect();
    eprintln!(
        "matching on the demo catalogue: {} listings, {} true products, {} product ids; \
         {} true pairs, {} false, {} missed: precision {:.3}, recall {:.3}",
        listings.len(),
        truths.len(),
        products.len(),
        score.true_pairs,
        score.false_pairs,
        score.missed_pairs,
        score.precision(),
        score.recall()
    );
    assert!(score.true_pairs > 100, "too few pairs to judge: {score:?}");

    // Every product is named with its pack, no two alike, and has the
    // category its listings came with.
    let products: Vec<(i64, String, Option<String>)> =
        sqlx::query_as("SELECT id, name, category FROM products ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let names: std::collections::BTreeSet<&str> = products.iter().map(|p| p.1.as_str()).collect();
    assert_eq!(
        names.len(),
        products.len(),
        "two products share a name: {products:?}"
    );
    assert!(names.contains("Heinz Beanz 415g"), "{names:?}");
    assert!(names.contains("Heinz Beanz 4 x 415g"), "{names:?}");
    let category_of: std::collections::HashMap<String, String> = store
        .truth(day)
        .into_iter()
        .map(|t| (t.product_key, t.category))
        .collect();
    for (id, name, category) in &products {
        let key = listings
            .iter()
            .find(|l| l.2 == Some(*id))
            .map(|l| &l.0)
            .unwrap();
        assert_eq!(category.as_ref(), Some(&category_of[key]), "{name}");
    }
    assert_eq!(
        score.false_pairs,
        0,
        "precision must be 1.0:\n{}",
        wrong.join("\n")
    );
    assert!(
        score.recall() >= 0.98,
        "recall {:.3}:\n{}",
        score.recall(),
        wrong.join("\n")
    );
}
