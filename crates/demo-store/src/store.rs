//! The store's state and the handle tests and the server share: the
//! simulated date, faults, robots rules, request log, and what the tiles
//! and the ground truth say on a given day.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::catalog::{Aisle, Listing, Retailer, listings};
use super::faults::{Breakage, Fault, RetailerFaults, Robots, Verdict};
use super::shelf::{Shelf, shelf};
use super::sim::{Timeline, day_index, listing_key};
use shelfwatch_domain::unit_price::parse_unit_price;

/// The origin written into product URLs when the store is not serving
/// (exports): the default `--bind` address.
pub const DEFAULT_ORIGIN: &str = "http://127.0.0.1:8700";

/// Requests kept in the log; older ones are dropped first.
const LOG_CAPACITY: usize = 20_000;

/// The columns of the history CSV, in order: every column the import
/// reads, required ones first.
pub fn history_columns() -> Vec<&'static str> {
    use shelfwatch_store::ingest::csv_import::{OPTIONAL_COLUMNS, REQUIRED_COLUMNS};
    REQUIRED_COLUMNS
        .iter()
        .chain(OPTIONAL_COLUMNS.iter())
        .copied()
        .collect()
}

/// One listing on one day as the shop shows it: the ground truth a scraper
/// is checked against.
///
/// `price_pence` is the price the tile shows as the current price: the now
/// price during a price cut (with `was_price_pence` the regular price), the
/// regular price otherwise. Multibuys ("2 for £3", "3 for 2") and loyalty
/// offers ("Nectar Price £1.50", "More Card Price £1.00") leave the shelf
/// price at the regular price and appear only in `promo_text`;
/// `loyalty_price_pence` says what card holders pay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthListing {
    pub date: NaiveDate,
    pub retailer: Retailer,
    pub sku: String,
    /// The canonical product this listing is (shared across retailers).
    pub product_key: String,
    /// The aisle's category name, as the retailer configs give it.
    pub category: String,
    pub title: String,
    pub url: String,
    pub price_pence: i64,
    pub was_price_pence: Option<i64>,
    /// The promotion element's text exactly as shown, or `None`.
    pub promo_text: Option<String>,
    /// "price_cut", "multibuy" or "loyalty".
    pub promo_kind: Option<String>,
    pub loyalty_price_pence: Option<i64>,
    /// The unit price exactly as shown.
    pub unit_price_text: String,
    /// The pack as shown (in its own element at Aldwick, at the end of the
    /// title elsewhere).
    pub pack_text: String,
    pub in_stock: bool,
    /// The tile is rendered with malformed data (the `broken` fault).
    pub broken: bool,
    /// How it is broken.
    pub breakage: Option<Breakage>,
    /// The listing is left off the listing pages (the `hide` fault).
    pub hidden: bool,
}

/// One request the store answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    pub at: DateTime<Utc>,
    pub method: String,
    /// Path and query, as requested.
    pub path: String,
    pub status: u16,
    pub user_agent: Option<String>,
}

/// A tile as the JSON API sends it to the page's script. Absent fields are
/// absent elements (broken tiles lack some).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tile {
    pub sku: String,
    pub title: Option<String>,
    pub url: String,
    pub price: Option<String>,
    pub was: Option<String>,
    pub promo: Option<String>,
    pub unit_price: String,
    pub pack: String,
    pub in_stock: bool,
}

struct Mutable {
    date: NaiveDate,
    faults: HashMap<Retailer, RetailerFaults>,
    robots: Robots,
    log: VecDeque<RequestRecord>,
    origin: String,
}

struct Inner {
    seed: u64,
    listings: Vec<Listing>,
    state: Mutex<Mutable>,
}

/// The demo store. Cloning gives another handle on the same store: the
/// server holds one, tests and the CLI hold others and change the date,
/// faults and robots rules while it serves.
#[derive(Clone)]
pub struct DemoStore {
    inner: Arc<Inner>,
}

/// A handle on a running (or not yet running) store; the same type.
pub type StoreHandle = DemoStore;

impl std::fmt::Debug for DemoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoStore")
            .field("seed", &self.inner.seed)
            .field("date", &self.date())
            .finish_non_exhaustive()
    }
}

impl DemoStore {
    /// A store simulating prices from `seed`, showing `date`.
    pub fn new(seed: u64, date: NaiveDate) -> DemoStore {
        DemoStore {
            inner: Arc::new(Inner {
                seed,
                listings: listings(),
                state: Mutex::new(Mutable {
                    date,
                    faults: HashMap::new(),
                    robots: Robots::Default,
                    log: VecDeque::new(),
                    origin: DEFAULT_ORIGIN.to_owned(),
                }),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, Mutable> {
        // A panic while holding the lock leaves plain data behind; go on.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn seed(&self) -> u64 {
        self.inner.seed
    }

    /// Every listing of every retailer.
    pub fn listings(&self) -> &[Listing] {
        &self.inner.listings
    }

    /// The simulated date the shop pages show.
    pub fn date(&self) -> NaiveDate {
        self.state().date
    }

    pub fn set_date(&self, date: NaiveDate) {
        self.state().date = date;
    }

    /// The origin (`http://host:port`) product URLs are written with.
    pub fn origin(&self) -> String {
        self.state().origin.clone()
    }

    /// Sets the origin for product URLs ([`super::serve`] sets it to the
    /// address it listens on).
    pub fn set_origin(&self, origin: impl Into<String>) {
        self.state().origin = origin.into();
    }

    /// Sets one fault on one retailer (replacing a fault of the same kind).
    pub fn set_fault(&self, retailer: Retailer, fault: Fault) -> Result<(), String> {
        fault.check()?;
        self.state()
            .faults
            .entry(retailer)
            .or_default()
            .set(fault, Instant::now());
        Ok(())
    }

    /// Removes every fault of every retailer.
    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    /// Removes every fault of one retailer.
    pub fn clear_faults_for(&self, retailer: Retailer) {
        self.state().faults.remove(&retailer);
    }

    /// The faults in force, per retailer.
    pub fn faults(&self) -> Vec<(Retailer, Vec<Fault>)> {
        let now = Instant::now();
        let state = self.state();
        Retailer::ALL
            .into_iter()
            .map(|r| (r, state.faults.get(&r).map_or(vec![], |f| f.active(now))))
            .collect()
    }

    pub fn set_robots(&self, robots: Robots) {
        self.state().robots = robots;
    }

    pub fn robots(&self) -> Robots {
        self.state().robots.clone()
    }

    /// What to do with a request to a retailer's pages.
    /// The hostile page set for `retailer`, if any.
    pub(crate) fn hostile(&self, retailer: Retailer) -> Option<super::faults::HostilePage> {
        self.state().faults.get(&retailer).and_then(|f| f.hostile)
    }

    pub(crate) fn admit(&self, retailer: Retailer) -> Verdict {
        self.state()
            .faults
            .entry(retailer)
            .or_default()
            .admit(Instant::now())
    }

    /// The requests answered so far, oldest first.
    pub fn request_log(&self) -> Vec<RequestRecord> {
        self.state().log.iter().cloned().collect()
    }

    pub fn clear_request_log(&self) {
        self.state().log.clear();
    }

    pub(crate) fn record(&self, record: RequestRecord) {
        let mut state = self.state();
        if state.log.len() >= LOG_CAPACITY {
            state.log.pop_front();
        }
        state.log.push_back(record);
    }

    fn faults_of(&self, retailer: Retailer) -> RetailerFaults {
        self.state()
            .faults
            .get(&retailer)
            .cloned()
            .unwrap_or_default()
    }

    /// The listings of one retailer with their shelves on `date`, hidden
    /// ones included.
    fn shelves(&self, retailer: Retailer, date: NaiveDate) -> Vec<(&Listing, Shelf)> {
        let day = day_index(date);
        self.inner
            .listings
            .iter()
            .filter(|l| l.retailer == retailer)
            .map(|l| {
                let state = Timeline::build(l, self.inner.seed, day).state(day);
                (l, shelf(l, &state))
            })
            .collect()
    }

    /// The tiles a retailer's listing shows on the current date, in shelf
    /// order, with hidden products left out and broken tiles broken.
    pub fn tiles(&self, retailer: Retailer, origin: &str) -> Vec<Tile> {
        self.tiles_in(retailer, origin, None)
    }

    /// [`DemoStore::tiles`] of one aisle, or of all when `aisle` is `None`.
    pub fn tiles_in(&self, retailer: Retailer, origin: &str, aisle: Option<Aisle>) -> Vec<Tile> {
        let date = self.date();
        let faults = self.faults_of(retailer);
        let seed = self.inner.seed;
        self.shelves(retailer, date)
            .into_iter()
            .filter(|(l, _)| aisle.is_none_or(|a| l.product.aisle() == a))
            .filter(|(l, _)| !faults.hides(seed, listing_key(l)))
            .map(|(l, s)| {
                let breakage = faults.breakage(seed, listing_key(l));
                let mut tile = Tile {
                    sku: l.sku.clone(),
                    title: Some(l.title.clone()),
                    url: format!("{origin}{}", l.path),
                    price: Some(s.price_text.clone()),
                    was: s.was_text,
                    promo: s.promo_text,
                    unit_price: s.unit_price_text,
                    pack: s.pack_text,
                    in_stock: s.in_stock,
                };
                if let Some(b) = breakage {
                    tile.price = b.price_text(&s.price_text);
                    if b == Breakage::MissingTitle {
                        tile.title = None;
                    }
                }
                tile
            })
            .collect()
    }

    /// The ground truth for `date` with the faults now in force, product
    /// URLs on the store's origin.
    pub fn truth(&self, date: NaiveDate) -> Vec<TruthListing> {
        let origin = self.origin();
        self.truth_at(date, &origin)
    }

    /// [`DemoStore::truth`] with URLs on `origin`.
    pub fn truth_at(&self, date: NaiveDate, origin: &str) -> Vec<TruthListing> {
        let seed = self.inner.seed;
        let mut out = Vec::with_capacity(self.inner.listings.len());
        for retailer in Retailer::ALL {
            let faults = self.faults_of(retailer);
            for (l, s) in self.shelves(retailer, date) {
                let key = listing_key(l);
                let breakage = faults.breakage(seed, key);
                out.push(TruthListing {
                    date,
                    retailer,
                    sku: l.sku.clone(),
                    product_key: l.product.key.to_owned(),
                    category: l.product.aisle().name().to_owned(),
                    title: l.title.clone(),
                    url: format!("{origin}{}", l.path),
                    price_pence: s.price_pence,
                    was_price_pence: s.was_price_pence,
                    promo_text: s.promo_text,
                    promo_kind: s.promo_kind.map(str::to_owned),
                    loyalty_price_pence: s.loyalty_price_pence,
                    unit_price_text: s.unit_price_text,
                    pack_text: s.pack_text,
                    in_stock: s.in_stock,
                    broken: breakage.is_some(),
                    breakage,
                    hidden: faults.hides(seed, key),
                });
            }
        }
        out
    }

    /// Writes the shelves of every listing for each day `from..=to` as the
    /// import CSV ([`history_columns`]), one row a listing a day observed
    /// at 08:00 UTC. Faults do not touch the history. Returns the rows written.
    pub fn history_csv<W: io::Write>(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        writer: W,
    ) -> anyhow::Result<u64> {
        let origin = self.origin();
        let seed = self.inner.seed;
        let last = day_index(to);
        let timelines: Vec<(&Listing, Timeline)> = self
            .inner
            .listings
            .iter()
            .map(|l| (l, Timeline::build(l, seed, last)))
            .collect();
        let mut out = csv::Writer::from_writer(writer);
        out.write_record(history_columns())
            .context("writing the history header")?;
        let mut rows = 0;
        for date in from.iter_days().take_while(|d| *d <= to) {
            let day = day_index(date);
            let observed_at = format!("{date}T08:00:00Z");
            for (l, timeline) in &timelines {
                let s = shelf(l, &timeline.state(day));
                let unit = parse_unit_price(&s.unit_price_text).with_context(|| {
                    format!("{} {} shows an unreadable unit price", l.retailer, l.sku)
                })?;
                let opt = |v: Option<i64>| v.map(|p| p.to_string()).unwrap_or_default();
                out.write_record([
                    l.retailer.slug(),
                    &l.sku,
                    &l.title,
                    &observed_at,
                    &s.price_pence.to_string(),
                    &opt(s.was_price_pence),
                    &unit.pence.to_string(),
                    unit.per_label(),
                    s.promo_text.as_deref().unwrap_or(""),
                    if s.in_stock { "true" } else { "false" },
                    &s.pack_text,
                    &format!("{origin}{}", l.path),
                    l.product.aisle().name(),
                ])
                .context("writing a history row")?;
                rows += 1;
            }
        }
        out.flush().context("flushing the history CSV")?;
        Ok(rows)
    }

    /// The listing whose product page is at `path`.
    pub fn listing_at(&self, path: &str) -> Option<&Listing> {
        self.inner.listings.iter().find(|l| l.path == path)
    }
}
