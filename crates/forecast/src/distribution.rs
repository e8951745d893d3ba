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

/// A band as ratios to the claim's price, with the share of each end's
/// point mass that belongs to it (see [`ForecastPoint`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Band {
    pub lower: f64,
    pub upper: f64,
    pub lower_share: f64,
    pub upper_share: f64,
}

/// Bands per day ahead; None where too few outcomes were seen.
pub type DayBands = Vec<Option<Band>>;

/// Ratios closer than this are one price (half a penny on a pound).
const SAME_RATIO: f64 = 0.005;

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

/// The central [`BAND_COVERAGE`] of `values` (sorted in place): the
/// quantiles at its tails, and the share of each end's point mass the
/// band needs to hold that much (so that a band around a price that
/// rarely moves does not hold more than it says). None if fewer than
/// `MIN_CELL` values.
fn interval(values: &mut [f64]) -> Option<Band> {
    if values.len() < MIN_CELL {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len() as f64;
    let tail = (1.0 - BAND_COVERAGE) / 2.0;
    let at = |q: f64| {
        let pos = q * (values.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        values[lo] + (values[hi] - values[lo]) * (pos - lo as f64)
    };
    // The distribution function just below and at `v` (within a
    // rounding of the price).
    let cdf = |v: f64| {
        let below = values.partition_point(|x| *x < v - SAME_RATIO) as f64 / n;
        let upto = values.partition_point(|x| *x <= v + SAME_RATIO) as f64 / n;
        (below, upto)
    };
    // Of the mass at an end spanning [below, upto] of the distribution,
    // the share that lies within the central [tail, 1 - tail].
    let share = |(below, upto): (f64, f64)| {
        if upto - below <= 1.0 / n {
            return 1.0;
        }
        ((upto.min(1.0 - tail) - below.max(tail)) / (upto - below)).clamp(0.0, 1.0)
    };
    let (lower, upper) = (at(tail), at(1.0 - tail));
    let (lower_share, upper_share) = if upper - lower < SAME_RATIO {
        let s = share(cdf(lower));
        (s, s)
    } else {
        (share(cdf(lower)), share(cdf(upper)))
    };
    Some(Band {
        lower,
        upper,
        lower_share,
        upper_share,
    })
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

    /// The band (as ratios) for a claim stated with `confidence`, `k` days
    /// ahead; None when nothing was learned.
    pub fn ratios(&self, action: Action, confidence: f64, k: usize) -> Option<Band> {
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
/// the drop it expects by the last day. The band reaches out to the point
/// forecast where it did not hold it (the point is read from a finer
/// model of the same outcomes); a likely claim's limits win over the
/// point. An end moved by any of these is closed: its share is 1.
pub fn consistent_band(claim: &Claim, confidence: f64, path: &mut [ForecastPoint]) {
    let price = claim.price as f64;
    let amount = claim.amount as f64;
    let last = path.len().saturating_sub(1);
    for (k, p) in path.iter_mut().enumerate() {
        let (was_lower, was_upper) = (p.lower, p.upper);
        p.lower = p.lower.max(1.0).min(p.predicted);
        p.upper = p.upper.max(p.predicted);
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
        if (p.lower - was_lower).abs() >= 0.5 {
            p.lower_share = 1.0;
        }
        if (p.upper - was_upper).abs() >= 0.5 {
            p.upper_share = 1.0;
        }
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
        let band = o.ratios(Action::Hold, 0.87, 3).unwrap();
        let (lo, hi) = (band.lower, band.upper);
        assert!(
            (lo - 0.92).abs() < 0.01 && (hi - 1.08).abs() < 0.01,
            "{lo} {hi}"
        );
        // Outcomes within a rounding of an end are split: about half of
        // them lie beyond the quantile.
        assert!((band.lower_share - 0.5).abs() < 0.1, "{band:?}");
        assert!((band.upper_share - 0.5).abs() < 0.1, "{band:?}");
        // Another tenth, or another action, borrows from what is known.
        assert_eq!(o.ratios(Action::Hold, 0.2, 3), Some(band));
        assert!(o.ratios(Action::BuyNow, 0.2, 3).is_some());
        assert!(Outcomes::default().ratios(Action::Hold, 0.5, 1).is_none());
    }

    #[test]
    fn a_sticky_price_band_holds_only_the_share_of_its_point_mass_it_needs() {
        // 90% of the outcomes: the price did not move; the rest spread
        // from 0.7 to 1.3.
        let mut seed = 5;
        let examples: Vec<Example> = (0..10_000)
            .map(|i| Example {
                action: Action::Hold,
                confidence: 0.9,
                ratios: vec![
                    if i % 10 == 0 {
                        0.7 + 0.6 * lcg(&mut seed)
                    } else {
                        1.0
                    };
                    7
                ],
            })
            .collect();
        let band = Outcomes::fit(&examples, 7)
            .ratios(Action::Hold, 0.9, 1)
            .unwrap();
        assert_eq!((band.lower, band.upper), (1.0, 1.0));
        // The central 80% of the probability is 0.8 of the 0.9 at 1.0
        // (plus the few spread outcomes within a rounding of it).
        assert!((band.lower_share - 0.8 / 0.9).abs() < 0.02, "{band:?}");
        let point = ForecastPoint {
            predicted: 100.0,
            lower: 100.0,
            upper: 100.0,
            lower_share: band.lower_share,
            upper_share: band.upper_share,
        };
        // The band's expected coverage over these outcomes is nominal.
        let covered: f64 = examples
            .iter()
            .map(|e| point.covers(100.0 * e.ratios[0]))
            .sum::<f64>()
            / examples.len() as f64;
        assert!((covered - BAND_COVERAGE).abs() < 0.01, "{covered}");
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
                        lower_share: lcg(&mut seed),
                        upper_share: lcg(&mut seed),
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
