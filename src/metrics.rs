//! Prometheus metrics: one registry per process, `shelfwatch_*` names.
//!
//! Each concern registers its own collectors here on first use (see
//! `scrape::metrics`, `api::http_metrics`, `ingest::metrics`); long-running
//! roles serve the registry on a `/metrics` listener of their own with
//! [`router`]. The API's listener uses [`router_with`] instead, which also
//! reads the last-run figures of one-shot jobs from the database ([`db`]).

pub mod db;
pub mod forecast;

use std::sync::LazyLock;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Encoder, Registry, TextEncoder};
use sqlx::PgPool;

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

/// `GET /metrics` that first reads the database figures ([`db::refresh`]).
pub fn router_with(pool: PgPool) -> Router {
    db::init();
    Router::new()
        .route("/metrics", get(metrics_with_db_handler))
        .with_state(pool)
}

async fn metrics_with_db_handler(State(pool): State<PgPool>) -> impl IntoResponse {
    let text = {
        let _guard = REFRESH.lock().await;
        db::refresh(&pool).await;
        encode()
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        text,
    )
}

/// Serves [`router_with`] on `listener` until `shutdown` resolves.
pub async fn serve_with_db(
    listener: tokio::net::TcpListener,
    pool: PgPool,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router_with(pool))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn build_info_is_exported() {
        let text = super::encode();
        assert!(text.contains("shelfwatch_build_info{version="), "{text}");
    }
}
