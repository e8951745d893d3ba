//! The HTTP side: the four shops under their path prefixes, `/robots.txt`,
//! the ground truth at `/_truth` and the control endpoints under
//! `/_control`. Every request passes one middleware that applies the
//! retailer's faults and records the request in the log.

use std::collections::HashMap;
use std::future::Future;
use std::io;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Json, Redirect, Response};
use axum::routing::get;
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use serde_json::json;

use super::catalog::{Aisle, Retailer};
use super::faults::{DEFAULT_ROBOTS, Fault, Robots, Verdict};
use super::pages;
use super::store::{DemoStore, RequestRecord};

/// Serves the store on `listener` until `shutdown` resolves. Product URLs
/// are written with the listener's address as their origin.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: DemoStore,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let addr = listener.local_addr()?;
    store.set_origin(format!("http://{addr}"));
    axum::serve(listener, router(store))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The store's routes, for serving or for `oneshot` tests.
pub fn router(store: DemoStore) -> Router {
    Router::new()
        .route("/", get(|| async { Html(pages::index_page()) }))
        .route("/robots.txt", get(robots_txt))
        .route("/_truth", get(truth))
        .route(
            "/_control/faults",
            get(get_faults).post(post_fault).delete(delete_faults),
        )
        .route(
            "/_control/robots",
            get(get_robots).post(post_robots).delete(delete_robots),
        )
        .route("/_control/date", get(get_date).post(post_date))
        .route("/_control/log", get(get_log).delete(delete_log))
        .fallback(shop)
        .layer(middleware::from_fn_with_state(
            store.clone(),
            faults_and_log,
        ))
        .with_state(store)
}

/// An error answer: a status and a one-line JSON body.
fn problem(status: StatusCode, detail: impl Into<String>) -> Response {
    (status, Json(json!({ "error": detail.into() }))).into_response()
}

/// The retailer whose prefix `path` starts with.
fn retailer_of(path: &str) -> Option<Retailer> {
    let first = path.trim_start_matches('/').split('/').next()?;
    Retailer::from_slug(first)
}

async fn faults_and_log(State(store): State<DemoStore>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path_and_query().map_or_else(
        || request.uri().path().to_owned(),
        |p| p.as_str().to_owned(),
    );
    let user_agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = match retailer_of(request.uri().path()) {
        Some(retailer) => match store.admit(retailer) {
            Verdict::RateLimited { seconds } => {
                let mut r = (
                    StatusCode::TOO_MANY_REQUESTS,
                    Html("<h1>Too many requests</h1><p>Please slow down.</p>"),
                )
                    .into_response();
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
                r
            }
            Verdict::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                Html("<h1>Service unavailable</h1><p>We'll be back shortly.</p>"),
            )
                .into_response(),
            Verdict::Serve { delay } => {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                next.run(request).await
            }
        },
        None => next.run(request).await,
    };
    tracing::debug!(%method, %path, status = response.status().as_u16(), "demo store request");
    store.record(RequestRecord {
        at: Utc::now(),
        method,
        path,
        status: response.status().as_u16(),
        user_agent,
    });
    response
}

async fn robots_txt(State(store): State<DemoStore>) -> Response {
    let text = |body: String| {
        ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
    };
    match store.robots() {
        Robots::Default => text(DEFAULT_ROBOTS.to_owned()),
        Robots::Text(body) => text(body),
        Robots::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            (status, format!("robots.txt answers {code}\n")).into_response()
        }
    }
}

/// `?date=YYYY-MM-DD`, if given.
fn date_param(params: &HashMap<String, String>) -> Result<Option<NaiveDate>, String> {
    params
        .get("date")
        .map(|d| {
            NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| format!("date {d:?} is not YYYY-MM-DD"))
        })
        .transpose()
}

/// The origin the client reached the store at, for product URLs.
fn origin(store: &DemoStore, headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty())
        .map_or_else(|| store.origin(), |h| format!("http://{h}"))
}

async fn truth(
    State(store): State<DemoStore>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let date = match date_param(&params) {
        Ok(d) => d.unwrap_or_else(|| store.date()),
        Err(e) => return problem(StatusCode::BAD_REQUEST, e),
    };
    let mut listings = store.truth_at(date, &origin(&store, &headers));
    if let Some(slug) = params.get("retailer") {
        listings.retain(|l| l.retailer.slug() == slug);
    }
    Json(listings).into_response()
}

fn faults_json(store: &DemoStore) -> Response {
    let map: serde_json::Map<String, serde_json::Value> = store
        .faults()
        .into_iter()
        .map(|(r, faults)| (r.slug().to_owned(), json!(faults)))
        .collect();
    Json(map).into_response()
}

async fn get_faults(State(store): State<DemoStore>) -> Response {
    faults_json(&store)
}

/// `{"retailer": "icebox", "kind": "rate_limit", "seconds": 30}`.
async fn post_fault(State(store): State<DemoStore>, body: Bytes) -> Response {
    let mut value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return problem(StatusCode::BAD_REQUEST, format!("body is not JSON: {e}")),
    };
    let Some(slug) = value
        .as_object_mut()
        .and_then(|o| o.remove("retailer"))
        .and_then(|v| v.as_str().map(str::to_owned))
    else {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the body needs \"retailer\": one of sainsway, aldwick, icebox, morrow",
        );
    };
    let Some(retailer) = Retailer::from_slug(&slug) else {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("unknown retailer {slug:?}"),
        );
    };
    let fault: Fault = match serde_json::from_value(value) {
        Ok(f) => f,
        Err(e) => {
            return problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("not a fault: {e}"),
            );
        }
    };
    if let Err(e) = store.set_fault(retailer, fault) {
        return problem(StatusCode::UNPROCESSABLE_ENTITY, e);
    }
    faults_json(&store)
}

/// Clears every retailer's faults, or one's with `?retailer=`.
async fn delete_faults(
    State(store): State<DemoStore>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    match params.get("retailer") {
        None => store.clear_faults(),
        Some(slug) => match Retailer::from_slug(slug) {
            Some(r) => store.clear_faults_for(r),
            None => {
                return problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("unknown retailer {slug:?}"),
                );
            }
        },
    }
    faults_json(&store)
}

async fn get_robots(State(store): State<DemoStore>) -> Response {
    let body = match store.robots() {
        Robots::Default => json!({ "mode": "default", "text": DEFAULT_ROBOTS }),
        Robots::Text(t) => json!({ "mode": "text", "text": t }),
        Robots::Status(code) => json!({ "mode": "status", "status": code }),
    };
    Json(body).into_response()
}

/// The body becomes robots.txt; with `?status=503` robots.txt answers that
/// status instead.
async fn post_robots(
    State(store): State<DemoStore>,
    Query(params): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if let Some(status) = params.get("status") {
        return match status.parse::<u16>() {
            Ok(code) if (200..=599).contains(&code) => {
                store.set_robots(Robots::Status(code));
                StatusCode::NO_CONTENT.into_response()
            }
            _ => problem(
                StatusCode::BAD_REQUEST,
                format!("status {status:?} is not an HTTP status"),
            ),
        };
    }
    match String::from_utf8(body.to_vec()) {
        Ok(text) => {
            store.set_robots(Robots::Text(text));
            StatusCode::NO_CONTENT.into_response()
        }
        Err(_) => problem(StatusCode::BAD_REQUEST, "robots.txt must be UTF-8 text"),
    }
}

async fn delete_robots(State(store): State<DemoStore>) -> Response {
    store.set_robots(Robots::Default);
    StatusCode::NO_CONTENT.into_response()
}

async fn get_date(State(store): State<DemoStore>) -> Response {
    Json(json!({ "date": store.date() })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DateBody {
    date: NaiveDate,
}

/// `{"date": "2025-06-01"}`.
async fn post_date(State(store): State<DemoStore>, body: Bytes) -> Response {
    match serde_json::from_slice::<DateBody>(&body) {
        Ok(DateBody { date }) => {
            store.set_date(date);
            Json(json!({ "date": date })).into_response()
        }
        Err(e) => problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("expected {{\"date\": \"YYYY-MM-DD\"}}: {e}"),
        ),
    }
}

async fn get_log(State(store): State<DemoStore>) -> Response {
    Json(store.request_log()).into_response()
}

async fn delete_log(State(store): State<DemoStore>) -> Response {
    store.clear_request_log();
    StatusCode::NO_CONTENT.into_response()
}

/// Tiles per page of the paginated shops, and the default batch of the
/// offset API.
fn page_size(r: Retailer) -> usize {
    match r {
        Retailer::Sainsway => 12,
        Retailer::Morrow => 20,
        Retailer::Icebox => 10,
        Retailer::Aldwick => usize::MAX,
    }
}

/// Everything under a retailer's prefix: the listing page, its JSON API,
/// product pages and the checkout.
async fn shop(
    State(store): State<DemoStore>,
    method: Method,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
    request: Request<Body>,
) -> Response {
    let path = request.uri().path().to_owned();
    let Some(retailer) = retailer_of(&path) else {
        return problem(StatusCode::NOT_FOUND, format!("no page at {path}"));
    };
    if method != Method::GET && method != Method::HEAD {
        return problem(
            StatusCode::METHOD_NOT_ALLOWED,
            "the shop pages are read-only",
        );
    }
    let slug = retailer.slug();
    let Some(rest) = path.strip_prefix(&format!("/{slug}")) else {
        return problem(StatusCode::NOT_FOUND, format!("no page at {path}"));
    };
    if rest.is_empty() {
        return Redirect::permanent(&format!("/{slug}/")).into_response();
    }
    let rest = rest.trim_start_matches('/');
    if rest.is_empty() || rest == retailer.listing_path() {
        let cookies = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
        let consented = pages::has_consented(retailer, cookies);
        let page = pages::listing_page(retailer, consented);
        return match store.hostile(retailer) {
            Some(kind) => Html(pages::hostile(&page, kind)).into_response(),
            None => Html(page).into_response(),
        };
    }
    if rest == "api/products" {
        return products_api(&store, retailer, &origin(&store, &headers), &params);
    }
    if rest == "checkout" || rest == "basket" {
        return Html(pages::checkout_page(retailer)).into_response();
    }
    match store.listing_at(&path) {
        Some(listing) => Html(pages::product_page(listing)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Html(format!(
                "<h1>Page not found</h1><p><a href=\"/{slug}/\">Back to {}</a></p>",
                retailer.name()
            )),
        )
            .into_response(),
    }
}

/// `GET /{retailer}/api/products?page=N` (paginated shops), `?offset=&limit=`
/// (the scrolling shop) or `?sku=` (product pages); `&aisle=frozen` keeps
/// one aisle.
fn products_api(
    store: &DemoStore,
    retailer: Retailer,
    origin: &str,
    params: &HashMap<String, String>,
) -> Response {
    let number = |key: &str| -> Result<Option<usize>, String> {
        params
            .get(key)
            .map(|v| {
                v.parse::<usize>()
                    .map_err(|_| format!("{key} {v:?} is not a whole number"))
            })
            .transpose()
    };
    let aisle = match params.get("aisle").map(|a| (a, Aisle::from_slug(a))) {
        None => None,
        Some((_, Some(aisle))) => Some(aisle),
        Some((a, None)) => {
            let known: Vec<&str> = Aisle::ALL.iter().map(|a| a.slug()).collect();
            return problem(
                StatusCode::BAD_REQUEST,
                format!("unknown aisle {a:?}: one of {}", known.join(", ")),
            );
        }
    };
    let mut tiles = store.tiles_in(retailer, origin, aisle);
    if let Some(sku) = params.get("sku") {
        tiles.retain(|t| &t.sku == sku);
    }
    let total = tiles.len();
    let size = page_size(retailer);
    let (offset, limit, page) = match (number("offset"), number("limit"), number("page")) {
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            return problem(StatusCode::BAD_REQUEST, e);
        }
        (Ok(Some(offset)), Ok(limit), _) => {
            let limit = limit.unwrap_or(size).clamp(1, 100);
            (offset, limit, offset / limit + 1)
        }
        (Ok(None), _, Ok(page)) => {
            let page = page.unwrap_or(1).max(1);
            (page.saturating_sub(1).saturating_mul(size), size, page)
        }
    };
    let pages = if size == usize::MAX {
        1
    } else {
        total.div_ceil(size).max(1)
    };
    let end = offset.saturating_add(limit).min(total);
    let products = tiles.get(offset.min(end)..end).unwrap_or_default();
    Json(json!({
        "retailer": retailer,
        "date": store.date(),
        "total": total,
        "page": page,
        "pages": pages,
        "offset": offset,
        "more": end < total,
        "products": products,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_name_retailers() {
        assert_eq!(retailer_of("/icebox/food"), Some(Retailer::Icebox));
        assert_eq!(retailer_of("/icebox"), Some(Retailer::Icebox));
        assert_eq!(retailer_of("/_control/log"), None);
        assert_eq!(retailer_of("/"), None);
    }
}
