//! The scraper's Prometheus metrics (`shelfwatch_scrape_*`).

use std::sync::LazyLock;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};

use shelfwatch_runtime::metrics::register;

pub struct ScrapeMetrics {
    /// Page loads by retailer and outcome (ok, empty, http_4xx, http_5xx,
    /// rate_limited, timeout, browser_error, robots_disallowed, breaker_open).
    pub pages: IntCounterVec,
    pub products: IntCounterVec,
    pub parse_errors: IntCounterVec,
    /// Optional fields dropped (the tile kept), by retailer, field and kind
    /// ("missing" or "unreadable").
    pub field_errors: IntCounterVec,
    /// Retries by retailer and what caused them.
    pub retries: IntCounterVec,
    pub page_duration: HistogramVec,
    pub last_success: IntGaugeVec,
    pub runs: IntCounterVec,
    pub suspect_runs: IntCounterVec,
    pub run_products: IntGaugeVec,
    pub spooled: IntCounterVec,
    pub browser_restarts: IntCounterVec,
    /// The circuit breaker of the retailer's current or latest run: 0
    /// closed, 1 half-open, 2 open (`politeness::BreakerState::code`).
    pub circuit_state: IntGaugeVec,
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        IntCounterVec::new(Opts::new(name, help), labels)
            .unwrap_or_else(|e| unreachable!("metric {name} is well formed: {e}")),
    )
}

fn gauge(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(
        IntGaugeVec::new(Opts::new(name, help), labels)
            .unwrap_or_else(|e| unreachable!("metric {name} is well formed: {e}")),
    )
}

pub static METRICS: LazyLock<ScrapeMetrics> = LazyLock::new(|| ScrapeMetrics {
    pages: counter(
        "shelfwatch_scrape_pages_total",
        "Page loads by retailer and outcome.",
        &["retailer", "outcome"],
    ),
    products: counter(
        "shelfwatch_scrape_products_total",
        "Product tiles read and stored (or spooled).",
        &["retailer"],
    ),
    parse_errors: counter(
        "shelfwatch_scrape_parse_errors_total",
        "Tiles that could not be read.",
        &["retailer"],
    ),
    field_errors: counter(
        "shelfwatch_scrape_field_errors_total",
        "Optional fields that could not be read and were dropped; the tile was kept.",
        &["retailer", "field", "reason"],
    ),
    retries: counter(
        "shelfwatch_scrape_retries_total",
        "Page retries by retailer and cause.",
        &["retailer", "outcome"],
    ),
    page_duration: register(
        HistogramVec::new(
            HistogramOpts::new(
                "shelfwatch_scrape_page_duration_seconds",
                "Time to load, render and read one page.",
            )
            .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["retailer"],
        )
        .unwrap_or_else(|e| unreachable!("page duration histogram is well formed: {e}")),
    ),
    last_success: gauge(
        "shelfwatch_scrape_last_success_timestamp_seconds",
        "Unix time of the retailer's last successful run.",
        &["retailer"],
    ),
    runs: counter(
        "shelfwatch_scrape_runs_total",
        "Runs by retailer and final status.",
        &["retailer", "status"],
    ),
    suspect_runs: counter(
        "shelfwatch_scrape_suspect_runs_total",
        "Runs whose products seen dropped by more than the allowed share.",
        &["retailer"],
    ),
    run_products: gauge(
        "shelfwatch_scrape_run_products",
        "Products seen by the retailer's last run.",
        &["retailer"],
    ),
    spooled: counter(
        "shelfwatch_scrape_spooled_total",
        "Tiles written to the local spool while the database was away.",
        &["retailer"],
    ),
    browser_restarts: counter(
        "shelfwatch_scrape_browser_restarts_total",
        "Browser sessions restarted after Chromium or chromedriver died.",
        &["retailer"],
    ),
    circuit_state: gauge(
        "shelfwatch_scrape_circuit_state",
        "The retailer's circuit breaker in its current or latest run: 0 closed, 1 half-open, 2 open.",
        &["retailer"],
    ),
});

/// Page outcomes and retry causes every retailer exports from its first
/// run, at zero until they happen.
pub const PAGE_OUTCOMES: [&str; 11] = [
    "ok",
    "hostile",
    "robots_disallowed",
    "layout",
    "rate_limited",
    "http_5xx",
    "http_4xx",
    "timeout",
    "navigation_error",
    "browser_error",
    "breaker_open",
];

impl ScrapeMetrics {
    /// Creates the retailer's series at zero, so dashboards show 0 rather
    /// than no data, and the first increment of a counter is seen by
    /// `rate()` (a series that appears at 1 loses that step).
    pub fn touch(&self, retailer: &str) {
        for outcome in PAGE_OUTCOMES {
            self.pages.with_label_values(&[retailer, outcome]);
        }
        for outcome in &PAGE_OUTCOMES[4..] {
            self.retries.with_label_values(&[retailer, outcome]);
        }
        self.page_duration.with_label_values(&[retailer]);
        self.products.with_label_values(&[retailer]);
        self.parse_errors.with_label_values(&[retailer]);
        self.suspect_runs.with_label_values(&[retailer]);
        self.spooled.with_label_values(&[retailer]);
        self.browser_restarts.with_label_values(&[retailer]);
        self.circuit_state.with_label_values(&[retailer]);
    }
}
