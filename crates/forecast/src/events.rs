//! Promotion events read from the shelf price itself, one sequential pass
//! per listing.
//!
//! The `any_promo` flag of `price_daily` says a promotion text was shown,
//! which is not the same as the shelf price being cut: a multi-buy or a
//! loyalty price leaves the shelf price alone, and some retailers show a
//! cut only as a struck-through "was" price, with no promotion text. What
//! the forecast and the claims are about is the shelf price, so:
//!
//! - a day is a *cut* when the shelf price is at least a meaningful move
//!   (5%, 5p) below the reference price, the latest price on a day that was
//!   not a promotion;
//! - a day is a *promotion* when it is flagged or a cut; the feature
//!   pipeline's run features (length, gap between starts, days since) are
//!   computed from this combined flag, so a listing's promotion cycle is
//!   seen whatever kind each promotion is;
//! - per listing and day (using only that day and earlier): days since the
//!   latest promotion started, the share of its ended promotions that cut
//!   the shelf price, how many have ended, and how regular the gaps between
//!   starts are.
//!
//! On a day without promotion text, a cut ends when the price rises again
//! (the price it rises to is the regular price from then on, even if lower
//! than before). A cut that outlasts any promotion the listing has had
//! (twice its longest, at least `MIN_UNFLAGGED_RUN` days) is a permanent
//! price change: the reference price follows it, and unless the run began
//! with a promotion text it is taken out of the promotion history (its
//! start, its gap) from that day on, so that a listing that never promotes
//! does not acquire a cycle from its price changes. For the
//! same reason the run features (days in, days since, mean length, mean gap
//! between starts) come from this pass, not from the feature pipeline.

use super::features::{DailySeries, NO_PROMO_YET};
use super::recommend::meaningful_move;

/// Without a longer promotion in the listing's history, an unflagged drop
/// lasting more than this many days is taken to be a new regular price.
pub const MIN_UNFLAGGED_RUN: usize = 21;

/// Per-row promotion facts (f32 where a value is a feature, to keep the
/// memory of long histories down). NaN means "not known yet".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Events {
    /// Flagged or cut: what the run features are computed from.
    pub promo: Vec<bool>,
    /// The shelf price is cut below the reference price.
    pub cut: Vec<bool>,
    /// 1-based day of the current promotion, 0 when none.
    pub days_in_promo: Vec<f32>,
    /// 0 during a promotion, else days since the latest promotion day
    /// ([`NO_PROMO_YET`] before the first).
    pub days_since_promo: Vec<f32>,
    /// Mean length of the ended promotions.
    pub mean_promo_len: Vec<f32>,
    /// Mean days between consecutive promotion starts.
    pub mean_promo_gap: Vec<f32>,
    /// Days since the latest promotion started (0 on its first day).
    pub since_start: Vec<f32>,
    /// Share of the ended promotions that cut the shelf price.
    pub cut_share: Vec<f32>,
    /// Number of ended promotions.
    pub ended: Vec<f32>,
    /// Standard deviation of the gaps between promotion starts, in days
    /// (needs three starts).
    pub gap_sd: Vec<f32>,
    /// Mean depth of the ended cuts, as a share of the reference price.
    pub cut_depth: Vec<f32>,
    /// Length of the ended promotions, the latest weighing most (each
    /// ended one takes [`RECENT_WEIGHT`] of the mean).
    pub recent_promo_len: Vec<f32>,
}

/// The share of the recent promotion length an ended promotion takes.
pub const RECENT_WEIGHT: f64 = 0.4;

impl Events {
    pub fn len(&self) -> usize {
        self.promo.len()
    }

    pub fn is_empty(&self) -> bool {
        self.promo.is_empty()
    }
}

/// One listing's running state.
#[derive(Default)]
struct State {
    reference: Option<f64>,
    previous_price: f64,
    in_run: bool,
    run_len: usize,
    run_began_flagged: bool,
    run_cut: bool,
    run_lowest: f64,
    run_reference: f64,
    /// The gap the current run's start added, to take back if the run
    /// turns out to be a price change.
    run_gap: Option<f64>,
    longest: usize,
    last_start: Option<usize>,
    start_before: Option<usize>,
    last_promo_day: Option<usize>,
    promo_day_before: Option<usize>,
    gaps: usize,
    gap_sum: f64,
    gap_sq: f64,
    ended: usize,
    len_sum: f64,
    cut_runs: usize,
    depth_sum: f64,
    recent_len: Option<f64>,
}

impl State {
    /// Ends the current run; `timely` when it ended by itself (not cut
    /// short as a price change), so its length bounds how long a promotion
    /// of this listing can last.
    fn end_run(&mut self, timely: bool) {
        self.ended += 1;
        self.len_sum += self.run_len as f64;
        let len = self.run_len as f64;
        self.recent_len = Some(
            self.recent_len
                .map_or(len, |r| r + RECENT_WEIGHT * (len - r)),
        );
        if timely {
            self.longest = self.longest.max(self.run_len);
        }
        if self.run_cut {
            self.cut_runs += 1;
            if self.run_reference > 0.0 {
                self.depth_sum += 1.0 - self.run_lowest / self.run_reference;
            }
        }
        self.in_run = false;
    }

    /// The current run was a permanent price change: forget it.
    fn undo_run(&mut self) {
        if let Some(g) = self.run_gap.take() {
            self.gaps -= 1;
            self.gap_sum -= g;
            self.gap_sq -= g * g;
        }
        self.last_start = self.start_before;
        self.last_promo_day = self.promo_day_before;
        self.in_run = false;
    }

    fn start_run(&mut self, i: usize, price: f64, reference: f64) {
        self.in_run = true;
        self.run_len = 0;
        self.run_cut = false;
        self.run_lowest = price;
        self.run_reference = reference;
        self.run_gap = self.last_start.map(|last| (i - last) as f64);
        if let Some(g) = self.run_gap {
            self.gaps += 1;
            self.gap_sum += g;
            self.gap_sq += g * g;
        }
        self.start_before = self.last_start;
        self.promo_day_before = self.last_promo_day;
        self.last_start = Some(i);
    }
}

fn mean_or_nan(sum: f64, n: usize) -> f32 {
    if n > 0 {
        (sum / n as f64) as f32
    } else {
        f32::NAN
    }
}

/// Reads the events of `series` (sorted by listing and day, dense).
pub fn annotate(series: &DailySeries) -> Events {
    let n = series.price.len().min(series.promo.len());
    let column = || Vec::with_capacity(n);
    let mut e = Events {
        promo: Vec::with_capacity(n),
        cut: Vec::with_capacity(n),
        days_in_promo: column(),
        days_since_promo: column(),
        mean_promo_len: column(),
        mean_promo_gap: column(),
        since_start: column(),
        cut_share: column(),
        ended: column(),
        gap_sd: column(),
        cut_depth: column(),
        recent_promo_len: column(),
    };
    let mut s = State::default();
    for i in 0..n {
        let price = series.price[i];
        if i == 0 || series.listing_id[i] != series.listing_id[i - 1] {
            s = State {
                previous_price: price,
                ..State::default()
            };
        }
        let flagged = series.promo[i];
        let reference = s.reference.unwrap_or(price);
        let mut cut = reference - price >= meaningful_move(reference) as f64;
        if s.in_run && !flagged && price > s.previous_price {
            // Without a promotion text, a cut ends when the price rises
            // again; the price it rises to is the regular one now.
            s.end_run(true);
            s.reference = Some(price);
            cut = false;
        } else if s.in_run && cut && s.run_len >= (2 * s.longest).max(MIN_UNFLAGGED_RUN) {
            // The drop has outlasted every promotion: a permanent change
            // (promotions shown on top of it, at the same shelf price, do
            // not make it one). A run that began with a promotion text was
            // a promotion all the same; one that did not is forgotten.
            if s.run_began_flagged {
                s.end_run(false);
            } else {
                s.undo_run();
            }
            s.reference = Some(price);
            cut = false;
        }
        let promo = flagged || cut;
        if promo {
            if !s.in_run {
                s.start_run(i, price, reference);
                s.run_began_flagged = flagged;
            }
            s.run_len += 1;
            s.run_cut |= cut;
            s.run_lowest = s.run_lowest.min(price);
            s.last_promo_day = Some(i);
        } else {
            if s.in_run {
                s.end_run(true);
            }
            s.reference = Some(price);
        }
        s.previous_price = price;
        e.promo.push(promo);
        e.cut.push(cut);
        e.days_in_promo
            .push(if promo { s.run_len as f32 } else { 0.0 });
        e.days_since_promo.push(match s.last_promo_day {
            Some(d) => (i - d) as f32,
            None => NO_PROMO_YET as f32,
        });
        e.mean_promo_len.push(mean_or_nan(s.len_sum, s.ended));
        e.mean_promo_gap.push(mean_or_nan(s.gap_sum, s.gaps));
        e.since_start
            .push(s.last_start.map_or(f32::NAN, |l| (i - l) as f32));
        e.cut_share.push(mean_or_nan(s.cut_runs as f64, s.ended));
        e.ended.push(s.ended as f32);
        e.gap_sd.push(if s.gaps >= 2 {
            let g = s.gaps as f64;
            let mean = s.gap_sum / g;
            ((s.gap_sq / g - mean * mean).max(0.0) * g / (g - 1.0)).sqrt() as f32
        } else {
            f32::NAN
        });
        e.cut_depth.push(mean_or_nan(s.depth_sum, s.cut_runs));
        e.recent_promo_len
            .push(s.recent_len.map_or(f32::NAN, |r| r as f32));
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(rows: &[(f64, bool)]) -> DailySeries {
        DailySeries {
            listing_id: vec![1; rows.len()],
            day: (0..rows.len() as i32).collect(),
            price: rows.iter().map(|r| r.0).collect(),
            promo: rows.iter().map(|r| r.1).collect(),
            observed: vec![true; rows.len()],
        }
    }

    #[test]
    fn unflagged_cuts_and_flagged_multibuys_are_both_promotions() {
        // Regular 100; an unflagged cut to 80 for 3 days; a flagged
        // multi-buy (shelf price unchanged) for 2 days.
        let rows = [
            (100.0, false),
            (80.0, false),
            (75.0, false),
            (80.0, true),
            (100.0, false),
            (100.0, false),
            (100.0, true),
            (100.0, true),
            (100.0, false),
        ];
        let e = annotate(&one(&rows));
        let flags = |v: &[bool]| v.iter().map(|b| u8::from(*b)).collect::<Vec<_>>();
        assert_eq!(flags(&e.promo), [0, 1, 1, 1, 0, 0, 1, 1, 0]);
        assert_eq!(flags(&e.cut), [0, 1, 1, 1, 0, 0, 0, 0, 0]);
        assert!(e.since_start[0].is_nan());
        assert_eq!(e.since_start[4], 3.0);
        assert_eq!(e.since_start[8], 2.0);
        assert!(e.cut_share[3].is_nan());
        assert_eq!(e.cut_share[4], 1.0);
        assert_eq!(e.cut_share[8], 0.5);
        assert_eq!(e.ended[8], 2.0);
        assert!((e.cut_depth[8] - 0.25).abs() < 1e-6);
        assert_eq!(e.days_in_promo[3], 3.0);
        assert_eq!(e.days_since_promo[5], 2.0);
        assert_eq!(e.mean_promo_len[8], 2.5);
        assert_eq!(e.mean_promo_gap[8], 5.0);
    }

    #[test]
    fn an_unflagged_drop_ends_when_the_price_rises() {
        // 100, cut to 80, then up to 90: the cut is over and 90 is the
        // regular price now (no cut, no promotion).
        let rows = [
            (100.0, false),
            (80.0, false),
            (80.0, false),
            (90.0, false),
            (90.0, false),
            (80.0, false),
        ];
        let e = annotate(&one(&rows));
        let flags = |v: &[bool]| v.iter().map(|b| u8::from(*b)).collect::<Vec<_>>();
        assert_eq!(flags(&e.cut), [0, 1, 1, 0, 0, 1]);
        assert_eq!(e.mean_promo_len[4], 2.0);
    }

    #[test]
    fn a_small_or_lasting_unflagged_drop_is_a_price_change() {
        let mut rows = vec![(100.0, false); 3];
        // 3% lower: not a meaningful move.
        rows.extend([(97.0, false); 3]);
        // 10% lower for good.
        rows.extend(vec![(87.0, false); 40]);
        let e = annotate(&one(&rows));
        assert!(e.cut[..6].iter().all(|c| !c));
        let cut_days = e.cut.iter().filter(|c| **c).count();
        assert_eq!(cut_days, MIN_UNFLAGGED_RUN);
        let last = rows.len() - 1;
        assert!(!e.promo[last]);
        // Forgotten: no promotion has happened as far as the history says.
        assert!(e.since_start[last].is_nan());
        assert_eq!(e.ended[last], 0.0);
        assert_eq!(e.days_since_promo[last], NO_PROMO_YET as f32);
    }

    #[test]
    fn gap_regularity_and_listing_boundaries() {
        // Starts on days 0, 10, 20, 32: gaps 10, 10, 12.
        let mut rows = vec![(100.0, false); 40];
        for start in [0, 10, 20, 32] {
            rows[start] = (100.0, true);
        }
        let mut s = one(&rows);
        let e = annotate(&s);
        let want = {
            let m = 32.0 / 3.0;
            (((10.0 - m) * (10.0 - m) * 2.0 + (12.0 - m) * (12.0 - m)) / 2.0f64).sqrt()
        };
        assert!((f64::from(e.gap_sd[39]) - want).abs() < 1e-4);
        assert!(e.gap_sd[25].is_nan() || e.gap_sd[25] == 0.0);
        // A second listing starts afresh.
        s.listing_id.extend([2, 2]);
        s.day.extend([0, 1]);
        s.price.extend([50.0, 50.0]);
        s.promo.extend([false, false]);
        s.observed.extend([true, true]);
        let e = annotate(&s);
        assert!(e.since_start[40].is_nan() && e.cut_share[41].is_nan());
        assert_eq!(e.ended[41], 0.0);
    }
}
