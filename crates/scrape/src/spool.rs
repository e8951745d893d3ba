//! The spool: when the database cannot be reached, what a page showed is
//! appended to a local file (one JSON line per tile, flushed to disk per
//! page) and replayed when the database returns. Replays are idempotent
//! because the ingest path is (an observation is keyed by listing and time),
//! so a replay cut short is simply replayed again.
//!
//! The spool keeps the raw tile text, not parsed observations: replay
//! parses it with the same code as a live scrape.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::extract::{Item, RawTile, Tile, parse_tile};
use shelfwatch_domain::retailer::RetailerSlug;
use shelfwatch_store::ingest::{Ingestor, Observation};

/// One spooled tile.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpoolRecord {
    pub retailer: RetailerSlug,
    pub observed_at: DateTime<Utc>,
    pub page: String,
    pub tile: RawTile,
    /// The category of the start URL the page was reached from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

/// What a replay stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replayed {
    pub records: u64,
    pub inserted: u64,
    pub duplicates: u64,
    /// Lines that could not be read back (a torn last line after a crash).
    pub unreadable: u64,
}

const ACTIVE: &str = "spool.jsonl";
const RUNS: &str = "runs.jsonl";
const REPLAYING: &str = "replaying.jsonl";

impl Spool {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Keeps a rejected tile, its page and the reason, for review
    /// (`rejected.jsonl` beside the spool; never replayed).
    pub fn append_rejected(&self, page: &str, tile: &RawTile, reason: &str) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating the spool directory {}", self.dir.display()))?;
        let path = self.dir.join("rejected.jsonl");
        let mut line = serde_json::to_vec(&serde_json::json!({
            "at": Utc::now(),
            "page": page,
            "reason": reason,
            "tile": tile,
        }))?;
        line.push(b'\n');
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(&line))
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Appends `records` and syncs them to disk before returning.
    pub fn append(&self, records: &[SpoolRecord]) -> anyhow::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating the spool directory {}", self.dir.display()))?;
        let path = self.dir.join(ACTIVE);
        let mut buf = Vec::new();
        for r in records {
            serde_json::to_writer(&mut buf, r)?;
            buf.push(b'\n');
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening the spool {}", path.display()))?;
        file.write_all(&buf)
            .and_then(|()| file.sync_data())
            .with_context(|| format!("writing the spool {}", path.display()))?;
        Ok(())
    }

    /// Appends a run's record (written to `scrape_runs` on replay).
    pub fn append_run(&self, run: &super::run::SpooledRun) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating the spool directory {}", self.dir.display()))?;
        let path = self.dir.join(RUNS);
        let mut line = serde_json::to_vec(run)?;
        line.push(b'\n');
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        file.write_all(&line)
            .and_then(|()| file.sync_data())
            .with_context(|| format!("writing {}", path.display()))
    }

    /// The spooled run records (unreadable lines are skipped and logged).
    pub fn runs(&self) -> anyhow::Result<Vec<super::run::SpooledRun>> {
        let path = self.dir.join(RUNS);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter_map(|l| match serde_json::from_str(l) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!(error = %e, file = %path.display(), "unreadable spooled run skipped");
                    None
                }
            })
            .collect())
    }

    /// Removes the spooled run records (after they are written).
    pub fn clear_runs(&self) -> anyhow::Result<()> {
        let path = self.dir.join(RUNS);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }

    /// Whether anything (tiles or run records) waits to be replayed. A
    /// look at the directory, not a read: it is asked once per page.
    pub fn has_pending(&self) -> bool {
        [REPLAYING, ACTIVE, RUNS]
            .iter()
            .any(|name| self.dir.join(name).exists())
    }

    /// Stores everything spooled through `ingestor`, then removes it. The
    /// active file is renamed first so new appends go to a fresh file while
    /// the old one replays; a replay that fails leaves the renamed file for
    /// the next attempt.
    pub async fn replay(&self, ingestor: &mut Ingestor) -> anyhow::Result<Replayed> {
        let active = self.dir.join(ACTIVE);
        let replaying = self.dir.join(REPLAYING);
        if !replaying.exists() {
            if !active.exists() {
                return Ok(Replayed::default());
            }
            std::fs::rename(&active, &replaying)
                .with_context(|| format!("moving {} aside to replay it", active.display()))?;
        }
        let text = tokio::fs::read_to_string(&replaying)
            .await
            .with_context(|| format!("reading {}", replaying.display()))?;
        let mut report = Replayed::default();
        let mut batch: Vec<Observation> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            report.records += 1;
            let record: SpoolRecord = match serde_json::from_str(line) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(line = i + 1, error = %e, file = %replaying.display(), "unreadable spool line skipped");
                    report.unreadable += 1;
                    continue;
                }
            };
            // Tiles were parsed before they were spooled; one that no longer
            // parses would have been rejected live too.
            match parse_tile(&record.retailer, &record.tile, record.observed_at) {
                Ok(Tile {
                    item: Item::Observation(mut obs),
                    ..
                }) => {
                    obs.category = record.category;
                    batch.push(*obs)
                }
                // Sightings are never spooled; a record that reads as one
                // now has nothing to store.
                Ok(_) => report.unreadable += 1,
                Err(e) => {
                    tracing::warn!(line = i + 1, reason = %e.reason, "spooled tile rejected");
                    report.unreadable += 1;
                }
            }
        }
        for chunk in batch.chunks(10_000) {
            let stored = ingestor.ingest(chunk).await?;
            report.inserted += stored.inserted;
            report.duplicates += stored.duplicates;
        }
        std::fs::remove_file(&replaying)
            .with_context(|| format!("removing {}", replaying.display()))?;
        Ok(report)
    }
}
