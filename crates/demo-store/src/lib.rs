//! The demo store: a local supermarket site with four retailers' markup,
//! standing in for the real shops in the demo and the tests (this machine
//! reaches no shop).
//!
//! - [`catalog`]: one catalogue of canonical products; each retailer carries
//!   an overlapping subset, titled its own way, with its own SKUs and URLs.
//! - [`sim`]: the seeded price simulation: regular prices at each
//!   retailer's level, permanent changes, promotion cycles, stock-outs.
//! - [`shelf`]: how each retailer words prices, unit prices, packs and
//!   promotions on a tile (all of it readable by [`crate::domain`]).
//! - [`pages`]: HTML shells whose inline script renders the tiles from the
//!   JSON API, behind a cookie-consent overlay.
//! - [`faults`]: slow responses, rate limits, outages, broken tiles, hidden
//!   products, and robots.txt overrides.
//! - [`store`]: the shared state and the handle ([`DemoStore`]), the ground
//!   truth and the history export.
//! - [`server`]: the axum routes, including `/_truth` and `/_control/*`.
//!
//! Tests run it in-process:
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use shelfwatch_demo_store::{DemoStore, Fault, Retailer, serve};
//! let date = chrono::NaiveDate::from_ymd_opt(2025, 6, 1).expect("a date");
//! let store = DemoStore::new(42, date);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let server = tokio::spawn(serve(listener, store.clone(), async move {
//!     let _ = stopped.await;
//! }));
//! store.set_fault(Retailer::Icebox, Fault::Unavailable { requests: 2 }).ok();
//! let truth = store.truth(date); // what http://{addr}/icebox/ shows
//! # let _ = (addr, truth);
//! let _ = stop.send(());
//! let _ = server.await;
//! # Ok(()) }
//! ```

pub mod catalog;
pub mod faults;
pub mod local;
pub mod pages;
pub mod server;
pub mod shelf;
pub mod sim;
pub mod store;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{NaiveDate, Utc};
use clap::Args;

pub use catalog::Retailer;
pub use faults::{Breakage, Fault, HostilePage, Robots};
pub use server::{router, serve};
pub use store::{DemoStore, RequestRecord, StoreHandle, Tile, TruthListing};

/// `shelfwatch demo-store`.
#[derive(Debug, Args)]
pub struct DemoStoreArgs {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    #[arg(long, default_value = "127.0.0.1:8700", value_name = "ADDR")]
    pub bind: String,
    /// Seed of the price simulation: the same seed gives the same prices.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Simulated date the shop shows (default: today, UTC); changeable at
    /// run time by `POST /_control/date`.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: Option<NaiveDate>,
    /// Write the price history as an import CSV and exit: `--days` days
    /// ending the day before `--date`.
    #[arg(long, value_name = "FILE")]
    pub export_history: Option<PathBuf>,
    /// Days of history for `--export-history`.
    #[arg(long, default_value_t = 90, requires = "export_history")]
    pub days: u32,
    /// Write the ground truth for `--date` as JSON and exit.
    #[arg(long, value_name = "FILE")]
    pub export_truth: Option<PathBuf>,
}

pub async fn run(args: DemoStoreArgs) -> anyhow::Result<ExitCode> {
    let date = args.date.unwrap_or_else(|| Utc::now().date_naive());
    let store = DemoStore::new(args.seed, date);
    if args.export_history.is_some() || args.export_truth.is_some() {
        if let Some(path) = &args.export_history {
            let to = date.pred_opt().context("the date has no day before it")?;
            let from = to
                .checked_sub_days(chrono::Days::new(u64::from(args.days.max(1)) - 1))
                .context("--days reaches before the calendar")?;
            let rows = write_file(path, |w| store.history_csv(from, to, w))?;
            println!("wrote {rows} rows ({from} to {to}) to {}", path.display());
        }
        if let Some(path) = &args.export_truth {
            let truth = store.truth(date);
            let n = truth.len();
            write_file(path, |w| {
                serde_json::to_writer_pretty(&mut *w, &truth).context("writing the truth")?;
                w.write_all(b"\n").context("writing the truth")?;
                Ok(())
            })?;
            println!(
                "wrote the truth for {date} ({n} listings) to {}",
                path.display()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }

    let listener = tokio::net::TcpListener::bind(&args.bind)
        .await
        .with_context(|| format!("binding the demo store to {}", args.bind))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let stop = shelfwatch_runtime::signal::shutdown_signal()?;
    println!("demo store at http://{addr}");
    std::io::stdout().flush().ok();
    tracing::info!(%addr, seed = args.seed, %date, "demo store serving");
    serve(listener, store, stop)
        .await
        .context("serving the demo store")?;
    Ok(ExitCode::SUCCESS)
}

/// Writes a file through a buffered writer, naming it in errors.
fn write_file<T>(
    path: &std::path::Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let out = write(&mut w).with_context(|| format!("writing {}", path.display()))?;
    w.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(out)
}

#[cfg(test)]
mod tests;
