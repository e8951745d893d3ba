//! The ingest path's Prometheus metrics (`shelfwatch_ingest_*`,
//! `shelfwatch_aggregate_*`), shared by the scraper and the CSV import.

use std::sync::LazyLock;

use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts};

use shelfwatch_runtime::metrics::register;

pub struct IngestMetrics {
    /// Observations by what became of them: stored, duplicate (already
    /// stored, left alone).
    pub rows: IntCounterVec,
    /// CSV rows that could not be read and went to the rejects file.
    pub rejected: IntCounter,
    /// Batches by outcome (ok, error).
    pub batches: IntCounterVec,
    /// One batch, from the first statement to the commit (and, with
    /// TimescaleDB, the continuous-aggregate refresh after it).
    pub batch_duration: Histogram,
    /// Bringing `price_daily` up to date for one batch, by flavour (native:
    /// the merge inside the batch; timescaledb: the refresh after it).
    pub aggregate_duration: HistogramVec,
}

pub static METRICS: LazyLock<IngestMetrics> = LazyLock::new(|| IngestMetrics {
    rows: register(
        IntCounterVec::new(
            Opts::new(
                "shelfwatch_ingest_rows_total",
                "Observations handed to the ingest path, by outcome (stored, duplicate).",
            ),
            &["outcome"],
        )
        .unwrap_or_else(|e| unreachable!("ingest rows counter is well formed: {e}")),
    ),
    rejected: register(
        IntCounter::new(
            "shelfwatch_ingest_rows_rejected_total",
            "CSV rows that could not be read (written to the rejects file).",
        )
        .unwrap_or_else(|e| unreachable!("ingest rejects counter is well formed: {e}")),
    ),
    batches: register(
        IntCounterVec::new(
            Opts::new(
                "shelfwatch_ingest_batches_total",
                "Ingest batches by outcome (ok, error).",
            ),
            &["outcome"],
        )
        .unwrap_or_else(|e| unreachable!("ingest batches counter is well formed: {e}")),
    ),
    batch_duration: register(
        Histogram::with_opts(
            HistogramOpts::new(
                "shelfwatch_ingest_batch_duration_seconds",
                "Time to store one ingest batch, commit included.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
        )
        .unwrap_or_else(|e| unreachable!("ingest batch histogram is well formed: {e}")),
    ),
    aggregate_duration: register(
        HistogramVec::new(
            HistogramOpts::new(
                "shelfwatch_aggregate_refresh_duration_seconds",
                "Time to bring price_daily up to date after one batch, by schema flavour.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["flavour"],
        )
        .unwrap_or_else(|e| unreachable!("aggregate histogram is well formed: {e}")),
    ),
});

/// Registers every collector, so a role exports them (at zero) before its
/// first batch and dashboards show 0 rather than no data.
pub fn init() {
    let m = &*METRICS;
    for outcome in ["stored", "duplicate"] {
        m.rows.with_label_values(&[outcome]);
    }
    for outcome in ["ok", "error"] {
        m.batches.with_label_values(&[outcome]);
    }
}
