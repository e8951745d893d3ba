//! The scraper: thirtyfour drives headless Chromium through chromedriver over
//! the retailers configured in `retailers/*.toml`.

use std::process::ExitCode;

use clap::Args;
use serde::Deserialize;

use crate::config::Settings;

/// `[scrape]` settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScrapeSettings {}

/// `shelfwatch scrape`.
#[derive(Debug, Args)]
pub struct ScrapeArgs {}

pub async fn run(_args: ScrapeArgs, _settings: &Settings) -> anyhow::Result<ExitCode> {
    eprintln!("error: `scrape` is not built yet");
    Ok(ExitCode::from(2))
}
