//! The `shelfwatch` command line: one binary, a subcommand per role.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::config::{LogFormat, Settings};
use crate::schedule::evaluate_watches;
use shelfwatch_store::db::{self, embedded};
use shelfwatch_store::ingest::Ingestor;
use shelfwatch_store::ingest::csv_import::{self, ImportOptions};

#[derive(Debug, Parser)]
#[command(
    name = "shelfwatch",
    version,
    about = "Grocery price intelligence: scrape shelves, keep every price, forecast, and say when to buy.",
    long_about = "Grocery price intelligence: scrape shelves, keep every price, forecast, and say when to buy.\n\n\
        Configuration comes from built-in defaults, then shelfwatch.toml (or --config), then \
        SHELFWATCH_* environment variables (SHELFWATCH_DATABASE__MAX_CONNECTIONS=4 sets \
        database.max_connections), then DATABASE_URL. Without DATABASE_URL, commands use the \
        embedded database that `shelfwatch db start` runs."
)]
pub struct Cli {
    /// Configuration file (default: ./shelfwatch.toml when it exists).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format on stderr (overrides log.format).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole demo on this machine: database, demo store, history, a scrape, a forecast.
    #[cfg(feature = "demo")]
    Up(crate::up::UpArgs),
    /// Manage the embedded PostgreSQL cluster under .shelfwatch/.
    #[command(subcommand)]
    Db(DbCommand),
    /// Apply the embedded database migrations (safe to run concurrently).
    Migrate,
    /// Scrape retailers through headless Chromium (retailers/*.toml; the
    /// demo store's: --retailers-dir retailers/demo).
    Scrape(crate::scrape_cmd::ScrapeArgs),
    /// Work on retailer configs.
    #[command(subcommand)]
    Retailer(crate::scrape_cmd::RetailerCommand),
    /// Backfill prices from a CSV file through the ingest path, then match
    /// products.
    Import(ImportArgs),
    /// Match listings across retailers into products now (scrape and
    /// import also do it after storing).
    Match,
    /// Run the forecast batch job over the daily aggregates.
    Forecast(ForecastArgs),
    /// Measure forecast accuracy and confidence calibration on stored history.
    Backtest(BacktestArgs),
    /// Serve the REST API (and /metrics on its own listener).
    Serve(crate::serve_cmd::ServeArgs),
    /// Manage API keys (the key is printed once; only its SHA-256 is stored).
    #[command(subcommand)]
    Apikey(ApikeyCommand),
    /// GET a URL and exit 0 on a 2xx answer, 1 otherwise (container
    /// healthchecks, in images without curl).
    Healthcheck(crate::healthcheck::HealthcheckArgs),
    /// Run the local demo supermarket site.
    #[cfg(feature = "demo")]
    DemoStore(shelfwatch_demo_store::DemoStoreArgs),
    /// Hold the API at a fixed request rate while scrapes and forecasts run;
    /// report errors, latency and memory (figures for RELIABILITY.md).
    #[cfg(feature = "demo")]
    Soak(shelfwatch_devtools::soak::SoakArgs),
    /// Benchmarks that write their figures as Markdown for BENCHMARKS.md.
    #[command(subcommand)]
    #[cfg(feature = "demo")]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Create (first time) and start the cluster; prints its DATABASE_URL.
    Start {
        /// Port on 127.0.0.1 (default: the last one used, else a free one).
        #[arg(long)]
        port: Option<u16>,
    },
    /// Stop the cluster.
    Stop,
    /// Say whether the cluster runs, and where.
    Status,
    /// Print the DATABASE_URL of the running cluster (for scripts).
    Url,
}

#[derive(Debug, Subcommand)]
pub enum ApikeyCommand {
    /// Create a key and print it (shown only this once).
    Create {
        /// Who or what the key is for.
        #[arg(long)]
        name: String,
        /// Comma-separated: read, watch, admin (admin includes watch, watch includes read).
        #[arg(long, default_value = "read")]
        scopes: String,
    },
    /// Revoke a key by id (running servers refuse it at once).
    Revoke {
        #[arg(long)]
        id: i64,
    },
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// CSV with columns retailer,sku,title,observed_at,price_pence and
    /// optionally was_price_pence,unit_price_pence,unit,promo_text,in_stock,pack_text,url,category.
    pub file: PathBuf,
    /// Where to write rejected rows (default: the input's name with .rejects.csv
    /// added, e.g. prices.csv.rejects.csv).
    #[arg(long, value_name = "FILE")]
    pub rejects: Option<PathBuf>,
    /// Observations per database batch (default: ingest.batch_size).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Never draw a progress bar (it is drawn only on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(Debug, Args)]
pub struct ForecastArgs {
    /// Run once and exit (the default).
    #[arg(long, conflicts_with = "every")]
    pub once: bool,
    /// Run on a schedule, e.g. 30m, 1h, 1d, until SIGTERM or Ctrl-C.
    #[arg(long, value_name = "INTERVAL", value_parser = shelfwatch_runtime::signal::parse_interval)]
    pub every: Option<std::time::Duration>,
    /// Only listings whose id is i modulo n, e.g. 0/4 (for parallel workers).
    /// With --every, a queued job that names its own shard ({"shard": "i/n"})
    /// runs that one instead.
    #[arg(long, value_name = "i/n", value_parser = shelfwatch_forecast::load::Shard::parse)]
    pub shard: Option<shelfwatch_forecast::load::Shard>,
    /// Days in the weighted moving average.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u16).range(1..=365))]
    pub window: u16,
    /// Days ahead forecast, and over which claims are made.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u16).range(1..=60))]
    pub horizon: u16,
}

#[derive(Debug, Args)]
pub struct BacktestArgs {
    /// Days ahead forecast, and over which claims are judged.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u16).range(1..=60))]
    pub horizon: u16,
    /// First day scored (YYYY-MM-DD); models learn only from outcomes known
    /// before it. Default: two thirds of the way through the history.
    #[arg(long, value_name = "DATE")]
    pub from: Option<chrono::NaiveDate>,
    /// Days in the weighted moving average.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u16).range(1..=365))]
    pub window: u16,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Also write every scored claim to this CSV file (listing, day,
    /// action, confidence, whether it came true, the reference's rate), to
    /// see which claims failed where.
    #[arg(long, value_name = "FILE")]
    pub claims: Option<PathBuf>,
    /// Also write every day a model can learn from to this CSV file: the
    /// action the rules choose, whether its claim (and a hold, and a
    /// wait) came true, and every feature the confidence models see, so
    /// other learners can be tried on the same inputs
    /// (benches/learner_ceiling.py).
    #[arg(long, value_name = "FILE")]
    pub features: Option<PathBuf>,
}

#[cfg(feature = "demo")]
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Ingest N observations through the project's path and, beside it, psql
    /// COPY of the same rows into an identical table; plus the daily refresh
    /// cost with short and long history. Uses fresh databases it drops after.
    Ingest(shelfwatch_devtools::bench::IngestBenchArgs),
    /// `shelfwatch import` of a generated CSV file (default 1,000,000 rows)
    /// and, beside it, psql `\copy` of the same file into a table with the
    /// same key. Uses fresh databases it drops after.
    Import(shelfwatch_devtools::import_bench::ImportBenchArgs),
    /// The forecast job on synthetic history (default 100,000 listings x
    /// 365 days): read, compute and write times, peak memory, against a
    /// plain pass, psql's COPY and (with --python) statsforecast.
    Forecast(shelfwatch_devtools::bench::ForecastBenchArgs),
    /// Pages per minute scraping the demo store through Chromium, beside a
    /// bare thirtyfour loop over the same pages, with 1, 2 and 4 sessions.
    Scrape(shelfwatch_devtools::scrape_bench::ScrapeBenchArgs),
    /// Open-loop HTTP load: requests at a fixed rate over paths drawn at
    /// random from a file, latency counted from each request's scheduled
    /// time. Prints one RESULT line (benches/api.sh reads it).
    Load(shelfwatch_devtools::load::LoadArgs),
}

/// Entry point used by `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let _log = shelfwatch_runtime::telemetry::init(
        cli.log_format.unwrap_or(settings.log.format),
        &settings.log.filter,
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, settings)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<ExitCode> {
    match command {
        Command::Db(cmd) => db_command(cmd, &settings).await,
        Command::Migrate => {
            let pool = connect(&settings).await?;
            let flavour = db::migrate(&pool).await?;
            println!(
                "migrations applied (time-series schema: {})",
                flavour.as_str()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Import(args) => import(args, &settings).await,
        Command::Match => {
            let pool = connect(&settings).await?;
            let report = shelfwatch_scrape::matching::run(&pool).await?;
            println!("{}", report.summary());
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "demo")]
        Command::Up(args) => crate::up::run(args, &settings).await,
        #[cfg(feature = "demo")]
        Command::Bench(BenchCommand::Ingest(args)) => {
            shelfwatch_devtools::bench::ingest(args, &settings.dev_tools()).await?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "demo")]
        Command::Bench(BenchCommand::Import(args)) => {
            shelfwatch_devtools::import_bench::run(args, &settings.dev_tools()).await?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "demo")]
        Command::Bench(BenchCommand::Forecast(args)) => {
            shelfwatch_devtools::bench::forecast(args, &settings.dev_tools()).await?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "demo")]
        Command::Bench(BenchCommand::Load(args)) => {
            let report = shelfwatch_devtools::load::run(&args).await?;
            println!("{}", report.result_line());
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "demo")]
        Command::Bench(BenchCommand::Scrape(args)) => {
            shelfwatch_devtools::scrape_bench::run(args, &settings.dev_tools()).await?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "demo")]
        Command::Soak(args) => {
            shelfwatch_devtools::soak::run(args, &settings.dev_tools()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Forecast(args) => forecast(args, &settings).await,
        Command::Backtest(args) => backtest(args, &settings).await,
        Command::Scrape(args) => crate::scrape_cmd::run(args, &settings).await,
        Command::Retailer(cmd) => crate::scrape_cmd::retailer(cmd, &settings).await,
        Command::Serve(args) => crate::serve_cmd::run(args, &settings).await,
        Command::Apikey(cmd) => apikey(cmd, &settings).await,
        Command::Healthcheck(args) => crate::healthcheck::run(args).await,
        #[cfg(feature = "demo")]
        Command::DemoStore(args) => shelfwatch_demo_store::run(args).await,
    }
}

pub(crate) fn cluster(settings: &Settings) -> anyhow::Result<embedded::Cluster> {
    let bins = embedded::PgBinaries::locate(settings.database.pg_bin.as_deref())?;
    embedded::Cluster::new(&settings.database.embedded_dir, bins)
}

async fn connect(settings: &Settings) -> anyhow::Result<shelfwatch_store::PgPool> {
    let url = db::database_url(&settings.database)?;
    db::connect(&url, &settings.database).await
}

/// Starts the embedded cluster and makes sure the shelfwatch database exists.
pub(crate) async fn start_embedded(
    settings: &Settings,
    port: Option<u16>,
) -> anyhow::Result<String> {
    let cluster = cluster(settings)?;
    let port = cluster.start(port.unwrap_or(settings.database.embedded_port), &[])?;
    db::create_database_if_missing(&cluster.url("postgres")?, embedded::DB_NAME).await?;
    tracing::info!(port, dir = %cluster.root().display(), "embedded database running");
    cluster.url(embedded::DB_NAME)
}

async fn db_command(cmd: DbCommand, settings: &Settings) -> anyhow::Result<ExitCode> {
    match cmd {
        DbCommand::Start { port } => {
            let url = start_embedded(settings, port).await?;
            if settings.database.url.is_some() {
                eprintln!(
                    "note: DATABASE_URL (or database.url) is set, so other commands use that \
                     server, not this one"
                );
            }
            println!("DATABASE_URL={url}");
        }
        DbCommand::Stop => {
            if cluster(settings)?.stop()? {
                println!("stopped");
            } else {
                println!("not running");
            }
        }
        DbCommand::Status => {
            let cluster = cluster(settings)?;
            match cluster.status()? {
                embedded::Status::NotInitialized => {
                    println!(
                        "not created ({}): `shelfwatch db start` creates it",
                        cluster.root().display()
                    );
                    return Ok(ExitCode::from(3));
                }
                embedded::Status::Stopped => {
                    println!("stopped ({})", cluster.root().display());
                    return Ok(ExitCode::from(3));
                }
                embedded::Status::Running { pid, port } => println!(
                    "running: pid {pid}, 127.0.0.1:{port}, data {}",
                    cluster.data_dir().display()
                ),
            }
        }
        DbCommand::Url => println!("{}", cluster(settings)?.url(embedded::DB_NAME)?),
    }
    Ok(ExitCode::SUCCESS)
}

async fn import(args: ImportArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    let pool = connect(settings).await?;
    let mut ingestor = Ingestor::new(pool.clone()).await?;
    let options = ImportOptions {
        batch_size: args.batch_size.unwrap_or(settings.ingest.batch_size),
        rejects: args.rejects,
        progress: !args.no_progress && std::io::stderr().is_terminal(),
    };
    let report = csv_import::import_file(&mut ingestor, &args.file, &options).await?;
    println!(
        "{}: {} rows read, {} stored, {} already stored, {} rejected; {} daily aggregates updated",
        args.file.display(),
        report.rows,
        report.stored.inserted,
        report.stored.duplicates,
        report.rejected,
        report.stored.days_refreshed
    );
    if let Some(path) = &report.rejects_file {
        for line in &report.sample_rejections {
            eprintln!("  rejected {line}");
        }
        eprintln!(
            "{} rejected rows (with line numbers and reasons) are in {}",
            report.rejected,
            path.display()
        );
    }
    // Imported listings become products, as scraped ones do.
    let matched = shelfwatch_scrape::matching::run(&pool)
        .await
        .context("matching the imported listings to products")?;
    println!("{}", matched.summary());
    Ok(ExitCode::SUCCESS)
}

async fn forecast(args: ForecastArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    use shelfwatch_forecast::load::Shard;
    let pool = connect(settings).await?;
    let params = forecast_params(args.window, args.horizon);
    let shard = args.shard.unwrap_or(Shard::ALL);
    let Some(every) = args.every else {
        let outcome = shelfwatch_forecast::run_once(&pool, &params, shard).await?;
        println!("{}", outcome_line(&outcome));
        evaluate_watches(&pool).await;
        return Ok(ExitCode::SUCCESS);
    };
    let mut stop = std::pin::pin!(shelfwatch_runtime::signal::shutdown_signal()?);
    shelfwatch_forecast::metrics::init();
    if let Some(bind) = &settings.forecast.metrics_bind {
        crate::schedule::serve_metrics(bind).await?;
    }
    let (pool, params) = (&pool, &params);
    let run = |job: Option<shelfwatch_store::jobs::Job>| async move {
        let outcome = shelfwatch_forecast::run_job(pool, params, shard, job.as_ref()).await;
        evaluate_watches(pool).await;
        let line = outcome_line(&outcome.map_err(|e| format!("{e:#}"))?);
        println!("{line}");
        Ok(line)
    };
    let kind = shelfwatch_store::jobs::JobKind::Forecast;
    crate::schedule::run_every(pool, kind, every, std::time::Duration::ZERO, &mut stop, run).await;
    Ok(ExitCode::SUCCESS)
}

async fn apikey(cmd: ApikeyCommand, settings: &Settings) -> anyhow::Result<ExitCode> {
    let pool = connect(settings).await?;
    match cmd {
        ApikeyCommand::Create { name, scopes } => {
            let scopes = shelfwatch_api::auth::parse_scopes(&scopes).map_err(anyhow::Error::msg)?;
            let (id, key) = shelfwatch_api::auth::create_key(&pool, &name, &scopes).await?;
            let names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
            shelfwatch_api::audit::record(
                &pool,
                "cli",
                "apikey.create",
                Some(&format!("key:{id}")),
                serde_json::json!({ "name": name, "scopes": names }),
            )
            .await?;
            eprintln!(
                "API key {id} ({name}, scopes {}); it is shown only now:",
                names.join(",")
            );
            println!("{key}");
        }
        ApikeyCommand::Revoke { id } => {
            if !shelfwatch_store::access::revoke_key(&pool, id).await? {
                eprintln!("no active key {id}");
                return Ok(ExitCode::from(3));
            }
            shelfwatch_api::audit::record(
                &pool,
                "cli",
                "apikey.revoke",
                Some(&format!("key:{id}")),
                serde_json::json!({}),
            )
            .await?;
            println!("revoked key {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn backtest(args: BacktestArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    use shelfwatch_forecast::backtest;
    let pool = connect(settings).await?;
    let params = forecast_params(args.window, args.horizon);
    let from = args.from.map(|d| {
        shelfwatch_forecast::load::epoch_day(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
    });
    let report = match &args.features {
        Some(path) => {
            let (report, rows) = backtest::run_writing_features(&pool, &params, from, path).await?;
            eprintln!("wrote {rows} labelled days to {}", path.display());
            report
        }
        None => backtest::run(&pool, &params, from).await?,
    };
    if let Some(path) = &args.claims {
        write_claims(path, &report.scored)
            .with_context(|| format!("writing the scored claims to {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", backtest::render(&report));
    }
    Ok(ExitCode::SUCCESS)
}

fn write_claims(
    path: &std::path::Path,
    claims: &[shelfwatch_forecast::backtest::ScoredClaim],
) -> anyhow::Result<()> {
    let mut out = csv::Writer::from_path(path)?;
    for claim in claims {
        out.serialize(claim)?;
    }
    out.flush()?;
    Ok(())
}

fn forecast_params(window: u16, horizon: u16) -> shelfwatch_forecast::Params {
    shelfwatch_forecast::Params {
        wma_window: usize::from(window),
        horizon: usize::from(horizon),
        ..shelfwatch_forecast::Params::default()
    }
}

pub(crate) fn outcome_line(outcome: &shelfwatch_forecast::RunOutcome) -> String {
    match outcome {
        shelfwatch_forecast::RunOutcome::Unchanged { run_id } => {
            format!("inputs unchanged since forecast run {run_id}; nothing to do")
        }
        shelfwatch_forecast::RunOutcome::Completed { run_id, series } => {
            format!("forecast run {run_id}: {series} listings forecast and recommended")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
