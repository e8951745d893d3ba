//! The forecaster's process metrics, for `forecast --every` and its
//! `/metrics` listener (`forecast.metrics_bind`). They sit here rather than
//! in `forecast` so the batch job itself stays free of process state; the
//! figures of one-shot runs come from the database instead (`db`).

use std::sync::LazyLock;
use std::time::Instant;

use prometheus::{Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts};
use shelfwatch_store::PgPool;

use crate::load::Shard;
use crate::{Params, RunOutcome};
use shelfwatch_runtime::metrics::register;

struct ForecastMetrics {
    runs: IntCounterVec,
    duration: HistogramVec,
    last_success: Gauge,
    last_series: IntGauge,
}

static METRICS: LazyLock<ForecastMetrics> = LazyLock::new(|| {
    ForecastMetrics {
    runs: register(
        IntCounterVec::new(
            Opts::new(
                "shelfwatch_forecast_runs_total",
                "Forecast runs by this process, by outcome (completed, unchanged, failed).",
            ),
            &["outcome"],
        )
        .unwrap_or_else(|e| unreachable!("forecast runs counter is well formed: {e}")),
    ),
    duration: register(
        HistogramVec::new(
            HistogramOpts::new(
                "shelfwatch_forecast_run_duration_seconds",
                "Wall time of a forecast run by this process, by outcome.",
            )
            .buckets(vec![
                0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
            ]),
            &["outcome"],
        )
        .unwrap_or_else(|e| unreachable!("forecast duration histogram is well formed: {e}")),
    ),
    last_success: register(
        Gauge::new(
            "shelfwatch_forecast_process_last_success_timestamp_seconds",
            "Unix time this process last finished a forecast run without error (completed or unchanged).",
        )
        .unwrap_or_else(|e| unreachable!("forecast last success gauge is well formed: {e}")),
    ),
    last_series: register(
        IntGauge::new(
            "shelfwatch_forecast_process_last_series",
            "Listings forecast by this process's last completed run.",
        )
        .unwrap_or_else(|e| unreachable!("forecast series gauge is well formed: {e}")),
    ),
}
});

pub const OUTCOMES: [&str; 3] = ["completed", "unchanged", "failed"];

/// Registers the collectors, every outcome at zero, so the first run is
/// an increase `rate()` sees rather than a series that appears at 1.
pub fn init() {
    for outcome in OUTCOMES {
        METRICS.runs.with_label_values(&[outcome]);
        METRICS.duration.with_label_values(&[outcome]);
    }
}

/// [`crate::run_once`], counted and timed.
pub async fn timed_run(pool: &PgPool, params: &Params, shard: Shard) -> anyhow::Result<RunOutcome> {
    init();
    let started = Instant::now();
    let result = crate::run_once(pool, params, shard).await;
    let outcome = match &result {
        Ok(RunOutcome::Completed { series, .. }) => {
            METRICS
                .last_series
                .set(i64::try_from(*series).unwrap_or(i64::MAX));
            "completed"
        }
        Ok(RunOutcome::Unchanged { .. }) => "unchanged",
        Err(_) => "failed",
    };
    METRICS.runs.with_label_values(&[outcome]).inc();
    METRICS
        .duration
        .with_label_values(&[outcome])
        .observe(started.elapsed().as_secs_f64());
    if result.is_ok() {
        METRICS
            .last_success
            .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
    }
    result
}
