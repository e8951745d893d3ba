//! Middleware around every request: request ids, the access log and
//! metrics, problem bodies for errors raised outside handlers, time limits,
//! and ETag / Cache-Control on reads.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Bytes;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::{ApiError, PROBLEM_JSON, Problem, REQUEST_ID};
use super::http_metrics;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The route a response answered, for metrics and logs.
#[derive(Clone)]
struct RouteLabel(String);

fn acceptable_request_id(value: &HeaderValue) -> Option<String> {
    let s = value.to_str().ok()?;
    (!s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| s.to_owned())
}

fn new_request_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Takes the caller's `x-request-id` (when sane) or makes one, serves the
/// request with it in scope, and returns it on the response.
pub async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(acceptable_request_id)
        .unwrap_or_else(new_request_id);
    if let Ok(v) = HeaderValue::from_str(&id) {
        req.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    let mut response = REQUEST_ID.scope(id.clone(), next.run(req)).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    response
}

/// Inside the router: notes which route matched on the response.
pub async fn mark_route(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let mut response = next.run(req).await;
    if let Some(route) = route {
        response.extensions_mut().insert(RouteLabel(route));
    }
    response
}

/// One log line and the metrics of each request.
pub async fn observe(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let _in_flight = http_metrics::InFlight::start();
    let response = next.run(req).await;
    let route = response
        .extensions()
        .get::<RouteLabel>()
        .map_or("unmatched", |r| r.0.as_str());
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    http_metrics::observe(route, &method, status, elapsed.as_secs_f64());
    shelfwatch_store::gauges::pool(&app.pool);
    let request_id = super::error::current_request_id().unwrap_or_default();
    tracing::info!(
        request_id,
        method = http_metrics::method_label(&method),
        route,
        status,
        duration_us = elapsed.as_micros() as u64,
        "request"
    );
    response
}

/// Gives errors produced outside handlers (unknown route, wrong method,
/// body too large, timeouts) a problem body like every other error.
pub async fn problems(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if is_problem {
        return response;
    }
    let detail = match status {
        StatusCode::NOT_FOUND => "no such resource".to_owned(),
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed on this resource".to_owned(),
        StatusCode::PAYLOAD_TOO_LARGE => "request body too large".to_owned(),
        s if s.is_server_error() => "the request could not be answered".to_owned(),
        s => s.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    let (parts, _) = response.into_parts();
    let mut fresh = Problem::new(status, Some(detail)).into_response_with(status);
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(v) = parts.headers.get(&name) {
            fresh.headers_mut().insert(name, v.clone());
        }
    }
    for (name, value) in parts.headers.iter() {
        if name.as_str().starts_with("access-control-") || name == header::VARY {
            fresh.headers_mut().insert(name.clone(), value.clone());
        }
    }
    fresh
}

/// Answers 503 when a request takes longer than `api.request_timeout_secs`.
pub async fn time_limit(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let limit = Duration::from_secs(app.settings.request_timeout_secs.max(1));
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::unavailable("the request took too long; try again").into_response(),
    }
}

/// Recent read responses by URL, reused for `api.read_cache_ms`. Reads
/// answer the same to every caller (credentials are checked before this),
/// so one entry serves all.
pub struct ReadCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, Cached>>,
}

#[derive(Clone)]
struct Cached {
    at: Instant,
    headers: axum::http::HeaderMap,
    body: Bytes,
    tag: String,
}

/// Entries kept before stale ones are swept (then all, if none were stale).
const READ_CACHE_ENTRIES: usize = 4096;

impl ReadCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &str) -> Option<Cached> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|c| c.at.elapsed() < self.ttl)
            .cloned()
    }

    fn put(&self, key: String, entry: Cached) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= READ_CACHE_ENTRIES {
                let ttl = self.ttl;
                entries.retain(|_, c| c.at.elapsed() < ttl);
                if entries.len() >= READ_CACHE_ENTRIES {
                    entries.clear();
                }
            }
            entries.insert(key, entry);
        }
    }
}

/// A strong ETag (hash of the body) and Cache-Control on successful reads;
/// 304 without a body when `If-None-Match` already has it. Responses are
/// reused from the [`ReadCache`] while fresh.
pub async fn etag(State(app): State<AppState>, req: Request, next: Next) -> Response {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return next.run(req).await;
    }
    let if_none_match = req.headers().get(header::IF_NONE_MATCH).cloned();
    // The representation is part of the key: one URL may answer JSON or CSV.
    let key = if super::model::wants_csv(req.headers()) {
        format!("csv {}", req.uri())
    } else {
        req.uri().to_string()
    };
    let cached = match app.read_cache.get(&key) {
        Some(hit) => hit,
        None => {
            let response = next.run(req).await;
            if response.status() != StatusCode::OK {
                return response;
            }
            let (parts, body) = response.into_parts();
            let body = match axum::body::to_bytes(body, usize::MAX).await {
                Ok(b) => b,
                Err(e) => {
                    return ApiError::internal(anyhow::anyhow!("buffering a response: {e}"))
                        .into_response();
                }
            };
            let digest = Sha256::digest(&body);
            let entry = Cached {
                at: Instant::now(),
                headers: parts.headers,
                body,
                tag: format!("\"{}\"", hex::encode(&digest[..16])),
            };
            app.read_cache.put(key, entry.clone());
            entry
        }
    };
    let (mut parts, _) = Response::new(Body::empty()).into_parts();
    parts.headers = cached.headers;
    let bytes = cached.body;
    let tag = cached.tag;
    let cache_control = if app.settings.require_key_for_reads {
        format!("private, max-age={}", app.settings.cache_max_age_secs)
    } else {
        format!("public, max-age={}", app.settings.cache_max_age_secs)
    };
    if let Ok(v) = HeaderValue::from_str(&tag) {
        parts.headers.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&cache_control) {
        parts.headers.insert(header::CACHE_CONTROL, v);
    }
    if app.settings.require_key_for_reads {
        parts.headers.append(
            header::VARY,
            HeaderValue::from_static("authorization, x-api-key"),
        );
    }
    if if_none_match.is_some_and(|v| etag_matches(&v, &tag)) {
        parts.status = StatusCode::NOT_MODIFIED;
        parts.headers.remove(header::CONTENT_TYPE);
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, Body::empty());
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Whether an `If-None-Match` value names `tag` (weak comparison, `*` too).
fn etag_matches(value: &HeaderValue, tag: &str) -> bool {
    let Ok(text) = value.to_str() else {
        return false;
    };
    text.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == tag
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_lists_and_weak_tags() {
        let tag = "\"abc\"";
        assert!(etag_matches(&HeaderValue::from_static("\"abc\""), tag));
        assert!(etag_matches(
            &HeaderValue::from_static("\"x\", W/\"abc\""),
            tag
        ));
        assert!(etag_matches(&HeaderValue::from_static("*"), tag));
        assert!(!etag_matches(&HeaderValue::from_static("\"abd\""), tag));
    }

    #[test]
    fn request_ids_are_bounded() {
        assert!(acceptable_request_id(&HeaderValue::from_static("abc-123")).is_some());
        assert!(acceptable_request_id(&HeaderValue::from_static("has space")).is_none());
        let long = "a".repeat(129);
        assert!(acceptable_request_id(&HeaderValue::from_str(&long).unwrap()).is_none());
        assert_eq!(new_request_id().len(), 32);
    }
}
