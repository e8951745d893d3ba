//! `shelfwatch bench forecast --scale 50000,100000,200000`: the real
//! forecast job over growing catalogues, as a child process, with its wall
//! time and peak memory beside psql's `COPY ... TO` of the same rows.
//!
//! One scratch database grows through the sizes (the listings already there
//! are kept, so each size costs only its new rows to fill). At each size:
//! - psql `\copy (SELECT ... ORDER BY listing_id, day) TO /dev/null`, and
//!   the job's own read (chunk by chunk, as the job reads), best of two,
//!   alternating;
//! - over the same chunks, the WMA forecast against one plain pass over the
//!   price column (the memory-bandwidth floor);
//! - `shelfwatch forecast` run under `/usr/bin/time`, which reports the
//!   child's wall time and maximum resident set.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::Settings;
use crate::bench::ForecastBenchArgs;
use shelfwatch_forecast::{Params, load};
use shelfwatch_store::PgPool;
use shelfwatch_store::bench::{self as scratch, ScratchDb};
use shelfwatch_store::{db, forecasts};

/// What one catalogue size measured.
struct Point {
    listings: usize,
    rows: i64,
    psql_read: Duration,
    read: Duration,
    wma: Duration,
    floor: Duration,
    job: Duration,
    peak_mib: f64,
}

pub async fn run(args: &ForecastBenchArgs, settings: &Settings) -> anyhow::Result<()> {
    let mut sizes = args.scale.clone();
    sizes.sort_unstable();
    sizes.dedup();
    let url = db::database_url(&settings.database)?;
    // --reuse: a database an earlier --keep run (or an interrupted one)
    // filled part of the way; it grows from where it stands.
    let db = match &args.reuse {
        Some(name) => ScratchDb::open(&url, name).await?,
        None => {
            let name = format!("bench_forecast_scale_{}", std::process::id());
            ScratchDb::create(&url, &name).await?
        }
    };
    let result = measure_all(&db, &sizes, args.days).await;
    db.drop(args.keep).await?;
    let points = result?;

    let params = Params::default();
    println!(
        "`shelfwatch forecast` (training sample <= {} listings, chunks of {} listings) on {} days of history per listing",
        params.train_listings, params.chunk_listings, args.days
    );
    println!();
    println!(
        "| listings | daily rows | job wall time (s) | job peak RSS (MiB) | psql COPY TO (s) | job's read, chunked (s) | read / psql | WMA over the chunks (s) | plain pass (s) | WMA / plain |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for p in &points {
        println!(
            "| {} | {} | {:.1} | {:.0} | {:.2} | {:.2} | {:.2}x | {:.4} | {:.4} | {:.1}x |",
            p.listings,
            p.rows,
            p.job.as_secs_f64(),
            p.peak_mib,
            p.psql_read.as_secs_f64(),
            p.read.as_secs_f64(),
            p.psql_read.as_secs_f64() / p.read.as_secs_f64().max(1e-9),
            p.wma.as_secs_f64(),
            p.floor.as_secs_f64(),
            p.wma.as_secs_f64() / p.floor.as_secs_f64().max(1e-9),
        );
    }
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        let peaks = points.iter().map(|p| p.peak_mib);
        let (lo, hi) = peaks.fold((f64::MAX, 0.0_f64), |(lo, hi), p| (lo.min(p), hi.max(p)));
        println!();
        println!(
            "peak RSS {lo:.0}-{hi:.0} MiB (largest / smallest {:.2}x) over {:.1}x the listings; \
             job time {:.2}x for {:.1}x the listings",
            hi / lo.max(1e-9),
            last.listings as f64 / first.listings as f64,
            last.job.as_secs_f64() / first.job.as_secs_f64().max(1e-9),
            last.listings as f64 / first.listings as f64,
        );
    }
    Ok(())
}

async fn measure_all(db: &ScratchDb, sizes: &[usize], days: usize) -> anyhow::Result<Vec<Point>> {
    let mut points = Vec::new();
    for &listings in sizes {
        eprintln!("growing price_daily to {listings} listings x {days} days");
        let fill = Instant::now();
        scratch::grow_price_daily(&db.pool, i64::try_from(listings)?, i32::try_from(days)?).await?;
        eprintln!("filled in {:.1} s", fill.elapsed().as_secs_f64());
        scratch::checkpoint(&db.pool).await;
        let rows = scratch::count_daily(&db.pool).await?;
        let mut point = Point {
            listings,
            rows,
            psql_read: Duration::MAX,
            read: Duration::MAX,
            wma: Duration::MAX,
            floor: Duration::MAX,
            job: Duration::ZERO,
            peak_mib: 0.0,
        };
        for _ in 0..2 {
            let ours = chunked_read(&db.pool).await?;
            point.read = point.read.min(ours.read);
            point.wma = point.wma.min(ours.wma);
            point.floor = point.floor.min(ours.floor);
            point.psql_read = point.psql_read.min(scratch::psql_copy_daily_out(&db.url)?);
        }
        eprintln!("running shelfwatch forecast over {listings} listings");
        (point.job, point.peak_mib) = forecast_child(&db.url)?;
        eprintln!(
            "{:.1} s, peak {:.0} MiB",
            point.job.as_secs_f64(),
            point.peak_mib
        );
        points.push(point);
    }
    Ok(points)
}

/// Time spent reading, in the WMA forecast, and in one plain pass over the
/// prices, over every chunk of the job's default size.
struct ChunkedRead {
    read: Duration,
    wma: Duration,
    floor: Duration,
}

/// Reads every listing the way the job does (one chunk at a time in one
/// transaction, each chunk dropped before the next), timing the WMA
/// forecast and a plain pass over each chunk's prices on the way.
async fn chunked_read(pool: &PgPool) -> anyhow::Result<ChunkedRead> {
    let params = Params::default();
    let as_of_day = load::latest_day(pool, load::Shard::ALL)
        .await?
        .context("no data")?;
    let ids = forecasts::listing_ids(pool).await?;
    let mut tx = forecasts::begin_chunked_reads(pool).await?;
    let mut out = ChunkedRead {
        read: Duration::ZERO,
        wma: Duration::ZERO,
        floor: Duration::ZERO,
    };
    for chunk in load::chunks(&ids, load::Shard::ALL, params.chunk_listings) {
        let started = Instant::now();
        let series = load::load_on(&mut tx, chunk, as_of_day, params.max_gap_days).await?;
        out.read += started.elapsed();
        let started = Instant::now();
        let sum: f64 = std::hint::black_box(&series.price).iter().sum();
        out.floor += started.elapsed();
        std::hint::black_box(sum);
        let started = Instant::now();
        let wma = shelfwatch_forecast::features::wma_forecast(
            &series.listing_id,
            &series.price,
            params.wma_window,
        )?;
        out.wma += started.elapsed();
        std::hint::black_box(wma.height());
    }
    Ok(out)
}

/// Runs `shelfwatch forecast` against `url` under `/usr/bin/time`; returns
/// its wall time and maximum resident set (MiB).
fn forecast_child(url: &str) -> anyhow::Result<(Duration, f64)> {
    const MARK: &str = "SHELFWATCH_BENCH_TIME";
    let exe = std::env::current_exe().context("finding the shelfwatch binary")?;
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg(format!("{MARK} %e %M"))
        .arg(&exe)
        .args(["forecast", "--once"])
        .env("DATABASE_URL", url)
        .output()
        .context("running shelfwatch forecast under /usr/bin/time (install the time package)")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("shelfwatch forecast failed: {stderr}");
    }
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix(MARK))
        .with_context(|| format!("no timing from /usr/bin/time in {stderr:?}"))?;
    let mut fields = line.split_whitespace();
    let (Some(secs), Some(kib)) = (fields.next(), fields.next()) else {
        bail!("unexpected timing line {line:?}");
    };
    let secs: f64 = secs.parse().context("wall time")?;
    let kib: f64 = kib.parse().context("maximum resident set")?;
    Ok((Duration::from_secs_f64(secs), kib / 1024.0))
}
