//! The scraper against the demo store, through real Chromium and
//! chromedriver, into a real database.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveDate;
use shelfwatch::config::Settings;
use shelfwatch_demo_store::{DemoStore, Fault, Retailer, Robots, TruthListing};
use shelfwatch_scrape::{PassReport, Scraper};
use sqlx::Row;

use crate::support::{TestDb, poll, repo_path};

pub struct Shop {
    pub store: DemoStore,
    pub origin: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()
}

/// The demo store on a free port, until the returned value is dropped.
pub async fn shop() -> Shop {
    let store = DemoStore::new(42, day());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let s = store.clone();
    tokio::spawn(async move {
        shelfwatch_demo_store::serve(listener, s, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Shop {
        store,
        origin,
        _stop: tx,
    }
}

/// Settings pointing the shipped retailer configs at `shop`, with a spool
/// of the test's own.
pub fn settings(db_url: &str, shop: &Shop, spool: &Path) -> Settings {
    let mut s = Settings::default();
    s.database.url = Some(shelfwatch::config::Secret::new(db_url));
    s.database.max_connections = 3;
    s.scrape.retailers_dir = repo_path("retailers/demo");
    s.scrape.origin_override = Some(shop.origin.clone());
    s.scrape.spool_dir = spool.to_path_buf();
    s.scrape.db_timeout_secs = 1;
    s
}

pub async fn scraper(settings: &Settings, retailers: &[&str]) -> Scraper {
    let names: Vec<String> = retailers.iter().map(|s| (*s).to_owned()).collect();
    let mut sc = Scraper::new(&settings.scrape, &settings.database, &names, None, None).unwrap();
    // Tests that want a quick failure get it from fewer, shorter backoffs.
    for c in &mut sc.configs {
        c.politeness.backoff_ms = 100;
        c.politeness.max_backoff_ms = 400;
        c.politeness.requests_per_minute = 1200;
    }
    sc
}

/// The latest stored observation of every listing: (retailer, sku) ->
/// (price, was price, in stock, promo text).
pub async fn stored(pool: &sqlx::PgPool) -> BTreeMap<(String, String), Stored> {
    let rows = sqlx::query(
        "SELECT DISTINCT ON (l.id) r.slug, l.retailer_sku, o.price_pence, o.was_price_pence, \
         o.in_stock, o.promo_text \
         FROM price_observations o JOIN listings l ON l.id = o.listing_id \
         JOIN retailers r ON r.id = l.retailer_id ORDER BY l.id, o.observed_at DESC",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.iter()
        .map(|r| {
            (
                (r.get("slug"), r.get("retailer_sku")),
                Stored {
                    price_pence: r.get("price_pence"),
                    was_price_pence: r.get("was_price_pence"),
                    in_stock: r.get("in_stock"),
                    promo_text: r.get("promo_text"),
                },
            )
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub price_pence: i64,
    pub was_price_pence: Option<i64>,
    pub in_stock: bool,
    pub promo_text: Option<String>,
}

fn expected(t: &TruthListing) -> Stored {
    Stored {
        price_pence: t.price_pence,
        was_price_pence: t.was_price_pence,
        in_stock: t.in_stock,
        promo_text: t.promo_text.clone(),
    }
}

fn slug(r: Retailer) -> String {
    r.slug().to_owned()
}

/// Asserts every visible, unbroken listing of `retailers` was stored as the
/// truth says, and nothing else was stored for them.
pub fn assert_matches_truth(
    truth: &[TruthListing],
    stored: &BTreeMap<(String, String), Stored>,
    retailers: &[Retailer],
) {
    let mut want = BTreeMap::new();
    for t in truth {
        if retailers.contains(&t.retailer) && !t.hidden && !t.broken {
            want.insert((slug(t.retailer), t.sku.clone()), expected(t));
        }
    }
    assert!(!want.is_empty());
    let got: BTreeMap<_, _> = stored
        .iter()
        .filter(|((r, _), _)| retailers.iter().any(|x| slug(*x) == *r))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    assert!(missing.is_empty(), "not stored: {missing:?}");
    let mut wrong = Vec::new();
    for (k, v) in &want {
        if got[k] != *v {
            wrong.push(format!("{k:?}: stored {:?}, shop showed {v:?}", got[k]));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert_eq!(
        got.len(),
        want.len(),
        "stored more listings than the shop shows"
    );
}

fn run<'a>(report: &'a PassReport, retailer: &str) -> &'a shelfwatch_scrape::run::RunSummary {
    report
        .runs
        .iter()
        .find(|r| r.retailer == retailer)
        .unwrap_or_else(|| panic!("no run for {retailer}: {report:?}"))
}

fn spool_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool");
    (dir, path)
}

#[tokio::test]
async fn every_retailer_is_scraped_to_the_truth_and_matched() {
    let db = TestDb::new().await;
    let shop = shop().await;
    let (_d, spool) = spool_dir();
    let s = settings(&db.url, &shop, &spool);
    let report = scraper(&s, &[]).await.pass().await.unwrap();
    let truth = shop.store.truth(day());
    for r in &report.runs {
        assert_eq!(r.status, "succeeded", "{r:?}");
        assert_eq!(r.parse_errors, 0, "{r:?}");
        assert_eq!(u64::from(r.products), r.stored, "{r:?}");
    }
    // Every stored observation reached the daily aggregate.
    let (listings, daily): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM listings), (SELECT count(*) FROM price_daily)",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(listings, daily);
    // Pagination and lazy loading reached every tile.
    assert!(run(&report, "sainsway").pages > 1);
    assert_matches_truth(&truth, &stored(&db.pool).await, &Retailer::ALL);

    // scrape_runs says the same.
    let rows: Vec<(String, String, i32)> = sqlx::query_as(
        "SELECT r.slug, s.status, s.products FROM scrape_runs s \
         JOIN retailers r ON r.id = s.retailer_id ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 4);
    for (slug, status, products) in rows {
        let want = truth
            .iter()
            .filter(|t| t.retailer.slug() == slug && !t.hidden)
            .count();
        assert_eq!(status, "succeeded");
        assert_eq!(products as usize, want, "{slug}");
    }

    // Product matching against the store's ground truth, pairwise.
    let key_of: HashMap<(String, String), String> = truth
        .iter()
        .map(|t| ((slug(t.retailer), t.sku.clone()), t.product_key.clone()))
        .collect();
    let rows = sqlx::query(
        "SELECT r.slug, l.retailer_sku, l.product_id, l.category FROM listings l \
         JOIN retailers r ON r.id = l.retailer_id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let listings: Vec<(String, Option<i64>)> = rows
        .iter()
        .map(|r| {
            let k = (
                r.get::<String, _>("slug"),
                r.get::<String, _>("retailer_sku"),
            );
            (key_of[&k].clone(), r.get("product_id"))
        })
        .collect();
    let (mut tp, mut fp, mut fn_) = (0u32, 0u32, 0u32);
    for i in 0..listings.len() {
        for j in i + 1..listings.len() {
            let same_truth = listings[i].0 == listings[j].0;
            let same_matched = listings[i].1.is_some() && listings[i].1 == listings[j].1;
            match (same_truth, same_matched) {
                (true, true) => tp += 1,
                (false, true) => fp += 1,
                (true, false) => fn_ += 1,
                _ => {}
            }
        }
    }
    let precision = f64::from(tp) / f64::from(tp + fp).max(1.0);
    let recall = f64::from(tp) / f64::from(tp + fn_).max(1.0);
    eprintln!(
        "matching: {tp} true pairs, {fp} false, {fn_} missed: precision {precision:.3}, recall {recall:.3}"
    );
    assert!(tp > 20, "too few cross-retailer products to judge: {tp}");
    assert_eq!(fp, 0, "precision {precision:.3}");
    assert!(recall >= 0.98, "recall {recall:.3}");

    // Each listing has the category of the aisle it was scraped from.
    let category_of: HashMap<(String, String), String> = truth
        .iter()
        .map(|t| ((slug(t.retailer), t.sku.clone()), t.category.clone()))
        .collect();
    for r in &rows {
        let k = (
            r.get::<String, _>("slug"),
            r.get::<String, _>("retailer_sku"),
        );
        let category: Option<String> = r.get("category");
        assert_eq!(category.as_ref(), Some(&category_of[&k]), "{k:?}");
    }

    // A second pass changes no product assignment.
    let again = shelfwatch_scrape::matching::run(&db.pool).await.unwrap();
    assert_eq!(again.changed, 0);
}

#[tokio::test]
async fn rate_limits_and_outages_are_waited_out() {
    let db = TestDb::new().await;
    let shop = shop().await;
    let (_d, spool) = spool_dir();
    let s = settings(&db.url, &shop, &spool);
    // Long enough that the browser has surely started before it ends.
    let limited_until = chrono::Utc::now() + chrono::Duration::seconds(6);
    shop.store
        .set_fault(Retailer::Aldwick, Fault::RateLimit { seconds: 6 })
        .unwrap();
    shop.store
        .set_fault(Retailer::Morrow, Fault::Unavailable { requests: 2 })
        .unwrap();
    let started = std::time::Instant::now();
    let report = scraper(&s, &["aldwick", "morrow"])
        .await
        .pass()
        .await
        .unwrap();
    let aldwick = run(&report, "aldwick");
    let morrow = run(&report, "morrow");
    assert!(aldwick.retries >= 1, "{aldwick:?}");
    assert!(morrow.retries >= 1, "{morrow:?}");
    assert_eq!(aldwick.failed_pages + morrow.failed_pages, 0);
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "Retry-After was not waited for"
    );
    // While the shop said 429, the scraper asked again only as often as
    // Retry-After allowed: no page succeeded early, and it did not hammer.
    let log = shop.store.request_log();
    let aldwick_pages: Vec<_> = log
        .iter()
        .filter(|r| r.path.starts_with("/aldwick/products") && r.method == "GET")
        .collect();
    let refused = aldwick_pages.iter().filter(|r| r.status == 429).count();
    assert!(
        (1..=3).contains(&refused),
        "{refused} page loads refused with 429"
    );
    let first_ok = aldwick_pages.iter().find(|r| r.status == 200).unwrap();
    assert!(
        first_ok.at >= limited_until - chrono::Duration::milliseconds(100),
        "the page was loaded {} ms before the rate limit ended",
        (limited_until - first_ok.at).num_milliseconds()
    );
    let truth = shop.store.truth(day());
    assert_matches_truth(
        &truth,
        &stored(&db.pool).await,
        &[Retailer::Aldwick, Retailer::Morrow],
    );
}

#[tokio::test]
async fn slow_pages_within_the_timeout_are_read() {
    let db = TestDb::new().await;
    let shop = shop().await;
    let (_d, spool) = spool_dir();
    let s = settings(&db.url, &shop, &spool);
    shop.store
        .set_fault(Retailer::Aldwick, Fault::Slow { ms: 700 })
        .unwrap();
    let report = scraper(&s, &["aldwick"]).await.pass().await.unwrap();
    assert_eq!(run(&report, "aldwick").status, "succeeded");
    assert_matches_truth(
        &shop.store.truth(day()),
        &stored(&db.pool).await,
        &[Retailer::Aldwick],
    );

    // Slower than the page timeout: retried, then given up, nothing stored.
    let db2 = TestDb::new().await;
    let s2 = settings(&db2.url, &shop, &spool);
    shop.store
        .set_fault(Retailer::Aldwick, Fault::Slow { ms: 3000 })
        .unwrap();
    let mut sc = scraper(&s2, &["aldwick"]).await;
    // One aisle's page: its one retry is what is counted.
    sc.configs[0].start_urls.truncate(1);
    sc.configs[0].politeness.page_timeout_ms = 1000;
    sc.configs[0].politeness.max_retries = 1;
    let report = sc.pass().await.unwrap();
    let r = run(&report, "aldwick");
    assert_eq!(r.status, "failed", "{r:?}");
    assert_eq!(r.retries, 1);
    assert!(stored(&db2.pool).await.is_empty());
}

#[tokio::test]
async fn broken_tiles_are_counted_and_the_rest_of_the_page_kept() {
    let db = TestDb::new().await;
    let shop = shop().await;
    let (_d, spool) = spool_dir();
    let s = settings(&db.url, &shop, &spool);
    shop.store
        .set_fault(Retailer::Morrow, Fault::Broken { share: 0.3 })
        .unwrap();
    let report = scraper(&s, &["morrow"]).await.pass().await.unwrap();
    let truth = shop.store.truth(day());
    let broken = truth
        .iter()
        .filter(|t| t.retailer == Retailer::Morrow && t.broken)
        .count();
    assert!(broken > 0);
    let r = run(&report, "morrow");
    assert_eq!(r.parse_errors as usize, broken, "{r:?}");
    assert_eq!(r.status, "partial");
    assert_matches_truth(&truth, &stored(&db.pool).await, &[Retailer::Morrow]);
    let metrics = shelfwatch_runtime::metrics::encode();
    assert!(metrics.contains("shelfwatch_scrape_parse_errors_total{retailer=\"morrow\"}"));
}

#[tokio::test]
async fn robots_txt_is_obeyed() {
    let db = TestDb::new().await;
    let shop = shop().await;
    let (_d, spool) = spool_dir();
    let s = settings(&db.url, &shop, &spool);
    shop.store
        .set_robots(Robots::Text("User-agent: *\nDisallow: /icebox/\n".into()));
    let report = scraper(&s, &["icebox", "aldwick"])
        .await
        .pass()
        .await
        .unwrap();
    assert_eq!(run(&report, "icebox").status, "failed");
    assert_eq!(run(&report, "icebox").pages, 0);
    assert_eq!(run(&report, "aldwick").status, "succeeded");
    let log = shop.store.request_log();
    assert!(
        !log.iter().any(|r| r.path.starts_with("/icebox")),
        "fetched a disallowed page"
    );
    // The scraper says who it is.
    assert!(
        log.iter().all(|r| r
            .user_agent
            .as_deref()
            .is_some_and(|ua| ua.contains("shelfwatch/"))),
        "{log:?}"
    );

    // robots.txt answering 503 means nothing may be fetched.
    shop.store.clear_request_log();
    shop.store.set_robots(Robots::Status(503));
    let report = scraper(&s, &["aldwick"]).await.pass().await.unwrap();
    assert_eq!(run(&report, "aldwick").pages, 0);
    let log = shop.store.request_log();
    // (Chromium asks for /favicon.ico on its own.)
    assert!(
        log.iter()
            .all(|r| r.path == "/robots.txt" || r.path == "/favicon.ico"),
        "{log:?}"
    );
}

#[tokio::test]
async fn a_drop_in_products_flags_the_run_suspect() {
    let db = TestDb::new().await;
    let shop = shop().await;
    let (_d, spool) = spool_dir();
    let s = settings(&db.url, &shop, &spool);
    let first = scraper(&s, &["aldwick"]).await.pass().await.unwrap();
    assert_eq!(run(&first, "aldwick").status, "succeeded");
    shop.store
        .set_fault(Retailer::Aldwick, Fault::Hide { share: 0.6 })
        .unwrap();
    let second = scraper(&s, &["aldwick"]).await.pass().await.unwrap();
    let r = run(&second, "aldwick");
    assert_eq!(r.status, "suspect", "{r:?}");
    assert_eq!(r.previous_products, Some(run(&first, "aldwick").products));
    let status: String =
        sqlx::query_scalar("SELECT status FROM scrape_runs ORDER BY id DESC LIMIT 1")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(status, "suspect");
    assert!(
        shelfwatch_runtime::metrics::encode()
            .contains("shelfwatch_scrape_suspect_runs_total{retailer=\"aldwick\"}")
    );
}

/// Pids of processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline"))
            && String::from_utf8_lossy(&cmd).contains(marker)
        {
            out.push(pid);
        }
    }
    out
}

/// The parent process of `pid`.
fn parent_of(pid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Scrapes Sainsway and, once its second page is asked for, SIGKILLs the
/// browser (or the chromedriver that runs it).
async fn scrape_while_killing(kill_driver: bool) {
    let db = TestDb::new().await;
    let shop = shop().await;
    let (_d, spool) = spool_dir();
    let mut s = settings(&db.url, &shop, &spool);
    let marker = format!(
        "--shelfwatch-test-{}-{}",
        std::process::id(),
        if kill_driver { "driver" } else { "browser" }
    );
    s.scrape.browser.extra_flags.push(format!("{marker}=kill"));
    let mut sc = scraper(&s, &["sainsway"]).await;
    // Slow enough to kill it between pages.
    sc.configs[0].politeness.requests_per_minute = 120;
    let store = shop.store.clone();
    let kill_marker = marker.clone();
    let killer = tokio::spawn(async move {
        for _ in 0..600 {
            let pages = store
                .request_log()
                .iter()
                .filter(|r| r.path.starts_with("/sainsway/groceries"))
                .count();
            if pages >= 2 {
                let mut pids = processes_with(&kill_marker);
                if kill_driver {
                    // Chromium's parent is the chromedriver the scraper started.
                    pids = pids.iter().filter_map(|p| parent_of(*p)).collect();
                    pids.sort_unstable();
                    pids.dedup();
                    pids.retain(|p| {
                        std::fs::read(format!("/proc/{p}/cmdline"))
                            .is_ok_and(|c| String::from_utf8_lossy(&c).contains("chromedriver"))
                    });
                }
                for pid in &pids {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(*pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                return pids.len();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        0
    });
    let report = sc.pass().await.unwrap();
    let killed = killer.await.unwrap();
    assert!(killed > 0, "no process was found to kill");
    let r = run(&report, "sainsway");
    assert!(r.browser_restarts >= 1, "{r:?}");
    assert_eq!(r.failed_pages, 0, "{r:?}");
    assert_matches_truth(
        &shop.store.truth(day()),
        &stored(&db.pool).await,
        &[Retailer::Sainsway],
    );
    // Nothing of either browser outlives the scraper: not the restarted
    // one, and not the Chromium whose chromedriver was killed under it.
    drop(sc);
    poll(
        "every browser process to end with the scraper",
        Duration::from_secs(5),
        async || processes_with(&marker).is_empty(),
    )
    .await;
}

#[tokio::test]
async fn a_killed_browser_is_restarted_and_the_run_completes() {
    scrape_while_killing(false).await;
}

#[tokio::test]
async fn a_killed_chromedriver_is_restarted_and_the_run_completes() {
    scrape_while_killing(true).await;
}

#[tokio::test]
async fn a_database_stopped_mid_scrape_loses_nothing() {
    // A cluster of this test's own, since it is stopped on purpose.
    let pg = crate::support::OwnCluster::start().await;
    let url = pg.url.clone();

    let shop = shop().await;
    let (_d, spool) = spool_dir();
    let s = settings(&url, &shop, &spool);
    let mut sc = scraper(&s, &["sainsway", "aldwick"]).await;
    for c in &mut sc.configs {
        c.politeness.requests_per_minute = 120;
    }
    let store = shop.store.clone();
    let stopper = {
        let cluster = pg.handle();
        tokio::spawn(async move {
            for _ in 0..600 {
                let pages = store
                    .request_log()
                    .iter()
                    .filter(|r| r.path.starts_with("/sainsway/groceries"))
                    .count();
                if pages >= 2 {
                    return tokio::task::spawn_blocking(move || cluster.stop().unwrap())
                        .await
                        .unwrap();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            false
        })
    };
    let report = sc.pass().await.unwrap();
    assert!(stopper.await.unwrap(), "the database was never stopped");
    let spooled: u64 = report.runs.iter().map(|r| r.spooled).sum();
    assert!(spooled > 0, "nothing was spooled: {report:?}");

    pg.restart().await;
    let replayed = sc.replay_all().await.expect("the database is back");
    assert!(replayed > 0, "replayed {replayed}; the scrape: {report:?}");
    let pool = crate::support::pool(&url, 2).await;
    assert_matches_truth(
        &shop.store.truth(day()),
        &stored(&pool).await,
        &[Retailer::Sainsway, Retailer::Aldwick],
    );
    // Replaying again stores nothing twice.
    assert_eq!(sc.replay_all().await, Some(0));
    // The runs' records waited in the spool too: both are closed, with
    // what they did.
    let runs: Vec<(String, String, i32, i32)> = sqlx::query_as(
        "SELECT r.slug, s.status, s.products, s.spooled FROM scrape_runs s \
         JOIN retailers r ON r.id = s.retailer_id WHERE s.finished_at IS NOT NULL ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let want: Vec<(String, String, i32, i32)> = report
        .runs
        .iter()
        .map(|r| {
            (
                r.retailer.clone(),
                r.status.clone(),
                r.products as i32,
                r.spooled as i32,
            )
        })
        .collect();
    assert_eq!(runs, want);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM price_observations")
        .fetch_one(&pool)
        .await
        .unwrap();
    let distinct: BTreeSet<(String, String)> = stored(&pool).await.into_keys().collect();
    assert_eq!(count as usize, distinct.len(), "a listing was stored twice");
    pool.close().await;
}

#[tokio::test]
async fn the_consent_overlay_must_be_dismissed_for_lazy_loading() {
    let db = TestDb::new().await;
    let shop = shop().await;
    let (_d, spool) = spool_dir();
    let s = settings(&db.url, &shop, &spool);
    let truth = shop.store.truth(day());
    let all = truth
        .iter()
        .filter(|t| t.retailer == Retailer::Icebox)
        .count();

    // Without the click the overlay locks scrolling: only the first batch.
    let mut sc = scraper(&s, &["icebox"]).await;
    sc.configs[0].consent.accept = None;
    let report = sc.pass().await.unwrap();
    let without = run(&report, "icebox").products as usize;
    assert!(without > 0 && without < all, "{without} of {all}");

    // With it, scrolling loads every tile.
    let report = scraper(&s, &["icebox"]).await.pass().await.unwrap();
    assert_eq!(run(&report, "icebox").products as usize, all);
}

#[tokio::test]
async fn a_shop_that_keeps_failing_opens_the_circuit_breaker() {
    let db = TestDb::new().await;
    let shop = shop().await;
    let (_d, spool) = spool_dir();
    let s = settings(&db.url, &shop, &spool);
    shop.store
        .set_fault(Retailer::Morrow, Fault::Unavailable { requests: 1000 })
        .unwrap();
    let mut sc = scraper(&s, &["morrow"]).await;
    sc.configs[0].politeness.breaker_threshold = 3;
    sc.configs[0].politeness.max_retries = 10;
    // Under a name of its own, so the breaker gauge read below is this
    // test's (other tests scrape morrow in this process too).
    const SLUG: &str = "morrow-breaker";
    sc.configs[0].slug = shelfwatch_domain::retailer::RetailerSlug::parse(SLUG).unwrap();
    let breaker_state = || {
        let text = shelfwatch_runtime::metrics::encode();
        let line = format!("shelfwatch_scrape_circuit_state{{retailer=\"{SLUG}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&line))
            .unwrap_or_else(|| panic!("no {line} in\n{text}"))
            .to_owned()
    };
    let report = sc.pass().await.unwrap();
    let r = run(&report, SLUG);
    assert_eq!(r.status, "failed", "{r:?}");
    assert_eq!(breaker_state(), "2", "open after the run it stopped");
    assert!(
        r.message
            .as_deref()
            .is_some_and(|m| m.contains("circuit breaker")),
        "{r:?}"
    );
    // Three page loads, then it stopped asking (each 503 is followed by one
    // HEAD for Retry-After).
    let pages = shop
        .store
        .request_log()
        .iter()
        .filter(|x| x.path.starts_with("/morrow/shop") && x.method == "GET")
        .count();
    assert_eq!(pages, 3);
    let message: String =
        sqlx::query_scalar("SELECT message FROM scrape_runs ORDER BY id DESC LIMIT 1")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(message.contains("circuit breaker"), "{message}");

    // The shop recovers: the next run starts with its breaker closed, and
    // it stays closed.
    shop.store.clear_faults();
    let report = sc.pass().await.unwrap();
    let r = run(&report, SLUG);
    assert_eq!(r.status, "succeeded", "{r:?}");
    assert_eq!(breaker_state(), "0", "closed again");
}

/// A GET over plain HTTP/1.1; returns the body.
pub async fn http_get(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// `scrape --every` as the binary: scrapes on its schedule, serves
/// `/metrics`, runs a scrape queued through the jobs table between ticks,
/// and stops cleanly on SIGTERM.
#[tokio::test]
async fn the_scheduled_scraper_takes_queued_jobs_and_serves_metrics() {
    use std::io::{BufRead, BufReader};
    let db = TestDb::new().await;
    let shop = shop().await;
    let (_d, spool) = spool_dir();
    let metrics_port = shelfwatch_store::db::embedded::free_port().unwrap();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let mut child = crate::support::shelfwatch_command(&[])
        .args([
            "scrape",
            "--every",
            "1h",
            "--retailer",
            "aldwick",
            "--origin",
            &shop.origin,
            "--retailers-dir",
            "retailers/demo",
        ])
        .current_dir(repo_path("."))
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .env("SHELFWATCH_SCRAPE__SPOOL_DIR", &spool)
        .env("SHELFWATCH_SCRAPE__METRICS_BIND", &metrics_addr)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .expect("the first scheduled pass")
        .unwrap();
    assert!(first.starts_with("aldwick: succeeded"), "{first}");

    let metrics = http_get(&metrics_addr, "/metrics").await;
    // One page an aisle.
    let pages = format!(
        "shelfwatch_scrape_pages_total{{outcome=\"ok\",retailer=\"aldwick\"}} {}",
        aldwick_start_pages()
    );
    assert!(metrics.contains(&pages), "{metrics}");
    assert!(
        metrics.contains("shelfwatch_scrape_last_success_timestamp_seconds{retailer=\"aldwick\"}")
    );

    // A scrape asked for through the queue (as the API's admin endpoint does).
    let (job, _) = shelfwatch_store::jobs::enqueue(
        &db.pool,
        shelfwatch_store::jobs::JobKind::Scrape,
        &serde_json::json!({ "retailer": "aldwick" }),
        "test",
    )
    .await
    .unwrap();
    let mut status = String::new();
    for _ in 0..300 {
        let j = shelfwatch_store::jobs::get(&db.pool, job.id)
            .await
            .unwrap()
            .unwrap();
        status = j.status;
        if status != "queued" && status != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "succeeded");
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM scrape_runs")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(runs, 2, "the scheduled run and the queued one");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let started = std::time::Instant::now();
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "{exit}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Hostile pages are refused (or read correctly), counted, and never hang
/// or crash the scraper; the other shops in the pass are unaffected.
#[tokio::test]
async fn hostile_pages_are_refused_without_a_hang() {
    use shelfwatch_demo_store::HostilePage;
    let db = TestDb::new().await;
    let shop = shop().await;
    let (_d, spool) = spool_dir();
    let s = settings(&db.url, &shop, &spool);
    shop.store
        .set_fault(
            Retailer::Aldwick,
            Fault::Hostile {
                page: HostilePage::Huge,
            },
        )
        .unwrap();
    shop.store
        .set_fault(
            Retailer::Icebox,
            Fault::Hostile {
                page: HostilePage::Spin,
            },
        )
        .unwrap();
    shop.store
        .set_fault(
            Retailer::Morrow,
            Fault::Hostile {
                page: HostilePage::Deep,
            },
        )
        .unwrap();
    let mut sc = scraper(&s, &["aldwick", "icebox", "morrow", "sainsway"]).await;
    for c in &mut sc.configs {
        // Short where the page never finishes (Icebox's spinning script);
        // room for the pages that do, which a loaded machine renders
        // slowly (the deep page once lost tiles at 3 s beside other work).
        c.politeness.page_timeout_ms = if c.slug.as_str() == "icebox" {
            3_000
        } else {
            15_000
        };
        c.politeness.max_retries = 1;
    }
    let started = std::time::Instant::now();
    let report = tokio::time::timeout(Duration::from_secs(120), sc.pass())
        .await
        .expect("the pass hung")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(90));

    // Huge: refused at once, not retried, counted.
    let aldwick = run(&report, "aldwick");
    assert_eq!(
        (aldwick.status.as_str(), aldwick.pages, aldwick.retries),
        ("failed", 0, 0),
        "{aldwick:?}"
    );
    // A script that never ends: timed out, the browser replaced, given up.
    let icebox = run(&report, "icebox");
    assert_eq!(
        (icebox.status.as_str(), icebox.pages),
        ("failed", 0),
        "{icebox:?}"
    );
    // Deep nesting: the parser flattens it; the tiles are still right.
    let truth = shop.store.truth(day());
    assert_matches_truth(
        &truth,
        &stored(&db.pool).await,
        &[Retailer::Morrow, Retailer::Sainsway],
    );
    let metrics = shelfwatch_runtime::metrics::encode();
    assert!(
        metrics.contains("shelfwatch_scrape_pages_total{outcome=\"hostile\",retailer=\"aldwick\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("shelfwatch_scrape_pages_total{outcome=\"timeout\",retailer=\"icebox\"}")
            || metrics.contains(
                "shelfwatch_scrape_pages_total{outcome=\"browser_error\",retailer=\"icebox\"}"
            )
    );
}

/// chromedriver started by the test, stopped (with its process group) when
/// dropped.
struct RemoteDriver(std::process::Child);

impl Drop for RemoteDriver {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_remote_webdriver_is_used_instead_of_starting_chromedriver() {
    use std::os::unix::process::CommandExt;
    let db = TestDb::new().await;
    let shop = shop().await;
    let (_d, spool) = spool_dir();
    let port = shelfwatch_store::db::embedded::free_port().unwrap();
    let _driver = RemoteDriver(
        std::process::Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap(),
    );
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut s = settings(&db.url, &shop, &spool);
    s.scrape.browser.webdriver_url = Some(format!("http://127.0.0.1:{port}"));
    // Nothing local is started: paths that do not exist are not looked at.
    s.scrape.browser.chromium = PathBuf::from("/nonexistent/chromium");
    s.scrape.browser.chromedriver = PathBuf::from("/nonexistent/chromedriver");
    let report = scraper(&s, &["aldwick"]).await.pass().await.unwrap();
    assert_eq!(run(&report, "aldwick").status, "succeeded", "{report:?}");
    assert_matches_truth(
        &shop.store.truth(day()),
        &stored(&db.pool).await,
        &[Retailer::Aldwick],
    );
}

// Run-level failures: a run that stores nothing, a tile selector that
// matches nothing, a selector that does not compile, a broken file.

/// A retailers directory of the test's own: `files` as (name, text).
fn config_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

/// The shipped Aldwick config with each `(old, new)` replaced (each `old`
/// must be in it).
/// How many start pages (one an aisle) the demo Aldwick config has.
fn aldwick_start_pages() -> usize {
    let text = std::fs::read_to_string(repo_path("retailers/demo/aldwick.toml")).unwrap();
    let config: toml::Table = toml::from_str(&text).unwrap();
    config["start_urls"].as_array().unwrap().len()
}

fn aldwick_with(edits: &[(&str, &str)]) -> String {
    let mut text = std::fs::read_to_string(repo_path("retailers/demo/aldwick.toml")).unwrap();
    for (old, new) in edits {
        assert!(text.contains(old), "{old:?} is not in aldwick.toml");
        text = text.replacen(old, new, 1);
    }
    text
}

/// A scraper over the configs in `dir`, pointed at `shop`, as loaded (no
/// politeness shortened).
fn scraper_over(db: &TestDb, shop: &Shop, spool: &Path, dir: &Path) -> Scraper {
    let mut s = settings(&db.url, shop, spool);
    s.scrape.retailers_dir = dir.to_path_buf();
    Scraper::new(&s.scrape, &s.database, &[], None, None).unwrap()
}

/// `shelfwatch scrape --once` as the binary over `dir` against `shop`:
/// (exit status, stdout, stderr).
async fn scrape_once(
    db: &TestDb,
    shop: &Shop,
    dir: &Path,
    spool: &Path,
    extra: &[&str],
) -> (std::process::ExitStatus, String, String) {
    let mut cmd = crate::support::shelfwatch_command(&[
        "scrape",
        "--once",
        "--no-match",
        "--origin",
        &shop.origin,
        "--retailers-dir",
        dir.to_str().unwrap(),
    ]);
    cmd.args(extra)
        .env("DATABASE_URL", &db.url)
        .env("SHELFWATCH_SCRAPE__SPOOL_DIR", spool);
    // The demo store answers on this runtime: wait for the binary off it.
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Pages load and tiles are there, but no tile can be stored (the price
/// selector reads the title): the run is `failed`, `scrape --once` exits
/// non-zero and says why, and the run record keeps the reason.
#[tokio::test]
async fn a_run_that_stores_nothing_fails_and_scrape_once_exits_non_zero() {
    let db = TestDb::new().await;
    let shop = shop().await;
    let (_d, spool) = spool_dir();
    let aldwick = aldwick_with(&[
        (
            "price = \".base-price__value\"",
            "price = \".product-tile__name\"",
        ),
        // Every tile then counts as in stock, so each needs a price.
        ("out_of_stock = \".product-tile__soldout\"\n", ""),
    ]);
    let dir = config_dir(&[("aldwick.toml", &aldwick)]);
    let (status, stdout, stderr) = scrape_once(&db, &shop, dir.path(), &spool, &[]).await;
    assert!(
        !status.success(),
        "{status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("aldwick: "))
        .unwrap_or_else(|| panic!("no aldwick line:\n{stdout}"));
    assert!(line.starts_with("aldwick: failed"), "{line}");
    let pages = aldwick_start_pages();
    assert!(
        line.contains(&format!("{pages} pages loaded with")),
        "{line}"
    );
    assert!(line.contains("but none could be stored"), "{line}");
    assert!(
        line.contains("first: "),
        "the first rejection is named: {line}"
    );
    let (status, message): (String, String) =
        sqlx::query_as("SELECT status, message FROM scrape_runs ORDER BY id DESC LIMIT 1")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(status, "failed");
    assert!(message.contains("none could be stored"), "{message}");
    assert!(stored(&db.pool).await.is_empty());
}

/// A tile selector that matches nothing on a page that loaded is a layout
/// change: the run fails on the first page, with no retry and no backoff.
#[tokio::test]
async fn a_tile_selector_matching_nothing_fails_at_once_without_retries() {
    let db = TestDb::new().await;
    let shop = shop().await;
    let (_d, spool) = spool_dir();
    // The page still becomes ready (`wait.ready` is unchanged); only the
    // tiles are looked for in the wrong place.
    let aldwick = aldwick_with(&[(
        "\ntile = \"div.product-grid div.product-tile\"",
        "\ntile = \"div.product-grid article.product-card\"",
    )]);
    let dir = config_dir(&[("aldwick.toml", &aldwick)]);
    let mut sc = scraper_over(&db, &shop, &spool, dir.path());
    // A retry would wait at least a minute.
    let backoff = Duration::from_secs(60);
    for c in &mut sc.configs {
        c.politeness.max_retries = 3;
        c.politeness.backoff_ms = backoff.as_millis() as u64;
        c.politeness.max_backoff_ms = 2 * backoff.as_millis() as u64;
    }
    let started = std::time::Instant::now();
    let report = sc.pass().await.unwrap();
    let took = started.elapsed();
    let r = run(&report, "aldwick");
    assert_eq!(r.status, "failed", "{r:?}");
    assert_eq!(r.retries, 0, "{r:?}");
    let message = r.message.as_deref().unwrap_or_default();
    assert!(message.contains("matches nothing"), "{r:?}");
    assert!(message.contains("article.product-card"), "{r:?}");
    assert!(
        took < backoff / 3,
        "took {took:?}: a retry's backoff is {backoff:?}"
    );
    let loads: Vec<String> = shop
        .store
        .request_log()
        .iter()
        .filter(|x| x.path.starts_with("/aldwick/products") && x.method == "GET")
        .map(|x| x.path.clone())
        .collect();
    let distinct: std::collections::HashSet<&String> = loads.iter().collect();
    // One start page an aisle, each loaded once: none is retried.
    let starts = sc
        .configs
        .iter()
        .find(|c| c.slug.as_str() == "aldwick")
        .unwrap()
        .start_urls
        .len();
    assert_eq!(loads.len(), starts, "{loads:?}");
    assert_eq!(
        distinct.len(),
        loads.len(),
        "a page was loaded twice: {loads:?}"
    );
}

/// A selector that does not compile is refused when the config loads, with
/// the file, the key and the selector named, before any page is asked for.
#[tokio::test]
async fn an_invalid_css_selector_is_refused_when_the_config_loads() {
    let db = TestDb::new().await;
    let shop = shop().await;
    let (_d, spool) = spool_dir();
    let aldwick = aldwick_with(&[(
        "price = \".base-price__value\"",
        "price = \".base-price p:nth-child(\"",
    )]);
    let dir = config_dir(&[("aldwick.toml", &aldwick)]);
    let sc = scraper_over(&db, &shop, &spool, dir.path());
    assert!(sc.configs.is_empty());
    let (slug, error) = &sc.broken[0];
    assert_eq!(slug, "aldwick");
    let file = dir.path().join("aldwick.toml");
    assert!(error.contains(&file.display().to_string()), "{error}");
    assert!(error.contains("selectors.price"), "{error}");
    assert!(error.contains(".base-price p:nth-child("), "{error}");
    assert!(error.contains("not a valid CSS selector"), "{error}");

    let report = sc.pass().await.unwrap();
    let r = run(&report, "aldwick");
    assert_eq!(r.status, "failed");
    assert!(
        r.message
            .as_deref()
            .is_some_and(|m| m.contains("the retailer config is broken")
                && m.contains(".base-price p:nth-child(")),
        "{r:?}"
    );
    assert!(
        shop.store.request_log().is_empty(),
        "no page is asked for with a config that did not load"
    );
}

/// A broken retailer file is reported and skipped while the others run:
/// in a whole pass (which then exits non-zero, naming it) and when
/// `--retailer` picks a good one (which succeeds, the broken file still
/// reported).
#[tokio::test]
async fn a_broken_retailer_file_is_reported_and_the_others_run() {
    let db = TestDb::new().await;
    let shop = shop().await;
    let (_d, spool) = spool_dir();
    let aldwick = aldwick_with(&[]);
    let dir = config_dir(&[
        ("aldwick.toml", &aldwick),
        (
            "zebra.toml",
            "slug = \"zebra\"\nname = \"Zebra\nstart_urls = [\n",
        ),
    ]);

    let (status, stdout, stderr) = scrape_once(&db, &shop, dir.path(), &spool, &[]).await;
    let all = format!("{status}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(!status.success(), "a broken retailer fails the pass: {all}");
    assert!(stdout.contains("aldwick: succeeded"), "{all}");
    let zebra = stdout
        .lines()
        .find(|l| l.starts_with("zebra: "))
        .unwrap_or_else(|| panic!("no zebra line: {all}"));
    assert!(zebra.starts_with("zebra: failed"), "{zebra}");
    assert!(zebra.contains("the retailer config is broken"), "{zebra}");
    assert!(zebra.contains("zebra.toml"), "{zebra}");

    let (status, stdout, stderr) =
        scrape_once(&db, &shop, dir.path(), &spool, &["--retailer", "aldwick"]).await;
    let all = format!("{status}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(status.success(), "{all}");
    assert!(stdout.contains("aldwick: succeeded"), "{all}");
    assert!(!stdout.contains("zebra:"), "{all}");
    assert!(
        stderr.contains("retailer config is broken") && stderr.contains("zebra.toml"),
        "the broken file is still reported: {all}"
    );

    let runs: Vec<(String, String)> = sqlx::query_as(
        "SELECT r.slug, s.status FROM scrape_runs s JOIN retailers r ON r.id = s.retailer_id \
         ORDER BY s.id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let aldwick_runs: Vec<&str> = runs
        .iter()
        .filter(|(slug, _)| slug == "aldwick")
        .map(|(_, s)| s.as_str())
        .collect();
    assert_eq!(aldwick_runs, ["succeeded", "succeeded"], "{runs:?}");
    assert!(!stored(&db.pool).await.is_empty());
}
