//! The seeded price simulation.
//!
//! Each listing has a regular price at its retailer's level, permanent price
//! changes every two to four months, a promotion cycle of its own (three to
//! eight weeks between promotions that last five to fourteen days) and now
//! and then a day or three out of stock. Everything follows from the seed:
//! the same seed gives the same history on every machine and at every
//! start (with the locked `rand`, whose `StdRng` is ChaCha12), and any day
//! can be computed, because each listing's events are drawn in order from
//! [`EPOCH`] by generators of its own (one for price changes, one for
//! promotions) and stock-outs are a hash of the listing and the day.

use chrono::NaiveDate;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::catalog::{Listing, Retailer};

/// The first simulated day. Days before it show the opening prices.
pub const EPOCH: NaiveDate = match NaiveDate::from_ymd_opt(2025, 1, 1) {
    Some(d) => d,
    None => panic!("the epoch is a valid date"),
};

/// Days since [`EPOCH`] (negative before it).
pub fn day_index(date: NaiveDate) -> i64 {
    (date - EPOCH).num_days()
}

/// A promotion as simulated: what kind, and how deep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PromoPlan {
    /// A temporary price cut shown as was/now.
    Cut { depth: f64 },
    /// "N for £X".
    MultiBuy { qty: u32, depth: f64 },
    /// "3 for 2".
    ThreeForTwo,
    /// A loyalty-card price; the shelf price stays the regular price.
    Loyalty { depth: f64 },
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct PromoSpan {
    start: i64,
    /// Exclusive.
    end: i64,
    plan: PromoPlan,
}

/// What is on the shelf for one listing on one day, before wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayState {
    /// The regular price.
    pub regular: i64,
    pub promo: Option<ActivePromo>,
    pub in_stock: bool,
}

/// A promotion with its prices worked out for the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivePromo {
    /// Now `now`, was the regular price.
    Cut { now: i64 },
    /// `qty` for `total` pence.
    MultiBuy { qty: u32, total: i64 },
    /// 3 for the price of 2.
    ThreeForTwo,
    /// Loyalty-card holders pay `price`.
    Loyalty { price: i64 },
}

impl DayState {
    /// The price the tile shows as the current price: the now price during
    /// a cut, else the regular price.
    pub fn shelf_price(&self) -> i64 {
        match self.promo {
            Some(ActivePromo::Cut { now }) => now,
            _ => self.regular,
        }
    }
}

/// A listing's events from the epoch up to a given day.
#[derive(Debug, Clone)]
pub struct Timeline {
    retailer: Retailer,
    seed: u64,
    listing_key: u64,
    /// (first day, regular price), in day order; the first entry is day 0.
    prices: Vec<(i64, i64)>,
    promos: Vec<PromoSpan>,
    oos_rate: f64,
}

/// Hash of the parts, well mixed (splitmix64 steps).
pub fn mix(parts: &[u64]) -> u64 {
    let mut h: u64 = 0x243F_6A88_85A3_08D3;
    for &p in parts {
        h ^= p;
        h = h.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = h;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h = z ^ (z >> 31);
    }
    h
}

/// A number in [0, 1) from a hash.
pub fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

fn retailer_code(r: Retailer) -> u64 {
    match r {
        Retailer::Sainsway => 1,
        Retailer::Aldwick => 2,
        Retailer::Icebox => 3,
        Retailer::Morrow => 4,
    }
}

/// A number that identifies a listing in the simulation and the faults.
pub fn listing_key(listing: &Listing) -> u64 {
    mix(&[
        retailer_code(listing.retailer),
        listing.product_index as u64,
    ])
}

/// Retailer habits: price level, rounding, promotion frequency and kinds.
struct Habits {
    level: f64,
    /// Range of days between promotion starts.
    cycle_days: (i64, i64),
    /// Share of listings that never go on promotion.
    never_promo: f64,
    /// Daily chance a stock-out starts.
    oos_rate: f64,
}

fn habits(r: Retailer) -> Habits {
    match r {
        Retailer::Sainsway => Habits {
            level: 1.03,
            cycle_days: (21, 56),
            never_promo: 0.10,
            oos_rate: 0.010,
        },
        Retailer::Aldwick => Habits {
            level: 0.88,
            cycle_days: (35, 56),
            never_promo: 0.25,
            oos_rate: 0.015,
        },
        Retailer::Icebox => Habits {
            level: 0.96,
            cycle_days: (21, 49),
            never_promo: 0.10,
            oos_rate: 0.030,
        },
        Retailer::Morrow => Habits {
            level: 1.00,
            cycle_days: (21, 56),
            never_promo: 0.10,
            oos_rate: 0.012,
        },
    }
}

/// Rounds a price the way the retailer prices: Aldwick ends in 9, the
/// others in 0 or 5. Never below 9p.
pub fn shelf_round(r: Retailer, pence: f64) -> i64 {
    let p = pence.max(9.0);
    let rounded = match r {
        Retailer::Aldwick => ((p + 1.0) / 10.0).round() as i64 * 10 - 1,
        _ => (p / 5.0).round() as i64 * 5,
    };
    rounded.max(9)
}

/// Rounds a promotional price down to the retailer's grid, so it is a
/// real saving.
fn promo_round(r: Retailer, pence: f64) -> i64 {
    match r {
        Retailer::Aldwick => ((pence + 1.0) / 10.0).floor() as i64 * 10 - 1,
        _ => (pence / 5.0).floor() as i64 * 5,
    }
}

/// The total of an "N for £X" deal: whole pounds at Icebox when that still
/// saves, else tens of pence.
fn multibuy_total(r: Retailer, qty: u32, regular: i64, depth: f64) -> Option<i64> {
    let full = regular * i64::from(qty);
    let target = full as f64 * (1.0 - depth);
    let pounds = (target / 100.0).floor() as i64 * 100;
    let total = if r == Retailer::Icebox && pounds > regular && pounds < full {
        pounds
    } else {
        (target / 10.0).floor() as i64 * 10
    };
    (total > regular && total < full).then_some(total)
}

impl Timeline {
    /// The listing's events from the epoch through day `until`.
    pub fn build(listing: &Listing, seed: u64, until: i64) -> Timeline {
        let r = listing.retailer;
        let h = habits(r);
        let listing_key = listing_key(listing);
        let mut rng = StdRng::seed_from_u64(mix(&[seed, listing_key, 1]));
        let noise = rng.random_range(-0.05..0.05);
        let opening = shelf_round(
            r,
            listing.product.base_pence as f64 * h.level * (1.0 + noise),
        );
        let mut prices = vec![(0, opening)];
        let mut day = rng.random_range(30..=120);
        let mut price = opening;
        while day <= until {
            let pct = rng.random_range(0.03..0.12);
            let up = rng.random_bool(0.65);
            let factor = if up { 1.0 + pct } else { 1.0 - pct };
            // Prices drift, but not below 70% of the opening price.
            let floor = opening as f64 * 0.7;
            let factor = if !up && price as f64 * factor < floor {
                1.0 + pct
            } else {
                factor
            };
            let next = shelf_round(r, price as f64 * factor);
            // A change too small to survive the rounding does not happen.
            if next != price {
                price = next;
                prices.push((day, price));
            }
            day += rng.random_range(60..=120);
        }

        let mut promos = Vec::new();
        let mut rng = StdRng::seed_from_u64(mix(&[seed, listing_key, 2]));
        if !rng.random_bool(h.never_promo) {
            let cycle = rng.random_range(h.cycle_days.0..=h.cycle_days.1);
            let mut start = rng.random_range(0..cycle);
            while start <= until {
                let len = rng.random_range(5..=14);
                let plan = pick_plan(r, &mut rng);
                promos.push(PromoSpan {
                    start,
                    end: start + len,
                    plan,
                });
                start += (cycle + rng.random_range(-6..=6)).max(len + 4);
            }
        }
        let oos_rate = h.oos_rate;
        Timeline {
            retailer: r,
            seed,
            listing_key,
            prices,
            promos,
            oos_rate,
        }
    }

    /// The regular price on `day`.
    pub fn regular(&self, day: i64) -> i64 {
        let i = self.prices.partition_point(|(d, _)| *d <= day);
        self.prices
            .get(i.saturating_sub(1))
            .map_or(0, |(_, price)| *price)
    }

    /// Days on which the regular price changed (after the opening price).
    pub fn price_changes(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.prices.iter().skip(1).copied()
    }

    fn plan_on(&self, day: i64) -> Option<PromoPlan> {
        let i = self.promos.partition_point(|s| s.start <= day);
        let span = self.promos.get(i.checked_sub(1)?)?;
        (day < span.end).then_some(span.plan)
    }

    fn out_of_stock(&self, day: i64) -> bool {
        (0..3).any(|back| {
            let start = day - back;
            let h = mix(&[self.seed, self.listing_key, 3, start as u64]);
            unit(h) < self.oos_rate && (h % 3) as i64 >= back
        })
    }

    /// The shelf on `day` (day 0 is the epoch; earlier days show the
    /// opening price with no promotion).
    pub fn state(&self, day: i64) -> DayState {
        let regular = self.regular(day.max(0));
        let promo = if day < 0 {
            None
        } else {
            self.plan_on(day)
                .and_then(|plan| price_promo(self.retailer, plan, regular))
        };
        DayState {
            regular,
            promo,
            in_stock: !self.out_of_stock(day),
        }
    }
}

fn pick_plan(r: Retailer, rng: &mut StdRng) -> PromoPlan {
    let x: f64 = rng.random();
    let depth = |rng: &mut StdRng, lo: f64, hi: f64| rng.random_range(lo..hi);
    match r {
        Retailer::Sainsway if x < 0.5 => PromoPlan::Loyalty {
            depth: depth(rng, 0.10, 0.30),
        },
        Retailer::Sainsway if x < 0.75 => PromoPlan::MultiBuy {
            qty: 2,
            depth: depth(rng, 0.12, 0.28),
        },
        Retailer::Aldwick | Retailer::Sainsway => PromoPlan::Cut {
            depth: depth(rng, 0.12, 0.35),
        },
        Retailer::Icebox if x < 0.55 => PromoPlan::MultiBuy {
            qty: if rng.random_bool(0.7) { 2 } else { 3 },
            depth: depth(rng, 0.12, 0.30),
        },
        Retailer::Icebox => PromoPlan::Cut {
            depth: depth(rng, 0.12, 0.35),
        },
        Retailer::Morrow if x < 0.4 => PromoPlan::Loyalty {
            depth: depth(rng, 0.10, 0.30),
        },
        Retailer::Morrow if x < 0.65 => PromoPlan::ThreeForTwo,
        Retailer::Morrow if x < 0.8 => PromoPlan::MultiBuy {
            qty: 2,
            depth: depth(rng, 0.12, 0.28),
        },
        Retailer::Morrow => PromoPlan::Cut {
            depth: depth(rng, 0.12, 0.35),
        },
    }
}

/// Works out a promotion's prices against the day's regular price; a
/// promotion that would save nothing (a very cheap item) is dropped.
fn price_promo(r: Retailer, plan: PromoPlan, regular: i64) -> Option<ActivePromo> {
    let cut = |depth: f64| {
        let p = promo_round(r, regular as f64 * (1.0 - depth));
        (p >= 5 && p < regular).then_some(p)
    };
    match plan {
        PromoPlan::Cut { depth } => cut(depth).map(|now| ActivePromo::Cut { now }),
        PromoPlan::Loyalty { depth } => cut(depth).map(|price| ActivePromo::Loyalty { price }),
        PromoPlan::MultiBuy { qty, depth } => {
            multibuy_total(r, qty, regular, depth).map(|total| ActivePromo::MultiBuy { qty, total })
        }
        PromoPlan::ThreeForTwo => Some(ActivePromo::ThreeForTwo),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_follows_the_retailer() {
        assert_eq!(shelf_round(Retailer::Aldwick, 141.0), 139);
        assert_eq!(shelf_round(Retailer::Aldwick, 85.0), 89);
        assert_eq!(shelf_round(Retailer::Sainsway, 142.0), 140);
        assert_eq!(shelf_round(Retailer::Sainsway, 143.0), 145);
        assert_eq!(shelf_round(Retailer::Icebox, 1.0), 10);
        assert_eq!(promo_round(Retailer::Aldwick, 118.0), 109);
        assert_eq!(multibuy_total(Retailer::Icebox, 2, 300, 0.2), Some(400));
        assert_eq!(multibuy_total(Retailer::Sainsway, 2, 150, 0.2), Some(240));
        assert_eq!(multibuy_total(Retailer::Sainsway, 2, 5, 0.2), None);
    }

    #[test]
    fn mixing_spreads() {
        let a = mix(&[1, 2, 3]);
        assert_ne!(a, mix(&[1, 2, 4]));
        assert_ne!(a, mix(&[3, 2, 1]));
        assert!((0.0..1.0).contains(&unit(u64::MAX)));
    }
}
