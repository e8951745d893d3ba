//! One scrape run of one retailer: robots.txt, paced page loads with
//! retries, backoff and a circuit breaker, tiles parsed and stored (or
//! spooled), and the run recorded in `scrape_runs`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use anyhow::Context;
use chrono::{SubsecRound, Utc};
use serde_json::json;
use thirtyfour::WebDriver;
use tokio::time::Instant;

use super::browser::Browser;
use super::config::{NavigationMode, PageKind, RetailerConfig, url_parts};
use super::extract::{self, Extracted, Item, RawTile, Sighting, parse_tile};
use super::metrics::METRICS;
use super::politeness::{CircuitBreaker, Pacer, RetryBudget, backoff};
use super::robots::Robots;
use super::spool::{Spool, SpoolRecord};
use shelfwatch_store::PgPool;
use shelfwatch_store::ingest::{Ingestor, Observation};
use shelfwatch_store::scrape_runs::{self, FinishedRun, RetailerInfo};

/// How long a robots.txt stays cached (RFC 9309 asks for at most 24 h).
const ROBOTS_TTL: Duration = Duration::from_secs(24 * 3600);

/// Why a page load failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageError {
    /// 429 or 503, with the `Retry-After` the server asked for.
    Throttled {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// Another 5xx.
    Server(u16),
    /// A 4xx other than 429: retrying will not help.
    Client(u16),
    /// The page or its tiles did not arrive in time.
    Timeout(String),
    /// The browser could not load it (connection refused, reset, ...).
    Navigation(String),
    /// Chromium or chromedriver stopped answering.
    BrowserDied(String),
    /// Too big to read safely: refused, not retried.
    Hostile(String),
    /// The page loaded but its tiles are not there: the layout changed or
    /// the config is wrong. Not retried.
    Layout(String),
}

impl PageError {
    fn outcome(&self) -> &'static str {
        match self {
            PageError::Throttled { status: 429, .. } => "rate_limited",
            PageError::Throttled { .. } | PageError::Server(_) => "http_5xx",
            PageError::Client(_) => "http_4xx",
            PageError::Timeout(_) => "timeout",
            PageError::Navigation(_) => "navigation_error",
            PageError::BrowserDied(_) => "browser_error",
            PageError::Hostile(_) => "hostile",
            PageError::Layout(_) => "layout",
        }
    }

    fn retryable(&self) -> bool {
        !matches!(
            self,
            PageError::Client(_) | PageError::Hostile(_) | PageError::Layout(_)
        )
    }
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PageError::Throttled {
                status,
                retry_after,
            } => write!(
                f,
                "HTTP {status}{}",
                retry_after.map_or(String::new(), |d| format!(
                    " (Retry-After {} s)",
                    d.as_secs()
                ))
            ),
            PageError::Server(s) | PageError::Client(s) => write!(f, "HTTP {s}"),
            PageError::Timeout(m) => write!(f, "timed out: {m}"),
            PageError::Navigation(m) => write!(f, "could not load: {m}"),
            PageError::BrowserDied(m) => write!(f, "the browser stopped answering: {m}"),
            PageError::Hostile(m) => write!(f, "refused as hostile: {m}"),
            PageError::Layout(m) => write!(f, "layout changed: {m}"),
        }
    }
}

/// What one page gave.
#[derive(Debug, Default)]
pub struct Page {
    pub tiles: Vec<RawTile>,
    pub next: Option<String>,
    /// The page kind it was read as.
    pub kind: String,
    /// How long the extraction script took (CSS sources, and fetching the
    /// JSON documents).
    pub script: Duration,
    /// How long the JSON and ld+json sources took in Rust.
    pub times: extract::SourceTimes,
}

/// Where a run's observations go: the database, or the spool while the
/// database is away.
pub struct Sink {
    pool: PgPool,
    ingestor: Option<Ingestor>,
    /// After a failure, go straight to the spool until then.
    down_until: Option<Instant>,
    spool: Spool,
}

/// What storing one page did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Database { inserted: u64 },
    Spooled(u64),
}

impl Sink {
    pub fn new(pool: PgPool, spool: Spool) -> Self {
        Self {
            pool,
            ingestor: None,
            down_until: None,
            spool,
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn database_down(&self) -> bool {
        self.down_until.is_some_and(|t| Instant::now() < t)
    }

    fn mark_down(&mut self, error: &anyhow::Error) {
        tracing::warn!(error = format!("{error:#}"), spool = %self.spool.dir().display(), "database unavailable; spooling");
        self.ingestor = None;
        self.down_until = Some(Instant::now() + Duration::from_secs(5));
    }

    async fn ingestor(&mut self) -> anyhow::Result<&mut Ingestor> {
        if self.ingestor.is_none() {
            self.ingestor = Some(Ingestor::new(self.pool.clone()).await?);
        }
        self.ingestor
            .as_mut()
            .context("the ingest connection is not open")
    }

    /// Replays the spool when the database is reachable. Returns how many
    /// observations it stored, or None when the database is still away.
    pub async fn replay(&mut self) -> Option<u64> {
        if self.database_down() {
            return None;
        }
        let spool = self.spool.clone();
        let result = match self.ingestor().await {
            Ok(ingestor) => spool.replay(ingestor).await,
            Err(e) => Err(e),
        };
        let result = match result {
            Ok(r) => self.replay_runs().await.map(|()| r),
            Err(e) => Err(e),
        };
        match result {
            Ok(r) => {
                if r.records > 0 {
                    tracing::info!(
                        records = r.records,
                        inserted = r.inserted,
                        duplicates = r.duplicates,
                        unreadable = r.unreadable,
                        "spool replayed"
                    );
                }
                Some(r.inserted)
            }
            Err(e) => {
                self.mark_down(&e);
                None
            }
        }
    }

    /// Writes the spooled run records; they are removed once written.
    async fn replay_runs(&mut self) -> anyhow::Result<()> {
        let runs = self.spool.runs()?;
        for run in &runs {
            record_spooled_run(&self.pool, run).await?;
        }
        if !runs.is_empty() {
            tracing::info!(runs = runs.len(), "spooled run records written");
            self.spool.clear_runs()?;
        }
        Ok(())
    }

    /// Stores `observations`, or spools `records` (the same tiles, raw)
    /// when the database cannot take them.
    pub async fn store(
        &mut self,
        observations: &[Observation],
        records: &[SpoolRecord],
    ) -> anyhow::Result<Stored> {
        if !self.database_down() {
            if self.spool.has_pending() {
                self.replay().await;
            }
            if !self.database_down() {
                let result = match self.ingestor().await {
                    Ok(i) => i.ingest(observations).await,
                    Err(e) => Err(e),
                };
                match result {
                    Ok(r) => {
                        return Ok(Stored::Database {
                            inserted: r.inserted,
                        });
                    }
                    Err(e) => self.mark_down(&e),
                }
            }
        }
        self.spool.append(records)?;
        Ok(Stored::Spooled(records.len() as u64))
    }
}

/// Per-run knobs that are not the retailer's own.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Replaces the origin of the configured URLs (a demo store elsewhere).
    pub origin_override: Option<String>,
    /// A run seeing fewer products than `(1 - share)` of the previous run's
    /// is flagged suspect.
    pub suspect_drop_share: f64,
}

/// What a run did, as recorded in `scrape_runs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunSummary {
    pub retailer: String,
    pub run_id: Option<i64>,
    pub status: String,
    pub pages: u32,
    pub failed_pages: u32,
    pub products: u32,
    pub parse_errors: u32,
    pub retries: u32,
    pub browser_restarts: u32,
    pub stored: u64,
    pub spooled: u64,
    pub previous_products: Option<u32>,
    pub message: Option<String>,
    /// Tiles found on the pages read.
    #[serde(default)]
    pub tiles_seen: u32,
    /// Tiles seen out of stock without a price (recorded without one).
    #[serde(default)]
    pub out_of_stock_sightings: u32,
    /// Optional fields dropped, by "field: kind".
    #[serde(default)]
    pub dropped_fields: std::collections::BTreeMap<String, u32>,
    /// Why the first rejected tile was rejected.
    #[serde(default)]
    pub first_rejection: Option<String>,
    /// Why the first failed page failed.
    #[serde(default)]
    pub first_page_error: Option<String>,
}

/// robots.txt per origin, fetched through the browser.
#[derive(Default)]
pub struct RobotsCache {
    entries: HashMap<String, (Instant, Robots)>,
}

impl RobotsCache {
    async fn get(&mut self, browser: &mut Browser, origin: &str) -> Robots {
        if let Some((at, r)) = self.entries.get(origin)
            && at.elapsed() < ROBOTS_TTL
        {
            return r.clone();
        }
        let robots = fetch_robots(browser, origin).await;
        self.entries
            .insert(origin.to_owned(), (Instant::now(), robots.clone()));
        robots
    }
}

async fn fetch_robots(browser: &mut Browser, origin: &str) -> Robots {
    let url = format!("{origin}/robots.txt");
    let fetched = async {
        let session = browser.session().await?;
        session.goto(url.as_str()).await?;
        let status = status_of(&session).await;
        let body = session
            .execute(
                "return document.body ? document.body.textContent : '';",
                Vec::new(),
            )
            .await?
            .convert::<String>()?;
        anyhow::Ok((status, body))
    }
    .await;
    match fetched {
        Ok((status, body)) => {
            tracing::debug!(%url, status, "robots.txt read");
            // A browser that cannot say the status saw a page: take it as 200.
            Robots::from_response(if status == 0 { 200 } else { status }, &body)
        }
        Err(e) => {
            tracing::warn!(%url, error = format!("{e:#}"), "robots.txt unreachable: nothing will be fetched");
            browser.reset().await;
            Robots::disallow_all()
        }
    }
}

async fn status_of(session: &WebDriver) -> u16 {
    match session.execute(extract::STATUS_JS, Vec::new()).await {
        Ok(r) => r.convert::<u16>().unwrap_or(0),
        Err(_) => 0,
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let secs = (at.with_timezone(&Utc) - Utc::now())
        .num_milliseconds()
        .max(0);
    Some(Duration::from_millis(secs as u64))
}

fn webdriver_error(e: &thirtyfour::error::WebDriverError) -> PageError {
    let text = e.to_string();
    if text.to_ascii_lowercase().contains("timeout") {
        PageError::Timeout(one_line(&text))
    } else {
        PageError::Navigation(one_line(&text))
    }
}

fn one_line(s: &str) -> String {
    let first = s.lines().next().unwrap_or("");
    first.chars().take(300).collect()
}

/// Loads and reads one page, with the page kind its URL calls for.
pub async fn load_page(
    session: &WebDriver,
    config: &RetailerConfig,
    url: &str,
) -> Result<Page, PageError> {
    let kind = config.kind_for(url).ok_or_else(|| {
        PageError::Layout(format!(
            "no page kind of {} takes {url} (give one a matching `url`, or one without)",
            config.source.display()
        ))
    })?;
    session.goto(url).await.map_err(|e| webdriver_error(&e))?;
    read_page(session, config, kind).await
}

/// Reads the page the session shows as `kind`: waits for it, checks its
/// status and size, scrolls, and reads its tiles.
pub async fn read_page(
    session: &WebDriver,
    config: &RetailerConfig,
    kind: &PageKind,
) -> Result<Page, PageError> {
    let wait = &kind.wait;
    let ready: extract::Ready = session
        .execute_async(
            extract::READY_JS,
            vec![
                json!(wait.ready),
                json!(wait.empty),
                json!(wait.timeout_ms),
                json!(config.consent.accept),
            ],
        )
        .await
        .map_err(|e| webdriver_error(&e))?
        .convert()
        .map_err(|e| PageError::Navigation(format!("reading the page state: {e}")))?;
    let status = ready.status;
    if ready.bytes > config.limits.max_page_bytes {
        return Err(PageError::Hostile(format!(
            "the page is {} bytes, more than limits.max_page_bytes ({})",
            ready.bytes, config.limits.max_page_bytes
        )));
    }
    if status == 429 || status == 503 {
        let retry_after = session
            .execute_async(extract::RETRY_AFTER_JS, Vec::new())
            .await
            .ok()
            .and_then(|r| r.convert::<Option<String>>().ok().flatten())
            .and_then(|v| parse_retry_after(&v));
        return Err(PageError::Throttled {
            status,
            retry_after,
        });
    }
    if (500..600).contains(&status) {
        return Err(PageError::Server(status));
    }
    if (400..500).contains(&status) {
        return Err(PageError::Client(status));
    }
    match ready.state.as_str() {
        "timeout" if ready.complete => {
            return Err(PageError::Layout(format!(
                "page kind {:?}: no {:?} on the loaded page after {} ms",
                kind.name, wait.ready, wait.timeout_ms
            )));
        }
        "timeout" => {
            return Err(PageError::Timeout(format!(
                "no {:?} after {} ms",
                wait.ready, wait.timeout_ms
            )));
        }
        "empty" => {
            return Ok(Page {
                kind: kind.name.clone(),
                ..Page::default()
            });
        }
        _ => {}
    }
    let nav = &config.navigation;
    let tile_css = kind.selectors.tile.css();
    if nav.mode == NavigationMode::Scroll
        && let Some(tile_css) = tile_css
    {
        session
            .execute_async(
                extract::SCROLL_JS,
                vec![
                    json!(tile_css),
                    json!(nav.max_scrolls),
                    json!(nav.settle_ms),
                ],
            )
            .await
            .map_err(|e| webdriver_error(&e))?;
    }
    let next_selector = match nav.mode {
        NavigationMode::Paginate => nav.next.clone(),
        _ => None,
    };
    let started = Instant::now();
    let extracted: Extracted = session
        .execute(
            extract::EXTRACT_JS,
            vec![
                extract::spec_json(&kind.selectors),
                json!(next_selector),
                json!(config.limits.max_tiles),
            ],
        )
        .await
        .map_err(|e| webdriver_error(&e))?
        .convert()
        .map_err(|e| PageError::Navigation(format!("reading tiles: {e}")))?;
    let script = started.elapsed();
    if extracted.count > u64::from(config.limits.max_tiles) {
        return Err(PageError::Hostile(format!(
            "{} tiles, more than limits.max_tiles ({})",
            extracted.count, config.limits.max_tiles
        )));
    }
    let (tiles, times) = extract::resolve(&kind.selectors, &extracted);
    if tiles.len() > config.limits.max_tiles as usize {
        return Err(PageError::Hostile(format!(
            "{} tiles, more than limits.max_tiles ({})",
            tiles.len(),
            config.limits.max_tiles
        )));
    }
    if tiles.is_empty() {
        return Err(PageError::Layout(format!(
            "page kind {:?}: the tile selector {} matches nothing on the loaded page",
            kind.name,
            serde_json::to_string(&kind.selectors.tile).unwrap_or_default()
        )));
    }
    Ok(Page {
        tiles,
        next: extracted.next,
        kind: kind.name.clone(),
        script,
        times,
    })
}

/// Sets the session's timeouts for `config`.
async fn set_timeouts(session: &WebDriver, config: &RetailerConfig) -> anyhow::Result<()> {
    let nav = &config.navigation;
    let script = Duration::from_millis(
        config.max_wait_ms() + u64::from(nav.max_scrolls) * (nav.settle_ms + 1000) + 10_000,
    );
    session
        .set_page_load_timeout(Duration::from_millis(config.politeness.page_timeout_ms))
        .await?;
    session.set_script_timeout(script).await?;
    Ok(())
}

async fn register_retailer(
    pool: &PgPool,
    config: &RetailerConfig,
    base_url: &str,
) -> anyhow::Result<i64> {
    scrape_runs::register_retailer(
        pool,
        RetailerInfo {
            slug: config.slug.as_str(),
            name: &config.name,
            currency: &config.currency,
            base_url,
        },
    )
    .await
}

async fn start_run(
    pool: &PgPool,
    retailer_id: i64,
    started_at: chrono::DateTime<Utc>,
) -> anyhow::Result<(i64, Option<u32>)> {
    let run = scrape_runs::start(pool, retailer_id, started_at).await?;
    Ok((run.id, run.previous_products))
}

async fn finish_run(
    pool: &PgPool,
    s: &RunSummary,
    finished_at: chrono::DateTime<Utc>,
) -> anyhow::Result<()> {
    let Some(id) = s.run_id else {
        anyhow::bail!("the run was never recorded");
    };
    scrape_runs::finish(
        pool,
        &FinishedRun {
            id,
            status: &s.status,
            pages: s.pages,
            products: s.products,
            errors: s.failed_pages,
            parse_errors: s.parse_errors,
            retries: s.retries,
            browser_restarts: s.browser_restarts,
            spooled: s.spooled,
            message: s.message.as_deref(),
            finished_at,
        },
    )
    .await
}

/// Writes a run that could not be recorded while the database was away:
/// its row is created (when it never was) and closed.
pub(crate) async fn record_spooled_run(pool: &PgPool, run: &SpooledRun) -> anyhow::Result<()> {
    let mut s = run.summary.clone();
    if s.run_id.is_none() {
        let retailer_id = scrape_runs::ensure_retailer(pool, &s.retailer).await?;
        let (id, _) = start_run(pool, retailer_id, run.started_at).await?;
        s.run_id = Some(id);
    }
    finish_run(pool, &s, run.finished_at).await
}

/// Records out-of-stock sightings (tiles sold out with no price).
async fn record_sightings(pool: &PgPool, sightings: &[Sighting]) -> anyhow::Result<u64> {
    let rows: Vec<_> = sightings
        .iter()
        .map(|s| shelfwatch_store::sightings::StockSighting {
            retailer: s.retailer.as_str().to_owned(),
            sku: s.sku.clone(),
            title: s.title.clone(),
            url: s.url.clone(),
            observed_at: s.observed_at,
        })
        .collect();
    shelfwatch_store::sightings::record_out_of_stock(pool, &rows).await
}

/// A run's record kept in the spool until the database returns.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SpooledRun {
    pub summary: RunSummary,
    pub started_at: chrono::DateTime<Utc>,
    pub finished_at: chrono::DateTime<Utc>,
}

/// Scrapes one retailer once.
pub async fn scrape_retailer(
    config: &RetailerConfig,
    browser: &mut Browser,
    sink: &mut Sink,
    robots_cache: &mut RobotsCache,
    options: &RunOptions,
) -> RunSummary {
    let slug = config.slug.as_str().to_owned();
    METRICS.touch(&slug);
    let started_at = Utc::now();
    let mut s = RunSummary {
        retailer: slug.clone(),
        ..RunSummary::default()
    };
    let base_url = config
        .base_url_with(options.origin_override.as_deref())
        .unwrap_or_else(|_| config.base_url.clone());
    match register_retailer(sink.pool(), config, &base_url).await {
        Ok(id) => match start_run(sink.pool(), id, started_at).await {
            Ok((run_id, previous)) => {
                s.run_id = Some(run_id);
                s.previous_products = previous;
            }
            Err(e) => {
                tracing::warn!(retailer = %slug, error = format!("{e:#}"), "could not record the run start")
            }
        },
        Err(e) => {
            tracing::warn!(retailer = %slug, error = format!("{e:#}"), "database unavailable at run start; pages will be spooled")
        }
    }
    let result = pages(config, browser, sink, robots_cache, options, &mut s).await;
    if let Err(e) = &result {
        s.message = Some(format!("{e:#}"));
    }
    let suspect_floor = s
        .previous_products
        .map(|p| f64::from(p) * (1.0 - options.suspect_drop_share));
    let stored_nothing = s.tiles_seen > 0 && s.products + s.out_of_stock_sightings == 0;
    if stored_nothing || (s.pages == 0 && result.is_ok()) {
        let why = if s.pages == 0 {
            format!(
                "no page could be read ({} failed{})",
                s.failed_pages,
                s.first_page_error
                    .as_ref()
                    .map_or(String::new(), |e| format!("; first: {e}"))
            )
        } else {
            format!(
                "{} pages loaded with {} tiles, but none could be stored ({} rejected{})",
                s.pages,
                s.tiles_seen,
                s.parse_errors,
                s.first_rejection
                    .as_ref()
                    .map_or(String::new(), |e| format!("; first: {e}"))
            )
        };
        s.message.get_or_insert(why);
    }
    if !s.dropped_fields.is_empty() {
        let dropped = s
            .dropped_fields
            .iter()
            .map(|(k, n)| format!("{k} x{n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let note = format!("optional fields dropped: {dropped}");
        s.message = Some(match s.message.take() {
            Some(m) => format!("{m}; {note}"),
            None => note,
        });
    }
    s.status = if result.is_err() || s.pages == 0 || stored_nothing {
        "failed"
    } else if suspect_floor.is_some_and(|floor| f64::from(s.products) < floor) {
        "suspect"
    } else if s.failed_pages > 0 || s.parse_errors > 0 || s.spooled > 0 {
        "partial"
    } else {
        "succeeded"
    }
    .to_owned();
    if s.status == "suspect" {
        METRICS.suspect_runs.with_label_values(&[&slug]).inc();
        let msg = format!(
            "products seen dropped from {} to {} (more than {:.0}%): the shop or the scraper changed",
            s.previous_products.unwrap_or(0),
            s.products,
            options.suspect_drop_share * 100.0
        );
        tracing::warn!(retailer = %slug, run_id = ?s.run_id, "{msg}");
        s.message.get_or_insert(msg);
    }
    METRICS
        .runs
        .with_label_values(&[slug.as_str(), s.status.as_str()])
        .inc();
    METRICS
        .run_products
        .with_label_values(&[&slug])
        .set(i64::from(s.products));
    if matches!(s.status.as_str(), "succeeded" | "partial") {
        METRICS
            .last_success
            .with_label_values(&[&slug])
            .set(Utc::now().timestamp());
    }
    if s.run_id.is_none() {
        // The database was away at the start: record the run now if it is back.
        if let Ok(id) = register_retailer(sink.pool(), config, &base_url).await
            && let Ok((run_id, _)) = start_run(sink.pool(), id, started_at).await
        {
            s.run_id = Some(run_id);
        }
    }
    let finished_at = Utc::now();
    if let Err(e) = finish_run(sink.pool(), &s, finished_at).await {
        // Kept with the spooled pages, and written when they are replayed.
        let run = SpooledRun {
            summary: s.clone(),
            started_at,
            finished_at,
        };
        match sink.spool.append_run(&run) {
            Ok(()) => {
                tracing::warn!(retailer = %slug, error = format!("{e:#}"), "the run's record is spooled until the database returns")
            }
            Err(spool_error) => {
                tracing::error!(retailer = %slug, error = format!("{e:#}"), spool_error = format!("{spool_error:#}"), "the run's record could not be kept")
            }
        }
    }
    tracing::info!(
        retailer = %slug,
        run_id = ?s.run_id,
        status = %s.status,
        pages = s.pages,
        products = s.products,
        parse_errors = s.parse_errors,
        retries = s.retries,
        spooled = s.spooled,
        "scrape run finished"
    );
    s
}

/// Retry state that lives for one run.
struct Attempts<'a> {
    config: &'a RetailerConfig,
    pacer: Pacer,
    budget: RetryBudget,
    breaker: CircuitBreaker,
    timeouts_set_for: u32,
}

impl Attempts<'_> {
    /// Loads `url`, retrying as politeness allows. `Ok(None)`: the page was
    /// given up (counted in `s`); `Err`: the run cannot go on.
    async fn load(
        &mut self,
        browser: &mut Browser,
        url: &str,
        s: &mut RunSummary,
    ) -> anyhow::Result<Option<Page>> {
        let config = self.config;
        let slug = config.slug.as_str();
        let p = &config.politeness;
        let mut attempt = 0u32;
        loop {
            if !self.breaker.allows() {
                METRICS
                    .pages
                    .with_label_values(&[slug, "breaker_open"])
                    .inc();
                anyhow::bail!(
                    "circuit breaker open after {} consecutive failed pages; the rest of the run \
                     is skipped",
                    p.breaker_threshold
                );
            }
            self.pacer.wait().await;
            let session = browser.session().await.context("starting the browser")?;
            if browser.starts != self.timeouts_set_for {
                set_timeouts(&session, config).await?;
                self.timeouts_set_for = browser.starts;
            }
            let started = Instant::now();
            let result = load_page(&session, config, url).await;
            tracing::debug!(
                %url,
                ms = started.elapsed().as_millis() as u64,
                ok = result.is_ok(),
                "page loaded"
            );
            let result = match result {
                Err(PageError::Navigation(m) | PageError::Timeout(m)) if !browser.alive().await => {
                    Err(PageError::BrowserDied(m))
                }
                other => other,
            };
            METRICS
                .page_duration
                .with_label_values(&[slug])
                .observe(started.elapsed().as_secs_f64());
            let err = match result {
                Ok(page) => {
                    self.breaker.success();
                    METRICS.pages.with_label_values(&[slug, "ok"]).inc();
                    return Ok(Some(page));
                }
                Err(err) => err,
            };
            METRICS
                .pages
                .with_label_values(&[slug, err.outcome()])
                .inc();
            self.breaker.failure();
            if let PageError::BrowserDied(_) = err {
                browser.reset().await;
                s.browser_restarts += 1;
                METRICS.browser_restarts.with_label_values(&[slug]).inc();
            }
            let wait = match &err {
                PageError::Throttled {
                    retry_after: Some(d),
                    ..
                } if d.as_secs() > p.max_retry_after_secs => {
                    tracing::warn!(retailer = slug, %url, "{err}: longer than politeness.max_retry_after_secs; page given up");
                    None
                }
                PageError::Throttled {
                    retry_after: Some(d),
                    ..
                } => Some(*d),
                _ => Some(backoff(p, attempt)),
            };
            let retry =
                err.retryable() && attempt < p.max_retries && wait.is_some() && self.budget.take();
            if !retry {
                tracing::warn!(retailer = slug, %url, attempts = attempt + 1, "page failed: {err}");
                s.failed_pages += 1;
                s.first_page_error
                    .get_or_insert_with(|| format!("{url}: {err}"));
                return Ok(None);
            }
            attempt += 1;
            s.retries += 1;
            METRICS
                .retries
                .with_label_values(&[slug, err.outcome()])
                .inc();
            let wait = wait.unwrap_or_default();
            tracing::info!(retailer = slug, %url, attempt, wait_ms = wait.as_millis() as u64, "retrying: {err}");
            self.pacer.defer_until(Instant::now() + wait);
        }
    }
}

/// A page read but not stored yet.
struct Pending {
    observations: Vec<Observation>,
    records: Vec<SpoolRecord>,
}

async fn store(sink: &mut Sink, pending: Option<Pending>) -> anyhow::Result<Option<Stored>> {
    let Some(p) = pending else {
        return Ok(None);
    };
    let started = Instant::now();
    let stored = sink.store(&p.observations, &p.records).await?;
    tracing::debug!(
        rows = p.observations.len(),
        ms = started.elapsed().as_millis() as u64,
        "page stored"
    );
    Ok(Some(stored))
}

fn count_stored(slug: &str, stored: Option<Stored>, s: &mut RunSummary) {
    match stored {
        Some(Stored::Database { inserted }) => s.stored += inserted,
        Some(Stored::Spooled(n)) => {
            s.spooled += n;
            METRICS.spooled.with_label_values(&[slug]).inc_by(n);
        }
        None => {}
    }
}

/// Walks the run's pages. Each page is stored while the next one loads, so
/// the browser never waits on the database.
async fn pages(
    config: &RetailerConfig,
    browser: &mut Browser,
    sink: &mut Sink,
    robots_cache: &mut RobotsCache,
    options: &RunOptions,
    s: &mut RunSummary,
) -> anyhow::Result<()> {
    let slug = config.slug.as_str();
    let p = &config.politeness;
    // Each page with the category of the start URL it was reached from.
    let start_pages = config.start_pages_with_categories(options.origin_override.as_deref())?;
    let mut queue: VecDeque<(String, Option<String>)> = start_pages.into_iter().collect();
    let mut seen_pages: HashSet<String> = queue.iter().map(|(u, _)| u.clone()).collect();
    let mut seen_skus: HashSet<String> = HashSet::new();
    let mut robots_by_origin: HashMap<String, Robots> = HashMap::new();
    let mut attempts: Option<Attempts> = None;
    let mut pending: Option<Pending> = None;
    let mut page_count = 0u32;

    while let Some((url, category)) = queue.pop_front() {
        let parts = url_parts(&url)?;
        if !robots_by_origin.contains_key(&parts.origin) {
            let r = robots_cache.get(browser, &parts.origin).await;
            robots_by_origin.insert(parts.origin.clone(), r);
        }
        let robots = &robots_by_origin[&parts.origin];
        if !robots.allowed(&parts.path) {
            METRICS
                .pages
                .with_label_values(&[slug, "robots_disallowed"])
                .inc();
            tracing::warn!(retailer = slug, %url, "robots.txt disallows this page; skipped");
            s.failed_pages += 1;
            s.first_page_error
                .get_or_insert_with(|| format!("{url}: robots.txt disallows it"));
            continue;
        }
        let attempts = attempts.get_or_insert_with(|| Attempts {
            config,
            pacer: Pacer::new(p, robots.crawl_delay),
            budget: RetryBudget::new(p),
            breaker: CircuitBreaker::for_retailer(p, slug),
            timeouts_set_for: 0,
        });
        let mut load_summary = RunSummary::default();
        let (page, stored) = tokio::join!(
            attempts.load(browser, &url, &mut load_summary),
            store(sink, pending.take())
        );
        s.retries += load_summary.retries;
        s.failed_pages += load_summary.failed_pages;
        s.browser_restarts += load_summary.browser_restarts;
        if s.first_page_error.is_none() {
            s.first_page_error = load_summary.first_page_error;
        }
        count_stored(slug, stored?, s);
        let Some(page) = page? else { continue };
        page_count += 1;
        s.pages += 1;
        // Microseconds, the precision the database keeps.
        let observed_at = Utc::now().trunc_subsecs(6);
        let mut next = Pending {
            observations: Vec::with_capacity(page.tiles.len()),
            records: Vec::with_capacity(page.tiles.len()),
        };
        s.tiles_seen += page.tiles.len() as u32;
        let mut sightings = Vec::new();
        for tile in &page.tiles {
            match parse_tile(&config.slug, tile, observed_at) {
                Ok(read) => {
                    for e in &read.dropped {
                        *s.dropped_fields
                            .entry(format!("{}: {}", e.field, e.kind()))
                            .or_default() += 1;
                        METRICS
                            .field_errors
                            .with_label_values(&[slug, e.field, e.kind()])
                            .inc();
                        tracing::debug!(retailer = slug, page = %url, tile = tile.index, field = e.field, reason = %e.reason, "optional field dropped");
                    }
                    match read.item {
                        Item::Observation(mut obs) => {
                            if seen_skus.insert(obs.sku.clone()) {
                                obs.category = category.clone();
                                next.records.push(SpoolRecord {
                                    retailer: config.slug.clone(),
                                    observed_at,
                                    page: url.clone(),
                                    tile: tile.clone(),
                                    category: category.clone(),
                                });
                                next.observations.push(*obs);
                            }
                        }
                        Item::OutOfStock(sighting) => {
                            if seen_skus.insert(sighting.sku.clone()) {
                                sightings.push(sighting);
                            }
                        }
                    }
                }
                Err(e) => {
                    s.parse_errors += 1;
                    METRICS.parse_errors.with_label_values(&[slug]).inc();
                    if s.first_rejection.is_none() {
                        s.first_rejection = Some(format!("tile {}: {}", e.index, e.reason));
                    }
                    tracing::warn!(
                        retailer = slug,
                        page = %url,
                        tile = e.index,
                        sku = e.sku.as_deref().unwrap_or("-"),
                        reason = %e.reason,
                        "tile skipped"
                    );
                    if let Err(err) = sink.spool.append_rejected(&url, tile, &e.reason) {
                        tracing::warn!(
                            retailer = slug,
                            error = format!("{err:#}"),
                            "the rejected tile could not be kept for review"
                        );
                    }
                }
            }
        }
        s.out_of_stock_sightings += sightings.len() as u32;
        if !sightings.is_empty()
            && let Err(e) = record_sightings(sink.pool(), &sightings).await
        {
            tracing::warn!(
                retailer = slug,
                error = format!("{e:#}"),
                count = sightings.len(),
                "out-of-stock sightings not recorded"
            );
        }
        s.products += next.observations.len() as u32;
        METRICS
            .products
            .with_label_values(&[slug])
            .inc_by(next.observations.len() as u64);
        pending = Some(next);
        if let Some(next) = page.next
            && page_count < config.navigation.max_pages
            && seen_pages.insert(next.clone())
        {
            queue.push_back((next, category));
        }
    }
    let stored = store(sink, pending.take()).await?;
    count_stored(slug, stored, s);
    Ok(())
}
