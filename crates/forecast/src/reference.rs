//! A straightforward loop-per-listing implementation of the features, kept
//! as a test oracle for the polars pipeline in `features.rs`: both must
//! agree on random series.

use polars::prelude::*;

use super::features::{DailySeries, FeatureParams, OUTPUT_COLUMNS};

pub fn compute(series: DailySeries, p: &FeatureParams) -> anyhow::Result<DataFrame> {
    let n = series.price.len();
    let mut cols: Vec<Vec<f64>> = vec![vec![f64::NAN; n]; 13];
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && series.listing_id[end] == series.listing_id[start] {
            end += 1;
        }
        let price = &series.price[start..end];
        let promo = &series.promo[start..end];
        let mut regular = f64::NAN;
        let mut max_seen = f64::MIN;
        let mut run = 0.0;
        let mut since = 999.0;
        let mut runs: Vec<f64> = Vec::new();
        let mut starts: Vec<usize> = Vec::new();
        for t in 0..price.len() {
            let i = start + t;
            cols[0][i] = (t + 1) as f64;
            let lo = (t + 1).saturating_sub(p.wma_window);
            let (mut num, mut den) = (0.0, 0.0);
            // Today weighs `wma_window`, the day before one less, and so on,
            // also while the window is still filling.
            for (k, v) in price[lo..=t].iter().enumerate() {
                let w = (p.wma_window - (t - lo) + k) as f64;
                num += w * v;
                den += w;
            }
            cols[1][i] = num / den;
            max_seen = max_seen.max(price[t]);
            if !promo[t] {
                regular = price[t];
            }
            cols[2][i] = if regular.is_nan() { max_seen } else { regular };
            let vlo = (t + 1).saturating_sub(p.vol_window).max(1);
            let changes: Vec<f64> = (vlo..=t).map(|k| price[k] / price[k - 1] - 1.0).collect();
            cols[3][i] = if changes.len() > 1 {
                let m = changes.iter().sum::<f64>() / changes.len() as f64;
                (changes.iter().map(|c| (c - m).powi(2)).sum::<f64>() / (changes.len() - 1) as f64)
                    .sqrt()
            } else {
                0.0
            };
            let plo = (t + 1).saturating_sub(p.promo_window);
            cols[4][i] =
                promo[plo..=t].iter().filter(|x| **x).count() as f64 / (t + 1 - plo) as f64;
            if promo[t] {
                if run == 0.0 {
                    starts.push(t);
                }
                run += 1.0;
                since = 0.0;
            } else {
                if run > 0.0 {
                    runs.push(run);
                    since = 0.0;
                }
                run = 0.0;
                if !starts.is_empty() {
                    since += 1.0;
                }
            }
            cols[5][i] = if promo[t] { run } else { 0.0 };
            cols[6][i] = since;
            cols[7][i] = if runs.is_empty() {
                f64::NAN
            } else {
                runs.iter().sum::<f64>() / runs.len() as f64
            };
            cols[8][i] = if starts.len() < 2 {
                f64::NAN
            } else {
                (starts[starts.len() - 1] - starts[0]) as f64 / (starts.len() - 1) as f64
            };
            if t + p.horizon < price.len() {
                let fut = &price[t + 1..=t + p.horizon];
                cols[9][i] = fut.iter().copied().fold(f64::INFINITY, f64::min);
                cols[10][i] = price[t + p.horizon];
                cols[11][i] = fut.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            }
        }
        start = end;
    }
    // The feature columns, after the five input columns.
    let names = &OUTPUT_COLUMNS[5..];
    let mut columns = vec![
        Column::new("listing_id".into(), series.listing_id),
        Column::new("day".into(), series.day),
        Column::new("price".into(), series.price),
        Column::new("promo".into(), series.promo),
        Column::new("observed".into(), series.observed),
    ];
    for (name, values) in names.iter().zip(cols) {
        let values: Vec<Option<f64>> = values
            .into_iter()
            .map(|v| v.is_finite().then_some(v))
            .collect();
        columns.push(Column::new((*name).into(), values));
    }
    Ok(DataFrame::new_infer_height(columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random listings of random lengths with promotions and price moves.
    fn random_series(seed: u64) -> DailySeries {
        let mut state = seed;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as f64 / (1u64 << 31) as f64
        };
        let mut s = DailySeries {
            listing_id: Vec::new(),
            day: Vec::new(),
            price: Vec::new(),
            promo: Vec::new(),
            observed: Vec::new(),
        };
        for listing in 0..40 {
            let len = 1 + (next() * 120.0) as i32;
            let mut regular = 50.0 + (next() * 300.0).round();
            let mut promo_left = 0;
            for day in 0..len {
                if next() < 0.01 {
                    regular += 10.0;
                }
                if promo_left == 0 && next() < 0.08 {
                    promo_left = 2 + (next() * 5.0) as i32;
                }
                let promo = promo_left > 0;
                promo_left = (promo_left - 1).max(0);
                s.listing_id.push(listing);
                s.day.push(20_000 + day);
                s.price.push(if promo {
                    (regular * 0.75).round()
                } else {
                    regular
                });
                s.promo.push(promo);
                s.observed.push(next() > 0.1);
            }
        }
        s
    }

    fn column(df: &DataFrame, name: &str) -> Vec<Option<f64>> {
        df.column(name)
            .unwrap()
            .cast(&DataType::Float64)
            .unwrap()
            .f64()
            .unwrap()
            .iter()
            .collect()
    }

    #[test]
    fn polars_pipeline_agrees_with_the_reference_loops() {
        for seed in [1, 2, 3] {
            let series = random_series(seed);
            let p = FeatureParams::default();
            let fast = super::super::features::compute(series.clone(), &p).unwrap();
            let slow = compute(series, &p).unwrap();
            for name in &OUTPUT_COLUMNS[5..] {
                let (a, b) = (column(&fast, name), column(&slow, name));
                assert_eq!(a.len(), b.len(), "{name}");
                for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                    let same = match (x, y) {
                        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(1.0),
                        (None, None) => true,
                        _ => false,
                    };
                    assert!(
                        same,
                        "seed {seed}, {name} row {i}: polars {x:?}, reference {y:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn wma_forecast_is_the_last_wma_of_each_listing() {
        let series = random_series(9);
        let p = FeatureParams::default();
        let slow = compute(series.clone(), &p).unwrap();
        let wma = column(&slow, "wma");
        let ids = &series.listing_id;
        let last: Vec<f64> = wma
            .iter()
            .enumerate()
            .filter(|(i, _)| i + 1 == ids.len() || ids[i + 1] != ids[*i])
            .map(|(_, w)| w.unwrap())
            .collect();
        let fast =
            super::super::features::wma_forecast(&series.listing_id, &series.price, p.wma_window)
                .unwrap();
        let got = column(&fast, "wma");
        assert_eq!(got.len(), last.len());
        for (g, w) in got.iter().zip(&last) {
            assert!((g.unwrap() - w).abs() < 1e-9, "{g:?} {w}");
        }
    }
}
