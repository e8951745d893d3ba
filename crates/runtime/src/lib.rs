//! Process plumbing shared by every shelfwatch crate: logging, the
//! Prometheus registry and its collector helpers, shutdown signals, and the
//! `Secret` wrapper that keeps passwords out of logs. It knows nothing of
//! groceries; the vocabulary is `shelfwatch-domain`.

pub mod metrics;
mod secret;
pub mod signal;
pub mod telemetry;

pub use secret::Secret;
