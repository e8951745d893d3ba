//! `shelfwatch serve`: the REST API, its `/metrics` listener and the
//! webhook worker, until SIGTERM.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::config::Settings;

/// `shelfwatch serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Listen here instead of api.bind.
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// Serve /metrics here instead of api.metrics_bind.
    #[arg(long, value_name = "ADDR")]
    pub metrics_bind: Option<String>,
    /// Apply pending database migrations before serving.
    #[arg(long)]
    pub migrate: bool,
    /// Print the OpenAPI document and exit (no database needed).
    #[arg(long)]
    pub print_openapi: bool,
}

pub async fn run(args: ServeArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    if args.print_openapi {
        print!("{}", shelfwatch_api::openapi::document());
        return Ok(ExitCode::SUCCESS);
    }
    let mut api = settings.api.clone();
    if let Some(bind) = args.bind {
        api.bind = bind;
    }
    if let Some(bind) = args.metrics_bind {
        api.metrics_bind = bind;
    }
    let url = shelfwatch_store::db::database_url(&settings.database)?;
    let pool = shelfwatch_api::connect(&url, &settings.database).await?;
    if args.migrate {
        shelfwatch_store::db::migrate(&pool).await?;
    } else if !shelfwatch_store::db::migrations_current(&pool).await? {
        tracing::warn!(
            "database migrations are pending: /readyz answers 503 until `shelfwatch migrate` runs"
        );
    }
    let signal = shelfwatch_runtime::signal::shutdown_signal()?;
    let grace = Duration::from_secs(api.shutdown_grace_secs);
    let running = shelfwatch_api::start(pool, api).await?;
    println!("API listening on http://{}", running.addr);
    if let Some(m) = running.metrics_addr {
        println!("metrics on http://{m}/metrics");
    }
    signal.await;
    tracing::info!("shutting down: finishing in-flight requests");
    running.shutdown(grace).await;
    Ok(ExitCode::SUCCESS)
}
