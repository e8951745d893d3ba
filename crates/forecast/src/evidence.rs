//! Each listing's own track record, as of each day: how often, on its past
//! days whose outcome is known by now, the price moved meaningfully within
//! the horizon, fell, or (on a cut day) went back to the regular price.
//!
//! A day's outcome is known `horizon` days later, so row `i` counts only
//! the rows `j <= i - horizon` of the same listing (nothing from the
//! future). Older days count less: each record decays by
//! [`DECAY_PER_DAY`] a day, so a listing whose habits change (promotions
//! that used to last a month and now last a week) is judged mostly by its
//! recent past.

use super::recommend::meaningful_move;

/// Weight of a day's outcome one day later; about a half after 140 days.
pub const DECAY_PER_DAY: f64 = 0.995;

/// A decayed count of outcomes and of those that happened.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    seen: f64,
    happened: f64,
}

impl Tally {
    fn add(&mut self, happened: bool) {
        self.seen += 1.0;
        self.happened += if happened { 1.0 } else { 0.0 };
    }

    fn decay(&mut self, factor: f64) {
        self.seen *= factor;
        self.happened *= factor;
    }

    /// Share that happened, smoothed towards one half; NaN with none seen.
    fn rate(&self) -> f32 {
        if self.seen < 1e-9 {
            f32::NAN
        } else {
            ((self.happened + 0.5) / (self.seen + 1.0)) as f32
        }
    }
}

/// Per-row track record (NaN: nothing known yet).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    /// Share of past observed days after which the price moved by at least
    /// a meaningful amount, up or down, within the horizon.
    pub moved: Vec<f32>,
    /// Share of past observed days after which it fell by at least a
    /// meaningful amount within the horizon.
    pub fell: Vec<f32>,
    /// [`Evidence::moved`] on past observed days without a cut only: the
    /// record of the days a hold is said on (a cut day mostly moves when
    /// its promotion ends).
    pub moved_uncut: Vec<f32>,
    /// Share of past observed cut days after which it went lower still
    /// within the horizon.
    pub lower_after_cut: Vec<f32>,
    /// Share of past observed cut days whose price `horizon` days later
    /// was back at (closer to) the regular price.
    pub reverted: Vec<f32>,
    /// Decayed number of past days with a known outcome.
    pub weight: Vec<f32>,
    /// Days since the regular price last changed (NaN before a change).
    pub since_regular_change: Vec<f32>,
    /// Mean days between changes of the regular price (NaN before two).
    pub regular_change_gap: Vec<f32>,
    /// Today's price against the highest and against the mean of its
    /// observed prices over the last [`PRICE_WINDOW_DAYS`] days (log
    /// ratios, at most 0 for the highest): where the price stands in its
    /// own range. A price at the top of its range can only stay or fall.
    pub below_recent_max: Vec<f32>,
    pub against_recent_mean: Vec<f32>,
}

/// The window of the listing's own prices that today's is set against.
pub const PRICE_WINDOW_DAYS: usize = 182;

/// The columns [`annotate`] reads, one row per (listing, day), dense and
/// sorted by listing and day.
pub struct Rows<'a> {
    pub listing_id: &'a [i64],
    pub price: &'a [f64],
    pub observed: &'a [bool],
    pub regular: &'a [f64],
    pub cut: &'a [bool],
    pub future_min: &'a [f64],
    pub future_max: &'a [f64],
    /// Days to the next observed row (an outcome with no observed day in
    /// its horizon is not known).
    pub next_observed: &'a [u32],
}

/// Reads each listing's track record, `horizon` days behind each row.
pub fn annotate(r: &Rows<'_>, horizon: usize) -> Evidence {
    let n = r.listing_id.len();
    let mut e = Evidence {
        moved: Vec::with_capacity(n),
        fell: Vec::with_capacity(n),
        moved_uncut: Vec::with_capacity(n),
        lower_after_cut: Vec::with_capacity(n),
        reverted: Vec::with_capacity(n),
        weight: Vec::with_capacity(n),
        since_regular_change: Vec::with_capacity(n),
        regular_change_gap: Vec::with_capacity(n),
        below_recent_max: Vec::with_capacity(n),
        against_recent_mean: Vec::with_capacity(n),
    };
    // Observed rows of the window, as a queue whose prices fall from front
    // to back (the front is the highest), and a running sum and count.
    let mut highest: std::collections::VecDeque<usize> = std::collections::VecDeque::new();
    let (mut window_sum, mut window_count) = (0.0f64, 0usize);
    let mut last_change: Option<usize> = None;
    let (mut gaps, mut gap_sum) = (0usize, 0.0f64);
    let mut start = 0;
    let [
        mut moved,
        mut fell,
        mut moved_uncut,
        mut lower,
        mut reverted,
    ] = [Tally::default(); 5];
    for i in 0..n {
        if i == 0 || r.listing_id[i] != r.listing_id[i - 1] {
            start = i;
            [moved, fell, moved_uncut, lower, reverted] = [Tally::default(); 5];
            last_change = None;
            (gaps, gap_sum) = (0, 0.0);
            highest.clear();
            (window_sum, window_count) = (0.0, 0);
        }
        // The row leaving the window today, then today's.
        if let Some(old) = i.checked_sub(PRICE_WINDOW_DAYS).filter(|o| *o >= start)
            && r.observed[old]
        {
            window_sum -= r.price[old];
            window_count -= 1;
        }
        while highest.front().is_some_and(|f| f + PRICE_WINDOW_DAYS <= i) {
            highest.pop_front();
        }
        if r.observed[i] {
            window_sum += r.price[i];
            window_count += 1;
            while highest.back().is_some_and(|b| r.price[*b] <= r.price[i]) {
                highest.pop_back();
            }
            highest.push_back(i);
        }
        let log_ratio = |reference: f64| {
            if reference > 0.0 && r.price[i] > 0.0 {
                (r.price[i] / reference).ln() as f32
            } else {
                f32::NAN
            }
        };
        e.below_recent_max
            .push(highest.front().map_or(f32::NAN, |f| log_ratio(r.price[*f])));
        e.against_recent_mean.push(if window_count > 0 {
            log_ratio(window_sum / window_count as f64)
        } else {
            f32::NAN
        });
        if i > start && (r.regular[i] - r.regular[i - 1]).abs() >= 0.5 {
            if let Some(last) = last_change {
                gaps += 1;
                gap_sum += (i - last) as f64;
            }
            last_change = Some(i);
        }
        for t in [
            &mut moved,
            &mut fell,
            &mut moved_uncut,
            &mut lower,
            &mut reverted,
        ] {
            t.decay(DECAY_PER_DAY);
        }
        // The day whose outcome became known today.
        if let Some(j) = i.checked_sub(horizon).filter(|j| *j >= start)
            && r.observed[j]
            && r.next_observed[j] as usize <= horizon
            && r.future_min[j].is_finite()
            && r.future_max[j].is_finite()
        {
            let price = r.price[j];
            let step = meaningful_move(price) as f64;
            let did_move = r.future_min[j] <= price - step || r.future_max[j] >= price + step;
            moved.add(did_move);
            fell.add(r.future_min[j] <= price - step);
            if !r.cut[j] {
                moved_uncut.add(did_move);
            }
            if r.cut[j] {
                lower.add(r.future_min[j] < price);
                let later = r.price[i];
                reverted.add((later - r.regular[j]).abs() < (later - price).abs());
            }
        }
        e.moved.push(moved.rate());
        e.fell.push(fell.rate());
        e.moved_uncut.push(moved_uncut.rate());
        e.lower_after_cut.push(lower.rate());
        e.reverted.push(reverted.rate());
        e.weight.push(moved.seen as f32);
        e.since_regular_change
            .push(last_change.map_or(f32::NAN, |l| (i - l) as f32));
        e.regular_change_gap.push(if gaps > 0 {
            (gap_sum / gaps as f64) as f32
        } else {
            f32::NAN
        });
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn todays_price_is_set_against_its_recent_range() {
        // 100 for a year, 80 for a day, then 90; a price of 150 long ago
        // has left the window.
        let mut price = vec![100.0; 400];
        price[0] = 150.0;
        price[300] = 80.0;
        for p in &mut price[301..] {
            *p = 90.0;
        }
        let n = price.len();
        let rows = Rows {
            listing_id: &vec![1; n],
            price: &price,
            observed: &vec![true; n],
            regular: &vec![100.0; n],
            cut: &vec![false; n],
            future_min: &vec![f64::NAN; n],
            future_max: &vec![f64::NAN; n],
            next_observed: &vec![1; n],
        };
        let e = annotate(&rows, 7);
        assert!(e.below_recent_max[0].abs() < 1e-6);
        assert!((e.below_recent_max[100] - (100.0f32 / 150.0).ln()).abs() < 1e-4);
        // Day 200: the 150 is more than PRICE_WINDOW_DAYS old.
        assert!(e.below_recent_max[200].abs() < 1e-6);
        assert!((e.below_recent_max[300] - 0.8f32.ln()).abs() < 1e-4);
        assert!(e.against_recent_mean[300] < e.below_recent_max[300] + 0.01);
        // Later, the 100s still in the window are the top of the range,
        // and the mean lies between.
        assert!((e.below_recent_max[399] - 0.9f32.ln()).abs() < 1e-4);
        assert!(e.against_recent_mean[399] > 0.9f32.ln() + 0.01);
        assert!(e.against_recent_mean[399] < -0.01);
    }

    #[test]
    fn only_outcomes_known_by_today_count() {
        // Flat at 100, then a cut to 80 on day 10 that lasts 3 days.
        let mut price = vec![100.0; 20];
        for p in &mut price[10..13] {
            *p = 80.0;
        }
        let h = 2;
        // The lowest or highest of the next `h` prices (NaN past the end).
        let future = |f: fn(f64, f64) -> f64, init: f64| -> Vec<f64> {
            (0..20)
                .map(|i| {
                    if i + h < 20 {
                        price[i + 1..=i + h].iter().copied().fold(init, f)
                    } else {
                        f64::NAN
                    }
                })
                .collect()
        };
        let fmin = future(f64::min, f64::INFINITY);
        let fmax = future(f64::max, f64::NEG_INFINITY);
        let cut: Vec<bool> = price.iter().map(|p| *p < 100.0).collect();
        let rows = Rows {
            listing_id: &[1; 20],
            price: &price,
            observed: &[true; 20],
            regular: &[100.0; 20],
            cut: &cut,
            future_min: &fmin,
            future_max: &fmax,
            next_observed: &[1; 20],
        };
        let e = annotate(&rows, h);
        // Nothing known on the first two days.
        assert!(e.moved[0].is_nan() && e.moved[1].is_nan());
        // Day 8 saw the cut coming on day 10, but that is known on day 10.
        assert!(e.moved[9] < 0.1, "{}", e.moved[9]);
        assert!(e.moved[10] > e.moved[9]);
        assert!(e.fell[10] > e.fell[9]);
        // The days before the cut were uncut and saw it coming: their
        // record counts the move; the cut days' own moves do not count.
        assert!(e.moved_uncut[10] > e.moved_uncut[9]);
        // Day 12 (cut) moved by day 14: the whole record learns it, the
        // uncut record does not.
        assert!(e.moved[14] - e.moved[13] > 0.03, "{:?}", &e.moved[13..15]);
        assert!(
            (e.moved_uncut[14] - e.moved_uncut[13]).abs() < 0.01,
            "{:?}",
            &e.moved_uncut[13..15]
        );
        // The cut's first day (10) reverted by day 12? No, still cut on 12.
        assert!(e.reverted[11].is_nan());
        assert!(e.reverted[12] < 0.5);
        // Day 11's outcome (back at 100 on day 13) is known on day 13.
        assert!(e.reverted[13] > e.reverted[12]);
        assert!(e.lower_after_cut[14] < 0.5);
    }
}
