//! The scraper: thirtyfour drives headless Chromium through a chromedriver
//! the scraper starts itself, over the retailers configured in
//! `retailers/*.toml` (the demo store's shops: `retailers/demo/*.toml`).
//!
//! - [`config`] reads and validates retailer configs;
//! - [`check`] reads one page with a config (`retailer check`);
//! - [`browser`] starts and supervises chromedriver and Chromium;
//! - [`robots`] and [`politeness`] keep the scraper a good guest;
//! - [`extract`] reads tiles in the page and parses them in Rust;
//! - [`run`] is one retailer's run, recorded in `scrape_runs`;
//! - [`spool`] keeps observations while the database is away;
//! - [`matching`] links listings across retailers to canonical products.

pub mod browser;
pub mod check;
pub mod config;
pub mod extract;
pub mod matching;
pub mod metrics;
pub mod politeness;
pub mod robots;
pub mod run;
pub mod spool;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use serde::Deserialize;
use tokio::sync::Mutex;

use browser::{Browser, BrowserSettings};
use config::RetailerConfig;
use run::{RobotsCache, RunOptions, RunSummary, Sink};
use shelfwatch_store::db::DatabaseSettings;
use spool::Spool;

/// The demo store's retailer configs, relative to the working directory:
/// what `shelfwatch up`, the soak test and the scrape benchmark read, as the
/// demo store serves only these shops. `scrape.retailers_dir` defaults to
/// `retailers`, the real shops.
pub const DEMO_RETAILERS_DIR: &str = "retailers/demo";

/// `[scrape]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScrapeSettings {
    /// Directory of retailer configs (`*.toml` directly in it; default
    /// `retailers`, the real shops; the demo store's are in
    /// [`DEMO_RETAILERS_DIR`]).
    pub retailers_dir: PathBuf,
    /// Replaces scheme, host and port of every configured URL, e.g.
    /// `http://127.0.0.1:8700` for a demo store on another port.
    pub origin_override: Option<String>,
    /// Where observations wait while the database is away.
    pub spool_dir: PathBuf,
    /// A run seeing this share fewer products than the previous run is
    /// flagged suspect (0-1).
    pub suspect_drop_share: f64,
    /// Browser sessions scraping retailers in parallel.
    pub sessions: usize,
    /// Seconds to wait for a database connection before spooling.
    pub db_timeout_secs: u64,
    /// `/metrics` listener for `scrape --every` (e.g. 127.0.0.1:9466).
    pub metrics_bind: Option<String>,
    pub browser: BrowserSettings,
}

impl Default for ScrapeSettings {
    fn default() -> Self {
        Self {
            retailers_dir: PathBuf::from("retailers"),
            origin_override: None,
            spool_dir: PathBuf::from(".shelfwatch/spool"),
            suspect_drop_share: 0.3,
            sessions: 1,
            db_timeout_secs: 3,
            metrics_bind: None,
            browser: BrowserSettings::default(),
        }
    }
}

/// Everything one scrape pass needs.
pub struct Scraper {
    pub configs: Vec<RetailerConfig>,
    /// Retailer files that did not load: (slug, error). Each is reported
    /// as a failed run on every pass; the other retailers run.
    pub broken: Vec<(String, String)>,
    pub pool: shelfwatch_store::PgPool,
    pub spool_dir: PathBuf,
    pub options: RunOptions,
    pub sessions: usize,
    pub browser: BrowserSettings,
    pub match_products: bool,
}

/// One pass's results.
#[derive(Debug, Default)]
pub struct PassReport {
    pub runs: Vec<RunSummary>,
    pub matching: Option<matching::MatchReport>,
}

impl Scraper {
    /// Loads the configs and opens a lazy pool: a database that is away at
    /// start does not stop the scrape (pages go to the spool).
    pub fn new(
        sc: &ScrapeSettings,
        database: &DatabaseSettings,
        retailers: &[String],
        origin: Option<String>,
        sessions: Option<usize>,
    ) -> anyhow::Result<Self> {
        let loaded = config::load_dir_lenient(&sc.retailers_dir)?;
        let mut configs = loaded.configs;
        let mut broken = loaded.broken;
        // Every broken file is reported, also when --retailer picks others,
        // so a broken config never goes unnoticed.
        for b in &broken {
            tracing::error!(retailer = %b.slug, error = format!("{:#}", b.error), "retailer config is broken; that retailer is skipped");
        }
        if !retailers.is_empty() {
            for wanted in retailers {
                let known = configs.iter().any(|c| c.slug.as_str() == wanted)
                    || broken.iter().any(|b| &b.slug == wanted);
                if !known {
                    anyhow::bail!(
                        "no retailer {wanted:?} in {} (there are: {})",
                        sc.retailers_dir.display(),
                        configs
                            .iter()
                            .map(|c| c.slug.as_str())
                            .chain(broken.iter().map(|b| b.slug.as_str()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
            }
            configs.retain(|c| retailers.iter().any(|r| r == c.slug.as_str()));
            broken.retain(|b| retailers.contains(&b.slug));
        }
        let broken = broken
            .into_iter()
            .map(|b| (b.slug, format!("{:#}", b.error)))
            .collect();
        let origin = origin.or_else(|| sc.origin_override.clone());
        if let Some(o) = &origin {
            config::url_parts(o).with_context(|| format!("origin override {o:?}"))?;
        }
        if !(0.0..=1.0).contains(&sc.suspect_drop_share) {
            anyhow::bail!("scrape.suspect_drop_share must be between 0 and 1");
        }
        let url = shelfwatch_store::db::database_url(database)?;
        let mut db = database.clone();
        db.acquire_timeout_secs = sc.db_timeout_secs.max(1);
        let pool = shelfwatch_store::db::connect_lazy(&url, &db)?;
        for c in &configs {
            metrics::METRICS.touch(c.slug.as_str());
        }
        Ok(Self {
            configs,
            broken,
            pool,
            spool_dir: sc.spool_dir.clone(),
            options: RunOptions {
                origin_override: origin,
                suspect_drop_share: sc.suspect_drop_share,
            },
            sessions: sessions.unwrap_or(sc.sessions).max(1),
            browser: sc.browser.clone(),
            match_products: true,
        })
    }

    fn spool_for(&self, retailer: &str) -> Spool {
        Spool::new(self.spool_dir.join(retailer))
    }

    /// Replays every retailer's spool; None when the database is away.
    pub async fn replay_all(&self) -> Option<u64> {
        let mut total = 0;
        for c in &self.configs {
            let mut sink = Sink::new(self.pool.clone(), self.spool_for(c.slug.as_str()));
            total += sink.replay().await?;
        }
        Some(total)
    }

    /// Scrapes every configured retailer once, `sessions` at a time, then
    /// matches products.
    pub async fn pass(&self) -> anyhow::Result<PassReport> {
        self.pass_only(None).await
    }

    /// [`Self::pass`] over one retailer (by slug) or, with None, all.
    pub async fn pass_only(&self, retailer: Option<&str>) -> anyhow::Result<PassReport> {
        self.replay_all().await;
        let configs: std::collections::VecDeque<RetailerConfig> = self
            .configs
            .iter()
            .filter(|c| retailer.is_none_or(|r| r == c.slug.as_str()))
            .cloned()
            .collect();
        let broken: Vec<RunSummary> = self
            .broken
            .iter()
            .filter(|(slug, _)| retailer.is_none_or(|r| r == slug))
            .map(|(slug, error)| RunSummary {
                retailer: slug.clone(),
                status: "failed".into(),
                message: Some(format!("the retailer config is broken: {error}")),
                ..RunSummary::default()
            })
            .collect();
        if configs.is_empty() && broken.is_empty() {
            anyhow::bail!("no retailer {:?} is configured", retailer.unwrap_or(""));
        }
        for b in &broken {
            metrics::METRICS
                .runs
                .with_label_values(&[b.retailer.as_str(), "failed"])
                .inc();
        }
        let workers = self.sessions.min(configs.len());
        let queue = Arc::new(Mutex::new(configs));
        let mut handles = Vec::new();
        for _ in 0..workers {
            let queue = queue.clone();
            let pool = self.pool.clone();
            let options = self.options.clone();
            let browser_settings = self.browser.clone();
            let spool_dir = self.spool_dir.clone();
            handles.push(tokio::spawn(async move {
                let mut browser = Browser::new(browser_settings)?;
                let mut robots = RobotsCache::default();
                let mut out = Vec::new();
                loop {
                    let Some(config) = queue.lock().await.pop_front() else {
                        break;
                    };
                    let mut sink = Sink::new(
                        pool.clone(),
                        Spool::new(spool_dir.join(config.slug.as_str())),
                    );
                    out.push(
                        run::scrape_retailer(
                            &config,
                            &mut browser,
                            &mut sink,
                            &mut robots,
                            &options,
                        )
                        .await,
                    );
                }
                browser.shutdown().await;
                anyhow::Ok(out)
            }));
        }
        let mut report = PassReport {
            runs: broken,
            ..PassReport::default()
        };
        for h in handles {
            report
                .runs
                .extend(h.await.context("a scrape worker panicked")??);
        }
        report.runs.sort_by(|a, b| a.retailer.cmp(&b.retailer));
        if self.match_products {
            match matching::run(&self.pool).await {
                Ok(m) => report.matching = Some(m),
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), "product matching skipped")
                }
            }
        }
        Ok(report)
    }
}
