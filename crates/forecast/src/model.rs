//! The confidence model: logistic regression fitted by Newton's method
//! (iteratively reweighted least squares) with a small ridge penalty, and
//! the scores that say whether its probabilities mean what they say.

// Index loops read like the matrix algebra they implement.
#![allow(clippy::needless_range_loop)]

use serde::{Deserialize, Serialize};

/// A fitted logistic regression: `p = 1 / (1 + exp(-(w . x)))`, with the
/// features standardised by the training means and scales first. The
/// first feature is the intercept and is not standardised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logistic {
    pub weights: Vec<f64>,
    pub means: Vec<f64>,
    pub scales: Vec<f64>,
    /// Training examples and the share whose claim came true.
    pub examples: usize,
    pub base_rate: f64,
}

impl Logistic {
    /// Fits `labels` (claim came true) on `rows` of features (without the
    /// intercept, which is added). With no examples, or only one outcome,
    /// the model predicts the (smoothed) base rate everywhere.
    pub fn fit(rows: &[Vec<f64>], labels: &[bool], ridge: f64) -> Self {
        Self::fit_weighted(rows, labels, &[], ridge)
    }

    /// [`Logistic::fit`] with a weight per example (`weights[i]`; 1 where
    /// not given): an example of weight 0.5 counts half in the likelihood.
    pub fn fit_weighted(rows: &[Vec<f64>], labels: &[bool], weights: &[f64], ridge: f64) -> Self {
        let n = rows.len().min(labels.len());
        let weight = |i: usize| weights.get(i).copied().unwrap_or(1.0);
        let k = rows.first().map_or(0, Vec::len);
        let positives = labels.iter().take(n).filter(|y| **y).count();
        // Laplace-smoothed, so a tiny sample never claims 0 or 1.
        let base_rate = (positives as f64 + 1.0) / (n as f64 + 2.0);
        let mut means = vec![0.0; k];
        let mut scales = vec![1.0; k];
        for j in 0..k {
            let mean = rows.iter().take(n).map(|r| r[j]).sum::<f64>() / n.max(1) as f64;
            let var = rows
                .iter()
                .take(n)
                .map(|r| (r[j] - mean).powi(2))
                .sum::<f64>()
                / n.max(1) as f64;
            means[j] = mean;
            scales[j] = if var > 1e-12 { var.sqrt() } else { 1.0 };
        }
        let intercept = (base_rate / (1.0 - base_rate)).ln();
        let mut weights = vec![0.0; k + 1];
        weights[0] = intercept;
        let mut model = Self {
            weights,
            means,
            scales,
            examples: n,
            base_rate,
        };
        if n == 0 || positives == 0 || positives == n {
            return model;
        }
        let dim = k + 1;
        let x: Vec<Vec<f64>> = rows.iter().take(n).map(|r| model.design(r)).collect();
        for _ in 0..25 {
            // Gradient and Hessian of the penalised negative log-likelihood.
            let mut grad = vec![0.0; dim];
            let mut hess = vec![vec![0.0; dim]; dim];
            for (i, (xi, yi)) in x.iter().zip(labels).enumerate() {
                let p = sigmoid(dot(&model.weights, xi));
                let y = if *yi { 1.0 } else { 0.0 };
                let c = weight(i);
                let w = (c * p * (1.0 - p)).max(1e-9);
                for a in 0..dim {
                    grad[a] += c * (p - y) * xi[a];
                    for b in a..dim {
                        hess[a][b] += w * xi[a] * xi[b];
                    }
                }
            }
            for a in 0..dim {
                for b in 0..a {
                    hess[a][b] = hess[b][a];
                }
                if a > 0 {
                    grad[a] += ridge * model.weights[a];
                    hess[a][a] += ridge;
                }
            }
            let Some(step) = solve(hess, grad) else {
                break;
            };
            let mut moved = 0.0f64;
            for (w, s) in model.weights.iter_mut().zip(&step) {
                *w -= s;
                moved = moved.max(s.abs());
            }
            if moved < 1e-8 {
                break;
            }
        }
        model
    }

    fn design(&self, row: &[f64]) -> Vec<f64> {
        let mut x = Vec::with_capacity(row.len() + 1);
        x.push(1.0);
        for (j, v) in row.iter().enumerate() {
            let v = if v.is_finite() { *v } else { self.means[j] };
            x.push((v - self.means[j]) / self.scales[j]);
        }
        x
    }

    /// The probability that the claim comes true, in (0, 1).
    pub fn predict(&self, row: &[f64]) -> f64 {
        if row.len() + 1 != self.weights.len() {
            return self.base_rate;
        }
        sigmoid(dot(&self.weights, &self.design(row))).clamp(0.001, 0.999)
    }
}

/// A monotone map from a model's probability to the frequency observed on
/// held-out examples (isotonic regression by pool-adjacent-violators).
/// `upper[k]` is the largest input probability of block `k`, `value[k]` its
/// (smoothed) observed frequency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Isotonic {
    pub upper: Vec<f64>,
    pub value: Vec<f64>,
}

impl Isotonic {
    /// Fits on `(predicted, came_true)` pairs. With fewer than `min_pairs`
    /// pairs it is the identity (returns None).
    pub fn fit(pairs: Vec<(f64, bool)>, min_pairs: usize) -> Option<Self> {
        let weighted = pairs.into_iter().map(|(p, y)| (p, y, 1.0)).collect();
        Self::fit_weighted(weighted, min_pairs)
    }

    /// [`Isotonic::fit`] with a weight per pair `(predicted, came_true,
    /// weight)`: a pair of weight 0.5 counts half in its block's frequency.
    pub fn fit_weighted(mut pairs: Vec<(f64, bool, f64)>, min_pairs: usize) -> Option<Self> {
        if pairs.len() < min_pairs {
            return None;
        }
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        // Blocks of (weighted sum of outcomes, weight, weighted sum of
        // inputs, largest input).
        let mut blocks: Vec<(f64, f64, f64, f64)> = Vec::new();
        for (p, y, w) in pairs {
            let w = if w.is_finite() { w.max(0.0) } else { 0.0 };
            blocks.push((if y { w } else { 0.0 }, w, w * p, p));
            while blocks.len() > 1 {
                let (s2, n2, p2, u2) = blocks[blocks.len() - 1];
                let (s1, n1, p1, _) = blocks[blocks.len() - 2];
                // Compared as s1 / n1 < s2 / n2 without dividing by a
                // weight of zero.
                if s1 * n2 < s2 * n1 {
                    break;
                }
                blocks.pop();
                let last = blocks.len() - 1;
                blocks[last] = (s1 + s2, n1 + n2, p1 + p2, u2);
            }
        }
        // A small block's frequency is shrunk towards what the model said
        // of it (its mean input, worth `ISOTONIC_PRIOR` examples), not
        // towards one half: that keeps it away from 0 and 1 without pulling
        // every confident block down. A running maximum keeps the values
        // monotone.
        let mut value: Vec<f64> = blocks
            .iter()
            .map(|(s, n, p, u)| {
                let said = if *n > 0.0 { p / n } else { *u };
                (s + ISOTONIC_PRIOR * said) / (n + ISOTONIC_PRIOR)
            })
            .collect();
        for k in 1..value.len() {
            value[k] = value[k].max(value[k - 1]);
        }
        Some(Self {
            upper: blocks.iter().map(|b| b.3).collect(),
            value,
        })
    }

    /// The observed frequency for a model probability `p`, interpolated
    /// linearly between the middles of neighbouring blocks, so that two
    /// listings the model tells apart are not given one plateau value
    /// (still monotone, and equal to a block's frequency at its middle).
    pub fn apply(&self, p: f64) -> f64 {
        let n = self.value.len().min(self.upper.len());
        if n == 0 {
            return p;
        }
        let middle = |k: usize| {
            let lower = if k == 0 {
                self.upper[0]
            } else {
                self.upper[k - 1]
            };
            (lower + self.upper[k]) / 2.0
        };
        let k = self.upper[..n].partition_point(|u| *u < p).min(n - 1);
        let m = middle(k);
        let (a, b) = if p < m {
            (k.saturating_sub(1), k)
        } else {
            (k, (k + 1).min(n - 1))
        };
        let (ma, mb) = (middle(a), middle(b));
        if a == b || mb <= ma {
            return self.value[k];
        }
        let t = ((p - ma) / (mb - ma)).clamp(0.0, 1.0);
        self.value[a] + (self.value[b] - self.value[a]) * t
    }
}

/// A two-parameter map from a model's probability to the frequency
/// observed on held-out examples (Platt scaling): `sigmoid(a + b *
/// logit(p))`. Where held-out examples are few, an isotonic map learns
/// their noise (every block is a step); this one can only tilt and shift
/// the model's probabilities, and is monotone when `b` is positive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Platt {
    pub a: f64,
    pub b: f64,
}

impl Platt {
    /// Fits on `(predicted, came_true, weight)` pairs; None with fewer
    /// than `min_pairs`, or when the fit would reverse the model's order
    /// (b <= 0: the model then tells nothing apart, and the identity is
    /// kept rather than a map that turns it upside down).
    pub fn fit_weighted(pairs: &[(f64, bool, f64)], min_pairs: usize) -> Option<Self> {
        if pairs.len() < min_pairs {
            return None;
        }
        let rows: Vec<Vec<f64>> = pairs.iter().map(|p| vec![logit(p.0)]).collect();
        let labels: Vec<bool> = pairs.iter().map(|p| p.1).collect();
        let weights: Vec<f64> = pairs.iter().map(|p| p.2).collect();
        // A token penalty: two parameters need none, but it keeps Newton's
        // method finite when the outcomes are separable.
        let m = Logistic::fit_weighted(&rows, &labels, &weights, 1e-3);
        let (w0, w1) = (m.weights.first()?, m.weights.get(1)?);
        let (mean, scale) = (m.means.first()?, m.scales.first()?);
        let b = w1 / scale;
        (b > 0.0).then_some(Self {
            a: w0 - b * mean,
            b,
        })
    }

    pub fn apply(&self, p: f64) -> f64 {
        sigmoid(self.a + self.b * logit(p))
    }
}

fn logit(p: f64) -> f64 {
    let p = p.clamp(0.001, 0.999);
    (p / (1.0 - p)).ln()
}

/// A logistic model whose probabilities are recalibrated on held-out
/// examples: by an isotonic map where there are at least
/// [`MIN_ISOTONIC_PAIRS`] of them, by a [`Platt`] map where there are
/// fewer (at most one of the two is set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibrated {
    pub logistic: Logistic,
    pub isotonic: Option<Isotonic>,
    #[serde(default)]
    pub platt: Option<Platt>,
}

impl Calibrated {
    /// Fits the logistic model and the isotonic map that turns its
    /// probabilities into observed frequencies. The map must be learned on
    /// probabilities the model gave to examples it did not see, and every
    /// example is weighted by its age (half per `HALF_LIFE_DAYS`), so the
    /// model follows a change of habits.
    ///
    /// With fewer than `SMALL_SAMPLE` examples, calibration data is scarce:
    /// the examples are cut by `days` (the day each was made) into
    /// `FOLDS` contiguous periods, each period is predicted by a model
    /// fitted on the others (less the `PURGE_DAYS` next to it, whose
    /// outcomes overlap its own), and the map is learned from all of
    /// these out-of-period probabilities, four times as many as one
    /// held-out quarter would give. The ridge penalty (`ridge` times 1,
    /// 10, 100 or 1000) is the one whose out-of-period probabilities have
    /// the lowest log loss, and the final model is fitted on every
    /// example with it.
    ///
    /// With more, the logistic model is fitted on the earlier three
    /// quarters and the map on the latest quarter, days the model never
    /// saw. Neighbouring days of one listing share most of their future,
    /// so periods are contiguous, never interleaved: an interleaved split
    /// would make the model look better calibrated than it is.
    pub fn fit(rows: &[Vec<f64>], labels: &[bool], days: &[i32], ridge: f64) -> Self {
        let n = rows.len().min(labels.len()).min(days.len());
        let mut sorted: Vec<i32> = days[..n].to_vec();
        sorted.sort_unstable();
        let newest = sorted.last().copied().unwrap_or(0);
        let age_weight = |day: i32| 0.5f64.powf(f64::from(newest - day) / HALF_LIFE_DAYS);
        if n < SMALL_SAMPLE {
            let weights: Vec<f64> = days[..n].iter().map(|d| age_weight(*d)).collect();
            if let Some(m) = Self::cross_fit(&rows[..n], &labels[..n], &days[..n], &weights, ridge)
            {
                return m;
            }
        }
        let split = sorted.get(n * 3 / 4).copied().unwrap_or(i32::MAX);
        let (mut fit_rows, mut fit_labels, mut fit_weights, mut held_rows, mut held_labels) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            if days[i] >= split {
                held_rows.push(rows[i].clone());
                held_labels.push(labels[i]);
            } else {
                fit_rows.push(rows[i].clone());
                fit_labels.push(labels[i]);
                fit_weights.push(age_weight(days[i]));
            }
        }
        if fit_rows.is_empty() {
            // Every example from one day: nothing later to calibrate on.
            return Self {
                logistic: Logistic::fit(&held_rows, &held_labels, ridge),
                isotonic: None,
                platt: None,
            };
        }
        // With few examples the penalty matters: try stronger ones and keep
        // the one that predicts the later quarter best. With many it
        // hardly does, and one fit is cheaper.
        let candidates: &[f64] = if fit_rows.len() < SMALL_SAMPLE {
            &[1.0, 10.0, 100.0, 1000.0]
        } else {
            &[1.0]
        };
        let mut logistic = Logistic::fit_weighted(&fit_rows, &fit_labels, &fit_weights, ridge);
        if candidates.len() > 1 && !held_rows.is_empty() {
            let mut best = log_loss(&logistic, &held_rows, &held_labels);
            for factor in &candidates[1..] {
                let m =
                    Logistic::fit_weighted(&fit_rows, &fit_labels, &fit_weights, ridge * factor);
                let loss = log_loss(&m, &held_rows, &held_labels);
                if loss < best {
                    best = loss;
                    logistic = m;
                }
            }
        }
        let pairs = held_rows
            .iter()
            .zip(&held_labels)
            .map(|(r, y)| (logistic.predict(r), *y, 1.0))
            .collect();
        Self::with_map(logistic, pairs)
    }

    /// The cross-fitted calibration of [`Calibrated::fit`]; None when the
    /// examples do not span at least two periods.
    fn cross_fit(
        rows: &[Vec<f64>],
        labels: &[bool],
        days: &[i32],
        weights: &[f64],
        ridge: f64,
    ) -> Option<Self> {
        let n = rows.len();
        if n < MIN_CALIBRATION_PAIRS {
            return None;
        }
        let mut sorted = days.to_vec();
        sorted.sort_unstable();
        // The first day of periods 1..FOLDS.
        let edges: Vec<i32> = (1..FOLDS).map(|f| sorted[n * f / FOLDS]).collect();
        let period: Vec<usize> = days
            .iter()
            .map(|d| edges.partition_point(|e| e <= d))
            .collect();
        // The first and last day of each period that has examples.
        let (mut starts, mut ends): (Vec<Option<i32>>, Vec<Option<i32>>) =
            (vec![None; FOLDS], vec![None; FOLDS]);
        for (p, d) in period.iter().zip(days) {
            starts[*p] = Some(starts[*p].map_or(*d, |s| s.min(*d)));
            ends[*p] = Some(ends[*p].map_or(*d, |e| e.max(*d)));
        }
        if starts.iter().flatten().count() < 2 {
            return None;
        }
        let pick_rows = |idx: &[usize]| idx.iter().map(|i| rows[*i].clone()).collect::<Vec<_>>();
        let pick = |idx: &[usize]| idx.iter().map(|i| labels[*i]).collect::<Vec<_>>();
        let pick_weights = |idx: &[usize]| idx.iter().map(|i| weights[*i]).collect::<Vec<_>>();
        let mut best: Option<(f64, f64, Vec<f64>)> = None;
        for factor in [1.0, 10.0, 100.0, 1000.0] {
            let mut out_of_period = vec![f64::NAN; n];
            for (held, start) in starts.iter().enumerate() {
                let Some(lo) = *start else {
                    continue;
                };
                let hi = ends[held].unwrap_or(lo);
                let train: Vec<usize> = (0..n)
                    .filter(|i| days[*i] < lo - PURGE_DAYS || days[*i] > hi + PURGE_DAYS)
                    .collect();
                if train.is_empty() {
                    continue;
                }
                let m = Logistic::fit_weighted(
                    &pick_rows(&train),
                    &pick(&train),
                    &pick_weights(&train),
                    ridge * factor,
                );
                for i in (0..n).filter(|i| period[*i] == held) {
                    out_of_period[i] = m.predict(&rows[i]);
                }
            }
            let (mut loss, mut total, mut scored) = (0.0, 0.0, 0usize);
            for i in 0..n {
                let p = out_of_period[i];
                if p.is_nan() {
                    continue;
                }
                loss -= weights[i] * if labels[i] { p.ln() } else { (1.0 - p).ln() };
                total += weights[i];
                scored += 1;
            }
            if scored < MIN_CALIBRATION_PAIRS || total <= 0.0 {
                // Too few examples outside the periods to learn a map.
                return None;
            }
            let loss = loss / total;
            if best.as_ref().is_none_or(|b| loss < b.0) {
                best = Some((loss, factor, out_of_period));
            }
        }
        let (_, factor, out_of_period) = best?;
        let pairs = (0..n)
            .filter(|i| !out_of_period[*i].is_nan())
            .map(|i| (out_of_period[i], labels[i], weights[i]))
            .collect();
        Some(Self::with_map(
            Logistic::fit_weighted(rows, labels, weights, ridge * factor),
            pairs,
        ))
    }

    /// `logistic` with the map learned from its held-out `(predicted,
    /// came_true, weight)` pairs: isotonic with at least
    /// [`MIN_ISOTONIC_PAIRS`], Platt with fewer, none with fewer than
    /// [`MIN_CALIBRATION_PAIRS`].
    fn with_map(logistic: Logistic, pairs: Vec<(f64, bool, f64)>) -> Self {
        let (isotonic, platt) = if pairs.len() >= MIN_ISOTONIC_PAIRS {
            (Isotonic::fit_weighted(pairs, MIN_CALIBRATION_PAIRS), None)
        } else {
            (None, Platt::fit_weighted(&pairs, MIN_CALIBRATION_PAIRS))
        };
        Self {
            logistic,
            isotonic,
            platt,
        }
    }

    pub fn predict(&self, row: &[f64]) -> f64 {
        let p = self.logistic.predict(row);
        let mapped = match (&self.isotonic, &self.platt) {
            (Some(iso), _) => iso.apply(p),
            (None, Some(platt)) => platt.apply(p),
            (None, None) => p,
        };
        mapped.clamp(0.001, 0.999)
    }
}

/// An example this many days older than the newest counts half.
pub const HALF_LIFE_DAYS: f64 = 365.0;

/// Below this many examples, `Calibrated::fit` cross-fits its calibration
/// over `FOLDS` periods; below this many fitting examples of the
/// three-quarter split, it chooses the ridge penalty on the later quarter.
pub const SMALL_SAMPLE: usize = 20_000;

/// How many examples the model's own probability is worth in a block of
/// the isotonic map.
pub const ISOTONIC_PRIOR: f64 = 2.0;

/// Fewer held-out probabilities than this learn no isotonic map.
pub const MIN_CALIBRATION_PAIRS: usize = 60;

/// Fewer held-out pairs than this are mapped by Platt scaling, not
/// isotonic regression: with a few hundred, an isotonic map's steps follow
/// the noise of its blocks (on the Dominick's panels, the buy_now models
/// learn from a few hundred days; BENCHMARKS.md, crossfit-9).
pub const MIN_ISOTONIC_PAIRS: usize = 1_000;

/// Contiguous periods of a cross-fitted calibration.
pub const FOLDS: usize = 4;

/// Examples this close (in days) to a held-out period are left out of the
/// model that predicts it: their outcomes overlap the period's own (a
/// claim looks ahead up to its horizon, 7 days by default).
pub const PURGE_DAYS: i32 = 28;

fn log_loss(m: &Logistic, rows: &[Vec<f64>], labels: &[bool]) -> f64 {
    rows.iter()
        .zip(labels)
        .map(|(r, y)| {
            let p = m.predict(r);
            -(if *y { p.ln() } else { (1.0 - p).ln() })
        })
        .sum::<f64>()
        / rows.len().max(1) as f64
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Solves `a x = b` by Gaussian elimination with partial pivoting; None if
/// `a` is singular.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|i, j| a[*i][col].abs().total_cmp(&a[*j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..n {
            let f = a[row][col] / a[col][col];
            for c in col..n {
                a[row][c] -= f * a[col][c];
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|c| a[row][c] * x[c]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    Some(x)
}

/// One row of a reliability table: claims stated with a confidence in
/// [lower, upper), how many, their mean stated confidence and how often
/// they came true.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReliabilityBin {
    pub lower: f64,
    pub upper: f64,
    pub count: usize,
    pub mean_stated: f64,
    pub observed: f64,
}

/// How well stated probabilities matched outcomes. A figure computed from
/// no claims is None (null in JSON), never 0.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    pub claims: usize,
    pub brier: Option<f64>,
    /// 1 - brier / brier of the reference forecaster (stating the base
    /// rate learned from training data); None also when that reference is
    /// perfect (its Brier score is 0).
    pub brier_skill: Option<f64>,
    /// The reference's mean stated rate.
    pub reference_rate: Option<f64>,
    /// Expected calibration error over 10 equal-width bins.
    pub ece: Option<f64>,
    pub mean_stated: Option<f64>,
    pub observed: Option<f64>,
    pub reliability: Vec<ReliabilityBin>,
}

/// Scores `(stated, came_true)` pairs against always stating
/// `reference_rate` (the base rate learned from training data).
pub fn calibration(pairs: &[(f64, bool)], reference_rate: f64) -> Calibration {
    calibration_against(pairs, &vec![reference_rate; pairs.len()])
}

/// Scores `(stated, came_true)` pairs against a reference forecaster that
/// stated `references[i]` for pair `i` (a base rate, as known when the
/// claim was made).
pub fn calibration_against(pairs: &[(f64, bool)], references: &[f64]) -> Calibration {
    let n = pairs.len().min(references.len());
    let pairs = &pairs[..n];
    let nf = n.max(1) as f64;
    let some = |v: f64| (n > 0).then_some(v);
    let y = |t: bool| if t { 1.0 } else { 0.0 };
    let brier = pairs.iter().map(|(p, t)| (p - y(*t)).powi(2)).sum::<f64>() / nf;
    let reference = pairs
        .iter()
        .zip(references)
        .map(|((_, t), r)| (r - y(*t)).powi(2))
        .sum::<f64>()
        / nf;
    let reference_rate = some(references[..n].iter().sum::<f64>() / nf);
    let mut bins: Vec<(usize, f64, f64)> = vec![(0, 0.0, 0.0); 10];
    for (p, t) in pairs {
        let b = ((p * 10.0).floor() as usize).min(9);
        bins[b].0 += 1;
        bins[b].1 += p;
        bins[b].2 += y(*t);
    }
    let mut ece = 0.0;
    let mut reliability = Vec::new();
    for (i, (count, sum_p, sum_y)) in bins.into_iter().enumerate() {
        if count == 0 {
            continue;
        }
        let c = count as f64;
        ece += c / nf * (sum_p / c - sum_y / c).abs();
        reliability.push(ReliabilityBin {
            lower: i as f64 / 10.0,
            upper: (i + 1) as f64 / 10.0,
            count,
            mean_stated: sum_p / c,
            observed: sum_y / c,
        });
    }
    Calibration {
        claims: n,
        brier: some(brier),
        brier_skill: (n > 0 && reference > 0.0).then(|| 1.0 - brier / reference),
        reference_rate,
        ece: some(ece),
        mean_stated: some(pairs.iter().map(|(p, _)| p).sum::<f64>() / nf),
        observed: some(pairs.iter().map(|(_, t)| y(*t)).sum::<f64>() / nf),
        reliability,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A deterministic pseudo-random stream in [0, 1).
    pub(crate) fn lcg(seed: &mut u64) -> f64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*seed >> 11) as f64 / (1u64 << 53) as f64
    }

    #[test]
    fn recovers_known_coefficients_and_is_calibrated() {
        // y ~ Bernoulli(sigmoid(-1 + 2 x)), x uniform in [-2, 2].
        let mut seed = 7;
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        for _ in 0..20_000 {
            let x = lcg(&mut seed) * 4.0 - 2.0;
            let p = sigmoid(-1.0 + 2.0 * x);
            rows.push(vec![x]);
            labels.push(lcg(&mut seed) < p);
        }
        let m = Logistic::fit(&rows, &labels, 1e-6);
        let p0 = m.predict(&[0.0]);
        let p1 = m.predict(&[1.0]);
        assert!((p0 - sigmoid(-1.0)).abs() < 0.03, "{p0}");
        assert!((p1 - sigmoid(1.0)).abs() < 0.03, "{p1}");
        let pairs: Vec<(f64, bool)> = rows
            .iter()
            .zip(&labels)
            .map(|(r, y)| (m.predict(r), *y))
            .collect();
        let c = calibration(&pairs, m.base_rate);
        assert!(c.ece.unwrap() < 0.02, "{c:?}");
        assert!(c.brier_skill.unwrap() > 0.2, "{c:?}");
    }

    #[test]
    fn weighted_examples_count_by_their_weight() {
        // Old days: true 20% of the time; recent days: 80%. Weighted at
        // 1/9 and 1, the fit should say (0.2 + 9 * 0.8) / 10 = 0.74.
        let mut seed = 5;
        let (mut rows, mut labels, mut weights) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..20_000 {
            let recent = i % 2 == 0;
            rows.push(vec![lcg(&mut seed)]);
            labels.push(lcg(&mut seed) < if recent { 0.8 } else { 0.2 });
            weights.push(if recent { 1.0 } else { 1.0 / 9.0 });
        }
        let plain = Logistic::fit(&rows, &labels, 1e-6).predict(&[0.5]);
        let weighted = Logistic::fit_weighted(&rows, &labels, &weights, 1e-6).predict(&[0.5]);
        assert!((plain - 0.5).abs() < 0.03, "{plain}");
        assert!((weighted - 0.74).abs() < 0.03, "{weighted}");
    }

    #[test]
    fn one_outcome_only_gives_the_smoothed_base_rate() {
        let rows = vec![vec![1.0]; 8];
        let m = Logistic::fit(&rows, &[true; 8], 1.0);
        assert!((m.predict(&[1.0]) - 0.9).abs() < 1e-9);
        let empty = Logistic::fit(&[], &[], 1.0);
        assert!((empty.base_rate - 0.5).abs() < 1e-9);
    }

    #[test]
    fn isotonic_map_is_monotone_and_fixes_a_miscalibrated_score() {
        // Scores that claim x but come true x^2 of the time.
        let mut seed = 11;
        let pairs: Vec<(f64, bool)> = (0..20_000)
            .map(|_| {
                let p = lcg(&mut seed);
                (p, lcg(&mut seed) < p * p)
            })
            .collect();
        let iso = Isotonic::fit(pairs.clone(), 100).unwrap();
        assert!(iso.value.windows(2).all(|w| w[0] <= w[1]));
        assert!((iso.apply(0.5) - 0.25).abs() < 0.06, "{}", iso.apply(0.5));
        let before = calibration(&pairs, 0.33).ece.unwrap();
        let after = calibration(
            &pairs
                .iter()
                .map(|(p, y)| (iso.apply(*p), *y))
                .collect::<Vec<_>>(),
            0.33,
        )
        .ece
        .unwrap();
        assert!(after < before / 3.0, "{before} -> {after}");
        assert!(Isotonic::fit(pairs[..10].to_vec(), 100).is_none());
    }

    #[test]
    fn platt_map_tempers_an_over_confident_score_from_few_pairs() {
        // 400 pairs whose score is twice as far from even odds as the
        // truth: true log-odds are half the stated ones.
        let mut seed = 23;
        let pairs: Vec<(f64, bool, f64)> = (0..400)
            .map(|_| {
                let p = 0.02 + 0.96 * lcg(&mut seed);
                (p, lcg(&mut seed) < sigmoid(logit(p) / 2.0), 1.0)
            })
            .collect();
        let platt = Platt::fit_weighted(&pairs, 60).unwrap();
        assert!((platt.b - 0.5).abs() < 0.2, "{platt:?}");
        assert!(
            platt.apply(0.95) < 0.9 && platt.apply(0.05) > 0.1,
            "{platt:?}"
        );
        assert!(platt.apply(0.3) < platt.apply(0.31), "monotone");
        assert!(Platt::fit_weighted(&pairs[..10], 60).is_none());
        // A score that says the opposite of the truth is not turned round.
        let reversed: Vec<(f64, bool, f64)> =
            pairs.iter().map(|(p, y, w)| (1.0 - p, *y, *w)).collect();
        assert!(Platt::fit_weighted(&reversed, 60).is_none());
    }

    #[test]
    fn few_held_out_pairs_get_a_platt_map_many_an_isotonic_one() {
        let fit = |n: usize| {
            let mut seed = 29;
            let (mut rows, mut labels, mut days) = (Vec::new(), Vec::new(), Vec::new());
            for i in 0..n {
                let x = lcg(&mut seed) * 4.0 - 2.0;
                rows.push(vec![x]);
                labels.push(lcg(&mut seed) < sigmoid(x));
                days.push(i32::try_from(i / 4).unwrap());
            }
            Calibrated::fit(&rows, &labels, &days, 1.0)
        };
        // Cross-fitted: every example gives a held-out pair.
        let few = fit(600);
        assert!(few.isotonic.is_none() && few.platt.is_some(), "{few:?}");
        let many = fit(4_000);
        assert!(many.isotonic.is_some() && many.platt.is_none());
        for m in [&few, &many] {
            let (low, high) = (m.predict(&[-1.5]), m.predict(&[1.5]));
            assert!((low - sigmoid(-1.5)).abs() < 0.08, "{low}");
            assert!((high - sigmoid(1.5)).abs() < 0.08, "{high}");
        }
    }

    #[test]
    fn calibrated_fit_handles_no_and_few_examples() {
        let empty = Calibrated::fit(&[], &[], &[], 1.0);
        assert!((empty.predict(&[]) - 0.5).abs() < 1e-9);
        let rows = vec![vec![1.0]; 5];
        let few = Calibrated::fit(
            &rows,
            &[true, true, true, true, false],
            &[1, 2, 3, 4, 5],
            1.0,
        );
        assert!(few.isotonic.is_none());
        let p = few.predict(&[1.0]);
        assert!(p > 0.5 && p < 1.0, "{p}");
    }

    #[test]
    fn cross_fitted_calibration_tells_listings_apart() {
        // 4,000 examples over 400 days: the claim comes true with
        // probability sigmoid(2 x). Too few for the three-quarter split to
        // choose its map on much; the cross-fitted map must keep the
        // ordering and be about right at both ends.
        let mut seed = 17;
        let (mut rows, mut labels, mut days) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..4_000 {
            let x = lcg(&mut seed) * 4.0 - 2.0;
            rows.push(vec![x]);
            labels.push(lcg(&mut seed) < sigmoid(2.0 * x));
            days.push(i / 10);
        }
        let m = Calibrated::fit(&rows, &labels, &days, 1.0);
        let iso = m.isotonic.as_ref().expect("a map from the cross-fit");
        assert!(iso.value.windows(2).all(|w| w[0] <= w[1]));
        let (low, high) = (m.predict(&[-1.5]), m.predict(&[1.5]));
        assert!((low - sigmoid(-3.0)).abs() < 0.05, "{low}");
        assert!((high - sigmoid(3.0)).abs() < 0.05, "{high}");
        let pairs: Vec<(f64, bool)> = rows
            .iter()
            .zip(&labels)
            .map(|(r, y)| (m.predict(r), *y))
            .collect();
        assert!(calibration(&pairs, 0.5).ece.unwrap() < 0.03);
    }

    #[test]
    fn isotonic_map_keeps_a_right_confident_score_where_it_is() {
        // A score that is already right, high and on few pairs: PAV makes
        // many small blocks, and smoothing them towards one half would
        // state less than comes true.
        let mut seed = 3;
        let pairs: Vec<(f64, bool)> = (0..300)
            .map(|_| {
                let p = 0.85 + 0.14 * lcg(&mut seed);
                (p, lcg(&mut seed) < p)
            })
            .collect();
        let iso = Isotonic::fit(pairs.clone(), 60).unwrap();
        let mapped = pairs.iter().map(|(p, _)| iso.apply(*p)).sum::<f64>() / 300.0;
        let came_true = pairs.iter().filter(|(_, y)| *y).count() as f64 / 300.0;
        assert!((mapped - came_true).abs() < 0.01, "{mapped} vs {came_true}");
        assert!(iso.value.iter().all(|v| *v > 0.5 && *v < 1.0), "{iso:?}");
    }

    #[test]
    fn calibration_scores_a_perfect_and_a_useless_forecaster() {
        let perfect = [(0.999, true), (0.001, false), (0.999, true)];
        let c = calibration(&perfect, 0.5);
        assert!(c.brier.unwrap() < 1e-5);
        assert!(c.brier_skill.unwrap() > 0.99 && c.ece.unwrap() < 0.01);
        let constant = [(0.5, true), (0.5, false)];
        let c = calibration(&constant, 0.5);
        assert!(c.brier_skill.unwrap().abs() < 1e-12);
        assert_eq!(c.reliability.len(), 1);
        assert_eq!(c.reliability[0].count, 2);
    }

    #[test]
    fn no_claims_score_null_not_zero() {
        let c = calibration(&[], 0.5);
        assert_eq!(c.claims, 0);
        assert_eq!((c.brier, c.brier_skill, c.ece), (None, None, None));
        let json = serde_json::to_value(&c).unwrap();
        assert!(json["ece"].is_null() && json["brier"].is_null());
    }
}
