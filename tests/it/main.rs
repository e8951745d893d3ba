//! Integration tests against real PostgreSQL (and, where configured,
//! TimescaleDB). One binary, a module per area.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod cli;
mod demo_store;
mod forecast;
mod import;
mod ingest;
mod matching;
mod migrate;
mod observability;
mod readme;
mod reliability;
mod scrape;
mod security;
mod support;
mod timescale;
mod ukpages;
mod up;
