//! shelfwatch: grocery price intelligence.
//!
//! This package is the binary's wiring: the command line ([`cli`]), layered
//! settings ([`config`]), the commands that run the pipeline's crates
//! together, and `up`, the one-command demo. The work itself lives in the
//! crates under `crates/`, each owning one step of a price's path:
//!
//! - `shelfwatch-domain`: the vocabulary (money, packs, unit prices,
//!   promotions, actions), built by parsing, with no I/O;
//! - `shelfwatch-runtime`: logging, metrics registry, shutdown signals;
//! - `shelfwatch-store`: the only crate that speaks SQL;
//! - `shelfwatch-scrape`: reads shelves through headless Chromium;
//! - `shelfwatch-forecast`: the polars batch job and the backtest;
//! - `shelfwatch-api`: the versioned REST API;
//! - `shelfwatch-demo-store` and `shelfwatch-devtools`: the demo shop and
//!   the benchmarks, soak test and fuzzer, compiled in only with the `demo`
//!   feature (on by default; off in the service image).

pub mod cli;
pub mod config;
pub mod healthcheck;
mod schedule;
mod scrape_cmd;
mod serve_cmd;
#[cfg(feature = "demo")]
pub mod up;
