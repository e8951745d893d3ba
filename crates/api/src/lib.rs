//! The REST API (`/v1`), documented with utoipa.
//!
//! `shelfwatch serve` binds the API and, on a listener of its own,
//! `/metrics`; it also runs the webhook delivery worker of
//! `shelfwatch_alerts`. Handlers are thin: they check the request, call
//! the store (which owns every query) and map its rows into the response
//! models. [`operations`] lists every handler once; that one list gives
//! both the router and the OpenAPI document.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod catalogue;
pub mod connections;
pub mod error;
pub mod extract;
pub mod health;
pub mod http_metrics;
pub mod kept;
pub mod layers;
pub mod model;
mod notify;
pub mod openapi;
pub mod ratelimit;
pub mod recommendations;
pub mod watches;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{from_fn, from_fn_with_state};
use serde::Deserialize;
use shelfwatch_store::PgPool;
use tokio::sync::watch;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use shelfwatch_runtime::Secret;
use shelfwatch_store::db::DatabaseSettings;

/// `[api]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSettings {
    /// Address the API listens on.
    pub bind: String,
    /// Address `/metrics` listens on (empty: no metrics listener).
    pub metrics_bind: String,
    /// Whether reads need a key (scope `read`); writes and admin always do.
    pub require_key_for_reads: bool,
    /// Origins allowed by CORS (`https://app.example`); empty allows none.
    pub cors_allowed_origins: Vec<String>,
    /// Longest a request may take before a 503.
    pub request_timeout_secs: u64,
    /// Largest request body accepted.
    pub body_limit_bytes: usize,
    /// `max-age` of cacheable reads.
    pub cache_max_age_secs: u32,
    /// How long the server reuses a read's response for the same URL
    /// (0: never). Prices change when a scrape or forecast lands, hours
    /// apart; a short reuse absorbs bursts of identical reads.
    pub read_cache_ms: u64,
    /// Seconds to finish in-flight requests after SIGTERM.
    pub shutdown_grace_secs: u64,
    /// A worker unseen for longer than this is reported as absent.
    pub worker_stale_after_secs: u64,
    /// Live watches one principal (API key or token subject) may have;
    /// more are refused with 409 (0: no limit).
    pub max_watches_per_principal: i64,
    pub rate_limit: RateLimitSettings,
    pub connections: connections::ConnectionSettings,
    /// Bearer tokens from an identity provider (absent: API keys only).
    pub jwt: Option<auth::JwtSettings>,
    pub webhooks: shelfwatch_alerts::WebhookSettings,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".to_owned(),
            metrics_bind: "127.0.0.1:9464".to_owned(),
            require_key_for_reads: false,
            cors_allowed_origins: Vec::new(),
            request_timeout_secs: 10,
            body_limit_bytes: 64 * 1024,
            cache_max_age_secs: 60,
            read_cache_ms: 2000,
            shutdown_grace_secs: 10,
            worker_stale_after_secs: 600,
            max_watches_per_principal: 100,
            rate_limit: RateLimitSettings::default(),
            connections: connections::ConnectionSettings::default(),
            jwt: None,
            webhooks: shelfwatch_alerts::WebhookSettings::default(),
        }
    }
}

/// `[api.rate_limit]`: token buckets; a rate of 0 turns a limit off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSettings {
    pub per_key_per_sec: f64,
    pub per_key_burst: u32,
    pub per_ip_per_sec: f64,
    pub per_ip_burst: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            per_key_per_sec: 50.0,
            per_key_burst: 100,
            per_ip_per_sec: 20.0,
            per_ip_burst: 40,
        }
    }
}

/// Everything a handler can reach.
pub struct App {
    pub pool: PgPool,
    pub settings: ApiSettings,
    pub auth: auth::Authenticator,
    pub ip_limiter: ratelimit::Limiter,
    pub key_limiter: ratelimit::Limiter,
    /// Failed credentials per client address (the per-address limit).
    pub auth_failure_limiter: ratelimit::Limiter,
    pub read_cache: layers::ReadCache,
    /// The last `/readyz` answer, reused for a second.
    pub readiness: health::Readiness,
    /// The current forecast runs, reloaded when a run lands.
    pub runs: kept::CurrentRuns,
    /// Retailer ids by slug, for the `retailer` filters.
    pub retailer_ids: kept::RetailerIds,
}

pub type AppState = Arc<App>;

impl App {
    pub fn new(pool: PgPool, settings: ApiSettings) -> anyhow::Result<AppState> {
        let auth = auth::Authenticator::new(pool.clone(), settings.jwt.as_ref())?;
        let rl = &settings.rate_limit;
        Ok(Arc::new(App {
            ip_limiter: ratelimit::Limiter::new(rl.per_ip_per_sec, rl.per_ip_burst),
            key_limiter: ratelimit::Limiter::new(rl.per_key_per_sec, rl.per_key_burst),
            auth_failure_limiter: ratelimit::Limiter::new(rl.per_ip_per_sec, rl.per_ip_burst),
            read_cache: layers::ReadCache::new(Duration::from_millis(settings.read_cache_ms)),
            readiness: health::Readiness::new(health::READINESS_TTL),
            runs: kept::CurrentRuns::new(pool.clone()),
            retailer_ids: kept::RetailerIds::default(),
            auth,
            pool,
            settings,
        }))
    }
}

/// Every documented operation, grouped by the layers it is served
/// behind. This is the one list of routes: the router and the OpenAPI
/// document are both built from it.
pub struct Operations {
    /// `/healthz` and `/readyz`: no credentials, no rate limit (`/readyz`
    /// answers from a check run at most once a second).
    pub health: OpenApiRouter<AppState>,
    /// Cacheable `/v1` reads (ETag).
    pub reads: OpenApiRouter<AppState>,
    /// The other `/v1` operations.
    pub writes: OpenApiRouter<AppState>,
}

/// The operations, each handler listed once.
pub fn operations() -> Operations {
    let health = OpenApiRouter::default()
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz));
    let reads = OpenApiRouter::default()
        .routes(routes!(catalogue::list_retailers))
        .routes(routes!(catalogue::list_products))
        .routes(routes!(catalogue::get_product))
        .routes(routes!(catalogue::product_prices))
        .routes(routes!(catalogue::product_forecast))
        .routes(routes!(recommendations::list_recommendations));
    let writes = OpenApiRouter::default()
        .routes(routes!(watches::list_watches, watches::create_watch))
        .routes(routes!(watches::get_watch, watches::delete_watch))
        .routes(routes!(admin::enqueue_scrape))
        .routes(routes!(admin::enqueue_forecast))
        .routes(routes!(admin::get_job))
        .routes(routes!(admin::list_runs));
    Operations {
        health,
        reads,
        writes,
    }
}

/// The whole HTTP surface.
pub fn router(app: AppState) -> anyhow::Result<Router> {
    let Operations {
        health,
        reads,
        writes,
    } = operations();
    let v1 = reads
        .route_layer(from_fn_with_state(app.clone(), layers::etag))
        .merge(writes)
        .route_layer(from_fn_with_state(app.clone(), auth::layer));
    let (api, doc) = openapi::base().merge(health).merge(v1).split_for_parts();
    let api = api
        .layer(DefaultBodyLimit::max(app.settings.body_limit_bytes))
        .with_state(app.clone())
        .merge(
            // The document and the UI are limited per client address like
            // anonymous `/v1` calls, from the same budget.
            Router::from(SwaggerUi::new("/docs").url("/openapi.json", openapi::finish(doc)))
                .layer(from_fn_with_state(app.clone(), auth::ip_limit)),
        );
    let api = api
        .route_layer(from_fn(layers::mark_route))
        .layer(from_fn_with_state(app.clone(), layers::time_limit))
        .layer(from_fn(layers::problems))
        .layer(cors(&app.settings)?)
        .layer(from_fn_with_state(app.clone(), layers::observe))
        .layer(from_fn(layers::request_id));
    Ok(api)
}

fn cors(settings: &ApiSettings) -> anyhow::Result<CorsLayer> {
    let origins = settings
        .cors_allowed_origins
        .iter()
        .map(|o| {
            HeaderValue::from_str(o.trim_end_matches('/'))
                .with_context(|| format!("api.cors_allowed_origins: {o:?} is not a valid origin"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_NONE_MATCH,
            HeaderName::from_static("x-api-key"),
            HeaderName::from_static(layers::REQUEST_ID_HEADER),
        ])
        .expose_headers([
            header::ETAG,
            header::RETRY_AFTER,
            header::LOCATION,
            HeaderName::from_static(layers::REQUEST_ID_HEADER),
        ])
        .max_age(Duration::from_secs(600)))
}

/// A running API: its addresses and the switch that stops it.
pub struct Running {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    app: AppState,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Whether landed forecast runs are being heard, so the current runs
    /// are kept in memory ([`kept::CurrentRuns`]).
    pub fn hears_landed_runs(&self) -> bool {
        self.app.runs.live()
    }

    /// Stops accepting, lets in-flight requests finish (up to the grace
    /// period), stops the workers, and returns when all have ended.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(grace, task).await.is_err() {
                tracing::warn!("a server task did not stop within the grace period");
                abort.abort();
            }
        }
    }
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Binds and serves the API (`bind`, port 0 allowed), `/metrics` (unless
/// `metrics_bind` is empty), the webhook delivery worker and the
/// subscription to key revocations (which holds one pool connection).
pub async fn start(pool: PgPool, settings: ApiSettings) -> anyhow::Result<Running> {
    http_metrics::init();
    connections::init_metrics();
    shelfwatch_alerts::init_metrics();
    let listener = tokio::net::TcpListener::bind(&settings.bind)
        .await
        .with_context(|| format!("binding the API to {}", settings.bind))?;
    let addr = listener.local_addr()?;
    let metrics_listener = if settings.metrics_bind.is_empty() {
        None
    } else {
        Some(
            tokio::net::TcpListener::bind(&settings.metrics_bind)
                .await
                .with_context(|| format!("binding /metrics to {}", settings.metrics_bind))?,
        )
    };
    let metrics_addr = metrics_listener
        .as_ref()
        .map(|l| l.local_addr())
        .transpose()?;
    // A bad `ca_file` stops the start here, not at the first delivery.
    let webhook_client =
        shelfwatch_alerts::WebhookClient::new(&settings.webhooks).map_err(anyhow::Error::msg)?;
    let app = App::new(pool.clone(), settings)?;
    let router = router(app.clone())?;
    let (stop, rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let api_stop = stopped(rx.clone());
    let connection_settings = app.settings.connections.clone();
    tasks.push(tokio::spawn(connections::serve(
        listener,
        router,
        connection_settings,
        api_stop,
    )));
    if let Some(listener) = metrics_listener {
        let metrics_stop = stopped(rx.clone());
        // The API's listener also reports what one-shot jobs left in the
        // database (last forecast, last scrape per retailer, aggregate lag).
        let metrics_pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) =
                shelfwatch_store::gauges::serve(listener, metrics_pool, metrics_stop).await
            {
                tracing::error!(error = %e, "the metrics server failed");
            }
        }));
    }
    // Revoked keys leave the key cache the moment they are revoked.
    let revocations = app.clone();
    let revocations_stop = stopped(rx.clone());
    tasks.push(tokio::spawn(async move {
        revocations.auth.follow_revocations(revocations_stop).await;
    }));
    // So do the current forecast runs when a run lands.
    let landed = app.clone();
    let landed_stop = stopped(rx.clone());
    tasks.push(tokio::spawn(async move {
        landed.runs.follow(landed_stop).await;
    }));
    tasks.push(tokio::spawn(shelfwatch_alerts::worker(
        pool,
        app.settings.webhooks.clone(),
        webhook_client,
        stopped(rx.clone()),
    )));
    Ok(Running {
        addr,
        metrics_addr,
        app,
        stop,
        tasks,
    })
}

/// Longest a request waits for a database connection. While the database
/// is away, requests answer 503 after this rather than holding the caller
/// until the request time limit; the pool reconnects when it is back.
pub const DB_WAIT: Duration = Duration::from_secs(2);

/// The pool `serve` uses: the `[database]` settings, with the wait for a
/// connection capped at [`DB_WAIT`], tuned for short reads
/// (`shelfwatch_store::db::connect_for_requests`).
pub async fn connect(url: &Secret, database: &DatabaseSettings) -> anyhow::Result<PgPool> {
    let mut database = database.clone();
    database.acquire_timeout_secs = database.acquire_timeout_secs.clamp(1, DB_WAIT.as_secs());
    shelfwatch_store::db::connect_for_requests(url, &database).await
}
