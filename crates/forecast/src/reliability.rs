//! The reliability table every run stores: how often claims stated with a
//! given confidence came true, measured out of sample on the history the
//! run already has.
//!
//! A run's own claims are about the days after its history ends, so none
//! of them can be checked when it is made. Instead the method is applied
//! as it would have been [`WINDOW_DAYS`] + horizon days ago: the models
//! (logistic fit and isotonic calibration alike) are trained only on days
//! whose whole horizon ended before a cut-off, then state their claims on
//! each observed day of the window that follows, and every claim is
//! scored against what the shelf did next. No scored day, and no day of
//! its future, was seen by the models that stated it. It is the last block
//! of the walk-forward backtest (`backtest`), measured at every run.

use shelfwatch_store::calibration::CalibrationBin;

use super::load;
use super::model::{Calibration, calibration};
use super::recommend::Action;
use super::{Frame, Models, Params};

/// Claims made on this many days before the latest whose outcome is known
/// are scored (the backtest's refit block).
pub const WINDOW_DAYS: i32 = super::backtest::REFIT_DAYS;

/// What the run measured: the days the scored claims were made on, and the
/// calibration of every claim and of each action's.
#[derive(Debug, Clone)]
pub struct Measured {
    pub claims_from: i32,
    pub claims_until: i32,
    pub all: Calibration,
    pub actions: Vec<(Action, Calibration)>,
}

/// Measures calibration on the latest [`WINDOW_DAYS`] days of `frame`
/// whose outcome is known by `last_day`. None when no claim could be
/// scored (a history shorter than the window and a horizon, or with
/// nothing observed in it). CPU-bound: call off the async runtime.
pub fn measure(frame: &Frame, params: &Params, last_day: i32) -> Option<Measured> {
    let h = params.horizon;
    let horizon_days = i32::try_from(h).ok()?;
    // Claims made on [cutoff, last_day - horizon] have a known outcome;
    // the models learn only from days whose outcome was known before the
    // cut-off.
    let claims_until = last_day - horizon_days;
    let cutoff = claims_until - WINDOW_DAYS + 1;
    let first_day = frame.day.iter().copied().min()?;
    if cutoff <= first_day {
        return None;
    }
    let models = Models::train(frame, params, |i| frame.day[i] + horizon_days < cutoff);
    let mut all = Vec::new();
    let mut by_action: [Vec<(f64, bool)>; 3] = Default::default();
    let (mut from, mut until) = (i32::MAX, i32::MIN);
    for i in 0..frame.len() {
        if frame.day[i] < cutoff || !frame.judgeable(i) {
            continue;
        }
        let (claim, p) = models.recommend(frame, i, h);
        let truth = claim.came_true(frame.future_min[i], frame.future_max[i]);
        all.push((p, truth));
        by_action[claim.action.index()].push((p, truth));
        from = from.min(frame.day[i]);
        until = until.max(frame.day[i]);
    }
    if all.is_empty() {
        return None;
    }
    // Only the reliability table, ECE and Brier score are read: the
    // reference rate (which would feed a Brier skill) is not used.
    let score = |pairs: &[(f64, bool)]| calibration(pairs, 0.5);
    Some(Measured {
        claims_from: from,
        claims_until: until,
        all: score(&all),
        actions: Action::ALL
            .iter()
            .map(|a| (*a, score(&by_action[a.index()])))
            .collect(),
    })
}

impl Measured {
    /// The rows stored for the run: every bin with claims, overall ("all")
    /// and per action. The mean stated confidence lies in its bin (the
    /// bin is chosen by `floor(10 p)`, which float rounding can put one
    /// unit in the last place off).
    pub fn bins(&self) -> Vec<CalibrationBin> {
        let (Some(from), Some(until)) = (
            load::day_to_date(self.claims_from),
            load::day_to_date(self.claims_until),
        ) else {
            return Vec::new();
        };
        std::iter::once(("all", &self.all))
            .chain(self.actions.iter().map(|(a, c)| (a.as_str(), c)))
            .flat_map(|(action, c)| {
                c.reliability.iter().map(move |b| CalibrationBin {
                    action: action.to_owned(),
                    bin_low: b.lower,
                    bin_high: b.upper,
                    stated_mean: b.mean_stated.clamp(b.lower, b.upper),
                    observed_rate: b.observed,
                    n: i32::try_from(b.count).unwrap_or(i32::MAX),
                    claims_from: from,
                    claims_until: until,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::lcg;

    /// Listings on a regular promotion cycle, some seen every day.
    fn history(days: i32) -> crate::features::DailySeries {
        let mut seed = 7;
        let mut b = load::Builder::new(days - 1, 7);
        for id in 0..30 {
            let regular = (80.0 + 200.0 * lcg(&mut seed)).round();
            let cycle = 15 + (lcg(&mut seed) * 30.0) as i32;
            let offset = (lcg(&mut seed) * cycle as f64) as i32;
            for day in 0..days {
                let on = (day + offset) % cycle < 5 && id % 4 != 0;
                let price = if on { (regular * 0.8).round() } else { regular };
                b.push(id, day, price, on);
            }
        }
        b.finish()
    }

    #[test]
    fn scores_only_the_window_after_the_cut_off() {
        let params = Params::default();
        let days = 150;
        let frame = Frame::compute(history(days), &params).unwrap();
        let m = measure(&frame, &params, days - 1).expect("claims scored");
        // Claims made on the last WINDOW_DAYS days whose outcome is known.
        assert_eq!(m.claims_until, days - 1 - 7);
        assert_eq!(m.claims_from, m.claims_until - WINDOW_DAYS + 1);
        assert_eq!(m.all.claims, 30 * WINDOW_DAYS as usize);
        let per_action: usize = m.actions.iter().map(|(_, c)| c.claims).sum();
        assert_eq!(per_action, m.all.claims);
        let bins = m.bins();
        let stored: i32 = bins.iter().filter(|b| b.action == "all").map(|b| b.n).sum();
        assert_eq!(stored as usize, m.all.claims);
        for b in &bins {
            assert!(b.n > 0, "{b:?}");
            assert!(
                b.bin_low <= b.stated_mean && b.stated_mean <= b.bin_high,
                "{b:?}"
            );
            assert!((0.0..=1.0).contains(&b.observed_rate), "{b:?}");
        }
    }

    #[test]
    fn a_history_shorter_than_window_and_horizon_measures_nothing() {
        let params = Params::default();
        let days = WINDOW_DAYS + 7;
        let frame = Frame::compute(history(days), &params).unwrap();
        assert!(measure(&frame, &params, days - 1).is_none());
    }
}
