//! The REST API (`/v1`), documented with utoipa.

use std::process::ExitCode;

use clap::Args;
use serde::Deserialize;

use crate::config::Settings;

/// `[api]` settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSettings {}

/// `shelfwatch serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {}

pub async fn run(_args: ServeArgs, _settings: &Settings) -> anyhow::Result<ExitCode> {
    eprintln!("error: `serve` is not built yet");
    Ok(ExitCode::from(2))
}
