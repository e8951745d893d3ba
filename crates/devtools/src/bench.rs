//! `shelfwatch bench ...`: benchmarks measured against a baseline in the
//! same run, printed as Markdown for BENCHMARKS.md.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DurationRound, Utc};
use clap::Args;

use crate::Settings;
use shelfwatch_domain::retailer::RetailerSlug;
use shelfwatch_store::PgPool;
use shelfwatch_store::bench::{self as scratch, ScratchDb};
use shelfwatch_store::db;
use shelfwatch_store::ingest::{Ingestor, Observation};

#[derive(Debug, Args)]
pub struct IngestBenchArgs {
    /// Observations to ingest.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: usize,
    /// Listings they are spread over.
    #[arg(long, default_value_t = 10_000)]
    pub listings: usize,
    /// Observations per listing per day (scrapes a day).
    #[arg(long, default_value_t = 4)]
    pub per_day: usize,
    /// Listings in the refresh-cost measurement.
    #[arg(long, default_value_t = 1_000)]
    pub refresh_listings: usize,
    /// Rounds of (ingest path, baseline); the best of each is reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Keep the benchmark databases instead of dropping them.
    #[arg(long)]
    pub keep: bool,
}

/// Synthetic observations: `listings` listings at four retailers, `per_day`
/// scrapes a day going back from today, prices that drift and go on promotion.
fn synthetic(rows: usize, listings: usize, per_day: usize) -> anyhow::Result<Vec<Observation>> {
    let retailers: Vec<RetailerSlug> = (0..4)
        .map(|r| RetailerSlug::parse(&format!("bench-{r}")))
        .collect::<Result<_, _>>()?;
    let per_listing = rows.div_ceil(listings.max(1));
    let step = chrono::Duration::minutes((24 * 60 / per_day.max(1)) as i64);
    let start = Utc::now().duration_trunc(chrono::Duration::days(1))?
        - step * i32::try_from(per_listing).unwrap_or(i32::MAX);
    let mut out = Vec::with_capacity(rows);
    'outer: for k in 0..per_listing {
        let at = start + step * i32::try_from(k).unwrap_or(i32::MAX);
        for l in 0..listings {
            if out.len() == rows {
                break 'outer;
            }
            let base = 100 + (l as i64 * 37) % 900;
            let promo = (k / per_day.max(1) + l) % 14 < 3;
            let price = if promo { base * 3 / 4 } else { base };
            out.push(Observation::new(
                retailers[l % 4].clone(),
                format!("sku-{l}"),
                format!("Product {l} 400g"),
                at,
                price,
            ));
        }
    }
    Ok(out)
}

async fn ingest_all(
    pool: &PgPool,
    rows: &[Observation],
    batch: usize,
) -> anyhow::Result<(Duration, u64)> {
    let mut ingestor = Ingestor::new(pool.clone()).await?;
    let started = Instant::now();
    let mut stored = 0;
    for chunk in rows.chunks(batch) {
        stored += ingestor.ingest(chunk).await?.inserted;
    }
    Ok((started.elapsed(), stored))
}

fn rate(rows: u64, d: Duration) -> f64 {
    rows as f64 / d.as_secs_f64()
}

pub async fn ingest(args: IngestBenchArgs, settings: &Settings) -> anyhow::Result<()> {
    let url = db::database_url(&settings.database)?;
    let batch = settings.ingest.batch_size;
    let pid = std::process::id();
    eprintln!(
        "generating {} observations over {} listings",
        args.rows, args.listings
    );
    let rows = synthetic(args.rows, args.listings, args.per_day)?;
    let first = rows.iter().map(|o| o.observed_at).min();
    let last = rows.iter().map(|o| o.observed_at).max();

    // Rounds alternate the project's path and the baseline, each into a
    // fresh database after a CHECKPOINT, so neither inherits the other's
    // dirty buffers; the best round of each is reported.
    let mut ours_best: Option<(Duration, u64, i64)> = None;
    let mut copy_best: Option<(Duration, i64)> = None;
    let mut flavour = db::Flavour::Native;
    for round in 1..=args.rounds.max(1) {
        // 1. The project's path, into a fresh database.
        let ours = ScratchDb::create(&url, &format!("bench_ingest_{pid}")).await?;
        flavour = db::flavour(&ours.pool).await?;
        scratch::checkpoint(&ours.pool).await;
        eprintln!(
            "round {round}: ingest path, {} rows, batch {batch}",
            rows.len()
        );
        let (t, stored) = ingest_all(&ours.pool, &rows, batch).await?;
        let daily = scratch::count_daily(&ours.pool).await?;
        eprintln!("round {round}: ingest path {:.2} s", t.as_secs_f64());
        if ours_best.is_none_or(|(best, _, _)| t < best) {
            ours_best = Some((t, stored, daily));
        }
        ours.drop(args.keep).await?;

        // 2. Baseline: psql binary COPY of the same rows into an identical,
        // freshly migrated table whose listings and partitions already exist.
        let base = ScratchDb::create(&url, &format!("bench_copy_{pid}")).await?;
        let mut seed = Ingestor::new(base.pool.clone()).await?;
        // One observation per listing, a day before the benchmark rows,
        // creates the listings and retailers exactly as the ingest path would.
        let seeds: Vec<Observation> = rows
            .iter()
            .take(args.listings)
            .map(|o| {
                let mut s = o.clone();
                s.observed_at = o.observed_at - chrono::Duration::days(1);
                s
            })
            .collect();
        seed.ingest(&seeds).await?;
        scratch::reset_observations(&base.pool, first, last).await?;
        scratch::vacuum_analyze(&base.pool, false).await.ok();
        let file = std::env::temp_dir().join(format!("shelfwatch-bench-{pid}.pgcopy"));
        scratch::write_copy_file(&base.pool, &rows, &file).await?;
        scratch::checkpoint(&base.pool).await;
        eprintln!("round {round}: baseline psql \\copy ... (FORMAT binary)");
        let t = scratch::psql_copy_observations(&base.url, &file)?;
        let _ = std::fs::remove_file(&file);
        let copied = scratch::count_observations(&base.pool).await?;
        eprintln!("round {round}: baseline {:.2} s", t.as_secs_f64());
        if copy_best.is_none_or(|(best, _)| t < best) {
            copy_best = Some((t, copied));
        }
        base.drop(args.keep).await?;
    }
    let (ours_time, stored, daily) = ours_best.context("no benchmark round ran")?;
    let (copy_time, copied) = copy_best.context("no benchmark round ran")?;

    // 3. The daily refresh for one new day, with short and long history.
    let mut refresh = Vec::new();
    for history_days in [30usize, 730] {
        let db = ScratchDb::create(&url, &format!("bench_refresh_{history_days}_{pid}")).await?;
        let history = synthetic(
            history_days * args.refresh_listings,
            args.refresh_listings,
            1,
        )?;
        eprintln!("refresh: {history_days} days of history");
        ingest_all(&db.pool, &history, batch).await?;
        scratch::vacuum_analyze(&db.pool, false).await.ok();
        // A long-lived ingestor, as a scraper has; the first new day warms
        // it and is not timed.
        let mut ingestor = Ingestor::new(db.pool.clone()).await?;
        let mut times = Vec::new();
        for extra_day in 1..=8 {
            let day: Vec<Observation> = history
                .iter()
                .rev()
                .take(args.refresh_listings)
                .map(|o| {
                    let mut n = o.clone();
                    n.observed_at = o.observed_at + chrono::Duration::days(extra_day);
                    n
                })
                .collect();
            let started = Instant::now();
            ingestor.ingest(&day).await?;
            if extra_day > 1 {
                times.push(started.elapsed());
            }
        }
        times.sort();
        refresh.push((history_days, times[times.len() / 2]));
        db.drop(args.keep).await?;
    }

    let ours_rate = rate(stored, ours_time);
    let copy_rate = rate(u64::try_from(copied).unwrap_or(0), copy_time);
    println!("| measurement | rows | seconds | rows/s |");
    println!("|---|---:|---:|---:|");
    println!(
        "| shelfwatch ingest path ({} schema; listings upserted, binary COPY in key order, {daily} price_daily rows merged in the same transactions) | {stored} | {:.2} | {:.0} |",
        flavour.as_str(),
        ours_time.as_secs_f64(),
        ours_rate
    );
    println!(
        "| psql `\\copy ... (FORMAT binary)` of the same rows into an identical table (no daily aggregate) | {copied} | {:.2} | {:.0} |",
        copy_time.as_secs_f64(),
        copy_rate
    );
    println!(
        "\nbest of {} rounds each; ratio ingest path / raw COPY: **{:.2}x**\n",
        args.rounds.max(1),
        ours_rate / copy_rate
    );
    println!(
        "| one new day ({} listings) ingested and folded into price_daily | median of 7 |",
        args.refresh_listings
    );
    println!("|---|---:|");
    for (days, t) in &refresh {
        println!(
            "| with {days} days of history | {:.1} ms |",
            t.as_secs_f64() * 1e3
        );
    }
    if let [(_, short), (_, long)] = refresh.as_slice() {
        println!(
            "\nratio 730-day / 30-day: **{:.2}x**",
            long.as_secs_f64() / short.as_secs_f64()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_rows_have_unique_keys() {
        let rows = synthetic(1000, 30, 4).unwrap();
        assert_eq!(rows.len(), 1000);
        let keys: std::collections::HashSet<_> =
            rows.iter().map(|o| (&o.sku, o.observed_at)).collect();
        assert_eq!(keys.len(), 1000);
    }
}

#[derive(Debug, Args)]
pub struct ForecastBenchArgs {
    /// Listings (series).
    #[arg(long, default_value_t = 100_000)]
    pub listings: usize,
    /// Days of history per listing.
    #[arg(long, default_value_t = 365)]
    pub days: usize,
    /// A Python with statsforecast installed: times its WindowAverage on
    /// the same series (benches/forecast.sh makes a throwaway venv).
    #[arg(long, value_name = "PYTHON")]
    pub python: Option<std::path::PathBuf>,
    /// Keep the benchmark database instead of dropping it.
    #[arg(long)]
    pub keep: bool,
    /// Use this database, filled by an earlier `--keep` run, instead of
    /// creating and filling a new one.
    #[arg(long, value_name = "DATABASE")]
    pub reuse: Option<String>,
    /// Instead of timing the phases in this process: grow one database
    /// through these catalogue sizes (listings, comma-separated, each with
    /// --days days) and at each run the real `shelfwatch forecast` as a
    /// child process, reporting its wall time and peak memory beside psql's
    /// COPY of the same rows, e.g. --scale 50000,100000,200000.
    #[arg(long, value_delimiter = ',', value_name = "LISTINGS,...")]
    pub scale: Vec<usize>,
}

/// Peak resident memory of this process so far (VmHWM), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

pub async fn forecast(args: ForecastBenchArgs, settings: &Settings) -> anyhow::Result<()> {
    use shelfwatch_forecast::{self as forecast, Frame, Models, Params, load};

    if !args.scale.is_empty() {
        return crate::forecast_scale::run(&args, settings).await;
    }

    let url = db::database_url(&settings.database)?;
    let pid = std::process::id();
    let db = match &args.reuse {
        Some(name) => ScratchDb::open(&url, name).await?,
        None => {
            let db = ScratchDb::create(&url, &format!("bench_forecast_{pid}")).await?;
            fill_forecast_history(&db.pool, args.listings, args.days).await?;
            db
        }
    };
    let params = Params::default();
    let as_of_day = load::latest_day(&db.pool, load::Shard::ALL)
        .await?
        .context("no data")?;
    scratch::checkpoint(&db.pool).await;

    // Database read: ours, then psql's COPY of the same query to /dev/null,
    // alternating, best of two each (disk timings here vary run to run).
    let mut read = Duration::MAX;
    let mut psql_read = Duration::MAX;
    let mut loaded = None;
    for _ in 0..2 {
        let started = Instant::now();
        let series = load::load(&db.pool, load::Shard::ALL, as_of_day, params.max_gap_days).await?;
        read = read.min(started.elapsed());
        loaded = Some(series);
        psql_read = psql_read.min(scratch::psql_copy_daily_out(&db.url)?);
    }
    let series = loaded.context("nothing loaded")?;
    let rows = series.price.len();

    // The memory-bandwidth floor: one pass over the price column, best of
    // three.
    let mut floor = Duration::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let sum: f64 = std::hint::black_box(&series.price).iter().sum();
        floor = floor.min(started.elapsed());
        std::hint::black_box(sum);
    }
    let prices_file = std::env::temp_dir().join(format!("shelfwatch-bench-{pid}.f64"));
    if args.python.is_some() {
        let bytes: Vec<u8> = series.price.iter().flat_map(|p| p.to_le_bytes()).collect();
        std::fs::write(&prices_file, bytes)?;
    }

    // The WMA forecast alone (what a window-average model computes), best
    // of three.
    let mut wma_time = Duration::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let wma_only =
            forecast::features::wma_forecast(&series.listing_id, &series.price, params.wma_window)?;
        wma_time = wma_time.min(started.elapsed());
        std::hint::black_box(wma_only.height());
    }

    // Compute, off the async runtime as the job does it.
    let p = params;
    let (features_time, train_time, recommend_time, outputs, models) =
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let t = Instant::now();
            let frame = Frame::compute(series, &p)?;
            let features_time = t.elapsed();
            let t = Instant::now();
            let models = Models::train(&frame, &p, |_| true);
            let train_time = t.elapsed();
            let t = Instant::now();
            let outputs =
                forecast::recommend_all(&frame, &models, &p, as_of_day, &Default::default());
            Ok((features_time, train_time, t.elapsed(), outputs, models))
        })
        .await??;
    let compute = features_time + train_time + recommend_time;

    // Write: forecasts and recommendations for every listing.
    let run_id = scratch::start_forecast_run(&db.pool, forecast::MODEL_VERSION).await?;
    let as_of = load::day_to_date(as_of_day)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .context("as-of day")?;
    let started = Instant::now();
    let written = forecast::store(&db.pool, run_id, as_of, &outputs, &models).await?;
    let write = started.elapsed();
    let peak = peak_rss_mib();

    let statsforecast = match &args.python {
        Some(python) => {
            let out = Command::new(python)
                .arg(crate::workspace_root().join("benches/statsforecast_window_average.py"))
                .arg(&prices_file)
                .arg(args.listings.to_string())
                .arg(args.days.to_string())
                .output()
                .context("running the statsforecast benchmark")?;
            let _ = std::fs::remove_file(&prices_file);
            if !out.status.success() {
                bail!(
                    "statsforecast benchmark failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let text = String::from_utf8_lossy(&out.stdout);
            Some(
                text.trim()
                    .parse::<f64>()
                    .with_context(|| format!("statsforecast printed {text:?}"))?,
            )
        }
        None => None,
    };
    db.drop(args.keep).await?;

    let series_per_s = |d: Duration| args.listings as f64 / d.as_secs_f64();
    println!(
        "{} listings x {} days = {rows} rows; {written} recommendations and {} forecast days written",
        args.listings,
        args.days,
        written * params.horizon
    );
    println!();
    println!("| phase | seconds | notes |");
    println!("|---|---:|---|");
    println!(
        "| database read (COPY out, parsed to columns; best of 2) | {:.2} | psql `\\copy (SELECT ...) TO /dev/null` of the same rows: {:.2} s, ratio {:.2}x |",
        read.as_secs_f64(),
        psql_read.as_secs_f64(),
        psql_read.as_secs_f64() / read.as_secs_f64()
    );
    println!(
        "| features (polars) | {:.2} | {:.0} series/s |",
        features_time.as_secs_f64(),
        series_per_s(features_time)
    );
    println!(
        "| WMA forecast alone (last 7 rows of each listing gathered, weighted means in polars) | {:.3} | {:.0} series/s; / floor = {:.1}x |",
        wma_time.as_secs_f64(),
        series_per_s(wma_time),
        wma_time.as_secs_f64() / floor.as_secs_f64().max(1e-9)
    );
    println!(
        "| confidence models (training) | {:.2} | |",
        train_time.as_secs_f64()
    );
    println!(
        "| recommendations and paths | {:.2} | |",
        recommend_time.as_secs_f64()
    );
    println!(
        "| compute total | {:.2} | {:.0} series/s |",
        compute.as_secs_f64(),
        series_per_s(compute)
    );
    println!(
        "| one plain pass over the price column | {:.4} | memory-bandwidth floor; features / floor = {:.0}x |",
        floor.as_secs_f64(),
        features_time.as_secs_f64() / floor.as_secs_f64().max(1e-9)
    );
    println!("| database write | {:.2} | |", write.as_secs_f64());
    if let Some(peak) = peak {
        println!("| peak memory (VmHWM) | {peak:.0} MiB | |");
    }
    if let Some(sf) = statsforecast {
        println!(
            "| statsforecast WindowAverage(7), fit + 7-day forecast | {sf:.2} | {:.0} series/s; shelfwatch's WMA forecast is {:.1}x its series/s, the whole feature pipeline {:.2}x |",
            args.listings as f64 / sf,
            sf / wma_time.as_secs_f64(),
            sf / features_time.as_secs_f64()
        );
    }
    Ok(())
}

/// Synthetic daily prices written straight into price_daily (the forecast
/// reads nothing else): a regular price per listing, promotions of 3-7
/// days at 25% off on 14-, 21- or 28-day cycles.
async fn fill_forecast_history(pool: &PgPool, listings: usize, days: usize) -> anyhow::Result<()> {
    eprintln!("filling price_daily: {} listings x {} days", listings, days);
    let fill = Instant::now();
    scratch::fill_price_daily(pool, i64::try_from(listings)?, i32::try_from(days)?).await?;
    eprintln!("filled in {:.1} s", fill.elapsed().as_secs_f64());

    Ok(())
}
