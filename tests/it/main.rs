//! Integration tests against real PostgreSQL (and, where configured,
//! TimescaleDB). One binary, a module per area.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod cli;
mod connections;
mod demo_store;
mod forecast;
mod forecast_chunks;
mod import;
mod ingest;
mod matching;
mod migrate;
mod observability;
mod offers;
mod readme;
mod reliability;
mod scrape;
mod security;
mod spec;
mod support;
mod timescale;
mod ukpages;
mod up;
mod webhooks;
