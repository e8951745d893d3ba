//! `shelfwatch up`: the whole demo on one machine. Database, migrations,
//! the demo store, a backfill of its price history, a scrape of every
//! retailer through Chromium, product matching, a forecast, and then the
//! API (with workers for the jobs it queues) until Ctrl-C.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;
use clap::Args;

use crate::config::{Secret, Settings};
use shelfwatch_demo_store::local::{LocalStore, backfill};
use shelfwatch_store::PgPool;
use shelfwatch_store::db::SessionLock;
use shelfwatch_store::db::embedded;
use shelfwatch_store::jobs::{Job, JobKind};

use crate::schedule::run_every;

/// The advisory lock a running `up` holds in its database, so a second
/// `up` does not scrape into the same tables unless told to.
pub const UP_LOCK_KEY: i64 = 0x7368_656c_6677_7570; // "shelfwup"

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Where the demo store listens (its retailer configs expect port 8700;
    /// any other address is passed to the scraper as an origin override).
    #[arg(long, default_value = "127.0.0.1:8700", value_name = "ADDR")]
    pub store_bind: String,
    /// Where the API listens (default: api.bind, 127.0.0.1:8080). Port 0
    /// picks a free port; the printed URLs name it.
    #[arg(long, value_name = "ADDR")]
    pub api_bind: Option<String>,
    /// Where the API's /metrics listens (default: api.metrics_bind,
    /// 127.0.0.1:9464; "" for none, which also leaves Prometheus out).
    #[arg(long, value_name = "ADDR")]
    pub metrics_bind: Option<String>,
    /// Days of the demo store's price history to backfill before scraping.
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub history_days: u32,
    /// Seed of the demo store's price simulation.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Run every step once, print what was done, and exit instead of
    /// serving until Ctrl-C (the database keeps running).
    #[arg(long)]
    pub no_serve: bool,
    /// Where Prometheus (started when the `prometheus` program is
    /// installed) listens.
    #[arg(long, default_value = "127.0.0.1:9090", value_name = "ADDR")]
    pub prometheus_bind: String,
    /// Do not start Prometheus, even when it is installed.
    #[arg(long)]
    pub no_prometheus: bool,
    /// The retailer configs to scrape the demo store with (not
    /// scrape.retailers_dir, which holds the real shops).
    #[arg(long, default_value = shelfwatch_scrape::DEMO_RETAILERS_DIR, value_name = "DIR")]
    pub retailers_dir: std::path::PathBuf,
    /// Use the database even when another `shelfwatch up` is using it.
    /// Both then write the same tables, and the listings' URLs point at
    /// whichever demo store scraped last.
    #[arg(long)]
    pub share_database: bool,
}

pub async fn run(args: UpArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    // Signals first, so a Ctrl-C during the steps is not lost.
    let shutdown = shelfwatch_runtime::signal::shutdown_signal()?;
    let mut settings = settings.clone();
    if let Some(bind) = &args.api_bind {
        settings.api.bind.clone_from(bind);
    }
    if let Some(bind) = &args.metrics_bind {
        settings.api.metrics_bind.clone_from(bind);
    }
    let prometheus = match preflight(&args, &settings) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e:#}");
            eprintln!("nothing was started");
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut started = Started {
        grace: std::time::Duration::from_secs(settings.api.shutdown_grace_secs),
        ..Started::default()
    };
    let finished = tokio::select! {
        r = steps(&args, &settings, prometheus, &mut started) => Some(r),
        () = shutdown => None,
    };
    let outcome = finished.unwrap_or_else(|| {
        if !started.serving {
            let _ = writeln!(
                std::io::stdout(),
                "interrupted before the demo was ready; stopping"
            );
        }
        Ok(())
    });
    if let Err(e) = &outcome {
        eprintln!("error: {e:#}");
    }
    let stopped = started.stop().await;
    // Whoever read stdout may be gone by now: a closed pipe is no error.
    let _ = if stopped.is_empty() {
        writeln!(std::io::stdout(), "stopped: nothing was left running")
    } else {
        writeln!(
            std::io::stdout(),
            "stopped everything this command started: {}",
            stopped.join(", ")
        )
    };
    Ok(if outcome.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Checks everything `up` needs before it starts anything: the addresses
/// it listens on, the retailer configs, Chromium and chromedriver, the
/// PostgreSQL programs. Every problem is listed with what to do about it.
/// Returns the Prometheus program to start, if any.
fn preflight(args: &UpArgs, settings: &Settings) -> anyhow::Result<Option<PathBuf>> {
    let mut problems = Vec::new();
    if let Err(e) = shelfwatch_scrape::config::load_dir(&args.retailers_dir) {
        let cwd = std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_else(|_| "?".to_owned());
        problems.push(format!(
            "the demo store's retailer configs could not be read ({e:#}; working directory \
             {cwd}): run `shelfwatch up` in the shelfwatch checkout, which has \
             {default}, or pass --retailers-dir DIR",
            default = shelfwatch_scrape::DEMO_RETAILERS_DIR
        ));
    }
    if let Err(e) = shelfwatch_scrape::browser::Browser::new(settings.scrape.browser.clone()) {
        problems.push(format!("{e:#}"));
    }
    if settings.database.url.is_none()
        && let Err(e) = crate::cli::cluster(settings)
    {
        problems.push(format!("{e:#}"));
    }
    let prometheus = if args.no_prometheus || args.no_serve || settings.api.metrics_bind.is_empty()
    {
        None
    } else {
        prometheus_program()
    };
    let mut addresses = vec![("the demo store", "--store-bind", args.store_bind.as_str())];
    if !args.no_serve {
        addresses.push(("the API", "--api-bind", settings.api.bind.as_str()));
        if !settings.api.metrics_bind.is_empty() {
            addresses.push((
                "the API's /metrics",
                "--metrics-bind",
                settings.api.metrics_bind.as_str(),
            ));
        }
        if prometheus.is_some() {
            addresses.push((
                "Prometheus",
                "--prometheus-bind (or --no-prometheus)",
                args.prometheus_bind.as_str(),
            ));
        }
    }
    for (i, (what, flag, addr)) in addresses.iter().enumerate() {
        if let Some((other, _, _)) = addresses[..i]
            .iter()
            .find(|(_, _, a)| a == addr && !addr.ends_with(":0"))
        {
            problems.push(format!(
                "{what} and {other} are both given {addr}: choose another with {flag}"
            ));
        } else if let Err(e) = std::net::TcpListener::bind(addr) {
            let why = if e.kind() == std::io::ErrorKind::AddrInUse {
                "is in use (another `shelfwatch up` or `serve` still running?)".to_owned()
            } else {
                format!("cannot be listened on ({e})")
            };
            problems.push(format!(
                "{what}'s address {addr} {why}: stop what holds it, or choose another with \
                 {flag} (port 0 picks a free one)"
            ));
        }
    }
    if problems.is_empty() {
        Ok(prometheus)
    } else {
        anyhow::bail!(
            "shelfwatch up cannot start:\n  - {}",
            problems.join("\n  - ")
        )
    }
}

/// What `up` has started so far, so that it can all be stopped, in order,
/// whether `up` ends on Ctrl-C or on an error half way.
#[derive(Default)]
struct Started {
    /// The embedded cluster, when this command started it.
    cluster: Option<embedded::Cluster>,
    lock: Option<SessionLock>,
    pool: Option<PgPool>,
    store: Option<LocalStore>,
    api: Option<shelfwatch_api::Running>,
    prometheus: Option<tokio::process::Child>,
    workers: Option<(
        tokio::sync::watch::Sender<bool>,
        Vec<tokio::task::JoinHandle<()>>,
    )>,
    grace: std::time::Duration,
    serving: bool,
}

impl Started {
    /// Stops everything in the reverse order of starting; returns what
    /// was stopped.
    async fn stop(self) -> Vec<&'static str> {
        let mut stopped = Vec::new();
        if let Some((stop, workers)) = self.workers {
            let _ = stop.send(true);
            for w in workers {
                let _ = w.await;
            }
            stopped.push("the scrape and forecast workers");
        }
        if let Some(api) = self.api {
            api.shutdown(self.grace).await;
            stopped.push("the API");
        }
        if let Some(mut prometheus) = self.prometheus {
            stop_child(&mut prometheus).await;
            stopped.push("Prometheus");
        }
        if let Some(store) = self.store {
            store.stop().await;
            stopped.push("the demo store");
        }
        drop(self.lock);
        if let Some(pool) = self.pool {
            pool.close().await;
        }
        if let Some(cluster) = self.cluster {
            let dir = cluster.root().display().to_string();
            match tokio::task::spawn_blocking(move || cluster.stop()).await {
                Ok(Ok(_)) => stopped.push("the database"),
                Ok(Err(e)) => eprintln!(
                    "error: stopping the database in {dir}: {e:#}; `shelfwatch db stop` stops it"
                ),
                Err(e) => eprintln!(
                    "error: stopping the database in {dir}: {e}; `shelfwatch db stop` stops it"
                ),
            }
        }
        stopped
    }
}

/// SIGTERM, then SIGKILL when the process has not exited within 10 s.
async fn stop_child(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
        if tokio::time::timeout(std::time::Duration::from_secs(10), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = child.kill().await;
}

/// The demo's steps, recording in `s` everything they start. Once serving
/// it waits for ever: `run` ends it on Ctrl-C.
async fn steps(
    args: &UpArgs,
    settings: &Settings,
    prometheus_program: Option<PathBuf>,
    s: &mut Started,
) -> anyhow::Result<()> {
    // 1. Database and schema. An embedded cluster this command starts, it
    // also stops.
    let url = match &settings.database.url {
        Some(url) => url.clone(),
        None => {
            let cluster = crate::cli::cluster(settings)?;
            if !matches!(cluster.status()?, embedded::Status::Running { .. }) {
                s.cluster = Some(cluster);
            }
            Secret::new(crate::cli::start_embedded(settings, None).await?)
        }
    };
    s.lock = shelfwatch_store::db::try_session_lock(&url, UP_LOCK_KEY).await?;
    if s.lock.is_none() {
        if !args.share_database {
            anyhow::bail!(
                "another `shelfwatch up` is using this database: stop it (Ctrl-C where it \
                 runs), or give this one a database of its own (run it in another directory, \
                 which gets its own .shelfwatch/pg, or set DATABASE_URL), or pass \
                 --share-database to write into the same tables"
            );
        }
        println!("  note: sharing the database with another `shelfwatch up` (--share-database)");
    }
    let pool = shelfwatch_store::db::connect(&url, &settings.database).await?;
    s.pool = Some(pool.clone());
    let flavour = shelfwatch_store::db::migrate(&pool).await?;
    println!(
        "1/6 database ready (time-series schema: {})",
        flavour.as_str()
    );

    // 2. The demo store.
    let today = Utc::now().date_naive();
    let local = LocalStore::start(args.seed, today, &args.store_bind).await?;
    let store_origin = local.origin.clone();
    let store = local.store.clone();
    s.store = Some(local);
    println!("2/6 demo store at {store_origin}");

    // 3. History, through the import path exactly as a CSV backfill would go.
    let (from, to, imported) = backfill(
        &store,
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
    // Timed, so /metrics reports its duration as `forecast --every` does.
    let outcome = shelfwatch_forecast::metrics::timed_run(
        &pool,
        &shelfwatch_forecast::Params::default(),
        shelfwatch_forecast::load::Shard::ALL,
    )
    .await?;
    println!("5/6 {}", crate::cli::outcome_line(&outcome));
    if args.no_serve {
        println!("6/6 done (--no-serve):");
        print_where(&store_origin, None, None, &url);
        if s.cluster.take().is_some() {
            println!("  the database keeps running: `shelfwatch db stop` stops it");
        }
        return Ok(());
    }

    // 6. The API, and workers that take the scrape and forecast jobs it
    // queues (and rescrape and reforecast on a schedule).
    // The API's own pool waits at most api::DB_WAIT for a connection, so
    // it answers 503 quickly while the database is away.
    let api_pool = shelfwatch_api::connect(&url, &settings.database).await?;
    let api = s
        .api
        .insert(shelfwatch_api::start(api_pool, settings.api.clone()).await?);
    let (api_addr, metrics_addr) = (api.addr, api.metrics_addr);
    if let (Some(program), Some(metrics)) = (prometheus_program, metrics_addr) {
        let child = s
            .prometheus
            .insert(start_prometheus(&program, &args.prometheus_bind, metrics).await?);
        wait_for_prometheus(child, &args.prometheus_bind).await?;
    }
    println!("6/6 serving:");
    print_where(
        &store_origin,
        Some((api_addr, metrics_addr)),
        s.prometheus.as_ref().map(|_| args.prometheus_bind.as_str()),
        &url,
    );
    println!(
        "Ctrl-C stops everything this command started{}",
        if s.cluster.is_some() {
            ", the database included"
        } else {
            ""
        }
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let scraper = std::sync::Arc::new(scraper);
    s.workers = Some((
        stop_tx,
        vec![
            tokio::spawn(scrape_worker(scraper, stop_rx.clone())),
            tokio::spawn(forecast_worker(pool, stop_rx)),
        ],
    ));
    s.serving = true;
    std::future::pending::<()>().await;
    Ok(())
}

/// Prometheus (Debian's `prometheus` package), when installed.
fn prometheus_program() -> Option<PathBuf> {
    ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Where `up` keeps Prometheus's config, data and log.
const PROMETHEUS_DIR: &str = ".shelfwatch/prometheus";

/// Starts Prometheus on `bind`, scraping the API's metrics listener as the
/// `shelfwatch-api` job (the name `prometheus.yml` and the alert rules
/// use), with the alert rules when `prometheus/alerts.yml` is here.
async fn start_prometheus(
    program: &Path,
    bind: &str,
    metrics: std::net::SocketAddr,
) -> anyhow::Result<tokio::process::Child> {
    let dir = Path::new(PROMETHEUS_DIR);
    std::fs::create_dir_all(dir.join("data"))
        .with_context(|| format!("creating {}", dir.display()))?;
    let rules = Path::new("prometheus/alerts.yml");
    let rule_files = if rules.exists() {
        format!(
            "rule_files:\n  - {}\n",
            std::fs::canonicalize(rules)?.display()
        )
    } else {
        String::new()
    };
    let config = format!(
        "global:\n  scrape_interval: 5s\n  evaluation_interval: 5s\n{rule_files}scrape_configs:\n  \
         - job_name: shelfwatch-api\n    static_configs:\n      - targets: ['{metrics}']\n        \
         labels:\n          role: api\n"
    );
    let config_file = dir.join("prometheus.yml");
    std::fs::write(&config_file, config)
        .with_context(|| format!("writing {}", config_file.display()))?;
    let log_file = dir.join("prometheus.log");
    let log = std::fs::File::create(&log_file)
        .with_context(|| format!("creating {}", log_file.display()))?;
    tokio::process::Command::new(program)
        .arg(format!("--config.file={}", config_file.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={bind}"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", program.display()))
}

/// Waits until Prometheus answers `/-/ready`, or fails with the reason
/// from its log when it exits first or is not ready within 30 s.
async fn wait_for_prometheus(child: &mut tokio::process::Child, bind: &str) -> anyhow::Result<()> {
    let log = Path::new(PROMETHEUS_DIR).join("prometheus.log");
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(2))
        .build()?;
    let ready = format!("http://{bind}/-/ready");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait()? {
            anyhow::bail!(
                "Prometheus exited at start ({status}): {}. Its log is {}; \
                 --no-prometheus runs the demo without it",
                first_error(&log),
                log.display()
            );
        }
        if client
            .get(&ready)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!(
                "Prometheus did not get ready on {bind} within 30 s; its log is {}",
                log.display()
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The first error Prometheus logged (its logfmt `err="..."`, else the
/// line): the cause, where the later ones are its consequences.
fn first_error(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .find(|l| l.contains("level=error"))
        .map(|l| {
            l.split_once("err=")
                .map_or(l, |(_, e)| e)
                .trim_matches('"')
                .replace("\\\"", "\"")
        })
        .unwrap_or_else(|| "no error was logged".to_owned())
}

fn print_where(
    store: &str,
    api: Option<(std::net::SocketAddr, Option<std::net::SocketAddr>)>,
    prometheus: Option<&str>,
    url: &Secret,
) {
    println!("  demo store   {store}/sainsway/groceries (and /aldwick, /icebox, /morrow)");
    if let Some((api, metrics)) = api {
        println!("  API          http://{api}/v1/recommendations?limit=5");
        println!("  API docs     http://{api}/docs");
        if let Some(m) = metrics {
            println!("  metrics      http://{m}/metrics");
        }
        if let Some(p) = prometheus {
            println!("  Prometheus   http://{p}/graph");
        }
        println!("  try: curl -s 'http://{api}/v1/recommendations?limit=3&action=buy_now'");
        println!("  try: curl -s 'http://{api}/v1/products?q=beans&limit=5'");
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
    let run = |job: Option<shelfwatch_store::jobs::Job>| async move {
        shelfwatch_forecast::run_job(pool_ref, params_ref, shard, job.as_ref())
            .await
            .map(|o| crate::cli::outcome_line(&o))
            .map_err(|e| format!("{e:#}"))
    };
    run_every(&pool, JobKind::Forecast, every, every, &mut stop, run).await;
}
