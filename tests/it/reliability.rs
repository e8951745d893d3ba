//! Breaking things on purpose: PostgreSQL or shelfwatch killed with SIGKILL
//! in the middle of an import.

use std::time::Duration;

use chrono::{Duration as ChronoDuration, NaiveDate, TimeZone, Utc};
use shelfwatch_domain::retailer::RetailerSlug;
use shelfwatch_store::ingest::{Ingestor, Observation};
use sqlx::PgPool;

use crate::support::{OwnCluster, pool, shelfwatch_command};

fn observations(listings: usize, days: i64) -> Vec<Observation> {
    let start = Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap();
    let retailer = RetailerSlug::parse("crashmart").unwrap();
    let mut out = Vec::new();
    for d in 0..days {
        for l in 0..listings {
            let price = 100 + ((l as i64 * 37 + d * 11) % 90);
            out.push(Observation::new(
                retailer.clone(),
                format!("sku-{l}"),
                format!("Product {l} 500g"),
                start + ChronoDuration::days(d),
                price,
            ));
        }
    }
    out
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn postgres_killed_mid_ingest_loses_no_acknowledged_row() {
    let pg = OwnCluster::start().await;
    let rows = observations(300, 60);
    let batches: Vec<Vec<Observation>> = rows.chunks(500).map(<[_]>::to_vec).collect();
    let total = rows.len() as i64;
    let url = pg.url.clone();
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let acked_writer = acked.clone();
    // The writer: batch after batch; a failed batch is retried until the
    // database takes it (what `import` does when it is run again).
    let writer = tokio::spawn(async move {
        let db = shelfwatch_store::db::connect_lazy(
            &shelfwatch::config::Secret::new(url),
            &shelfwatch::config::DatabaseSettings {
                max_connections: 2,
                acquire_timeout_secs: 1,
                ..Default::default()
            },
        )
        .unwrap();
        let mut ingestor: Option<Ingestor> = None;
        let mut failures = 0;
        for batch in &batches {
            loop {
                if ingestor.is_none() {
                    ingestor = Ingestor::new(db.clone()).await.ok();
                }
                let result = match &mut ingestor {
                    Some(i) => i.ingest(batch).await.map(|_| ()),
                    None => Err(anyhow::anyhow!("no connection")),
                };
                match result {
                    Ok(()) => {
                        acked_writer.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        break;
                    }
                    Err(_) => {
                        failures += 1;
                        ingestor = None;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
        failures
    });
    // Kill PostgreSQL once some batches are in, and again later.
    for when in [5, 20] {
        while acked.load(std::sync::atomic::Ordering::SeqCst) < when {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let acked_before_kill = acked.load(std::sync::atomic::Ordering::SeqCst) as i64;
        pg.kill();
        tokio::time::sleep(Duration::from_millis(500)).await;
        pg.restart().await;
        // Every batch acknowledged before the kill survived it.
        let p = pool(&pg.url, 1).await;
        let stored = count(&p, "SELECT count(*) FROM price_observations").await;
        assert!(
            stored >= acked_before_kill * 500,
            "{stored} rows after the kill, {acked_before_kill} batches of 500 acknowledged"
        );
        p.close().await;
    }
    let failures = tokio::time::timeout(Duration::from_secs(120), writer)
        .await
        .expect("the writer finished")
        .unwrap();
    assert!(failures > 0, "the kills never interrupted a batch");
    let p = pool(&pg.url, 1).await;
    assert_eq!(
        count(&p, "SELECT count(*) FROM price_observations").await,
        total
    );
    assert_eq!(
        count(
            &p,
            "SELECT count(*) FROM (SELECT DISTINCT listing_id, observed_at FROM price_observations) d"
        )
        .await,
        total,
        "a row was stored twice"
    );
    assert_eq!(crate::ingest::daily_mismatches(&p).await, 0);
    p.close().await;
}

/// Observations and daily rows keyed by what they mean (retailer, SKU,
/// time), so two databases can be compared whatever their ids.
async fn fingerprint(pool: &PgPool) -> (i64, String, String) {
    let n = count(pool, "SELECT count(*) FROM price_observations").await;
    let obs: String = sqlx::query_scalar(
        "SELECT md5(string_agg(r.slug || l.retailer_sku || o.observed_at::text || o.price_pence \
         || coalesce(o.promo_text, ''), ',' ORDER BY r.slug, l.retailer_sku, o.observed_at)) \
         FROM price_observations o JOIN listings l ON l.id = o.listing_id \
         JOIN retailers r ON r.id = l.retailer_id",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let daily: String = sqlx::query_scalar(
        "SELECT md5(string_agg(l.retailer_sku || d.day::text || d.open_pence || d.close_pence \
         || d.observations || d.min_effective_pence, ',' ORDER BY l.retailer_sku, d.day)) \
         FROM price_daily d JOIN listings l ON l.id = d.listing_id",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    (n, obs, daily)
}

#[tokio::test]
async fn shelfwatch_killed_mid_import_converges_when_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("history.csv");
    let store =
        shelfwatch_demo_store::DemoStore::new(7, NaiveDate::from_ymd_opt(2026, 11, 1).unwrap());
    let file = std::fs::File::create(&csv).unwrap();
    let rows = store
        .history_csv(
            NaiveDate::from_ymd_opt(2026, 6, 1).unwrap(),
            NaiveDate::from_ymd_opt(2026, 10, 31).unwrap(),
            std::io::BufWriter::new(file),
        )
        .unwrap() as i64;
    let csv = csv.to_str().unwrap().to_owned();
    let import = |url: &str| {
        let mut cmd = shelfwatch_command(&["import", &csv, "--batch-size", "500", "--no-progress"]);
        cmd.env("DATABASE_URL", url).env("RUST_LOG", "error");
        cmd
    };

    // The reference: one clean import.
    let clean = crate::support::TestDb::new().await;
    let out = import(&clean.url).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Killed part way, then run again to the end.
    let db = crate::support::TestDb::new().await;
    let mut child = import(&db.url).spawn().unwrap();
    loop {
        let n = count(&db.pool, "SELECT count(*) FROM price_observations").await;
        if n >= rows / 4 {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the import ended before it could be killed: {status}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let partial = count(&db.pool, "SELECT count(*) FROM price_observations").await;
    assert!(partial < rows, "the kill came too late to test anything");
    let out = import(&db.url).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "{} stored, {partial} already stored",
            rows - partial
        )),
        "{stdout}"
    );
    assert_eq!(fingerprint(&db.pool).await, fingerprint(&clean.pool).await);
    assert_eq!(crate::ingest::daily_mismatches(&db.pool).await, 0);
}

#[tokio::test]
async fn an_import_cut_off_by_the_database_says_which_lines_are_stored() {
    let pg = OwnCluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("history.csv");
    let store =
        shelfwatch_demo_store::DemoStore::new(7, NaiveDate::from_ymd_opt(2026, 11, 1).unwrap());
    let file = std::fs::File::create(&csv).unwrap();
    store
        .history_csv(
            NaiveDate::from_ymd_opt(2026, 5, 1).unwrap(),
            NaiveDate::from_ymd_opt(2026, 10, 31).unwrap(),
            std::io::BufWriter::new(file),
        )
        .unwrap();
    let child = shelfwatch_command(&[])
        .args([
            "import",
            csv.to_str().unwrap(),
            "--batch-size",
            "300",
            "--no-progress",
        ])
        .env("DATABASE_URL", &pg.url)
        .env("SHELFWATCH_DATABASE__ACQUIRE_TIMEOUT_SECS", "1")
        .env("RUST_LOG", "error")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let p = pool(&pg.url, 1).await;
    while count(&p, "SELECT count(*) FROM price_observations").await < 3000 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    p.close().await;
    pg.kill();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("are stored, the rest are not"), "{err}");
    // The line it names is true: every row up to it is in the database.
    let through: u64 = err
        .split("lines up to ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no line number in: {err}"));
    pg.restart().await;
    let p = pool(&pg.url, 1).await;
    let stored = count(&p, "SELECT count(*) FROM price_observations").await as u64;
    // Line 1 is the header; every data line up to `through` is stored.
    assert!(
        stored >= through - 1,
        "{stored} stored, the error said through line {through}"
    );
    p.close().await;
}
