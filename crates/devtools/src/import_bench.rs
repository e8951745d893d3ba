//! `shelfwatch bench import`: `shelfwatch import` of a CSV file beside
//! psql's `\copy` of the same file into a table with the same primary key,
//! in the same run, printed as Markdown for BENCHMARKS.md.

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DurationRound, Utc};
use clap::Args;

use crate::Settings;
use shelfwatch_store::bench::{self as scratch, ScratchDb};
use shelfwatch_store::db;
use shelfwatch_store::ingest::Ingestor;
use shelfwatch_store::ingest::csv_import::{ImportOptions, import_file};

#[derive(Debug, Args)]
pub struct ImportBenchArgs {
    /// Rows in the CSV file.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: usize,
    /// Listings they are spread over.
    #[arg(long, default_value_t = 10_000)]
    pub listings: usize,
    /// Rounds of (import, baseline); the best of each is reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Keep the benchmark databases instead of dropping them.
    #[arg(long)]
    pub keep: bool,
}

/// The header of the benchmark file: the columns a scraper export has.
const HEADER: &str = "retailer,sku,title,observed_at,price_pence,promo_text,in_stock";

/// Writes `rows` rows over `listings` listings at four retailers, four
/// scrapes a day going back from today; a fifth of the rows carry a
/// promotion (a multibuy or a loyalty price) and a few are out of stock.
fn write_csv(path: &Path, rows: usize, listings: usize) -> anyhow::Result<()> {
    let listings = listings.max(1);
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    writeln!(out, "{HEADER}")?;
    let per_listing = rows.div_ceil(listings);
    let step = chrono::Duration::hours(6);
    let start = Utc::now().duration_trunc(chrono::Duration::days(1))?
        - step * i32::try_from(per_listing).unwrap_or(i32::MAX);
    let mut written = 0;
    'outer: for k in 0..per_listing {
        let at = (start + step * i32::try_from(k).unwrap_or(i32::MAX))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        for l in 0..listings {
            if written == rows {
                break 'outer;
            }
            let base = 100 + (l as i64 * 37) % 900;
            let promo = match (k / 4 + l) % 15 {
                0..=1 => format!("2 for £{:.2}", (base * 3 / 2) as f64 / 100.0),
                2 => format!("Clubcard Price £{:.2}", (base * 4 / 5) as f64 / 100.0),
                _ => String::new(),
            };
            let in_stock = (k + l) % 50 != 0;
            writeln!(
                out,
                "bench-{},sku-{l},Product {l} 400g,{at},{base},{promo},{in_stock}",
                l % 4
            )?;
            written += 1;
        }
    }
    out.flush()?;
    Ok(())
}

pub async fn run(args: ImportBenchArgs, settings: &Settings) -> anyhow::Result<()> {
    let url = db::database_url(&settings.database)?;
    let pid = std::process::id();
    let file = std::env::temp_dir().join(format!("shelfwatch-import-bench-{pid}.csv"));
    eprintln!(
        "writing {} rows over {} listings to {}",
        args.rows,
        args.listings,
        file.display()
    );
    write_csv(&file, args.rows, args.listings)?;
    let result = measure(&args, settings, &url, &file).await;
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(csv_rejects(&file));
    result
}

fn csv_rejects(file: &Path) -> std::path::PathBuf {
    file.with_extension("rejects.csv")
}

async fn measure(
    args: &ImportBenchArgs,
    settings: &Settings,
    url: &shelfwatch_runtime::Secret,
    file: &Path,
) -> anyhow::Result<()> {
    let pid = std::process::id();
    let batch = settings.ingest.batch_size;
    // Each round's (time, rows, price_daily rows) and (time, rows).
    let mut ours_runs: Vec<(Duration, u64, i64)> = Vec::new();
    let mut copy_runs: Vec<(Duration, i64)> = Vec::new();
    let mut flavour = db::Flavour::Native;
    for round in 1..=args.rounds.max(1) {
        // 1. `shelfwatch import`, into a fresh database: listings created,
        // observations stored, price_daily brought up to date.
        let ours = ScratchDb::create(url, &format!("bench_import_{pid}")).await?;
        flavour = db::flavour(&ours.pool).await?;
        scratch::checkpoint(&ours.pool).await;
        eprintln!("round {round}: shelfwatch import, batch {batch}");
        let mut ingestor = Ingestor::new(ours.pool.clone()).await?;
        let options = ImportOptions {
            batch_size: batch,
            rejects: Some(csv_rejects(file)),
            progress: false,
        };
        let started = Instant::now();
        let report = import_file(&mut ingestor, file, &options).await?;
        let t = started.elapsed();
        anyhow::ensure!(
            report.rejected == 0,
            "the benchmark file had rejected rows: {:?}",
            report.sample_rejections
        );
        let daily = scratch::count_daily(&ours.pool).await?;
        eprintln!("round {round}: shelfwatch import {:.2} s", t.as_secs_f64());
        ours_runs.push((t, report.stored.inserted, daily));
        ours.drop(args.keep).await?;

        // 2. Baseline: psql `\copy` of the same file into a table of the
        // same columns with the same key (retailer, sku, observed_at).
        let base = ScratchDb::create(url, &format!("bench_import_copy_{pid}")).await?;
        scratch::create_csv_table(&base.pool).await?;
        scratch::checkpoint(&base.pool).await;
        eprintln!("round {round}: baseline psql \\copy ... (FORMAT csv)");
        let t = scratch::psql_copy_csv(&base.url, HEADER, file)?;
        copy_runs.push((t, scratch::count_csv_table(&base.pool).await?));
        eprintln!("round {round}: baseline {:.2} s", t.as_secs_f64());
        base.drop(args.keep).await?;
    }
    let (ours_time, stored, daily) = ours_runs
        .into_iter()
        .min_by_key(|r| r.0)
        .context("no benchmark round ran")?;
    let (copy_time, copied) = copy_runs
        .into_iter()
        .min_by_key(|r| r.0)
        .context("no benchmark round ran")?;
    let ours_rate = stored as f64 / ours_time.as_secs_f64();
    let copy_rate = copied as f64 / copy_time.as_secs_f64();
    println!("| measurement | rows | seconds | rows/s |");
    println!("|---|---:|---:|---:|");
    println!(
        "| `shelfwatch import` ({} schema; rows parsed and checked, listings created, binary COPY, {daily} price_daily rows brought up to date) | {stored} | {:.2} | {:.0} |",
        flavour.as_str(),
        ours_time.as_secs_f64(),
        ours_rate
    );
    println!(
        "| psql `\\copy ... (FORMAT csv, HEADER)` of the same file into a table with the same key (retailer, sku, observed_at) | {copied} | {:.2} | {:.0} |",
        copy_time.as_secs_f64(),
        copy_rate
    );
    println!(
        "\nbest of {} rounds each; ratio import / \\copy: **{:.2}x**",
        args.rounds.max(1),
        ours_rate / copy_rate
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shelfwatch_store::ingest::csv_import::Columns;

    #[test]
    fn the_benchmark_file_imports_cleanly() {
        let dir = std::env::temp_dir().join(format!("import-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("b.csv");
        write_csv(&path, 1_000, 30).unwrap();
        let mut reader = csv::Reader::from_path(&path).unwrap();
        let columns = Columns::from_header(reader.headers().unwrap()).unwrap();
        let mut keys = std::collections::HashSet::new();
        let mut promos = 0;
        for record in reader.records() {
            let o = columns.parse_row(&record.unwrap(), Utc::now()).unwrap();
            promos += usize::from(o.promo.is_some());
            assert!(keys.insert((o.retailer, o.sku, o.observed_at)));
        }
        assert_eq!(keys.len(), 1_000);
        assert!(promos > 100 && promos < 400, "{promos}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
