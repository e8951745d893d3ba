//! `shelfwatch soak`: the API held at a fixed request rate while scrapes and
//! forecasts run in the same process, for a set time. Reports errors,
//! latency percentiles, and the process's memory at the start and the end
//! of the load (the figures RELIABILITY.md records).
//!
//! Everything runs in one process against a fresh database on the
//! configured server: the demo store, a history backfill, the scraper
//! (headless Chromium), the forecast job and the API. Rate limits are off
//! for the soak (it is one client).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;

use crate::Settings;
use shelfwatch_runtime::Secret;

#[derive(Debug, Args)]
pub struct SoakArgs {
    /// How long to hold the load.
    #[arg(long, default_value_t = 120)]
    pub seconds: u64,
    /// Requests per second, paced.
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// Connections the requests are spread over (kept alive).
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Days of demo-store history to load first.
    #[arg(long, default_value_t = 60)]
    pub history_days: u32,
}

/// Resident memory of this process, MiB.
fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// A kept-alive HTTP/1.1 connection that GETs and reads one response.
struct Conn {
    addr: std::net::SocketAddr,
    stream: Option<BufReader<tokio::net::TcpStream>>,
}

impl Conn {
    /// GETs `path`; returns the status.
    async fn get(&mut self, path: &str) -> anyhow::Result<u16> {
        if self.stream.is_none() {
            let s = tokio::net::TcpStream::connect(self.addr).await?;
            s.set_nodelay(true)?;
            self.stream = Some(BufReader::new(s));
        }
        let stream = self.stream.as_mut().context("no connection")?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr);
        let result = async {
            stream.get_mut().write_all(request.as_bytes()).await?;
            let mut line = String::new();
            stream.read_line(&mut line).await?;
            let status: u16 = line
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .with_context(|| format!("bad status line {line:?}"))?;
            let mut length = 0usize;
            loop {
                line.clear();
                stream.read_line(&mut line).await?;
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                if let Some((name, value)) = l.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            stream.read_exact(&mut body).await?;
            anyhow::Ok(status)
        }
        .await;
        if result.is_err() {
            self.stream = None;
        }
        result
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

pub async fn run(args: SoakArgs, settings: &Settings) -> anyhow::Result<()> {
    let url = shelfwatch_store::db::database_url(&settings.database)?;
    let scratch =
        shelfwatch_store::bench::ScratchDb::create(&url, &format!("soak_{}", std::process::id()))
            .await?;
    let result = soak(&args, settings, &scratch).await;
    scratch.drop(false).await?;
    result
}

async fn soak(
    args: &SoakArgs,
    settings: &Settings,
    scratch: &shelfwatch_store::bench::ScratchDb,
) -> anyhow::Result<()> {
    let pool = scratch.pool.clone();
    // The demo store and its history.
    let today = chrono::Utc::now().date_naive();
    let local = shelfwatch_demo_store::local::LocalStore::start(42, today, "127.0.0.1:0").await?;
    shelfwatch_demo_store::local::backfill(
        &local.store,
        &pool,
        args.history_days,
        settings.ingest.batch_size,
        false,
    )
    .await?;
    let origin = local.origin.clone();

    let mut scrape_settings = settings.clone();
    scrape_settings.database.url = Some(Secret::new(scratch.url.clone()));
    scrape_settings.scrape.spool_dir =
        std::env::temp_dir().join(format!("shelfwatch-soak-spool-{}", std::process::id()));
    // The demo store serves only the demo shops.
    scrape_settings.scrape.retailers_dir = shelfwatch_scrape::DEMO_RETAILERS_DIR.into();
    let scraper = Arc::new(shelfwatch_scrape::Scraper::new(
        &scrape_settings.scrape,
        &scrape_settings.database,
        &[],
        Some(origin),
        None,
    )?);
    scraper.pass().await?;
    let params = shelfwatch_forecast::Params::default();
    let shard = shelfwatch_forecast::load::Shard::ALL;
    shelfwatch_forecast::run_once(&pool, &params, shard).await?;

    let mut api_settings = settings.api.clone();
    api_settings.bind = "127.0.0.1:0".into();
    api_settings.metrics_bind = String::new();
    api_settings.rate_limit.per_ip_per_sec = 0.0;
    api_settings.rate_limit.per_key_per_sec = 0.0;
    let api = shelfwatch_api::start(pool.clone(), api_settings).await?;
    let products = shelfwatch_store::listings::matched_product_ids(&pool).await?;
    anyhow::ensure!(!products.is_empty(), "no products to ask for");
    let mut paths = vec![
        "/v1/recommendations?limit=20".to_owned(),
        "/v1/retailers".to_owned(),
        "/v1/products?q=beans&limit=10".to_owned(),
    ];
    paths.extend(
        products
            .iter()
            .take(50)
            .map(|id| format!("/v1/products/{id}")),
    );

    // Background work: scrape and forecast, again and again, while the
    // load runs.
    let running = Arc::new(AtomicBool::new(true));
    let cycles = Arc::new(AtomicU64::new(0));
    let background = {
        let (running, cycles, scraper, pool) = (
            running.clone(),
            cycles.clone(),
            scraper.clone(),
            pool.clone(),
        );
        tokio::spawn(async move {
            let mut failures = 0u64;
            while running.load(Ordering::Relaxed) {
                if scraper.pass().await.is_err() {
                    failures += 1;
                }
                if shelfwatch_forecast::run_once(&pool, &params, shard)
                    .await
                    .is_err()
                {
                    failures += 1;
                }
                cycles.fetch_add(1, Ordering::Relaxed);
            }
            failures
        })
    };

    eprintln!(
        "soak: {} req/s for {} s over {} connections, with scrapes and forecasts running",
        args.rate, args.seconds, args.connections
    );
    let rss_start = rss_mib();
    let latencies = Arc::new(Mutex::new(Vec::<u64>::new()));
    let errors = Arc::new(AtomicU64::new(0));
    let late = Arc::new(AtomicU64::new(0));
    let conns: Vec<Arc<Mutex<Conn>>> = (0..args.connections.max(1))
        .map(|_| {
            Arc::new(Mutex::new(Conn {
                addr: api.addr,
                stream: None,
            }))
        })
        .collect();
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
    let total = u64::from(args.rate) * args.seconds;
    let mut tasks = tokio::task::JoinSet::new();
    let mut rss_peak = rss_start.unwrap_or(0.0);
    for i in 0..total {
        let due = started + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        if i % u64::from(args.rate.max(1)) == 0 {
            rss_peak = rss_peak.max(rss_mib().unwrap_or(0.0));
        }
        let conn = conns[(i as usize) % conns.len()].clone();
        let path = paths[(i as usize) % paths.len()].clone();
        let (latencies, errors, late) = (latencies.clone(), errors.clone(), late.clone());
        tasks.spawn(async move {
            // A connection still busy with the previous request means the
            // server fell behind: counted, and the request waits its turn
            // (its latency includes the wait, as a client would see it).
            let mut c = match conn.try_lock() {
                Ok(c) => c,
                Err(_) => {
                    late.fetch_add(1, Ordering::Relaxed);
                    conn.lock().await
                }
            };
            let sent = Instant::now();
            let t = due.max(sent);
            match c.get(&path).await {
                Ok(200 | 304) => {
                    let micros = (Instant::now() - t).as_micros() as u64;
                    latencies.lock().await.push(micros);
                }
                _ => {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    let rss_end = rss_mib();
    running.store(false, Ordering::Relaxed);
    let background_failures = background.await.unwrap_or(1);
    api.shutdown(Duration::from_secs(5)).await;
    local.stop().await;
    let _ = std::fs::remove_dir_all(&scrape_settings.scrape.spool_dir);

    let mut l = latencies.lock().await.clone();
    l.sort_unstable();
    let (s, e) = (rss_start.unwrap_or(0.0), rss_end.unwrap_or(0.0));
    println!(
        "| requests | rate achieved | errors | server fell behind | p50 | p99 | max | RSS start | RSS end | RSS peak | change | scrape+forecast cycles (failed) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {:.0}/s | {} | {} | {:.2} ms | {:.2} ms | {:.1} ms | {s:.0} MiB | {e:.0} MiB | {rss_peak:.0} MiB | {:+.1}% | {} ({background_failures}) |",
        total,
        total as f64 / elapsed.as_secs_f64(),
        errors.load(Ordering::Relaxed),
        late.load(Ordering::Relaxed),
        percentile(&l, 0.50),
        percentile(&l, 0.99),
        l.last().copied().unwrap_or(0) as f64 / 1000.0,
        (e / s.max(1e-9) - 1.0) * 100.0,
        cycles.load(Ordering::Relaxed),
    );
    anyhow::ensure!(
        errors.load(Ordering::Relaxed) == 0,
        "{} requests failed",
        errors.load(Ordering::Relaxed)
    );
    Ok(())
}
