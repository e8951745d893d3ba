//! `shelfwatch scrape`: one pass or a schedule over the retailers, with
//! scrape jobs queued through the API run between ticks.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use shelfwatch_scrape::{PassReport, Scraper};

use crate::config::Settings;

/// `shelfwatch scrape`.
#[derive(Debug, Args)]
pub struct ScrapeArgs {
    /// Only this retailer (its slug); repeat for several. Default: all.
    #[arg(long = "retailer", value_name = "SLUG")]
    pub retailers: Vec<String>,
    /// Scrape once and exit (the default).
    #[arg(long, conflicts_with = "every")]
    pub once: bool,
    /// Scrape on a schedule, e.g. 6h, until SIGTERM or Ctrl-C.
    #[arg(long, value_name = "INTERVAL", value_parser = shelfwatch_runtime::signal::parse_interval)]
    pub every: Option<Duration>,
    /// Browser sessions in parallel (default: scrape.sessions).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub sessions: Option<u16>,
    /// Replace the origin of every configured URL (default:
    /// scrape.origin_override), e.g. http://127.0.0.1:8700.
    #[arg(long, value_name = "URL")]
    pub origin: Option<String>,
    /// Only replay the spool into the database, then exit.
    #[arg(long, conflicts_with_all = ["every", "once"])]
    pub replay: bool,
    /// Skip product matching after the run.
    #[arg(long)]
    pub no_match: bool,
}

fn print_pass(report: &PassReport) {
    for r in &report.runs {
        println!(
            "{}: {} - {} pages, {} products, {} stored, {} spooled, {} unreadable tiles, {} retries{}",
            r.retailer,
            r.status,
            r.pages,
            r.products,
            r.stored,
            r.spooled,
            r.parse_errors,
            r.retries,
            r.message
                .as_ref()
                .map_or(String::new(), |m| format!(" ({m})"))
        );
    }
    if let Some(m) = &report.matching {
        println!(
            "products: {} listings matched across retailers into {} products; {} on their own, {} by override",
            m.matched_listings, m.matched_products, m.single, m.overridden
        );
    }
}

pub async fn run(args: ScrapeArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    let mut scraper = Scraper::new(
        &settings.scrape,
        &settings.database,
        &args.retailers,
        args.origin.clone(),
        args.sessions.map(usize::from),
    )?;
    scraper.match_products = !args.no_match;
    if args.replay {
        return match scraper.replay_all().await {
            Some(n) => {
                println!("spool replayed: {n} observations stored");
                Ok(ExitCode::SUCCESS)
            }
            None => {
                eprintln!("error: the database is unavailable; the spool is kept");
                Ok(ExitCode::FAILURE)
            }
        };
    }
    let Some(every) = args.every else {
        let report = scraper.pass().await?;
        print_pass(&report);
        evaluate_watches(&scraper.pool).await;
        let all_failed = report.runs.iter().all(|r| r.status == "failed");
        return Ok(if all_failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    };
    let mut stop = std::pin::pin!(shelfwatch_runtime::signal::shutdown_signal()?);
    if let Some(bind) = &settings.scrape.metrics_bind {
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("binding the metrics listener {bind}"))?;
        tracing::info!(addr = %bind, "metrics at /metrics");
        tokio::spawn(async move {
            if let Err(e) =
                shelfwatch_runtime::metrics::serve(listener, std::future::pending()).await
            {
                tracing::error!(error = %e, "metrics listener failed");
            }
        });
    }
    loop {
        match scraper.pass().await {
            Ok(report) => print_pass(&report),
            Err(e) => tracing::error!(error = format!("{e:#}"), "scrape pass failed"),
        }
        evaluate_watches(&scraper.pool).await;
        // Until the next tick, run scrapes queued through the API.
        let next = tokio::time::Instant::now() + every;
        let scraper = &scraper;
        let run_job = |job: shelfwatch_store::jobs::Job| async move {
            let only = job.params.get("retailer").and_then(|v| v.as_str());
            let outcome = scraper.pass_only(only).await;
            evaluate_watches(&scraper.pool).await;
            outcome
                .map(|r| {
                    r.runs
                        .iter()
                        .map(|x| format!("{} {} ({} products)", x.retailer, x.status, x.products))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .map_err(|e| format!("{e:#}"))
        };
        let kind = shelfwatch_store::jobs::JobKind::Scrape;
        if !shelfwatch_store::jobs::work_until(&scraper.pool, kind, next, &mut stop, run_job).await
        {
            break;
        }
    }
    tracing::info!("scraper stopped");
    Ok(ExitCode::SUCCESS)
}

/// Queues webhooks for watches the new prices meet; a failure is logged,
/// never fatal to the scrape that preceded it.
async fn evaluate_watches(pool: &sqlx::PgPool) {
    if let Err(e) = shelfwatch_alerts::evaluate_watches(pool).await {
        tracing::warn!(error = format!("{e:#}"), "evaluating watches failed");
    }
}
