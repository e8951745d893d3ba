//! The record of each scrape run.
