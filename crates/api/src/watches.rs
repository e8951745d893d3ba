//! Watches: a caller's price alert on a product, delivered as a signed
//! webhook when a new price or recommendation meets it.
//!
//! [`evaluate_watches`] compares every active watch with the current
//! prices and recommendations and queues a delivery per new event (the
//! forecast and scrape jobs call it after each run; `serve` also calls it
//! on a timer). The delivery [`worker`] inside `serve` leases due
//! deliveries with `FOR UPDATE SKIP LOCKED`, POSTs them with an
//! HMAC-SHA256 signature of the body, and retries failures with
//! exponential backoff; every attempt is recorded.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema};

use super::auth::{Caller, Scope};
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Path, Query};
use super::model::{self, Money, rfc3339};
use super::{AppState, audit, http_metrics};

/// `[api.webhooks]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// Hosts, addresses or CIDR blocks (`127.0.0.1`, `10.0.0.0/8`,
    /// `hooks.internal`) allowed as webhook targets even though they are
    /// private, loopback or link-local. Public addresses are always allowed.
    pub allowed_hosts: Vec<String>,
    /// Attempts before a delivery is given up.
    pub max_attempts: i32,
    /// Wait after the first failure; doubles after each (with jitter).
    pub backoff_base_secs: f64,
    /// Longest wait between attempts.
    pub backoff_max_secs: f64,
    /// Time allowed for the receiver to answer.
    pub timeout_secs: u64,
    /// How often the worker looks for due deliveries.
    pub poll_interval_ms: u64,
    /// How often `serve` evaluates watches itself (0: only when jobs call it).
    pub evaluate_every_secs: u64,
    /// Run the delivery worker inside `serve`.
    pub worker: bool,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            allowed_hosts: Vec::new(),
            max_attempts: 8,
            backoff_base_secs: 5.0,
            backoff_max_secs: 3600.0,
            timeout_secs: 5,
            poll_interval_ms: 1000,
            evaluate_every_secs: 60,
            worker: true,
        }
    }
}

/// The signature header: `sha256=<hex HMAC-SHA256 of the body>` keyed by
/// the watch's secret.
pub const SIGNATURE_HEADER: &str = "x-shelfwatch-signature";

/// Signs `body` with `secret` as sent in [`SIGNATURE_HEADER`].
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "product_id": 1000,
    "target_price_pence": 120,
    "webhook_url": "http://127.0.0.1:9/shelfwatch"
}))]
pub struct CreateWatch {
    pub product_id: i64,
    /// Notify when the cheapest offer is at or below this (minor units).
    pub target_price_pence: Option<i64>,
    /// Or: notify when it drops this many percent below today's cheapest.
    #[schema(minimum = 1, maximum = 99)]
    pub drop_percent: Option<i32>,
    /// Where to POST the notification (http; must pass the allow-list).
    #[schema(example = "http://hooks.example/shelfwatch")]
    pub webhook_url: String,
    /// Currency of the offers watched (default GBP).
    pub currency: Option<String>,
}

/// A watch as its owner sees it (the secret is shown once, at creation).
#[derive(Debug, Serialize, ToSchema)]
pub struct Watch {
    pub id: i64,
    pub product_id: i64,
    pub target_price: Option<Money>,
    pub drop_percent: Option<i32>,
    /// The cheapest offer when the watch was made (a drop is measured from it).
    pub baseline_price: Option<Money>,
    pub webhook_url: String,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWatch {
    #[serde(flatten)]
    pub watch: Watch,
    /// Key of the `X-Shelfwatch-Signature` HMAC-SHA256; shown only now.
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WatchPage {
    pub data: Vec<Watch>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WatchQuery {
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    #[param(pattern = "^[A-Za-z0-9_-]{1,512}$")]
    pub cursor: Option<String>,
}

#[derive(sqlx::FromRow)]
struct WatchRow {
    id: i64,
    product_id: i64,
    target_price_pence: Option<i64>,
    drop_percent: Option<i32>,
    baseline_pence: Option<i64>,
    currency: String,
    webhook_url: String,
    created_at: DateTime<Utc>,
}

const WATCH_COLUMNS: &str = "id, product_id, target_price_pence, drop_percent, baseline_pence, \
                             currency, webhook_url, created_at";

impl From<WatchRow> for Watch {
    fn from(r: WatchRow) -> Self {
        Watch {
            id: r.id,
            product_id: r.product_id,
            target_price: r.target_price_pence.map(|p| Money::new(p, &r.currency)),
            drop_percent: r.drop_percent,
            baseline_price: r.baseline_pence.map(|p| Money::new(p, &r.currency)),
            webhook_url: r.webhook_url,
            created_at: r.created_at,
        }
    }
}

fn unprocessable(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
}

/// The cheapest current in-stock offer of a product in a currency.
async fn cheapest_now(pool: &PgPool, product_id: i64, currency: &str) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "SELECT min(o.effective_price_pence)
         FROM listings l
         JOIN retailers r ON r.id = l.retailer_id AND r.currency = $2
         CROSS JOIN LATERAL (
             SELECT effective_price_pence, in_stock FROM price_observations o
             WHERE o.listing_id = l.id ORDER BY o.observed_at DESC LIMIT 1) o
         WHERE l.product_id = $1 AND o.in_stock",
    )
    .bind(product_id)
    .bind(currency)
    .fetch_one(pool)
    .await
}

/// Make a watch on a product's price.
#[utoipa::path(
    post, path = "/v1/watches", tag = "watches",
    request_body = CreateWatch,
    responses(
        (status = 201, description = "Created; the secret is shown only now", body = CreatedWatch,
         headers(("Location" = String, description = "The watch's URL"))),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn create_watch(
    State(app): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateWatch>,
) -> ApiResult<Response> {
    let principal = caller.require(Scope::Watch)?;
    match (body.target_price_pence, body.drop_percent) {
        (Some(p), None) if (1..=shelfwatch_domain::money::MAX_PRICE_PENCE).contains(&p) => {}
        (Some(_), None) => {
            return Err(unprocessable("target_price_pence must be a positive price"));
        }
        (None, Some(d)) if (1..=99).contains(&d) => {}
        (None, Some(_)) => return Err(unprocessable("drop_percent must be between 1 and 99")),
        _ => {
            return Err(unprocessable(
                "give exactly one of target_price_pence and drop_percent",
            ));
        }
    }
    let currency = body.currency.as_deref().unwrap_or("GBP");
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(unprocessable(
            "currency must be an ISO 4217 code such as GBP",
        ));
    }
    check_url(&body.webhook_url, &app.settings.webhooks)
        .await
        .map_err(unprocessable)?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM products WHERE id = $1)")
        .bind(body.product_id)
        .fetch_one(&app.pool)
        .await?;
    if !exists {
        return Err(unprocessable(format!("no product {}", body.product_id)));
    }
    let baseline = cheapest_now(&app.pool, body.product_id, currency).await?;
    let secret = format!(
        "whsec_{}",
        URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    );
    let row: WatchRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO watches (owner, product_id, target_price_pence, drop_percent, baseline_pence,
                              currency, webhook_url, secret)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {WATCH_COLUMNS}"
    )))
    .bind(&principal.id)
    .bind(body.product_id)
    .bind(body.target_price_pence)
    .bind(body.drop_percent)
    .bind(baseline)
    .bind(currency)
    .bind(&body.webhook_url)
    .bind(&secret)
    .fetch_one(&app.pool)
    .await?;
    let id = row.id;
    audit::record(
        &app.pool,
        &principal.id,
        "watch.create",
        Some(&format!("watch:{id}")),
        serde_json::json!({
            "product_id": body.product_id,
            "target_price_pence": body.target_price_pence,
            "drop_percent": body.drop_percent,
            "webhook_url": body.webhook_url,
        }),
    )
    .await?;
    let mut response = (
        StatusCode::CREATED,
        Json(CreatedWatch {
            watch: row.into(),
            secret,
        }),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/watches/{id}")) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The caller's own watches.
#[utoipa::path(
    get, path = "/v1/watches", tag = "watches",
    params(WatchQuery),
    responses((status = 200, description = "The caller's watches, oldest first", body = WatchPage)),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn list_watches(
    State(app): State<AppState>,
    caller: Caller,
    Query(query): Query<WatchQuery>,
) -> ApiResult<Json<WatchPage>> {
    let principal = caller.require(Scope::Watch)?;
    let limit = model::limit(query.limit, 50, 100)?;
    let after: i64 = match query.cursor.as_deref() {
        Some(c) => model::decode_cursor(c)?,
        None => 0,
    };
    let mut rows: Vec<WatchRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {WATCH_COLUMNS} FROM watches
         WHERE owner = $1 AND deleted_at IS NULL AND id > $2 ORDER BY id LIMIT $3"
    )))
    .bind(&principal.id)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(&app.pool)
    .await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| model::encode_cursor(&r.id))
    } else {
        None
    };
    Ok(Json(WatchPage {
        data: rows.into_iter().map(Watch::from).collect(),
        next_cursor,
    }))
}

async fn owned(pool: &PgPool, owner: &str, id: i64) -> ApiResult<WatchRow> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {WATCH_COLUMNS} FROM watches WHERE id = $1 AND owner = $2 AND deleted_at IS NULL"
    )))
    .bind(id)
    .bind(owner)
    .fetch_optional(pool)
    .await?
    // Another caller's watch is not found, not forbidden: its existence is
    // none of this caller's business.
    .ok_or_else(|| ApiError::not_found(format!("no watch {id}")))
}

/// One of the caller's watches.
#[utoipa::path(
    get, path = "/v1/watches/{id}", tag = "watches",
    params(("id" = i64, Path, description = "Watch id")),
    responses(
        (status = 200, description = "The watch", body = Watch),
        (status = 404, description = "No such watch of the caller's", body = super::error::Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn get_watch(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<Watch>> {
    let principal = caller.require(Scope::Watch)?;
    Ok(Json(owned(&app.pool, &principal.id, id).await?.into()))
}

/// Delete one of the caller's watches; its pending deliveries are dropped.
#[utoipa::path(
    delete, path = "/v1/watches/{id}", tag = "watches",
    params(("id" = i64, Path, description = "Watch id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such watch of the caller's", body = super::error::Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn delete_watch(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let principal = caller.require(Scope::Watch)?;
    owned(&app.pool, &principal.id, id).await?;
    let mut tx = app.pool.begin().await?;
    sqlx::query("UPDATE watches SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE webhook_deliveries SET status = 'failed', last_error = 'watch deleted'
         WHERE watch_id = $1 AND status = 'pending'",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    audit::record(
        &app.pool,
        &principal.id,
        "watch.delete",
        Some(&format!("watch:{id}")),
        serde_json::json!({}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- webhook targets -------------------------------------------------------

/// An allow-list entry: an address block or a host name.
enum Allowed {
    Net(IpAddr, u8),
    Host(String),
}

fn parse_allowed(entry: &str) -> Option<Allowed> {
    let entry = entry.trim();
    if let Some((addr, bits)) = entry.split_once('/') {
        let ip: IpAddr = addr.parse().ok()?;
        let bits: u8 = bits.parse().ok()?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        return (bits <= max).then_some(Allowed::Net(ip, bits));
    }
    if let Ok(ip) = entry.parse::<IpAddr>() {
        let bits = if ip.is_ipv4() { 32 } else { 128 };
        return Some(Allowed::Net(ip, bits));
    }
    (!entry.is_empty()).then(|| Allowed::Host(entry.to_ascii_lowercase()))
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits))
            };
            (u32::from(a) & mask) == (u32::from(n) & mask)
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits))
            };
            (u128::from(a) & mask) == (u128::from(n) & mask)
        }
        _ => false,
    }
}

/// Addresses a webhook may not reach unless allowed: loopback, private,
/// link-local, shared (CGNAT), unspecified, multicast, documentation.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || in_net(ip, IpAddr::from([100, 64, 0, 0]), 10)
                || in_net(ip, IpAddr::from([0, 0, 0, 0]), 8)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Checks a webhook URL and resolves it: http only, a host, and every
/// address it resolves to public or allowed. Returns the URL and the
/// addresses to connect to (so a later DNS answer cannot redirect it).
pub async fn check_url(
    url: &str,
    settings: &WebhookSettings,
) -> Result<(reqwest::Url, Vec<SocketAddr>), String> {
    if url.len() > 2000 {
        return Err("webhook_url is longer than 2000 characters".into());
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("webhook_url is not a URL: {e}"))?;
    match parsed.scheme() {
        "http" => {}
        "https" => {
            return Err("https webhooks are not supported by this build yet; use http".into());
        }
        other => return Err(format!("webhook_url scheme {other:?} is not http")),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("webhook_url must not carry credentials".into());
    }
    let host = parsed
        .host_str()
        .ok_or("webhook_url has no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let allowed: Vec<Allowed> = settings
        .allowed_hosts
        .iter()
        .filter_map(|e| parse_allowed(e))
        .collect();
    let host_allowed = allowed
        .iter()
        .any(|a| matches!(a, Allowed::Host(h) if *h == host));
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::lookup_host((host.as_str(), port)),
        )
        .await
        .map_err(|_| format!("resolving {host} took too long"))?
        .map_err(|_| format!("webhook host {host} does not resolve"))?
        .collect(),
    };
    if addrs.is_empty() {
        return Err(format!("webhook host {host} does not resolve"));
    }
    for addr in &addrs {
        let ip = addr.ip();
        let ok = host_allowed
            || !is_internal(ip)
            || allowed
                .iter()
                .any(|a| matches!(a, Allowed::Net(net, bits) if in_net(ip, *net, *bits)));
        if !ok {
            return Err(format!(
                "webhook target {ip} is a private, loopback or link-local address; \
                 add it to api.webhooks.allowed_hosts to allow it"
            ));
        }
    }
    Ok((parsed, addrs))
}

// ---- evaluation -----------------------------------------------------------

#[derive(sqlx::FromRow)]
struct PriceState {
    watch_id: i64,
    product_id: i64,
    product_name: String,
    target_price_pence: Option<i64>,
    drop_percent: Option<i32>,
    baseline_pence: Option<i64>,
    notified_pence: Option<i64>,
    currency: String,
    listing_id: Option<i64>,
    retailer: Option<String>,
    observed_at: Option<DateTime<Utc>>,
    price: Option<i64>,
}

/// The price at or below which a watch fires, once known.
fn threshold(target: Option<i64>, drop_percent: Option<i32>, baseline: Option<i64>) -> Option<i64> {
    match (target, drop_percent) {
        (Some(t), _) => Some(t),
        (None, Some(d)) => baseline.map(|b| b * i64::from(100 - d) / 100),
        _ => None,
    }
}

/// Compares every active watch with current prices and the current
/// recommendations, and queues a webhook for each new event:
///
/// - `price_at_target`: the cheapest in-stock offer is at or below the
///   watch's threshold, and lower than anything notified since it last
///   crossed (a price that rises above the threshold and comes back
///   notifies again);
/// - `drop_expected`: a current `wait` recommendation expects the price to
///   fall to the threshold, which it has not reached yet (once per run).
///
/// Returns the number of deliveries queued. Running it twice queues nothing
/// the second time.
pub async fn evaluate_watches(pool: &PgPool) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await.context("starting watch evaluation")?;
    // One evaluator at a time, so two processes never notify the same event twice.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('shelfwatch_evaluate_watches'))")
        .execute(&mut *tx)
        .await?;
    let states: Vec<PriceState> = sqlx::query_as(
        "SELECT w.id AS watch_id, w.product_id, p.name AS product_name, w.target_price_pence,
                w.drop_percent, w.baseline_pence, w.notified_pence, w.currency,
                c.listing_id, c.retailer, c.observed_at, c.price
         FROM watches w
         JOIN products p ON p.id = w.product_id
         LEFT JOIN LATERAL (
             SELECT l.id AS listing_id, r.slug AS retailer, o.observed_at,
                    o.effective_price_pence AS price
             FROM listings l
             JOIN retailers r ON r.id = l.retailer_id AND r.currency = w.currency
             CROSS JOIN LATERAL (
                 SELECT observed_at, effective_price_pence, in_stock FROM price_observations o
                 WHERE o.listing_id = l.id ORDER BY o.observed_at DESC LIMIT 1) o
             WHERE l.product_id = w.product_id AND o.in_stock
             ORDER BY o.effective_price_pence, l.id LIMIT 1) c ON true
         WHERE w.deleted_at IS NULL
         ORDER BY w.id
         FOR UPDATE OF w",
    )
    .fetch_all(&mut *tx)
    .await
    .context("reading watches and current prices")?;
    let mut queued = 0;
    for s in &states {
        let (Some(listing_id), Some(price), Some(observed_at)) =
            (s.listing_id, s.price, s.observed_at)
        else {
            continue;
        };
        // A drop watch made before any offer existed measures from the first one seen.
        let mut baseline = s.baseline_pence;
        if baseline.is_none() && s.drop_percent.is_some() {
            baseline = Some(price);
            sqlx::query("UPDATE watches SET baseline_pence = $2 WHERE id = $1")
                .bind(s.watch_id)
                .bind(price)
                .execute(&mut *tx)
                .await?;
        }
        let Some(limit) = threshold(s.target_price_pence, s.drop_percent, baseline) else {
            continue;
        };
        if price > limit {
            if s.notified_pence.is_some() {
                sqlx::query("UPDATE watches SET notified_pence = NULL WHERE id = $1")
                    .bind(s.watch_id)
                    .execute(&mut *tx)
                    .await?;
            }
            continue;
        }
        if s.notified_pence.is_some_and(|n| price >= n) {
            continue;
        }
        let body = serde_json::json!({
            "event": "price_at_target",
            "watch_id": s.watch_id,
            "product": {"id": s.product_id, "name": s.product_name},
            "listing_id": listing_id,
            "retailer": s.retailer,
            "price": Money::new(price, &s.currency),
            "threshold": Money::new(limit, &s.currency),
            "observed_at": observed_at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        });
        let key = format!("price:{listing_id}:{}", observed_at.timestamp_micros());
        queued += enqueue(&mut tx, s.watch_id, &key, &body).await?;
        sqlx::query("UPDATE watches SET notified_pence = $2 WHERE id = $1")
            .bind(s.watch_id)
            .bind(price)
            .execute(&mut *tx)
            .await?;
    }
    let runs = shelfwatch_store::recommendations::current_runs(pool).await?;
    type RecRow = (
        i64,
        i64,
        String,
        Option<i64>,
        Option<i32>,
        Option<i64>,
        String,
        i64,
        String,
        i64,
        i64,
        i64,
        f64,
        String,
    );
    let recs: Vec<RecRow> = sqlx::query_as(
        "SELECT w.id, w.product_id, p.name, w.target_price_pence, w.drop_percent,
                w.baseline_pence, w.currency, rc.listing_id, r.slug, rc.run_id,
                rc.current_pence, rc.expected_change_pence, rc.confidence, rc.message
         FROM watches w
         JOIN products p ON p.id = w.product_id
         JOIN listings l ON l.product_id = w.product_id
         JOIN retailers r ON r.id = l.retailer_id AND r.currency = w.currency
         JOIN recommendations rc ON rc.listing_id = l.id AND rc.run_id = ANY($1)
         WHERE w.deleted_at IS NULL AND rc.action = 'wait'
         ORDER BY w.id, rc.listing_id",
    )
    .bind(&runs)
    .fetch_all(&mut *tx)
    .await
    .context("reading recommendations for watches")?;
    for (
        watch_id,
        product_id,
        name,
        target,
        drop,
        baseline,
        currency,
        listing_id,
        retailer,
        run_id,
        current,
        change,
        confidence,
        message,
    ) in recs
    {
        let Some(limit) = threshold(target, drop, baseline) else {
            continue;
        };
        let expected = current + change;
        if current <= limit || expected > limit {
            continue;
        }
        let body = serde_json::json!({
            "event": "drop_expected",
            "watch_id": watch_id,
            "product": {"id": product_id, "name": name},
            "listing_id": listing_id,
            "retailer": retailer,
            "price": Money::new(current, &currency),
            "expected_price": Money::new(expected, &currency),
            "threshold": Money::new(limit, &currency),
            "confidence": confidence,
            "message": message,
            "run_id": run_id,
        });
        let key = format!("rec:{run_id}:{listing_id}");
        queued += enqueue(&mut tx, watch_id, &key, &body).await?;
    }
    tx.commit().await.context("committing watch evaluation")?;
    if queued > 0 {
        tracing::info!(queued, "webhook deliveries queued");
    }
    Ok(queued)
}

async fn enqueue(
    tx: &mut sqlx::PgConnection,
    watch_id: i64,
    key: &str,
    body: &serde_json::Value,
) -> anyhow::Result<usize> {
    let done = sqlx::query(
        "INSERT INTO webhook_deliveries (watch_id, event_key, body) VALUES ($1, $2, $3)
         ON CONFLICT (watch_id, event_key) DO NOTHING",
    )
    .bind(watch_id)
    .bind(key)
    .bind(body.to_string())
    .execute(tx)
    .await
    .context("queueing a webhook delivery")?;
    Ok(done.rows_affected() as usize)
}

// ---- delivery --------------------------------------------------------------

/// The wait after `attempt` failed attempts: base x 2^(attempt-1), capped,
/// with +-20% jitter so retries from many watches spread out.
pub fn backoff(settings: &WebhookSettings, attempt: i32) -> Duration {
    let exp = 2f64.powi((attempt - 1).clamp(0, 30));
    let secs = (settings.backoff_base_secs * exp).min(settings.backoff_max_secs);
    let jitter = 0.8 + 0.4 * rand::random::<f64>();
    Duration::from_secs_f64((secs * jitter).max(0.0))
}

#[derive(sqlx::FromRow)]
struct Due {
    id: i64,
    attempts: i32,
    body: String,
    webhook_url: String,
    secret: String,
}

/// Sends the deliveries that are due; returns how many were attempted.
pub async fn deliver_due(pool: &PgPool, settings: &WebhookSettings) -> anyhow::Result<usize> {
    // The lease: a row taken here is not due again until the attempt has
    // had time to finish, so a crashed worker's rows are retried later.
    let lease = settings.timeout_secs as f64 + 30.0;
    let due: Vec<Due> = sqlx::query_as(
        "UPDATE webhook_deliveries d
         SET attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => $2)
         FROM watches w
         WHERE w.id = d.watch_id AND d.id IN (
             SELECT id FROM webhook_deliveries
             WHERE status = 'pending' AND next_attempt_at <= now()
             ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING d.id, d.attempts, d.body, w.webhook_url, w.secret",
    )
    .bind(16i64)
    .bind(lease)
    .fetch_all(pool)
    .await
    .context("leasing due webhook deliveries")?;
    let n = due.len();
    let sends = due.into_iter().map(|d| async move {
        let started = Instant::now();
        let result = send(&d, settings).await;
        let elapsed = started.elapsed();
        if let Err(e) = record(pool, settings, &d, result, elapsed).await {
            tracing::error!(
                delivery = d.id,
                error = format!("{e:#}"),
                "recording a webhook attempt failed"
            );
        }
    });
    futures_util::future::join_all(sends).await;
    Ok(n)
}

async fn send(d: &Due, settings: &WebhookSettings) -> Result<u16, String> {
    let (url, addrs) = check_url(&d.webhook_url, settings).await?;
    let mut client = reqwest::Client::builder()
        .timeout(Duration::from_secs(settings.timeout_secs.max(1)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("shelfwatch-webhooks/", env!("CARGO_PKG_VERSION")));
    if let Some(host) = url.host_str() {
        // Connect to the addresses just checked, not to a fresh DNS answer.
        client = client.resolve_to_addrs(host, &addrs);
    }
    let client = client
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))?;
    let response = client
        .post(url)
        .header(header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, sign(&d.secret, d.body.as_bytes()))
        .header("x-shelfwatch-delivery", d.id.to_string())
        .header("x-shelfwatch-attempt", d.attempts.to_string())
        .body(d.body.clone())
        .send()
        .await
        .map_err(|e| format!("sending: {e}"))?;
    Ok(response.status().as_u16())
}

async fn record(
    pool: &PgPool,
    settings: &WebhookSettings,
    d: &Due,
    result: Result<u16, String>,
    elapsed: Duration,
) -> anyhow::Result<()> {
    let (code, error) = match &result {
        Ok(code) => (Some(i32::from(*code)), None),
        Err(e) => (None, Some(e.clone())),
    };
    let delivered = matches!(result, Ok(c) if (200..300).contains(&c));
    let error =
        error.or_else(|| (!delivered).then(|| format!("receiver answered {}", code.unwrap_or(0))));
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO webhook_attempts (delivery_id, attempt, status_code, error, duration_ms)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(d.id)
    .bind(d.attempts)
    .bind(code)
    .bind(&error)
    .bind(i32::try_from(elapsed.as_millis()).unwrap_or(i32::MAX))
    .execute(&mut *tx)
    .await?;
    if delivered {
        http_metrics::webhook_attempt("delivered");
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'delivered', delivered_at = now(),
                    last_status = $2, last_error = NULL WHERE id = $1",
        )
        .bind(d.id)
        .bind(code)
        .execute(&mut *tx)
        .await?;
    } else if d.attempts >= settings.max_attempts {
        http_metrics::webhook_attempt("failed");
        tracing::warn!(
            delivery = d.id,
            attempts = d.attempts,
            error = error.as_deref().unwrap_or(""),
            "webhook delivery given up"
        );
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'failed', last_status = $2, last_error = $3
             WHERE id = $1",
        )
        .bind(d.id)
        .bind(code)
        .bind(&error)
        .execute(&mut *tx)
        .await?;
    } else {
        http_metrics::webhook_attempt("retry");
        let wait = backoff(settings, d.attempts);
        sqlx::query(
            "UPDATE webhook_deliveries SET last_status = $2, last_error = $3,
                    next_attempt_at = now() + make_interval(secs => $4) WHERE id = $1",
        )
        .bind(d.id)
        .bind(code)
        .bind(&error)
        .bind(wait.as_secs_f64())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The delivery worker inside `serve`: sends due webhooks every poll
/// interval and evaluates watches on its own timer, until `stop`.
pub async fn worker(app: AppState, stop: impl std::future::Future<Output = ()> + Send + 'static) {
    let settings = app.settings.webhooks.clone();
    if !settings.worker {
        return;
    }
    let mut stop = std::pin::pin!(stop);
    let poll = Duration::from_millis(settings.poll_interval_ms.max(10));
    let evaluate_every = Duration::from_secs(settings.evaluate_every_secs);
    let mut last_evaluated: Option<Instant> = None;
    loop {
        if settings.evaluate_every_secs > 0
            && last_evaluated.is_none_or(|t| t.elapsed() >= evaluate_every)
        {
            last_evaluated = Some(Instant::now());
            if let Err(e) = evaluate_watches(&app.pool).await {
                tracing::error!(error = format!("{e:#}"), "evaluating watches failed");
            }
        }
        match deliver_due(&app.pool, &settings).await {
            // More may be due: go again without waiting.
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::error!(error = format!("{e:#}"), "webhook delivery round failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = &mut stop => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.5",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "151.101.1.1", "2a00:1450::1"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn urls_are_checked_against_the_allow_list() {
        let mut s = WebhookSettings::default();
        assert!(check_url("http://127.0.0.1:9/x", &s).await.is_err());
        assert!(
            check_url("http://169.254.169.254/latest", &s)
                .await
                .is_err()
        );
        assert!(check_url("ftp://8.8.8.8/", &s).await.is_err());
        assert!(check_url("http://u:p@8.8.8.8/", &s).await.is_err());
        assert!(check_url("http://8.8.8.8/hook", &s).await.is_ok());
        s.allowed_hosts = vec!["127.0.0.0/8".into()];
        assert!(check_url("http://127.0.0.1:9/x", &s).await.is_ok());
        assert!(check_url("http://10.0.0.1/x", &s).await.is_err());
        s.allowed_hosts = vec!["localhost".into()];
        assert!(check_url("http://localhost:9/x", &s).await.is_ok());
    }

    #[test]
    fn thresholds_and_backoff() {
        assert_eq!(threshold(Some(150), None, Some(200)), Some(150));
        assert_eq!(threshold(None, Some(10), Some(200)), Some(180));
        assert_eq!(threshold(None, Some(10), None), None);
        let s = WebhookSettings::default();
        let first = backoff(&s, 1).as_secs_f64();
        let fourth = backoff(&s, 4).as_secs_f64();
        assert!((4.0..=6.0).contains(&first), "{first}");
        assert!((32.0..=48.0).contains(&fourth), "{fourth}");
        assert!(backoff(&s, 40).as_secs_f64() <= 3600.0 * 1.2);
    }

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
