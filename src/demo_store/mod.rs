//! The demo store: a local supermarket site with several retailers' markup,
//! standing in for the real shops in the demo and the tests.

use std::process::ExitCode;

use clap::Args;

use crate::config::Settings;

/// `shelfwatch demo-store`.
#[derive(Debug, Args)]
pub struct DemoStoreArgs {}

pub async fn run(_args: DemoStoreArgs, _settings: &Settings) -> anyhow::Result<ExitCode> {
    eprintln!("error: `demo-store` is not built yet");
    Ok(ExitCode::from(2))
}
