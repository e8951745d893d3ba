//! shelfwatch: grocery price intelligence.
//!
//! A module a concern, each owning its SQL:
//! - [`config`] holds layered settings (defaults, `shelfwatch.toml`, environment);
//! - [`telemetry`] holds logging;
//! - [`db`] holds connections, migrations, the embedded PostgreSQL cluster and the
//!   TimescaleDB-or-native schema flavour;
//! - [`domain`] holds money, pack sizes, unit prices, promotions, parsed once from
//!   shelf text;
//! - [`ingest`] holds the one path by which observations are stored (CSV import
//!   and, later, the scraper);
//! - [`forecast`] holds the polars batch job, the calibrated confidence
//!   model and the backtest;
//! - [`scrape`] holds the headless-browser scraper and retailer configs;
//! - [`demo_store`] holds the local supermarket site the demo and tests scrape;
//! - [`api`] holds the versioned REST API, watches and their webhooks;
//! - [`jobs`] holds the job queue the API fills and workers drain;
//! - [`metrics`] holds the process's Prometheus registry;
//! - [`bench`] holds benchmarks with in-run baselines;
//! - [`cli`] holds the `shelfwatch` command line, and [`up`] the one-command demo.

pub mod api;
pub mod bench;
pub mod cli;
pub mod config;
pub mod db;
pub mod demo_store;
pub use shelfwatch_domain as domain;
pub mod forecast;
pub mod fuzz;
pub mod ingest;
pub mod jobs;
pub mod metrics;
pub mod scrape;
pub mod soak;
pub mod telemetry;
pub mod up;
