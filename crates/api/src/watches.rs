//! Watches: a caller's price alert on a product. The owner makes, lists,
//! reads and deletes them here; `shelfwatch_alerts` evaluates them and
//! delivers their signed webhooks.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shelfwatch_store::PgPool;
use shelfwatch_store::error::StoreError;
use shelfwatch_store::watches::{self as store, NewWatch, WatchRow};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Caller, Scope};
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Path, Query};
use super::model::{self, Money, rfc3339};
use super::{AppState, audit};

/// `POST /v1/watches` as read: one struct for both kinds of watch, so a
/// body that gives both or neither is told which rule it broke (the
/// document states the two kinds, [`NewWatchBody`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWatch {
    pub product_id: i64,
    /// Notify when the cheapest offer is at or below this (minor units).
    pub target_price_pence: Option<i64>,
    /// Or: notify when it drops this many percent below today's cheapest.
    pub drop_percent: Option<i32>,
    /// Where to POST the notification.
    pub webhook_url: String,
    /// Currency of the offers watched (default GBP).
    pub currency: Option<String>,
}

// The handler reads [`CreateWatch`], which says which rule a body broke;
// these types are the body as the document states it.
/// A new watch: on a target price or on a drop, never both.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum NewWatchBody {
    AtPrice(WatchAtPrice),
    OnDrop(WatchOnDrop),
}

/// Notify when the cheapest offer is at or below a price.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct WatchAtPrice {
    pub product_id: i64,
    /// Notify when the cheapest offer is at or below this (minor units).
    #[schema(minimum = 1, maximum = 10_000_000)]
    pub target_price_pence: i64,
    #[schema(schema_with = null_only)]
    pub drop_percent: Option<()>,
    /// Where to POST the notification: an `http` or `https` URL such as
    /// `https://hooks.example/shelfwatch`. Its host must resolve to public
    /// addresses or be in `api.webhooks.allowed_hosts`; over `https` the
    /// receiver's certificate must be trusted and valid for the host.
    pub webhook_url: String,
    /// Currency of the offers watched (default GBP).
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: Option<String>,
}

/// Notify when the cheapest offer drops a share below today's.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct WatchOnDrop {
    pub product_id: i64,
    /// Notify when it drops this many percent below today's cheapest.
    #[schema(minimum = 1, maximum = 99)]
    pub drop_percent: i32,
    #[schema(schema_with = null_only)]
    pub target_price_pence: Option<()>,
    /// Where to POST the notification: an `http` or `https` URL such as
    /// `https://hooks.example/shelfwatch`. Its host must resolve to public
    /// addresses or be in `api.webhooks.allowed_hosts`; over `https` the
    /// receiver's certificate must be trusted and valid for the host.
    pub webhook_url: String,
    /// Currency of the offers watched (default GBP).
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: Option<String>,
}

/// The other kind's field in a watch: only `null`, the same as leaving it out.
fn null_only() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Null)
        .description(Some(
            "Only null (the same as leaving it out): a watch is on a price or on a drop",
        ))
        .build()
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
    /// Key of the `webhook-signature` (Standard Webhooks: `whsec_` and the
    /// base64 HMAC-SHA256 key); shown only now.
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

/// Make a watch on a product's price.
#[utoipa::path(
    post, path = "/v1/watches", tag = "watches",
    request_body(content = NewWatchBody, example = json!({
        "product_id": 1000,
        "target_price_pence": 120,
        "webhook_url": "http://127.0.0.1:9/shelfwatch"
    })),
    responses(
        (status = 201, description = "Created; the secret is shown only now", body = CreatedWatch,
         headers(("Location" = String, description = "The watch's URL"))),
        (status = 404, description = "No such product", body = super::error::Problem,
         content_type = "application/problem+json"),
        (status = 409, description = "The caller already has `api.max_watches_per_principal` watches",
         body = super::error::Problem, content_type = "application/problem+json"),
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
    // Stored as parsed, so what is kept is exactly what was checked: no
    // hex or octal host spellings, no stray tabs or newlines.
    let (webhook_url, _) = shelfwatch_alerts::check_url(&body.webhook_url, &app.settings.webhooks)
        .await
        .map_err(unprocessable)?;
    let webhook_url = webhook_url.to_string();
    if !store::product_exists(&app.pool, body.product_id).await? {
        return Err(ApiError::not_found(format!(
            "no product {}",
            body.product_id
        )));
    }
    let baseline = store::cheapest_now(&app.pool, body.product_id, currency).await?;
    // Standard Webhooks form: `whsec_` and the key in standard base64.
    let secret = format!("whsec_{}", STANDARD.encode(rand::random::<[u8; 32]>()));
    let new = NewWatch {
        owner: &principal.id,
        product_id: body.product_id,
        target_price_pence: body.target_price_pence,
        drop_percent: body.drop_percent,
        baseline_pence: baseline,
        currency,
        webhook_url: &webhook_url,
        secret: &secret,
    };
    let quota = app.settings.max_watches_per_principal;
    let row = match store::create(&app.pool, &new, quota).await {
        // The product was deleted since it was looked up.
        Err(StoreError::ForeignKey { .. }) => {
            return Err(ApiError::not_found(format!(
                "no product {}",
                body.product_id
            )));
        }
        Ok(None) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "you already have {quota} watches, the most one caller may have; \
                     delete one before making another"
                ),
            ));
        }
        Ok(Some(row)) => row,
        Err(e) => return Err(e.into()),
    };
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
            "webhook_url": webhook_url,
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
    let page = store::page(&app.pool, &principal.id, after, limit).await?;
    let next_cursor = page.last_if_more().map(|r| model::encode_cursor(&r.id));
    Ok(Json(WatchPage {
        data: page.items.into_iter().map(Watch::from).collect(),
        next_cursor,
    }))
}

async fn owned(pool: &PgPool, owner: &str, id: i64) -> ApiResult<WatchRow> {
    store::owned(pool, owner, id)
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
    store::delete(&app.pool, id).await?;
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
