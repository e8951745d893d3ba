//! Figures read from the database when `/metrics` is scraped.
//!
//! A one-shot `forecast` or `scrape --once` exits before Prometheus could
//! scrape it, so what their runs did is read back from the tables they
//! write (`forecast_runs`, `recommendations`, `scrape_runs`, `price_daily`)
//! by the long-running API's metrics listener, just before it encodes the
//! registry. The queries are few, small and index-backed; when the database
//! does not answer in time the previous figures stay and
//! `shelfwatch_metrics_db_up` says 0.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use anyhow::Context;
use prometheus::{Gauge, GaugeVec, Histogram, IntCounter, IntGauge, IntGaugeVec};
use shelfwatch_domain::action::Action;
use sqlx::PgPool;

use shelfwatch_runtime::metrics::{gauge, gauge_vec, int_counter, int_gauge};

/// Longest a scrape of `/metrics` waits for the database.
pub const REFRESH_TIMEOUT: Duration = Duration::from_secs(3);

/// Scrape run statuses, each exported per retailer (0: never).
pub const SCRAPE_STATUSES: [&str; 4] = ["succeeded", "partial", "suspect", "failed"];

struct DbMetrics {
    up: IntGauge,
    refresh_errors: IntCounter,
    refresh_duration: Histogram,
    acquire_duration: Histogram,
    forecast_last_success: Gauge,
    forecast_last_duration: Gauge,
    forecast_series: IntGauge,
    forecast_last_failed: IntGauge,
    forecast_behind: Gauge,
    recommendations: GaugeVec,
    recommendation_confidence: GaugeVec,
    scrape_last_run: GaugeVec,
    scrape_last_status: GaugeVec,
    scrape_last_products: GaugeVec,
    daily_lag: Gauge,
    jobs: GaugeVec,
    jobs_oldest_queued: GaugeVec,
    jobs_last_wait: GaugeVec,
    scrape_last_duration: GaugeVec,
    webhook_backlog: Gauge,
    webhook_backlog_oldest: Gauge,
    calibration_ece: GaugeVec,
    calibration_claims: GaugeVec,
}

/// Buckets of the refresh and connection-wait histograms (seconds).
const QUICK_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

fn histogram(name: &str, help: &str) -> Histogram {
    shelfwatch_runtime::metrics::histogram(name, help, &QUICK_BUCKETS)
}

static POOL: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    shelfwatch_runtime::metrics::int_gauge_vec(
        "shelfwatch_db_pool_connections",
        "Database pool connections by state (idle, used).",
        &["state"],
    )
});

static POOL_MAX: LazyLock<IntGauge> = LazyLock::new(|| {
    int_gauge(
        "shelfwatch_db_pool_max_connections",
        "The database pool's maximum size.",
    )
});

/// Sets the pool gauges from `pool`'s current state.
pub fn pool(pool: &PgPool) {
    let size = i64::from(pool.size());
    let idle = i64::try_from(pool.num_idle()).unwrap_or(i64::MAX);
    POOL.with_label_values(&["idle"]).set(idle);
    POOL.with_label_values(&["used"]).set((size - idle).max(0));
    POOL_MAX.set(i64::from(pool.options().get_max_connections()));
}

static METRICS: LazyLock<DbMetrics> = LazyLock::new(|| DbMetrics {
    up: int_gauge(
        "shelfwatch_metrics_db_up",
        "1 when the database figures below were read at this scrape, 0 when the database did not answer.",
    ),
    refresh_errors: int_counter(
        "shelfwatch_metrics_db_refresh_errors_total",
        "Scrapes of /metrics whose database figures could not be read.",
    ),
    refresh_duration: histogram(
        "shelfwatch_metrics_db_refresh_duration_seconds",
        "Time to read the database figures for one scrape of /metrics.",
    ),
    acquire_duration: histogram(
        "shelfwatch_db_pool_acquire_duration_seconds",
        "Time the /metrics refresh waited for a pooled connection (a probe of pool waits).",
    ),
    forecast_last_success: gauge(
        "shelfwatch_forecast_last_success_timestamp_seconds",
        "Unix time the latest succeeded forecast run finished (0: never).",
    ),
    forecast_last_duration: gauge(
        "shelfwatch_forecast_last_run_duration_seconds",
        "Wall time of the latest succeeded forecast run.",
    ),
    forecast_series: int_gauge(
        "shelfwatch_forecast_series",
        "Listings forecast by the latest succeeded run of each shard.",
    ),
    forecast_last_failed: int_gauge(
        "shelfwatch_forecast_last_run_failed",
        "1 when the latest finished forecast run failed.",
    ),
    forecast_behind: gauge(
        "shelfwatch_forecast_behind_seconds",
        "How long prices newer than the latest succeeded forecast's start have waited for a forecast (0: up to date).",
    ),
    recommendations: gauge_vec(
        "shelfwatch_recommendations",
        "Current recommendations (latest succeeded run of each shard) by action.",
        &["action"],
    ),
    recommendation_confidence: gauge_vec(
        "shelfwatch_recommendation_mean_confidence",
        "Mean confidence of the current recommendations by action (0 when none).",
        &["action"],
    ),
    scrape_last_run: gauge_vec(
        "shelfwatch_scrape_last_run_timestamp_seconds",
        "Unix time the retailer's latest run with this final status finished (0: never).",
        &["retailer", "status"],
    ),
    scrape_last_status: gauge_vec(
        "shelfwatch_scrape_last_run_status",
        "1 for the final status of the retailer's latest finished run, 0 for the others.",
        &["retailer", "status"],
    ),
    scrape_last_products: gauge_vec(
        "shelfwatch_scrape_last_run_products",
        "Products seen by the retailer's latest finished run (from the database).",
        &["retailer"],
    ),
    daily_lag: gauge(
        "shelfwatch_price_daily_lag_seconds",
        "Now minus the start of the newest price_daily day (large or absent: the aggregate is behind).",
    ),
    jobs: gauge_vec(
        "shelfwatch_jobs",
        "Jobs queued through the API, by kind and status (queued, running).",
        &["kind", "status"],
    ),
    jobs_oldest_queued: gauge_vec(
        "shelfwatch_jobs_oldest_queued_seconds",
        "How long the oldest job still queued has waited for a worker, by kind (0: none queued).",
        &["kind"],
    ),
    jobs_last_wait: gauge_vec(
        "shelfwatch_jobs_last_wait_seconds",
        "How long the most recently started job waited in the queue, by kind (0: none yet).",
        &["kind"],
    ),
    scrape_last_duration: gauge_vec(
        "shelfwatch_scrape_last_run_duration_seconds",
        "Wall time of the retailer's latest finished run (from the database).",
        &["retailer"],
    ),
    webhook_backlog: gauge(
        "shelfwatch_webhook_backlog",
        "Webhook deliveries not yet delivered and not given up.",
    ),
    webhook_backlog_oldest: gauge(
        "shelfwatch_webhook_backlog_oldest_seconds",
        "Age of the oldest pending webhook delivery (0: none pending).",
    ),
    calibration_ece: gauge_vec(
        "shelfwatch_forecast_calibration_ece",
        "Expected calibration error of the latest forecast run's claims, measured out of sample, by action (all: every claim); absent for an action with no claims scored.",
        &["action"],
    ),
    calibration_claims: gauge_vec(
        "shelfwatch_forecast_calibration_claims",
        "Claims the latest forecast run scored out of sample to measure its calibration, by action (all: every claim).",
        &["action"],
    ),
});

/// What one refresh read, applied to the gauges in one go.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Figures {
    pub forecast_last_success: Option<f64>,
    pub forecast_last_duration: Option<f64>,
    pub forecast_series: i64,
    pub forecast_last_failed: bool,
    pub forecast_behind: f64,
    /// action -> (count, mean confidence)
    pub recommendations: BTreeMap<String, (i64, f64)>,
    /// (retailer, status) -> unix time of the latest such run
    pub scrape_last_run: BTreeMap<(String, String), f64>,
    /// retailer -> (status, products) of the latest finished run
    pub scrape_latest: BTreeMap<String, (String, i64)>,
    pub daily_lag: Option<f64>,
    /// (kind, status) -> jobs
    pub jobs: BTreeMap<(String, String), i64>,
    /// kind -> (oldest queued job's wait, latest started job's wait), seconds
    pub job_waits: BTreeMap<String, (f64, f64)>,
    /// retailer -> wall time of its latest finished run, seconds
    pub scrape_last_duration: BTreeMap<String, f64>,
    /// pending webhook deliveries, and the oldest one's age in seconds
    pub webhook_backlog: (i64, f64),
    /// action ("all" too) -> (claims scored, expected calibration error)
    /// of the latest succeeded run with a reliability table
    pub calibration: BTreeMap<String, (i64, f64)>,
}

/// Registers the collectors (so they are exported, at their defaults,
/// before the first refresh).
pub fn init() {
    LazyLock::force(&METRICS);
    LazyLock::force(&POOL);
    LazyLock::force(&POOL_MAX);
}

/// Serves `/metrics` on `listener`, reading these figures from `pool` just
/// before each encoding, until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    pool: PgPool,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    init();
    let refresh = move || {
        let pool = pool.clone();
        async move { refresh(&pool).await }
    };
    shelfwatch_runtime::metrics::serve_with(listener, refresh, shutdown).await
}

/// Reads the figures and sets the gauges; on failure or timeout keeps the
/// previous figures and sets `shelfwatch_metrics_db_up` to 0.
pub async fn refresh(pool: &PgPool) {
    let m = &*METRICS;
    let started = Instant::now();
    self::pool(pool);
    match tokio::time::timeout(REFRESH_TIMEOUT, read(pool)).await {
        Ok(Ok(figures)) => {
            apply(&figures);
            m.up.set(1);
        }
        Ok(Err(e)) => {
            tracing::warn!(
                error = format!("{e:#}"),
                "reading database figures for /metrics"
            );
            m.refresh_errors.inc();
            m.up.set(0);
        }
        Err(_) => {
            tracing::warn!("reading database figures for /metrics timed out");
            m.refresh_errors.inc();
            m.up.set(0);
        }
    }
    m.refresh_duration.observe(started.elapsed().as_secs_f64());
}

/// The SELECTs behind [`Figures`], on one connection.
pub async fn read(pool: &PgPool) -> anyhow::Result<Figures> {
    let acquire_started = Instant::now();
    let mut conn = pool
        .acquire()
        .await
        .context("acquiring a connection for the metrics refresh")?;
    METRICS
        .acquire_duration
        .observe(acquire_started.elapsed().as_secs_f64());
    let mut f = Figures::default();

    // The latest succeeded run of each shard is the current forecast.
    let (last_success, last_duration, series, last_started): (
        Option<f64>,
        Option<f64>,
        Option<i64>,
        Option<chrono::DateTime<chrono::Utc>>,
    ) = sqlx::query_as(
        "WITH latest AS (
             SELECT DISTINCT ON (shard) id, started_at, finished_at, series
             FROM forecast_runs WHERE status = 'succeeded'
             ORDER BY shard, id DESC)
         SELECT extract(epoch FROM max(finished_at))::float8,
                (SELECT extract(epoch FROM finished_at - started_at)::float8
                 FROM latest ORDER BY id DESC LIMIT 1),
                sum(series)::bigint,
                min(started_at)
         FROM latest",
    )
    .fetch_one(&mut *conn)
    .await
    .context("reading forecast_runs")?;
    f.forecast_last_success = last_success;
    f.forecast_last_duration = last_duration;
    f.forecast_series = series.unwrap_or(0);
    let last_status: Option<String> = sqlx::query_scalar(
        "SELECT status FROM forecast_runs WHERE status <> 'running' ORDER BY id DESC LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await
    .context("reading the latest forecast run")?;
    f.forecast_last_failed = last_status.as_deref() == Some("failed");

    // Prices that arrived after the current forecast began wait for the
    // next run; how long the oldest of them has waited is the staleness.
    let newest_price: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "SELECT max(last_at) FROM price_daily WHERE day = (SELECT max(day) FROM price_daily)",
    )
    .fetch_one(&mut *conn)
    .await
    .context("reading the newest price_daily row")?;
    let now = chrono::Utc::now();
    f.forecast_behind = match (newest_price, last_started) {
        (Some(price), Some(started)) if price > started => {
            (now - price).num_milliseconds().max(0) as f64 / 1000.0
        }
        (Some(price), None) => (now - price).num_milliseconds().max(0) as f64 / 1000.0,
        _ => 0.0,
    };

    let rows: Vec<(String, i64, Option<f64>)> = sqlx::query_as(
        "WITH latest AS (
             SELECT DISTINCT ON (shard) id FROM forecast_runs WHERE status = 'succeeded'
             ORDER BY shard, id DESC)
         SELECT action, count(*), avg(confidence)::float8 FROM recommendations
         WHERE run_id IN (SELECT id FROM latest) GROUP BY action",
    )
    .fetch_all(&mut *conn)
    .await
    .context("reading recommendations")?;
    for (action, n, mean) in rows {
        f.recommendations.insert(action, (n, mean.unwrap_or(0.0)));
    }

    // The reliability table of the latest succeeded run that has one
    // (`forecast_calibration`): ECE is the claim-weighted gap between the
    // stated and the observed rate over its bins.
    let rows: Vec<(String, i64, f64)> = sqlx::query_as(
        "WITH latest AS (
             SELECT c.run_id FROM forecast_calibration c
             WHERE EXISTS (SELECT 1 FROM forecast_runs r
                           WHERE r.id = c.run_id AND r.status = 'succeeded')
             ORDER BY c.run_id DESC LIMIT 1)
         SELECT action, sum(n)::bigint,
                (sum(n * abs(stated_mean - observed_rate)) / sum(n))::float8
         FROM forecast_calibration WHERE run_id = (SELECT run_id FROM latest)
         GROUP BY action",
    )
    .fetch_all(&mut *conn)
    .await
    .context("reading forecast_calibration")?;
    for (action, n, ece) in rows {
        f.calibration.insert(action, (n, ece));
    }

    let rows: Vec<(String, String, Option<f64>)> = sqlx::query_as(
        "SELECT r.slug, s.status, extract(epoch FROM max(coalesce(s.finished_at, s.started_at)))::float8
         FROM scrape_runs s JOIN retailers r ON r.id = s.retailer_id
         WHERE s.status <> 'running' GROUP BY r.slug, s.status",
    )
    .fetch_all(&mut *conn)
    .await
    .context("reading scrape_runs")?;
    for (retailer, status, at) in rows {
        f.scrape_last_run
            .insert((retailer, status), at.unwrap_or(0.0));
    }
    let rows: Vec<(String, String, i32)> = sqlx::query_as(
        "SELECT DISTINCT ON (s.retailer_id) r.slug, s.status, s.products
         FROM scrape_runs s JOIN retailers r ON r.id = s.retailer_id
         WHERE s.status <> 'running' ORDER BY s.retailer_id, s.started_at DESC",
    )
    .fetch_all(&mut *conn)
    .await
    .context("reading the latest scrape runs")?;
    for (retailer, status, products) in rows {
        f.scrape_latest
            .insert(retailer, (status, i64::from(products)));
    }

    f.daily_lag =
        sqlx::query_scalar("SELECT extract(epoch FROM now() - max(day))::float8 FROM price_daily")
            .fetch_one(&mut *conn)
            .await
            .context("reading the newest price_daily day")?;

    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT kind, status, count(*) FROM jobs WHERE status IN ('queued', 'running')
         GROUP BY kind, status",
    )
    .fetch_all(&mut *conn)
    .await
    .context("reading jobs")?;
    for (kind, status, n) in rows {
        f.jobs.insert((kind, status), n);
    }
    let rows: Vec<(String, Option<f64>, Option<f64>)> = sqlx::query_as(
        "SELECT k.kind,
                (SELECT extract(epoch FROM now() - min(enqueued_at))::float8
                 FROM jobs WHERE kind = k.kind AND status = 'queued'),
                (SELECT extract(epoch FROM started_at - enqueued_at)::float8
                 FROM jobs WHERE kind = k.kind AND started_at IS NOT NULL
                 ORDER BY started_at DESC LIMIT 1)
         FROM (VALUES ('scrape'), ('forecast')) AS k (kind)",
    )
    .fetch_all(&mut *conn)
    .await
    .context("reading job waits")?;
    for (kind, oldest, last) in rows {
        f.job_waits
            .insert(kind, (oldest.unwrap_or(0.0), last.unwrap_or(0.0)));
    }
    let rows: Vec<(String, Option<f64>)> = sqlx::query_as(
        "SELECT DISTINCT ON (s.retailer_id) r.slug,
                extract(epoch FROM s.finished_at - s.started_at)::float8
         FROM scrape_runs s JOIN retailers r ON r.id = s.retailer_id
         WHERE s.status <> 'running' AND s.finished_at IS NOT NULL
         ORDER BY s.retailer_id, s.started_at DESC",
    )
    .fetch_all(&mut *conn)
    .await
    .context("reading scrape run durations")?;
    for (retailer, secs) in rows {
        f.scrape_last_duration.insert(retailer, secs.unwrap_or(0.0));
    }
    let (pending, oldest): (i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*), extract(epoch FROM now() - min(created_at))::float8
         FROM webhook_deliveries WHERE status = 'pending'",
    )
    .fetch_one(&mut *conn)
    .await
    .context("reading the webhook backlog")?;
    f.webhook_backlog = (pending, oldest.unwrap_or(0.0));
    Ok(f)
}

/// Sets the gauges to `f`. Label sets that disappeared (a retailer
/// removed) are dropped; every known label set is exported, at 0 when it
/// has no value, so dashboards and alerts see a series rather than none.
pub fn apply(f: &Figures) {
    let m = &*METRICS;
    m.forecast_last_success
        .set(f.forecast_last_success.unwrap_or(0.0));
    m.forecast_last_duration
        .set(f.forecast_last_duration.unwrap_or(0.0));
    m.forecast_series.set(f.forecast_series);
    m.forecast_last_failed
        .set(i64::from(f.forecast_last_failed));
    m.forecast_behind.set(f.forecast_behind);

    m.recommendations.reset();
    m.recommendation_confidence.reset();
    for action in Action::ALL.map(Action::as_str) {
        let (n, mean) = f.recommendations.get(action).copied().unwrap_or((0, 0.0));
        m.recommendations.with_label_values(&[action]).set(n as f64);
        m.recommendation_confidence
            .with_label_values(&[action])
            .set(mean);
    }

    m.scrape_last_run.reset();
    m.scrape_last_status.reset();
    m.scrape_last_products.reset();
    let retailers: std::collections::BTreeSet<&str> = f
        .scrape_last_run
        .keys()
        .map(|(r, _)| r.as_str())
        .chain(f.scrape_latest.keys().map(String::as_str))
        .collect();
    for retailer in retailers {
        let latest = f.scrape_latest.get(retailer);
        for status in SCRAPE_STATUSES {
            let at = f
                .scrape_last_run
                .get(&(retailer.to_owned(), status.to_owned()))
                .copied()
                .unwrap_or(0.0);
            m.scrape_last_run
                .with_label_values(&[retailer, status])
                .set(at);
            let is_latest = latest.is_some_and(|(s, _)| s == status);
            m.scrape_last_status
                .with_label_values(&[retailer, status])
                .set(if is_latest { 1.0 } else { 0.0 });
        }
        if let Some((_, products)) = latest {
            m.scrape_last_products
                .with_label_values(&[retailer])
                .set(*products as f64);
        }
    }

    match f.daily_lag {
        Some(lag) => m.daily_lag.set(lag),
        // No data at all: as far behind as can be said.
        None => m.daily_lag.set(f64::INFINITY),
    }

    m.jobs.reset();
    for kind in ["scrape", "forecast"] {
        for status in ["queued", "running"] {
            let n = f
                .jobs
                .get(&(kind.to_owned(), status.to_owned()))
                .copied()
                .unwrap_or(0);
            m.jobs.with_label_values(&[kind, status]).set(n as f64);
        }
        let (oldest, last) = f.job_waits.get(kind).copied().unwrap_or((0.0, 0.0));
        m.jobs_oldest_queued.with_label_values(&[kind]).set(oldest);
        m.jobs_last_wait.with_label_values(&[kind]).set(last);
    }
    m.scrape_last_duration.reset();
    for (retailer, secs) in &f.scrape_last_duration {
        m.scrape_last_duration
            .with_label_values(&[retailer.as_str()])
            .set(*secs);
    }
    m.webhook_backlog.set(f.webhook_backlog.0 as f64);
    m.webhook_backlog_oldest.set(f.webhook_backlog.1);
    // An action with no claims scored has no calibration error: no series.
    m.calibration_ece.reset();
    m.calibration_claims.reset();
    for (action, (n, ece)) in &f.calibration {
        m.calibration_ece
            .with_label_values(&[action.as_str()])
            .set(*ece);
        m.calibration_claims
            .with_label_values(&[action.as_str()])
            .set(*n as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_and_action_is_exported_once_figures_are_applied() {
        let mut f = Figures::default();
        f.scrape_last_run
            .insert(("aldwick".into(), "succeeded".into()), 1_700_000_000.0);
        f.scrape_latest
            .insert("aldwick".into(), ("succeeded".into(), 41));
        f.recommendations.insert("buy_now".into(), (3, 0.8));
        f.daily_lag = Some(3600.0);
        f.calibration.insert("all".into(), (120, 0.04));
        apply(&f);
        let text = shelfwatch_runtime::metrics::encode();
        for want in [
            "shelfwatch_scrape_last_run_timestamp_seconds{retailer=\"aldwick\",status=\"succeeded\"} 1700000000",
            "shelfwatch_scrape_last_run_timestamp_seconds{retailer=\"aldwick\",status=\"failed\"} 0",
            "shelfwatch_scrape_last_run_status{retailer=\"aldwick\",status=\"succeeded\"} 1",
            "shelfwatch_scrape_last_run_status{retailer=\"aldwick\",status=\"suspect\"} 0",
            "shelfwatch_scrape_last_run_products{retailer=\"aldwick\"} 41",
            "shelfwatch_recommendations{action=\"buy_now\"} 3",
            "shelfwatch_recommendations{action=\"hold\"} 0",
            "shelfwatch_recommendation_mean_confidence{action=\"buy_now\"} 0.8",
            "shelfwatch_price_daily_lag_seconds 3600",
            "shelfwatch_jobs{kind=\"scrape\",status=\"queued\"} 0",
            "shelfwatch_forecast_calibration_ece{action=\"all\"} 0.04",
            "shelfwatch_forecast_calibration_claims{action=\"all\"} 120",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
        assert!(
            !text.contains("shelfwatch_forecast_calibration_ece{action=\"wait\"}"),
            "an action with no claims scored has no calibration error"
        );
    }
}
