//! One runner for scheduled work: a pass now, then the jobs that the API
//! queues for the same kind until the next tick, then another pass, until
//! the stop signal. `scrape --every`, `forecast --every` and `up`'s workers
//! all run through it, over the store's `SKIP LOCKED` queue.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use anyhow::Context;
use shelfwatch_store::PgPool;
use shelfwatch_store::jobs::{self, Job, JobKind};

/// Runs `work` every `every` (with `None`), the first time after
/// `first_in`, and for each queued job of `kind` in between (with
/// `Some(job)`), until `stop` resolves. A failed
/// scheduled pass is logged and retried at the next tick; a failed job is
/// recorded as failed with its message.
pub async fn run_every<S, F, Fut>(
    pool: &PgPool,
    kind: JobKind,
    every: Duration,
    first_in: Duration,
    stop: &mut Pin<&mut S>,
    mut work: F,
) where
    S: Future<Output = ()>,
    F: FnMut(Option<Job>) -> Fut,
    Fut: Future<Output = Result<String, String>>,
{
    let mut next = tokio::time::Instant::now() + first_in;
    loop {
        if !jobs::work_until(pool, kind, next, stop, |job| work(Some(job))).await {
            tracing::info!(kind = kind.as_str(), "schedule stopped");
            return;
        }
        match work(None).await {
            Ok(summary) => tracing::info!(kind = kind.as_str(), "{summary}"),
            Err(e) => tracing::error!(kind = kind.as_str(), error = e, "scheduled run failed"),
        }
        next = tokio::time::Instant::now() + every;
    }
}

/// Serves the process's metrics on `bind` in the background, for the
/// long-running workers (`scrape.metrics_bind`, `forecast.metrics_bind`).
pub async fn serve_metrics(bind: &str) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("binding the metrics listener {bind}"))?;
    tracing::info!(addr = %bind, "metrics at /metrics");
    tokio::spawn(async move {
        if let Err(e) = shelfwatch_runtime::metrics::serve(listener, std::future::pending()).await {
            tracing::error!(error = %e, "metrics listener failed");
        }
    });
    Ok(())
}

/// Queues webhooks for watches that new prices or recommendations meet. A
/// failure is logged, never fatal to the run before it.
pub async fn evaluate_watches(pool: &PgPool) {
    if let Err(e) = shelfwatch_alerts::evaluate_watches(pool).await {
        tracing::error!(error = format!("{e:#}"), "evaluating watches failed");
    }
}
