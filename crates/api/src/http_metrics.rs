//! The API's Prometheus collectors, labelled by matched route (never the
//! raw path, which would make a series per product id) and by method, one
//! of the standard ones or `other` (a client may send any token as a
//! method, and each would otherwise be a new series).

use std::sync::LazyLock;

use axum::http::Method;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts};

use shelfwatch_runtime::metrics::register;

static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "shelfwatch_http_requests_total",
                "HTTP requests answered, by matched route, method and status.",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric"),
    )
});

static DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new(
                "shelfwatch_http_request_duration_seconds",
                "Time to answer an HTTP request, by matched route and method.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["route", "method"],
        )
        .expect("valid metric"),
    )
});

static IN_FLIGHT: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "shelfwatch_http_in_flight",
            "HTTP requests being answered now.",
        )
        .expect("valid metric"),
    )
});

static RATE_LIMITED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "shelfwatch_http_rate_limited_total",
                "Requests refused with 429, by the limit that refused them (ip, key, auth_failures).",
            ),
            &["limit"],
        )
        .expect("valid metric"),
    )
});

/// Registers every collector, so they are exported before first use.
pub fn init() {
    LazyLock::force(&REQUESTS);
    LazyLock::force(&DURATION);
    LazyLock::force(&IN_FLIGHT);
    LazyLock::force(&RATE_LIMITED);
}

/// The metric and log label of a request method: the standard methods by
/// name, anything else `other`.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

pub fn observe(route: &str, method: &Method, status: u16, seconds: f64) {
    let method = method_label(method);
    REQUESTS
        .with_label_values(&[route, method, &status.to_string()])
        .inc();
    DURATION
        .with_label_values(&[route, method])
        .observe(seconds);
}

/// Counts a request in flight until dropped (also when the client goes away).
pub struct InFlight;

impl InFlight {
    pub fn start() -> Self {
        IN_FLIGHT.inc();
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.dec();
    }
}

pub fn rate_limited(limit: &str) {
    RATE_LIMITED.with_label_values(&[limit]).inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_standard_methods_are_labels() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        for made_up in ["FOO", "get", "XM123", "PROPFIND"] {
            let m = Method::from_bytes(made_up.as_bytes()).unwrap();
            assert_eq!(method_label(&m), "other", "{made_up}");
        }
    }
}
