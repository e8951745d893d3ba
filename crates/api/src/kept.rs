//! What the API keeps in memory between requests, and how it stays true.
//!
//! - [`CurrentRuns`]: every recommendations page reads from the current
//!   forecast runs ([`store::current_runs`]), which change only when a
//!   forecast lands, hours apart. They are loaded once and kept while the
//!   [`FORECAST_RUNS`] channel is heard; a run that lands announces itself
//!   there in the transaction that stores it, and the next request loads
//!   the runs again. While the channel is not heard (the subscription is
//!   down), every request asks the database.
//! - [`RetailerIds`]: retailer ids by slug, for the `retailer` filters.

use std::sync::{Mutex, MutexGuard};

use shelfwatch_store::PgPool;
use shelfwatch_store::error::StoreResult;
use shelfwatch_store::recommendations::{self as store, FORECAST_RUNS};

use crate::notify::{self, Heard};

#[derive(Default)]
struct Kept {
    /// The channel is heard: what is kept is current.
    live: bool,
    /// Bumped on every change; a load that began under an older
    /// generation may have read the runs just before a new one landed, so
    /// it is used but not kept.
    generation: u64,
    runs: Option<Vec<i64>>,
}

pub struct CurrentRuns {
    pool: PgPool,
    kept: Mutex<Kept>,
}

impl CurrentRuns {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            kept: Mutex::new(Kept::default()),
        }
    }

    fn kept(&self) -> MutexGuard<'_, Kept> {
        match self.kept.lock() {
            Ok(k) => k,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The current runs: from memory when they are known to be current,
    /// else from the database.
    pub async fn get(&self) -> StoreResult<Vec<i64>> {
        let generation = {
            let kept = self.kept();
            if let (true, Some(runs)) = (kept.live, &kept.runs) {
                return Ok(runs.clone());
            }
            kept.generation
        };
        let runs = store::current_runs(&self.pool).await?;
        let mut kept = self.kept();
        if kept.live && kept.generation == generation {
            kept.runs = Some(runs.clone());
        }
        Ok(runs)
    }

    /// Whether the runs are being kept (the channel is heard); for tests.
    pub fn live(&self) -> bool {
        self.kept().live
    }

    fn forget(&self, live: bool) {
        let mut kept = self.kept();
        kept.runs = None;
        kept.generation += 1;
        kept.live = live;
    }

    /// Hears landed runs until `stop`.
    pub async fn follow(&self, stop: impl std::future::Future<Output = ()>) {
        notify::follow(
            &self.pool,
            FORECAST_RUNS,
            "landed forecast runs",
            stop,
            |heard| match heard {
                Heard::Live | Heard::Note(_) => self.forget(true),
                Heard::Lost => self.forget(false),
            },
        )
        .await;
    }
}

/// Retailer ids by slug, kept once seen: a retailer's id never changes
/// and retailers are never deleted, so a filter by retailer costs no
/// round trip after the first. A slug not (yet) known is asked of the
/// database each time, so a retailer added later is found.
#[derive(Default)]
pub struct RetailerIds {
    known: Mutex<std::collections::HashMap<String, i64>>,
}

impl RetailerIds {
    /// Ids kept before the map is emptied (slugs are a handful; this
    /// bounds memory only).
    const MAX: usize = 10_000;

    fn known(&self) -> MutexGuard<'_, std::collections::HashMap<String, i64>> {
        match self.known.lock() {
            Ok(k) => k,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub async fn get(&self, pool: &PgPool, slug: &str) -> StoreResult<Option<i64>> {
        if let Some(id) = self.known().get(slug).copied() {
            return Ok(Some(id));
        }
        let id = shelfwatch_store::catalogue::retailer_id(pool, slug).await?;
        if let Some(id) = id {
            let mut known = self.known();
            if known.len() >= Self::MAX {
                known.clear();
            }
            known.insert(slug.to_owned(), id);
        }
        Ok(id)
    }
}
