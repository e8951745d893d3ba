//! Price alerts: a caller's watch on a product, delivered as a signed
//! webhook when a new price or recommendation meets it.
//!
//! [`evaluate_watches`] compares every active watch with the current
//! prices and recommendations and queues a delivery per new event (the
//! forecast and scrape jobs call it after each run; `serve` also calls it
//! on a timer). The delivery [`worker`] inside `serve` leases due
//! deliveries with `FOR UPDATE SKIP LOCKED`, POSTs them (over `http` or
//! `https`, through [`WebhookClient`]) signed the
//! Standard Webhooks way (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`: HMAC-SHA256 over id, time and body), and retries failures with
//! exponential backoff; every attempt is recorded.
//!
//! The API creates watches (checking their URL with [`check_url`]); this
//! crate never depends on it.

mod client;
mod deliver;
mod evaluate;
mod metrics;
mod targets;

use std::path::PathBuf;

use serde::Deserialize;

pub use client::WebhookClient;
pub use deliver::{
    ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, backoff, deliver_due, message_id, send, sign,
    signing_key, worker,
};
pub use evaluate::evaluate_watches;
pub use metrics::init as init_metrics;
pub use targets::{check_url, is_internal};

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
    /// A PEM file of CA certificates trusted for `https` targets besides
    /// the system's roots (a private CA of internal receivers).
    pub ca_file: Option<PathBuf>,
    /// Time allowed for the receiver to answer, connection and TLS
    /// handshake included.
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
            ca_file: None,
            timeout_secs: 5,
            poll_interval_ms: 1000,
            evaluate_every_secs: 60,
            worker: true,
        }
    }
}
