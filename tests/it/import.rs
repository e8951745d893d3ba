use std::path::Path;

use shelfwatch_store::ingest::Ingestor;
use shelfwatch_store::ingest::csv_import::{ImportOptions, import_file};

use crate::support::TestDb;

fn options() -> ImportOptions {
    ImportOptions {
        batch_size: 3,
        rejects: None,
        progress: false,
    }
}

const MIXED: &str = "\
retailer,sku,title,observed_at,price_pence,promo_text,pack_text,in_stock
tesco,100,Heinz Beanz 415G,2026-01-02T08:00:00Z,125,,415g,true
tesco,100,Heinz Beanz 415G,2026-01-03T08:00:00Z,100,2 for £1.50,415g,yes
Tesco,101,Bad retailer,2026-01-02T08:00:00Z,100,,,
tesco,102,\"Quoted, with comma\",2026-01-02T08:00:00Z,250,,1.5kg,no
tesco,103,Broken price,2026-01-02T08:00:00Z,£2.50,,,
tesco,104,Too few fields,2026-01-02T08:00:00Z
aldi,200,Baked Beans 415g,2026-01-02,89,Clubcard Price £0.80,415 g,
aldi,201,Bad promo,2026-01-02,89,Buy me now,,
aldi,202,Bad pack,2026-01-02,89,,12 parsecs,
aldi,203,Bad stock,2026-01-02,89,,,maybe
";

/// Imports CSV text through `import_file`, as `shelfwatch import` does,
/// and checks no row was rejected.
pub async fn import_text(
    db: &TestDb,
    csv: &str,
) -> shelfwatch_store::ingest::csv_import::ImportReport {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "import.csv", csv);
    import_path(db, &path).await
}

/// Imports the CSV file at `path` through `import_file`, as `shelfwatch
/// import` does, and checks no row was rejected.
pub async fn import_path(
    db: &TestDb,
    path: &Path,
) -> shelfwatch_store::ingest::csv_import::ImportReport {
    let mut ing = Ingestor::new(db.pool.clone()).await.unwrap();
    let opts = ImportOptions {
        batch_size: 5000,
        rejects: None,
        progress: false,
    };
    let report = import_file(&mut ing, path, &opts).await.unwrap();
    assert_eq!(report.rejected, 0, "{:?}", report.sample_rejections);
    report
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test]
async fn good_rows_are_kept_and_bad_rows_reported_by_line() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "prices.csv", MIXED);
    let mut ing = Ingestor::new(db.pool.clone()).await.unwrap();
    let report = import_file(&mut ing, &file, &options()).await.unwrap();
    assert_eq!(report.rows, 10);
    assert_eq!(report.stored.inserted, 4);
    assert_eq!(report.rejected, 6);

    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM price_observations")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(stored, 4);

    let rejects_path = report.rejects_file.expect("a rejects file");
    assert_eq!(rejects_path, dir.path().join("prices.csv.rejects.csv"));
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(&rejects_path)
        .unwrap();
    assert_eq!(
        reader.headers().unwrap().iter().take(3).collect::<Vec<_>>(),
        ["line", "reason", "retailer"]
    );
    let rows: Vec<(String, String)> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].to_owned(), r[1].to_owned())
        })
        .collect();
    let expect = [
        ("4", "retailer slug"),
        ("6", "not a whole number"),
        ("7", "has 4 fields, the header has 8"),
        ("9", "Buy me now"),
        ("10", "parsecs"),
        ("11", "in_stock \"maybe\""),
    ];
    assert_eq!(rows.len(), expect.len(), "{rows:?}");
    for ((line, reason), (want_line, want_reason)) in rows.iter().zip(expect) {
        assert_eq!(line, want_line, "{reason}");
        assert!(reason.contains(want_reason), "line {line}: {reason}");
    }
    // The rejected row's own fields are kept for fixing and re-importing.
    let raw = std::fs::read_to_string(&rejects_path).unwrap();
    assert!(raw.contains("Broken price"));
}

#[tokio::test]
async fn importing_the_same_file_twice_adds_nothing() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "p.csv", MIXED);
    let mut ing = Ingestor::new(db.pool.clone()).await.unwrap();
    import_file(&mut ing, &file, &options()).await.unwrap();
    let second = import_file(&mut ing, &file, &options()).await.unwrap();
    assert_eq!(second.stored.inserted, 0);
    assert_eq!(second.stored.duplicates, 4);
    let daily: i64 = sqlx::query_scalar("SELECT sum(observations)::bigint FROM price_daily")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(daily, 4);
}

#[tokio::test]
async fn a_bad_header_stops_before_anything_is_written() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "h.csv",
        "retailer,sku,title,when,price_pence\ntesco,1,x,2026-01-01,100\n",
    );
    let mut ing = Ingestor::new(db.pool.clone()).await.unwrap();
    let err = format!(
        "{:#}",
        import_file(&mut ing, &file, &options()).await.unwrap_err()
    );
    assert!(err.contains("\"when\"") && err.contains("line 1"), "{err}");
    let listings: i64 = sqlx::query_scalar("SELECT count(*) FROM listings")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(listings, 0);
}

#[tokio::test]
async fn the_committed_sample_imports_cleanly() {
    let db = TestDb::new().await;
    let mut ing = Ingestor::new(db.pool.clone()).await.unwrap();
    let sample = crate::support::repo_path("samples/prices.csv");
    let dir = tempfile::tempdir().unwrap();
    let opts = ImportOptions {
        batch_size: 1000,
        rejects: Some(dir.path().join("r.csv")),
        progress: false,
    };
    let report = import_file(&mut ing, &sample, &opts).await.unwrap();
    assert!(report.rows > 1000);
    assert_eq!(report.rejected, 0, "{:?}", report.sample_rejections);
    assert_eq!(report.stored.inserted, report.rows);
    assert_eq!(crate::ingest::daily_mismatches(&db.pool).await, 0);
}

#[tokio::test]
async fn large_batches_keep_sightings_and_leave_the_foreign_key_checks_on() {
    let db = TestDb::new().await;
    // One connection, so the import's session is the one checked after.
    let pool = crate::support::pool(&db.url, 1).await;
    let mut csv = String::from("retailer,sku,title,observed_at,price_pence\n");
    for i in 0..3_000 {
        let day = 1 + i / 100;
        csv.push_str(&format!(
            "tesco,sku-{},Item {},2026-01-{day:02}T08:00:00Z,{}\n",
            i % 100,
            i % 100,
            100 + i % 7
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "big.csv", &csv);
    let mut ing = Ingestor::new(pool.clone()).await.unwrap();
    let opts = ImportOptions {
        batch_size: 2_500,
        ..options()
    };
    let report = import_file(&mut ing, &file, &opts).await.unwrap();
    assert_eq!((report.stored.inserted, report.rejected), (3_000, 0));
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM price_observations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 3_000);
    // Listings seen again in the second batch record it (written once, at
    // the end of the import).
    let wrong: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM listings l
         JOIN (SELECT listing_id, min(observed_at) AS first, max(observed_at) AS last
               FROM price_observations GROUP BY listing_id) o ON o.listing_id = l.id
         WHERE l.first_seen <> o.first OR l.last_seen <> o.last",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(wrong, 0);
    // A row naming no listing is still refused on that connection.
    let err = sqlx::query(
        "INSERT INTO price_observations (listing_id, observed_at, price_pence,
                                         effective_price_pence)
         VALUES (999999, '2026-01-05T09:00:00Z', 100, 100)",
    )
    .execute(&pool)
    .await
    .unwrap_err();
    assert_eq!(
        err.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("23503"),
        "{err}"
    );
}
