//! The webhook delivery counter (exported by `serve`'s `/metrics`).

use std::sync::LazyLock;

use prometheus::IntCounterVec;

static WEBHOOKS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    shelfwatch_runtime::metrics::int_counter_vec(
        "shelfwatch_webhook_attempts_total",
        "Webhook delivery attempts by outcome (delivered, retry, failed).",
        &["outcome"],
    )
});

/// Registers the collectors, so they are exported before first use.
pub fn init() {
    LazyLock::force(&WEBHOOKS);
}

/// Counts an attempt: `delivered`, `retry` or `failed`.
pub(crate) fn webhook_attempt(outcome: &str) {
    WEBHOOKS.with_label_values(&[outcome]).inc();
}
