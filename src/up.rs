//! `shelfwatch up`: the whole demo on one machine. Database, migrations,
//! the demo store, a backfill of its price history, a scrape of every
//! retailer through Chromium, product matching, a forecast, and then the
//! API (with workers for the jobs it queues) until Ctrl-C.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;
use clap::Args;

use crate::config::{Secret, Settings};
use shelfwatch_demo_store::local::backfill;
use shelfwatch_store::PgPool;
use shelfwatch_store::jobs::{Job, JobKind};

use crate::schedule::run_every;

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Where the demo store listens (its retailer configs expect port 8700;
    /// any other address is passed to the scraper as an origin override).
    #[arg(long, default_value = "127.0.0.1:8700", value_name = "ADDR")]
    pub store_bind: String,
    /// Days of the demo store's price history to backfill before scraping.
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub history_days: u32,
    /// Seed of the demo store's price simulation.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Run every step once, print what was done, and exit instead of
    /// serving until Ctrl-C.
    #[arg(long)]
    pub no_serve: bool,
    /// Where Prometheus (started when the `prometheus` program is
    /// installed) listens.
    #[arg(long, default_value = "127.0.0.1:9090", value_name = "ADDR")]
    pub prometheus_bind: String,
    /// The retailer configs to scrape the demo store with (not
    /// scrape.retailers_dir, which holds the real shops).
    #[arg(long, default_value = shelfwatch_scrape::DEMO_RETAILERS_DIR, value_name = "DIR")]
    pub retailers_dir: std::path::PathBuf,
}

pub async fn run(args: UpArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    // Signals first, so a Ctrl-C during the steps is not lost.
    let shutdown = shelfwatch_runtime::signal::shutdown_signal()?;

    // 1. Database and schema. An embedded cluster this command starts, it
    // also stops.
    let mut started_cluster = None;
    let url = match &settings.database.url {
        Some(url) => url.clone(),
        None => {
            let cluster = crate::cli::cluster(settings)?;
            if !matches!(
                cluster.status()?,
                shelfwatch_store::db::embedded::Status::Running { .. }
            ) {
                started_cluster = Some(cluster);
            }
            Secret::new(crate::cli::start_embedded(settings, None).await?)
        }
    };
    let pool = shelfwatch_store::db::connect(&url, &settings.database).await?;
    let flavour = shelfwatch_store::db::migrate(&pool).await?;
    println!(
        "1/6 database ready (time-series schema: {})",
        flavour.as_str()
    );

    // 2. The demo store.
    let today = Utc::now().date_naive();
    let local = shelfwatch_demo_store::local::LocalStore::start(args.seed, today, &args.store_bind)
        .await
        .context("is the address in use? --store-bind 127.0.0.1:0 picks a free port")?;
    let store_origin = local.origin.clone();
    println!("2/6 demo store at {store_origin}");

    // 3. History, through the import path exactly as a CSV backfill would go.
    let (from, to, imported) = backfill(
        &local.store,
        &pool,
        args.history_days,
        settings.ingest.batch_size,
        std::io::stderr().is_terminal(),
    )
    .await?;
    println!(
        "3/6 history {from} to {to}: {} rows, {} new",
        imported.rows, imported.stored.inserted
    );

    // 4. Today's shelves, through Chromium; products matched across shops.
    let mut scrape_settings = settings.scrape.clone();
    scrape_settings.retailers_dir = args.retailers_dir.clone();
    let scraper = shelfwatch_scrape::Scraper::new(
        &scrape_settings,
        &settings.database,
        &[],
        Some(store_origin.clone()),
        None,
    )?;
    let pass = scraper.pass().await?;
    let products: u32 = pass.runs.iter().map(|r| r.products).sum();
    let statuses: Vec<String> = pass
        .runs
        .iter()
        .map(|r| format!("{} {}", r.retailer, r.status))
        .collect();
    println!(
        "4/6 scraped {products} products ({}); {}",
        statuses.join(", "),
        pass.matching
            .map_or("matching skipped".to_owned(), |m| format!(
                "{} products matched across retailers",
                m.matched_products
            ))
    );

    // 5. Forecast and recommendations.
    let outcome = shelfwatch_forecast::run_once(
        &pool,
        &shelfwatch_forecast::Params::default(),
        shelfwatch_forecast::load::Shard::ALL,
    )
    .await?;
    println!("5/6 {}", crate::cli::outcome_line(&outcome));
    if args.no_serve {
        println!("6/6 done (--no-serve):");
        print_where(&store_origin, None, None, &url);
        local.stop().await;
        return Ok(ExitCode::SUCCESS);
    }

    // 6. The API, and workers that take the scrape and forecast jobs it
    // queues (and rescrape and reforecast on a schedule).
    let grace = std::time::Duration::from_secs(settings.api.shutdown_grace_secs);
    // The API's own pool waits at most api::DB_WAIT for a connection, so
    // it answers 503 quickly while the database is away.
    let api_pool = shelfwatch_api::connect(&url, &settings.database).await?;
    let api = shelfwatch_api::start(api_pool, settings.api.clone()).await?;
    let mut prometheus = match api.metrics_addr {
        Some(metrics) => start_prometheus(&args.prometheus_bind, metrics)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = format!("{e:#}"), "Prometheus not started");
                None
            }),
        None => None,
    };
    println!("6/6 serving:");
    print_where(
        &store_origin,
        Some(&api),
        prometheus.as_ref().map(|_| args.prometheus_bind.as_str()),
        &url,
    );
    println!(
        "Ctrl-C stops everything this command started{}",
        if started_cluster.is_some() {
            ", the database included"
        } else {
            ""
        }
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let scraper = std::sync::Arc::new(scraper);
    let workers = [
        tokio::spawn(scrape_worker(scraper, stop_rx.clone())),
        tokio::spawn(forecast_worker(pool.clone(), stop_rx)),
    ];
    shutdown.await;
    let _ = stop_tx.send(true);
    api.shutdown(grace).await;
    for w in workers {
        let _ = w.await;
    }
    local.stop().await;
    if let Some(p) = &mut prometheus {
        let _ = p.kill().await;
    }
    pool.close().await;
    if let Some(cluster) = started_cluster {
        tokio::task::spawn_blocking(move || cluster.stop())
            .await
            .context("stopping the database")??;
    }
    Ok(ExitCode::SUCCESS)
}

/// Starts Prometheus on `bind`, scraping the API's metrics listener, when
/// the program is installed (Debian's `prometheus` package). Its config
/// and data live under `.shelfwatch/prometheus/`.
async fn start_prometheus(
    bind: &str,
    metrics: std::net::SocketAddr,
) -> anyhow::Result<Option<tokio::process::Child>> {
    let Some(program) = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
        .iter()
        .map(std::path::Path::new)
        .find(|p| p.exists())
    else {
        println!("  (Prometheus is not installed: `apt-get install prometheus` adds it)");
        return Ok(None);
    };
    let dir = std::path::Path::new(".shelfwatch/prometheus");
    std::fs::create_dir_all(dir.join("data"))
        .with_context(|| format!("creating {}", dir.display()))?;
    let rules = std::path::Path::new("prometheus/alerts.yml");
    let rule_files = if rules.exists() {
        format!(
            "rule_files:\n  - {}\n",
            std::fs::canonicalize(rules)?.display()
        )
    } else {
        String::new()
    };
    let config = format!(
        "global:\n  scrape_interval: 5s\n{rule_files}scrape_configs:\n  - job_name: api\n    \
         static_configs:\n      - targets: ['{metrics}']\n"
    );
    let config_file = dir.join("prometheus.yml");
    std::fs::write(&config_file, config)
        .with_context(|| format!("writing {}", config_file.display()))?;
    let child = tokio::process::Command::new(program)
        .arg(format!("--config.file={}", config_file.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={bind}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    Ok(Some(child))
}

fn print_where(
    store: &str,
    api: Option<&shelfwatch_api::Running>,
    prometheus: Option<&str>,
    url: &Secret,
) {
    println!("  demo store   {store}/sainsway/groceries (and /aldwick, /icebox, /morrow)");
    if let Some(api) = api {
        println!(
            "  API          http://{}/v1/recommendations?limit=5",
            api.addr
        );
        println!("  API docs     http://{}/docs", api.addr);
        if let Some(m) = api.metrics_addr {
            println!("  metrics      http://{m}/metrics");
        }
        if let Some(p) = prometheus {
            println!("  Prometheus   http://{p}/graph");
        }
        println!(
            "  try: curl -s 'http://{}/v1/recommendations?limit=3&action=buy_now'",
            api.addr
        );
        println!(
            "  try: curl -s 'http://{}/v1/products?q=beans&limit=5'",
            api.addr
        );
    }
    println!("  DATABASE_URL {}", url.expose());
    println!(
        "  try: psql \"$(shelfwatch db url)\" -c '{}'",
        shelfwatch_store::forecasts::TRY_IN_PSQL
    );
}

/// Resolves when `stop` turns true.
async fn stopped(mut stop: tokio::sync::watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// Scrapes every six hours and runs scrape jobs queued through the API.
async fn scrape_worker(
    scraper: std::sync::Arc<shelfwatch_scrape::Scraper>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut stop = std::pin::pin!(stopped(stop));
    let every = std::time::Duration::from_secs(6 * 3600);
    let s = &scraper;
    let pass = |job: Option<Job>| async move {
        let only = job
            .as_ref()
            .and_then(|j| j.params.get("retailer"))
            .and_then(|v| v.as_str());
        s.pass_only(only)
            .await
            .map(|r| format!("{} retailers scraped", r.runs.len()))
            .map_err(|e| format!("{e:#}"))
    };
    // Today's pass is step 4 of `up`: the schedule starts one interval on.
    run_every(
        &scraper.pool,
        JobKind::Scrape,
        every,
        every,
        &mut stop,
        pass,
    )
    .await;
}

/// Forecasts every hour and runs forecast jobs queued through the API.
async fn forecast_worker(pool: PgPool, stop: tokio::sync::watch::Receiver<bool>) {
    let mut stop = std::pin::pin!(stopped(stop));
    let every = std::time::Duration::from_secs(3600);
    let params = shelfwatch_forecast::Params::default();
    let shard = shelfwatch_forecast::load::Shard::ALL;
    let (pool_ref, params_ref) = (&pool, &params);
    let run = |_job| async move {
        shelfwatch_forecast::run_once(pool_ref, params_ref, shard)
            .await
            .map(|o| crate::cli::outcome_line(&o))
            .map_err(|e| format!("{e:#}"))
    };
    run_every(&pool, JobKind::Forecast, every, every, &mut stop, run).await;
}
