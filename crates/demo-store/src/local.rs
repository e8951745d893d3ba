//! The demo store served in-process, and its history loaded through the
//! CSV import path: what `up`, the soak test and the benchmarks start.

use std::path::PathBuf;

use anyhow::Context;
use shelfwatch_store::ingest::Ingestor;
use shelfwatch_store::ingest::csv_import::{self, ImportOptions};

use crate::DemoStore;

/// A demo store served in-process until [`LocalStore::stop`].
pub struct LocalStore {
    pub store: DemoStore,
    /// `http://127.0.0.1:PORT`
    pub origin: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl LocalStore {
    pub async fn start(
        seed: u64,
        date: chrono::NaiveDate,
        bind: &str,
    ) -> anyhow::Result<LocalStore> {
        let store = DemoStore::new(seed, date);
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("binding the demo store to {bind}"))?;
        let origin = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::serve(listener, store.clone(), async move {
            let _ = stopped.await;
        }));
        Ok(LocalStore {
            store,
            origin,
            stop,
            server,
        })
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
    }
}

/// Loads `days` of `store`'s history, ending yesterday, through the CSV
/// import path. Returns the first and last day and the import's report.
pub async fn backfill(
    store: &DemoStore,
    pool: &shelfwatch_store::PgPool,
    days: u32,
    batch_size: usize,
    progress: bool,
) -> anyhow::Result<(
    chrono::NaiveDate,
    chrono::NaiveDate,
    csv_import::ImportReport,
)> {
    let to = store
        .date()
        .pred_opt()
        .context("the day has no day before it")?;
    let from = to
        .checked_sub_days(chrono::Days::new(u64::from(days.max(1)) - 1))
        .context("the history reaches before the calendar")?;
    let csv = history_file()?;
    {
        let file =
            std::fs::File::create(&csv).with_context(|| format!("creating {}", csv.display()))?;
        store.history_csv(from, to, std::io::BufWriter::new(file))?;
    }
    let mut ingestor = Ingestor::new(pool.clone()).await?;
    let options = ImportOptions {
        batch_size,
        rejects: None,
        progress,
    };
    let imported = csv_import::import_file(&mut ingestor, &csv, &options).await;
    let _ = std::fs::remove_file(&csv);
    let imported = imported.context("backfilling the demo store's history")?;
    Ok((from, to, imported))
}

fn history_file() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir();
    Ok(dir.join(format!(
        "shelfwatch-up-history-{}-{}.csv",
        std::process::id(),
        rand::random::<u32>()
    )))
}
