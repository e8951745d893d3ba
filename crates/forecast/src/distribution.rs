//! The predictive distribution behind a recommendation's claim, its
//! confidence and its forecast band.
//!
//! Every labelled training day had a claim (an action) and a calibrated
//! confidence in it, and then a known future: the price `k` days later, as a
//! ratio to the price the claim was about. Days whose claims were alike
//! (same action, confidence in the same tenth) form one empirical
//! distribution of those futures; the share of them whose claim came true
//! is what the confidence was calibrated to, and the band for day `k` is
//! the central [`BAND_COVERAGE`] of their ratios at `k`. Claim, confidence
//! and band are thus read off the same outcomes, and [`consistent_band`]
//! makes sure rounding and sparse cells never let them contradict each
//! other.

use serde::{Deserialize, Serialize};

use super::recommend::{Action, Claim, ForecastPoint};

/// The share of outcomes the band is meant to hold.
pub const BAND_COVERAGE: f64 = 0.8;

/// A cell with fewer outcomes than this borrows from its action's cells.
const MIN_CELL: usize = 40;

/// Confidence tenths per action.
const BUCKETS: usize = 10;

/// A band's (lower, upper) ratios to the claim's price, per day ahead;
/// None where too few outcomes were seen.
pub type DayBands = Vec<Option<(f64, f64)>>;

/// Quantiles of the ratio (price `k` days later / claim price): per action,
/// per confidence tenth, per day ahead, `(lower, upper)`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcomes {
    /// `cells[action][bucket][k - 1]`, None where too few outcomes.
    pub cells: Vec<Vec<DayBands>>,
    /// Per action and day ahead, over all its confidences.
    pub pooled: Vec<DayBands>,
    /// Per day ahead, over everything.
    pub overall: DayBands,
}

fn bucket(confidence: f64) -> usize {
    ((confidence * BUCKETS as f64).floor().max(0.0) as usize).min(BUCKETS - 1)
}

/// Central-coverage quantiles of `values` (sorted in place); None if
/// fewer than `MIN_CELL`.
fn interval(values: &mut [f64]) -> Option<(f64, f64)> {
    if values.len() < MIN_CELL {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let tail = (1.0 - BAND_COVERAGE) / 2.0;
    let at = |q: f64| {
        let pos = q * (values.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        values[lo] + (values[hi] - values[lo]) * (pos - lo as f64)
    };
    Some((at(tail), at(1.0 - tail)))
}

/// One labelled day: its claim's action and confidence, and the ratios
/// of the price `k` days later (k = 1..=horizon; NaN where not observed)
/// to the claim's price.
pub struct Example {
    pub action: Action,
    pub confidence: f64,
    pub ratios: Vec<f64>,
}

impl Outcomes {
    pub fn fit(examples: &[Example], horizon: usize) -> Self {
        let mut cells = vec![vec![vec![Vec::new(); horizon]; BUCKETS]; 3];
        for e in examples {
            let b = bucket(e.confidence);
            for (k, r) in e.ratios.iter().enumerate().take(horizon) {
                if r.is_finite() {
                    cells[e.action.index()][b][k].push(*r);
                }
            }
        }
        let pooled_values: Vec<Vec<Vec<f64>>> = cells
            .iter()
            .map(|action| {
                (0..horizon)
                    .map(|k| action.iter().flat_map(|b| b[k].iter().copied()).collect())
                    .collect()
            })
            .collect();
        let overall = (0..horizon)
            .map(|k| {
                let mut all: Vec<f64> = pooled_values.iter().flat_map(|a| a[k].clone()).collect();
                interval(&mut all)
            })
            .collect();
        Self {
            pooled: pooled_values
                .into_iter()
                .map(|a| a.into_iter().map(|mut v| interval(&mut v)).collect())
                .collect(),
            cells: cells
                .into_iter()
                .map(|a| {
                    a.into_iter()
                        .map(|b| b.into_iter().map(|mut v| interval(&mut v)).collect())
                        .collect()
                })
                .collect(),
            overall,
        }
    }

    /// The band's ratios for a claim stated with `confidence`, `k` days
    /// ahead; None when nothing was learned.
    pub fn ratios(&self, action: Action, confidence: f64, k: usize) -> Option<(f64, f64)> {
        let a = action.index();
        let day = k.checked_sub(1)?;
        let cell = self
            .cells
            .get(a)
            .and_then(|b| b.get(bucket(confidence)))
            .and_then(|d| d.get(day))
            .copied()
            .flatten();
        cell.or_else(|| {
            self.pooled
                .get(a)
                .and_then(|d| d.get(day))
                .copied()
                .flatten()
        })
        .or_else(|| self.overall.get(day).copied().flatten())
    }
}

/// Makes a band agree with the claim beside it: a claim stated at 90% or
/// more leaves at most a tenth of outcomes outside what it says, so the
/// band (which leaves out a tenth on each side) must not reach beyond it:
/// a likely buy_now band does not reach below the price paid; a likely hold
/// band stays within its amount; and a likely wait band reaches down to
/// the drop it expects by the last day. The point stays inside the band.
pub fn consistent_band(claim: &Claim, confidence: f64, path: &mut [ForecastPoint]) {
    let price = claim.price as f64;
    let amount = claim.amount as f64;
    let last = path.len().saturating_sub(1);
    for (k, p) in path.iter_mut().enumerate() {
        p.lower = p.lower.max(1.0);
        match claim.action {
            Action::BuyNow if confidence >= 0.9 => {
                p.lower = p.lower.max(price);
                p.upper = p.upper.max(p.lower);
            }
            Action::Hold if confidence >= 0.9 => {
                let (lo, hi) = ((price - amount).max(1.0), price + amount);
                p.lower = p.lower.clamp(lo, hi);
                p.upper = p.upper.clamp(lo, hi);
            }
            Action::Wait if confidence >= 0.5 && k == last => {
                p.lower = p.lower.min((price - amount).max(1.0));
            }
            _ => {}
        }
        let (lo, hi) = (p.lower.min(p.upper), p.lower.max(p.upper));
        p.lower = lo;
        p.upper = hi;
        p.predicted = p.predicted.clamp(lo, hi);
    }
}

/// Whether a band says something its claim rules out (what
/// [`consistent_band`] prevents).
pub fn disagrees(claim: &Claim, confidence: f64, path: &[ForecastPoint]) -> bool {
    let price = claim.price as f64;
    let amount = claim.amount as f64;
    let inside = path
        .iter()
        .all(|p| p.lower <= p.predicted && p.predicted <= p.upper);
    !inside
        || match claim.action {
            Action::BuyNow => confidence >= 0.9 && path.iter().any(|p| p.lower < price),
            Action::Hold => {
                confidence >= 0.9
                    && path
                        .iter()
                        .any(|p| p.lower < (price - amount).max(1.0) || p.upper > price + amount)
            }
            Action::Wait => {
                confidence >= 0.5
                    && path
                        .last()
                        .is_some_and(|p| p.lower > (price - amount).max(1.0))
            }
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::lcg;

    #[test]
    fn bands_hold_the_central_share_of_like_outcomes() {
        let mut seed = 3;
        let examples: Vec<Example> = (0..5000)
            .map(|_| Example {
                action: Action::Hold,
                confidence: 0.85,
                ratios: vec![0.9 + 0.2 * lcg(&mut seed); 7],
            })
            .collect();
        let o = Outcomes::fit(&examples, 7);
        let (lo, hi) = o.ratios(Action::Hold, 0.87, 3).unwrap();
        assert!(
            (lo - 0.92).abs() < 0.01 && (hi - 1.08).abs() < 0.01,
            "{lo} {hi}"
        );
        // Another tenth, or another action, borrows from what is known.
        assert_eq!(o.ratios(Action::Hold, 0.2, 3), Some((lo, hi)));
        assert!(o.ratios(Action::BuyNow, 0.2, 3).is_some());
        assert!(Outcomes::default().ratios(Action::Hold, 0.5, 1).is_none());
    }

    /// Property: whatever the claim, confidence and band, after
    /// `consistent_band` they never disagree.
    #[test]
    fn claim_and_band_never_disagree() {
        let mut seed = 17;
        for _ in 0..20_000 {
            let action = Action::ALL[(lcg(&mut seed) * 3.0) as usize % 3];
            let price = 20 + (lcg(&mut seed) * 400.0) as i64;
            let amount = 1 + (lcg(&mut seed) * 60.0) as i64;
            let claim = Claim {
                action,
                price,
                regular: price + amount,
                amount,
                horizon: 7,
            };
            let confidence = lcg(&mut seed);
            let mut path: Vec<ForecastPoint> = (0..7)
                .map(|_| {
                    let a = price as f64 * (0.5 + lcg(&mut seed));
                    let b = price as f64 * (0.5 + lcg(&mut seed));
                    ForecastPoint {
                        predicted: price as f64 * (0.5 + lcg(&mut seed)),
                        lower: a.min(b),
                        upper: a.max(b),
                    }
                })
                .collect();
            consistent_band(&claim, confidence, &mut path);
            assert!(
                !disagrees(&claim, confidence, &path),
                "{claim:?} {confidence} {path:?}"
            );
        }
    }
}
