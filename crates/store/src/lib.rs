//! The only crate that speaks SQL.
//!
//! - [`db`]: connections, migrations, the embedded PostgreSQL cluster and
//!   the TimescaleDB-or-native schema flavour;
//! - [`ingest`]: the one path by which observations are stored (COPY, the
//!   daily aggregate, CSV import);
//! - [`jobs`]: the `SKIP LOCKED` job queue;
//! - [`gauges`]: figures read from the database for `/metrics`.
//!
//! Every function returns domain types or plain row structs; callers never
//! see a SQL string.

pub mod access;
pub mod admin;
pub mod bench;
pub mod calibration;
pub mod catalogue;
pub mod db;
pub mod error;
pub mod forecasts;
pub mod gauges;
pub mod ingest;
pub mod jobs;
pub mod listings;
pub mod notify;
pub mod page;
pub mod product_page;
pub mod recommendations;
pub mod scrape_runs;
pub mod sightings;
pub mod watches;

/// The connection pool every query takes. Crates above the store name it
/// through this re-export and need no sqlx of their own.
pub use sqlx::{PgConnection, PgPool};
