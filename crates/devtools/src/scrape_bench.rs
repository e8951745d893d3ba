//! `shelfwatch bench scrape`: pages per minute scraping the demo store,
//! beside the same pages loaded by a bare thirtyfour loop (navigate, wait
//! for the tiles, scroll where the shop lazy-loads; no robots.txt, parsing
//! or storage), with 1, 2 and 4 browser sessions, in one run.
//!
//! Pacing is switched off for both (requests_per_minute is raised and
//! jitter set to 0): politeness is a choice, not a cost of the code.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde_json::json;
use tokio::sync::Mutex;

use crate::Settings;
use shelfwatch_demo_store::DemoStore;
use shelfwatch_scrape::browser::Browser;
use shelfwatch_scrape::config::{NavigationMode, RetailerConfig};
use shelfwatch_scrape::extract;
use shelfwatch_scrape::run::{RobotsCache, RunOptions, Sink, scrape_retailer};
use shelfwatch_scrape::spool::Spool;

#[derive(Debug, Args)]
pub struct ScrapeBenchArgs {
    /// Browser sessions to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    pub sessions: Vec<usize>,
    /// Passes over every retailer per measurement.
    #[arg(long, default_value_t = 4)]
    pub passes: usize,
}

/// The next-page link, for the bare loop (the scraper reads it with the
/// tiles).
const NEXT_JS: &str = r#"
const a = document.querySelector(arguments[0]);
const href = a && a.getAttribute('href');
if (!href || href === '#') return null;
try { return new URL(href, document.baseURI).href; } catch (e) { return null; }
"#;

/// Pages and time for one measurement.
#[derive(Debug, Clone, Copy)]
struct Measured {
    pages: u64,
    elapsed: Duration,
}

impl Measured {
    fn per_minute(self) -> f64 {
        self.pages as f64 * 60.0 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The pages a bare loop visits for one retailer: the start pages and,
/// when paginated, every next page.
async fn bare_retailer(
    browser: &mut Browser,
    config: &RetailerConfig,
    origin: &str,
) -> anyhow::Result<u64> {
    let session = browser.session().await?;
    let mut queue: VecDeque<String> = config.start_pages(Some(origin))?.into();
    let mut pages = 0;
    while let Some(url) = queue.pop_front() {
        let kind = config
            .kind_for(&url)
            .ok_or_else(|| anyhow::anyhow!("no page kind takes {url}"))?;
        session.goto(url.as_str()).await?;
        session
            .execute_async(
                extract::READY_JS,
                vec![
                    json!(kind.wait.ready),
                    json!(kind.wait.empty),
                    json!(kind.wait.timeout_ms),
                    json!(config.consent.accept),
                ],
            )
            .await?;
        if config.navigation.mode == NavigationMode::Scroll
            && let Some(tile) = kind.selectors.tile.css()
        {
            session
                .execute_async(
                    extract::SCROLL_JS,
                    vec![
                        json!(tile),
                        json!(config.navigation.max_scrolls),
                        json!(config.navigation.settle_ms),
                    ],
                )
                .await?;
        }
        pages += 1;
        if let Some(next) = &config.navigation.next
            && config.navigation.mode == NavigationMode::Paginate
            && let Some(href) = session
                .execute(NEXT_JS, vec![json!(next)])
                .await?
                .convert::<Option<String>>()?
        {
            queue.push_back(href);
        }
    }
    Ok(pages)
}

/// What every measurement shares.
struct Bench {
    configs: Vec<RetailerConfig>,
    origin: String,
    db_url: shelfwatch_runtime::Secret,
    database: shelfwatch_store::db::DatabaseSettings,
    spool_dir: std::path::PathBuf,
}

/// Runs `passes` over all retailers on `browsers.len()` workers; `scrape`
/// chooses the real scraper or the bare loop.
async fn measure(
    bench: &Bench,
    browsers: &mut Vec<Browser>,
    passes: usize,
    scrape: bool,
) -> anyhow::Result<Measured> {
    let mut work = VecDeque::new();
    for _ in 0..passes {
        work.extend(bench.configs.iter().cloned());
    }
    let queue = Arc::new(Mutex::new(work));
    let started = Instant::now();
    let mut handles = Vec::new();
    for mut browser in browsers.drain(..) {
        let queue = queue.clone();
        let origin = bench.origin.clone();
        let pool = shelfwatch_store::db::connect_lazy(&bench.db_url, &bench.database)?;
        let spool = Spool::new(bench.spool_dir.join(format!("w{}", handles.len())));
        handles.push(tokio::spawn(async move {
            let mut pages = 0u64;
            let mut sink = Sink::new(pool, spool);
            let mut robots = RobotsCache::default();
            let options = RunOptions {
                origin_override: Some(origin.clone()),
                suspect_drop_share: 1.0,
            };
            let result: anyhow::Result<()> = async {
                loop {
                    let Some(config) = queue.lock().await.pop_front() else {
                        break;
                    };
                    if scrape {
                        let s = scrape_retailer(
                            &config,
                            &mut browser,
                            &mut sink,
                            &mut robots,
                            &options,
                        )
                        .await;
                        anyhow::ensure!(
                            s.failed_pages == 0 && s.spooled == 0,
                            "{}: {s:?}",
                            s.retailer
                        );
                        pages += u64::from(s.pages);
                    } else {
                        pages += bare_retailer(&mut browser, &config, &origin).await?;
                    }
                }
                Ok(())
            }
            .await;
            (browser, pages, result)
        }));
    }
    let mut pages = 0;
    for h in handles {
        let (browser, p, result) = h.await.context("a benchmark worker panicked")?;
        browsers.push(browser);
        result?;
        pages += p;
    }
    Ok(Measured {
        pages,
        elapsed: started.elapsed(),
    })
}

pub async fn run(args: ScrapeBenchArgs, settings: &Settings) -> anyhow::Result<()> {
    let url = shelfwatch_store::db::database_url(&settings.database)?;
    let scratch = shelfwatch_store::bench::ScratchDb::create(
        &url,
        &format!("bench_scrape_{}", std::process::id()),
    )
    .await?;
    let db_url = shelfwatch_runtime::Secret::new(scratch.url.clone());
    let date = chrono::Utc::now().date_naive();
    let store = DemoStore::new(42, date);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let origin = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(shelfwatch_demo_store::serve(listener, store, async move {
        let _ = stopped.await;
    }));
    // The demo store serves only the demo shops.
    let mut configs = shelfwatch_scrape::config::load_dir(std::path::Path::new(
        shelfwatch_scrape::DEMO_RETAILERS_DIR,
    ))?;
    for c in &mut configs {
        c.politeness.requests_per_minute = 6000;
        c.politeness.jitter = 0.0;
    }
    let bench = Bench {
        configs,
        origin,
        db_url,
        database: settings.database.clone(),
        spool_dir: std::env::temp_dir()
            .join(format!("shelfwatch-bench-spool-{}", std::process::id())),
    };
    let mut lines = Vec::new();
    let mut bare_single = None;
    for &n in &args.sessions {
        let n = n.max(1);
        let mut browsers = Vec::new();
        for _ in 0..n {
            let mut b = Browser::new(settings.scrape.browser.clone())?;
            b.session().await?;
            browsers.push(b);
        }
        // Warm the store, the browser caches and the database once.
        measure(&bench, &mut browsers, 1, true).await?;
        let bare = measure(&bench, &mut browsers, args.passes, false).await?;
        let ours = measure(&bench, &mut browsers, args.passes, true).await?;
        for b in browsers {
            b.shutdown().await;
        }
        let overhead = bare.per_minute() / ours.per_minute() - 1.0;
        eprintln!(
            "{n} session(s): bare {:.0} pages/min, scraper {:.0} pages/min, overhead {:+.1}%",
            bare.per_minute(),
            ours.per_minute(),
            overhead * 100.0
        );
        if n == 1 {
            bare_single = Some(bare.per_minute());
        }
        lines.push(format!(
            "| {n} | {} | {:.0} | {:.0} | {:+.1}% | {} |",
            ours.pages,
            bare.per_minute(),
            ours.per_minute(),
            overhead * 100.0,
            bare_single.map_or("-".to_owned(), |b| format!("{:.2}x", ours.per_minute() / b))
        ));
    }
    let _ = stop.send(());
    let _ = server.await;
    let _ = std::fs::remove_dir_all(&bench.spool_dir);
    scratch.drop(false).await?;
    println!(
        "| sessions | pages per measurement | bare thirtyfour loop (pages/min) | scraper (pages/min) | scraper overhead | scraper vs 1 bare session |"
    );
    println!("|---|---|---|---|---|---|");
    for l in lines {
        println!("{l}");
    }
    Ok(())
}
