//! Prometheus metrics: one registry per process, `shelfwatch_*` names.
//!
//! Each crate registers its own collectors here on first use, built by the
//! helpers below ([`gauge`], [`int_counter_vec`], [`histogram`], ...);
//! long-running roles serve the registry on a `/metrics` listener of their
//! own with [`router`]. The API's listener uses [`router_with`] instead, so
//! the last-run figures of one-shot jobs are read from the database just
//! before the registry is encoded.

use std::sync::LazyLock;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let registry = Registry::new();
    let info = prometheus::IntGaugeVec::new(
        prometheus::Opts::new(
            "shelfwatch_build_info",
            "The running shelfwatch build (always 1).",
        ),
        &["version"],
    )
    .and_then(|g| {
        g.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        registry.register(Box::new(g.clone())).map(|()| g)
    });
    if let Err(e) = info {
        tracing::warn!(error = %e, "could not register shelfwatch_build_info");
    }
    // process_cpu_seconds_total, process_resident_memory_bytes,
    // process_open_fds, process_start_time_seconds, ... of this process.
    #[cfg(target_os = "linux")]
    if let Err(e) = registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    )) {
        tracing::warn!(error = %e, "could not register the process collector");
    }
    registry
});

/// The process's registry.
pub fn registry() -> &'static Registry {
    &REGISTRY
}

/// Registers `collector` and returns it. Registration only fails for a
/// duplicate or inconsistent name, which is a programming error caught by
/// the tests; the collector still works, it is just not exported.
pub fn register<C: prometheus::core::Collector + Clone + 'static>(collector: C) -> C {
    if let Err(e) = REGISTRY.register(Box::new(collector.clone())) {
        tracing::error!(error = %e, "metric registration failed");
    }
    collector
}

/// The registry in Prometheus' text exposition format.
pub fn encode() -> String {
    let mut buf = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&REGISTRY.gather(), &mut buf) {
        tracing::error!(error = %e, "encoding metrics failed");
    }
    String::from_utf8(buf).unwrap_or_default()
}

/// `GET /metrics`, for a listener of its own.
pub fn router() -> Router {
    Router::new().route("/metrics", get(metrics_handler))
}

async fn metrics_handler() -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        encode(),
    )
}

/// Serves [`router`] on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router())
        .with_graceful_shutdown(shutdown)
        .await
}

/// Refreshes are serialised so two concurrent scrapes never encode while
/// the other has reset a gauge vector and not yet refilled it.
static REFRESH: LazyLock<tokio::sync::Mutex<()>> = LazyLock::new(|| tokio::sync::Mutex::new(()));

/// `GET /metrics` that first runs `refresh` (for example to read figures
/// from the database) and then encodes the registry.
pub fn router_with<F, Fut>(refresh: F) -> Router
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    Router::new().route(
        "/metrics",
        get(move || {
            let refresh = refresh.clone();
            async move {
                let text = {
                    let _guard = REFRESH.lock().await;
                    refresh().await;
                    encode()
                };
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    text,
                )
            }
        }),
    )
}

/// Serves [`router_with`] on `listener` until `shutdown` resolves.
pub async fn serve_with<F, Fut>(
    listener: tokio::net::TcpListener,
    refresh: F,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    axum::serve(listener, router_with(refresh))
        .with_graceful_shutdown(shutdown)
        .await
}

/// A gauge, registered. The name and help are constants of the caller, so
/// a malformed one is a programming error the tests catch.
pub fn gauge(name: &str, help: &str) -> Gauge {
    register(
        Gauge::new(name, help)
            .unwrap_or_else(|e| unreachable!("metric {name} is well formed: {e}")),
    )
}

/// An integer gauge, registered.
pub fn int_gauge(name: &str, help: &str) -> IntGauge {
    register(
        IntGauge::new(name, help)
            .unwrap_or_else(|e| unreachable!("metric {name} is well formed: {e}")),
    )
}

/// A gauge vector, registered.
pub fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    register(
        GaugeVec::new(Opts::new(name, help), labels)
            .unwrap_or_else(|e| unreachable!("metric {name} is well formed: {e}")),
    )
}

/// An integer gauge vector, registered.
pub fn int_gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(
        IntGaugeVec::new(Opts::new(name, help), labels)
            .unwrap_or_else(|e| unreachable!("metric {name} is well formed: {e}")),
    )
}

/// A counter, registered.
pub fn int_counter(name: &str, help: &str) -> IntCounter {
    register(
        IntCounter::new(name, help)
            .unwrap_or_else(|e| unreachable!("metric {name} is well formed: {e}")),
    )
}

/// A counter vector, registered.
pub fn int_counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        IntCounterVec::new(Opts::new(name, help), labels)
            .unwrap_or_else(|e| unreachable!("metric {name} is well formed: {e}")),
    )
}

/// A histogram with the given bucket bounds, registered.
pub fn histogram(name: &str, help: &str, buckets: &[f64]) -> Histogram {
    register(
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
            .unwrap_or_else(|e| unreachable!("metric {name} is well formed: {e}")),
    )
}

/// A histogram vector with the given bucket bounds, registered.
pub fn histogram_vec(name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    register(
        HistogramVec::new(
            HistogramOpts::new(name, help).buckets(buckets.to_vec()),
            labels,
        )
        .unwrap_or_else(|e| unreachable!("metric {name} is well formed: {e}")),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn build_info_is_exported() {
        let text = super::encode();
        assert!(text.contains("shelfwatch_build_info{version="), "{text}");
        for metric in [
            "process_resident_memory_bytes",
            "process_cpu_seconds_total",
            "process_open_fds",
        ] {
            assert!(text.contains(metric), "{metric} missing: {text}");
        }
    }
}
