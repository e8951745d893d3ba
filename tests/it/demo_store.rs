//! The demo store served in-process on a free port and spoken to over real
//! HTTP: client-side rendering, every fault mode, the control endpoints,
//! the CLI, and its history through the real import path.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use shelfwatch_demo_store::{DemoStore, Fault, Retailer, TruthListing, serve};
use shelfwatch_domain::money::parse_pence;
use shelfwatch_store::ingest::Ingestor;
use shelfwatch_store::ingest::csv_import::{ImportOptions, import_file};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::support::TestDb;

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// A store served on a free port; stops when dropped.
struct Served {
    addr: SocketAddr,
    store: DemoStore,
    _stop: oneshot::Sender<()>,
}

async fn start(date: NaiveDate) -> Served {
    let store = DemoStore::new(42, date);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve(listener, store.clone(), async move {
        let _ = stopped.await;
    }));
    Served {
        addr,
        store,
        _stop: stop,
    }
}

struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One HTTP/1.1 request on a fresh connection.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = if headers
        .get("transfer-encoding")
        .is_some_and(|v| v == "chunked")
    {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    http(addr, "GET", path, &[], "").await
}

async fn post_json(addr: SocketAddr, path: &str, body: serde_json::Value) -> Reply {
    http(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        &body.to_string(),
    )
    .await
}

async fn truth(addr: SocketAddr, query: &str) -> Vec<TruthListing> {
    let r = get(addr, &format!("/_truth{query}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str(&r.body).unwrap()
}

#[tokio::test]
async fn pages_carry_no_prices_the_api_does_and_it_matches_the_truth() {
    let s = start(day(2025, 6, 1)).await;
    let truth = truth(s.addr, "?date=2025-06-01").await;
    for r in Retailer::ALL {
        let slug = r.slug();
        let page = get(s.addr, &format!("/{slug}/")).await;
        assert_eq!(page.status, 200);
        assert!(page.headers["content-type"].starts_with("text/html"));
        assert!(!page.body.contains('£'), "{slug} shell shows a price");
        assert!(page.body.contains("<script>"), "{slug}");
        let again = get(s.addr, &format!("/{slug}/{}", r.listing_path())).await;
        assert_eq!(again.body, page.body);

        let mut seen = 0;
        let mut path = format!("/{slug}/api/products?page=1");
        if r == Retailer::Icebox {
            path = format!("/{slug}/api/products?offset=0&limit=10");
        }
        loop {
            let api = get(s.addr, &path).await;
            assert_eq!(api.status, 200, "{path}");
            let json = api.json();
            for tile in json["products"].as_array().unwrap() {
                let sku = tile["sku"].as_str().unwrap();
                let t = truth
                    .iter()
                    .find(|t| t.retailer == r && t.sku == sku)
                    .unwrap();
                let price = parse_pence(tile["price"].as_str().unwrap()).unwrap();
                assert_eq!(price, t.price_pence, "{slug} {sku}");
                assert_eq!(tile["url"].as_str(), Some(t.url.as_str()));
                assert!(t.url.starts_with(&format!("http://{}/{slug}/", s.addr)));
                seen += 1;
            }
            if r == Retailer::Icebox && json["more"] == true {
                path = format!("/{slug}/api/products?offset={seen}&limit=10");
            } else if json["page"].as_u64() < json["pages"].as_u64() {
                let next = json["page"].as_u64().unwrap() + 1;
                path = format!("/{slug}/api/products?page={next}");
            } else {
                break;
            }
        }
        assert_eq!(
            seen,
            truth.iter().filter(|t| t.retailer == r).count(),
            "{slug}"
        );

        // A product page answers; the checkout exists but robots.txt forbids it.
        let listing = truth.iter().find(|t| t.retailer == r).unwrap();
        let product_path = listing
            .url
            .trim_start_matches(&format!("http://{}", s.addr));
        let product = get(s.addr, product_path).await;
        assert_eq!(product.status, 200, "{product_path}");
        assert!(!product.body.contains('£'));
        assert_eq!(get(s.addr, &format!("/{slug}/checkout")).await.status, 200);
        assert_eq!(
            get(s.addr, &format!("/{slug}/no-such-page")).await.status,
            404
        );
    }
    let robots = get(s.addr, "/robots.txt").await;
    assert_eq!(robots.status, 200);
    assert!(robots.body.contains("Disallow: /*/checkout"));
}

#[tokio::test]
async fn consent_overlay_shows_until_its_cookie_is_sent() {
    let s = start(day(2025, 6, 1)).await;
    let cases = [
        (
            Retailer::Sainsway,
            "id=\"onetrust-accept-btn-handler\"",
            "OptanonAlertBoxClosed=2025-06-01",
        ),
        (
            Retailer::Aldwick,
            "class=\"cookie-modal__accept\"",
            "aldwick_cookie_consent=all",
        ),
        (
            Retailer::Icebox,
            "data-testid=\"cc-accept\"",
            "icebox_cc=accepted",
        ),
        (
            Retailer::Morrow,
            "class=\"btn-consent js-accept\"",
            "morrow-consent=1",
        ),
    ];
    for (r, button, cookie) in cases {
        let path = format!("/{}/", r.slug());
        let first = get(s.addr, &path).await;
        assert!(first.body.contains(button), "{r}");
        let later = http(s.addr, "GET", &path, &[("Cookie", cookie)], "").await;
        assert_eq!(later.status, 200);
        assert!(!later.body.contains(button), "{r} still shows the overlay");
    }
}

#[tokio::test]
async fn every_fault_mode_answers_as_documented() {
    let s = start(day(2025, 6, 1)).await;
    let a = s.addr;

    // slow
    let r = post_json(
        a,
        "/_control/faults",
        serde_json::json!({"retailer": "aldwick", "kind": "slow", "ms": 300}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["aldwick"][0]["kind"], "slow");
    let t0 = Instant::now();
    assert_eq!(get(a, "/aldwick/api/products").await.status, 200);
    assert!(t0.elapsed() >= Duration::from_millis(300));
    let t0 = Instant::now();
    assert_eq!(get(a, "/morrow/api/products").await.status, 200);
    assert!(t0.elapsed() < Duration::from_millis(300));

    // rate_limit: documents and the API, with Retry-After counting down
    let r = post_json(
        a,
        "/_control/faults",
        serde_json::json!({"retailer": "icebox", "kind": "rate_limit", "seconds": 30}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for path in [
        "/icebox/",
        "/icebox/food",
        "/icebox/api/products?offset=0&limit=10",
    ] {
        let r = get(a, path).await;
        assert_eq!(r.status, 429, "{path}");
        let retry: u64 = r.headers["retry-after"].parse().unwrap();
        assert!((1..=30).contains(&retry), "{retry}");
    }
    assert_eq!(get(a, "/sainsway/").await.status, 200);
    assert_eq!(get(a, "/robots.txt").await.status, 200);

    // unavailable: 503 for the next N requests, then served
    s.store
        .set_fault(Retailer::Morrow, Fault::Unavailable { requests: 2 })
        .unwrap();
    assert_eq!(get(a, "/morrow/shop").await.status, 503);
    assert_eq!(get(a, "/morrow/api/products?page=1").await.status, 503);
    assert_eq!(get(a, "/morrow/shop").await.status, 200);

    // broken: some tiles malformed, the truth says which
    let r = post_json(
        a,
        "/_control/faults",
        serde_json::json!({"retailer": "sainsway", "kind": "broken", "share": 0.5}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let truth_now = truth(a, "?retailer=sainsway").await;
    let broken: Vec<_> = truth_now.iter().filter(|t| t.broken).collect();
    assert!(!broken.is_empty() && broken.len() < truth_now.len());
    let mut unreadable = 0;
    for page in 1..=4 {
        let json = get(a, &format!("/sainsway/api/products?page={page}"))
            .await
            .json();
        for tile in json["products"].as_array().unwrap() {
            let sku = tile["sku"].as_str().unwrap();
            let t = truth_now.iter().find(|t| t.sku == sku).unwrap();
            let ok = tile["title"].is_string()
                && tile["price"]
                    .as_str()
                    .is_some_and(|p| parse_pence(p).is_ok());
            assert_eq!(ok, !t.broken, "{tile}");
            unreadable += usize::from(!ok);
        }
    }
    assert_eq!(unreadable, broken.len());

    // hide: fewer products listed
    let before = get(a, "/aldwick/api/products").await.json()["total"]
        .as_u64()
        .unwrap();
    let r = post_json(
        a,
        "/_control/faults",
        serde_json::json!({"retailer": "aldwick", "kind": "hide", "share": 0.5}),
    )
    .await;
    assert_eq!(r.status, 200);
    let after = get(a, "/aldwick/api/products").await.json()["total"]
        .as_u64()
        .unwrap();
    let hidden = truth(a, "?retailer=aldwick")
        .await
        .iter()
        .filter(|t| t.hidden)
        .count() as u64;
    assert!(
        hidden > 0 && after + hidden == before,
        "{before} {after} {hidden}"
    );

    // bad fault bodies are refused
    let r = post_json(
        a,
        "/_control/faults",
        serde_json::json!({"retailer": "tesco", "kind": "slow", "ms": 1}),
    )
    .await;
    assert_eq!(r.status, 422);
    let r = post_json(
        a,
        "/_control/faults",
        serde_json::json!({"retailer": "icebox", "kind": "hide", "share": 2}),
    )
    .await;
    assert_eq!(r.status, 422);

    // clearing
    let r = http(a, "DELETE", "/_control/faults?retailer=icebox", &[], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(get(a, "/icebox/").await.status, 200);
    assert_eq!(
        http(a, "DELETE", "/_control/faults", &[], "").await.status,
        200
    );
    assert_eq!(
        get(a, "/aldwick/api/products").await.json()["total"].as_u64(),
        Some(before)
    );

    // robots: replaced text, then a 5xx, then the default again
    let r = http(
        a,
        "POST",
        "/_control/robots",
        &[],
        "User-agent: *\nDisallow: /\n",
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        get(a, "/robots.txt").await.body,
        "User-agent: *\nDisallow: /\n"
    );
    assert_eq!(
        http(a, "POST", "/_control/robots?status=503", &[], "")
            .await
            .status,
        204
    );
    assert_eq!(get(a, "/robots.txt").await.status, 503);
    assert_eq!(
        http(a, "DELETE", "/_control/robots", &[], "").await.status,
        204
    );
    assert!(
        get(a, "/robots.txt")
            .await
            .body
            .contains("Disallow: /*/checkout")
    );

    // the log saw what was fetched, with statuses
    let log = get(a, "/_control/log").await.json();
    let entries: Vec<(String, u64)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap().to_owned(),
                e["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(entries.contains(&("/icebox/food".to_owned(), 429)));
    assert!(entries.contains(&("/morrow/shop".to_owned(), 503)));
    assert!(entries.contains(&("/morrow/shop".to_owned(), 200)));
    assert_eq!(s.store.request_log().len(), entries.len() + 1);
}

#[tokio::test]
async fn the_date_can_be_moved_at_run_time() {
    let s = start(day(2025, 6, 1)).await;
    let a = s.addr;
    assert_eq!(get(a, "/_control/date").await.json()["date"], "2025-06-01");
    let june = truth(a, "").await;
    let r = post_json(
        a,
        "/_control/date",
        serde_json::json!({"date": "2025-11-20"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(s.store.date(), day(2025, 11, 20));
    let november = truth(a, "").await;
    assert_eq!(november, truth(a, "?date=2025-11-20").await);
    assert_ne!(june, november);
    let api = get(a, "/morrow/api/products?page=1").await.json();
    assert_eq!(api["date"], "2025-11-20");
    assert_eq!(
        post_json(a, "/_control/date", serde_json::json!({"date": "soon"}))
            .await
            .status,
        422
    );
    assert_eq!(get(a, "/_truth?date=2025-13-01").await.status, 400);
}

#[tokio::test]
async fn exported_history_imports_with_zero_rejects() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.csv");
    let store = DemoStore::new(42, day(2025, 9, 1));
    let file = std::fs::File::create(&path).unwrap();
    let rows = store
        .history_csv(
            day(2025, 6, 1),
            day(2025, 8, 31),
            std::io::BufWriter::new(file),
        )
        .unwrap();
    assert_eq!(rows, 92 * store.listings().len() as u64);

    let mut ingestor = Ingestor::new(db.pool.clone()).await.unwrap();
    let options = ImportOptions {
        batch_size: 5000,
        rejects: None,
        progress: false,
    };
    let report = import_file(&mut ingestor, &path, &options).await.unwrap();
    assert_eq!(report.rejected, 0, "{:?}", report.sample_rejections);
    assert_eq!(report.rows, rows);
    assert_eq!(report.stored.inserted, rows);
    let (listings, retailers): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM listings), (SELECT count(*) FROM retailers)")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(listings, store.listings().len() as i64);
    assert_eq!(retailers, 4);
}

/// The binary as a script runs it: prints its address, serves, stops on
/// SIGTERM; and the export flags write files and exit.
#[tokio::test]
async fn cli_serves_on_a_free_port_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let truth_path = dir.path().join("truth.json");
    let history_path = dir.path().join("history.csv");
    let out = Command::new(env!("CARGO_BIN_EXE_shelfwatch"))
        .args([
            "demo-store",
            "--date",
            "2025-06-01",
            "--days",
            "3",
            "--seed",
            "7",
        ])
        .arg("--export-truth")
        .arg(&truth_path)
        .arg("--export-history")
        .arg(&history_path)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exported: Vec<TruthListing> =
        serde_json::from_slice(&std::fs::read(&truth_path).unwrap()).unwrap();
    assert_eq!(
        exported,
        DemoStore::new(7, day(2025, 6, 1)).truth(day(2025, 6, 1))
    );
    let history = std::fs::read_to_string(&history_path).unwrap();
    assert!(history.starts_with("retailer,sku,title,observed_at,price_pence,"));
    assert_eq!(history.lines().count(), 1 + 3 * exported.len());
    assert!(history.contains("2025-05-29T08:00:00Z") && history.contains("2025-05-31T08:00:00Z"));
    assert!(!history.contains("2025-06-01T"));

    let mut child = Command::new(env!("CARGO_BIN_EXE_shelfwatch"))
        .args([
            "demo-store",
            "--bind",
            "127.0.0.1:0",
            "--date",
            "2025-06-01",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("demo store at http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    assert_eq!(get(addr, "/robots.txt").await.status, 200);
    let served = truth(addr, "").await;
    assert_eq!(served.len(), exported.len());
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}

/// Headless Chromium renders the tiles from the script: the rendered page
/// shows the prices the truth states. Skipped where Chromium is missing.
#[tokio::test]
async fn chromium_renders_the_tiles() {
    let chromium = std::path::Path::new("/usr/bin/chromium");
    if !chromium.exists() {
        eprintln!("skipped: no {}", chromium.display());
        return;
    }
    let s = start(day(2025, 6, 1)).await;
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{}/morrow/", s.addr);
    let out = tokio::process::Command::new(chromium)
        .args(shelfwatch_scrape::browser::CHROMIUM_FLAGS)
        .arg("--virtual-time-budget=5000")
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", &url])
        .stderr(Stdio::null())
        .output()
        .await
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let tiles = dom.matches("class=\"fop-item\"").count();
    assert_eq!(tiles, 20, "{dom}");
    let truth = s.store.truth(day(2025, 6, 1));
    let first = truth
        .iter()
        .find(|t| t.retailer == Retailer::Morrow)
        .unwrap();
    assert!(dom.contains(&first.title));
    assert!(dom.contains("pager__next"));
    assert!(dom.contains('£'));
}
