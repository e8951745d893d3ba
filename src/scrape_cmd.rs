//! `shelfwatch scrape`: one pass or a schedule over the retailers, with
//! scrape jobs queued through the API run between ticks.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use shelfwatch_scrape::{PassReport, Scraper};
use shelfwatch_store::jobs::{Job, JobKind};

use crate::schedule::{evaluate_watches, run_every};

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
    /// The directory of retailer configs (default: scrape.retailers_dir,
    /// `retailers`: the real shops); `retailers/demo` for the demo store.
    #[arg(long, value_name = "DIR")]
    pub retailers_dir: Option<std::path::PathBuf>,
    /// Only replay the spool into the database, then exit.
    #[arg(long, conflicts_with_all = ["every", "once"])]
    pub replay: bool,
    /// Skip product matching after the run.
    #[arg(long)]
    pub no_match: bool,
}

/// `shelfwatch retailer`.
#[derive(Debug, clap::Subcommand)]
pub enum RetailerCommand {
    /// Read one page with a retailer config through Chromium and show every
    /// tile field by field, with the reason for each field it could not
    /// read. A saved page is served on 127.0.0.1 with the browser locked to
    /// loopback.
    Check {
        /// The retailer config (e.g. retailers/tesco.toml).
        #[arg(value_name = "FILE.toml")]
        retailer_file: std::path::PathBuf,
        /// A saved page (served on 127.0.0.1) or an http(s) URL.
        #[arg(long, value_name = "FILE.html|URL")]
        page: String,
        /// The page kind to read it as (default: by URL, else the first
        /// whose tiles are on the page).
        #[arg(long)]
        kind: Option<String>,
        /// Print a JSON array, one object per tile.
        #[arg(long)]
        json: bool,
    },
}

pub async fn retailer(cmd: RetailerCommand, settings: &Settings) -> anyhow::Result<ExitCode> {
    match cmd {
        RetailerCommand::Check {
            retailer_file,
            page,
            kind,
            json,
        } => {
            let report = shelfwatch_scrape::check::run(
                &retailer_file,
                &page,
                kind.as_deref(),
                settings.scrape.browser.clone(),
            )
            .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report.json())?);
            } else {
                print!("{}", report.text());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
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
        println!("{}", m.summary());
    }
}

pub async fn run(args: ScrapeArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    let mut scrape_settings = settings.scrape.clone();
    if let Some(dir) = &args.retailers_dir {
        scrape_settings.retailers_dir = dir.clone();
    }
    let mut scraper = Scraper::new(
        &scrape_settings,
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
        // Fail loudly: one failed retailer (a broken config, a run that
        // stored nothing) fails the command, with the reason printed above.
        let any_failed = report.runs.iter().any(|r| r.status == "failed");
        return Ok(if any_failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    };
    let mut stop = std::pin::pin!(shelfwatch_runtime::signal::shutdown_signal()?);
    if let Some(bind) = &settings.scrape.metrics_bind {
        crate::schedule::serve_metrics(bind).await?;
    }
    let scraper = &scraper;
    let pass = |job: Option<Job>| async move {
        let only = job
            .as_ref()
            .and_then(|j| j.params.get("retailer"))
            .and_then(|v| v.as_str());
        let outcome = scraper.pass_only(only).await;
        evaluate_watches(&scraper.pool).await;
        let report = outcome.map_err(|e| format!("{e:#}"))?;
        print_pass(&report);
        Ok(report
            .runs
            .iter()
            .map(|x| format!("{} {} ({} products)", x.retailer, x.status, x.products))
            .collect::<Vec<_>>()
            .join(", "))
    };
    run_every(
        &scraper.pool,
        JobKind::Scrape,
        every,
        Duration::ZERO,
        &mut stop,
        pass,
    )
    .await;
    tracing::info!("scraper stopped");
    Ok(ExitCode::SUCCESS)
}
