//! `shelfwatch backtest`: walk forward through stored history without
//! peeking. Confidence models are trained on days whose outcome was known
//! before the split day and scored on the days after it; point forecasts
//! are scored with MASE against the naive forecast.

use anyhow::Context;
use serde::Serialize;
use shelfwatch_store::PgPool;

use super::load::{self, Shard};
use super::model::{Calibration, calibration};
use super::recommend::{self, Action};
use super::{Frame, Models, Params};

#[derive(Debug, Clone, Serialize)]
pub struct MaseRow {
    pub horizon: usize,
    /// Forecast errors scored on this many (listing, day) points.
    pub points: usize,
    pub wma: f64,
    pub naive: f64,
    pub seasonal_naive: f64,
    /// The forecast the recommendations use.
    pub model: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActionScore {
    pub action: Action,
    #[serde(flatten)]
    pub calibration: Calibration,
}

/// The `--json` report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub series: usize,
    pub horizon: usize,
    pub train_until: String,
    pub test_from: String,
    pub last_day: String,
    pub mase_wma: f64,
    pub mase_naive: f64,
    pub mase_seasonal_naive: f64,
    pub mase_model: f64,
    pub mase: Vec<MaseRow>,
    pub brier: f64,
    pub brier_skill: f64,
    pub ece: f64,
    pub claims: usize,
    pub mean_stated: f64,
    pub observed: f64,
    pub reliability: Vec<super::model::ReliabilityBin>,
    pub actions: Vec<ActionScore>,
}

/// Runs the backtest. `test_from_day` (days since 1970) splits history;
/// None puts the split two thirds of the way through.
pub async fn run(
    pool: &PgPool,
    params: &Params,
    test_from_day: Option<i32>,
) -> anyhow::Result<Report> {
    let last_day = load::latest_day(pool, Shard::ALL)
        .await?
        .context("price_daily has no data: import or scrape prices first")?;
    let series = load::load(pool, Shard::ALL, last_day, params.max_gap_days).await?;
    let p = *params;
    tokio::task::spawn_blocking(move || evaluate(series, &p, last_day, test_from_day))
        .await
        .context("the backtest panicked")?
}

fn date(day: i32) -> String {
    load::day_to_date(day).map_or_else(|| day.to_string(), |d| d.to_string())
}

pub fn evaluate(
    series: super::features::DailySeries,
    params: &Params,
    last_day: i32,
    test_from_day: Option<i32>,
) -> anyhow::Result<Report> {
    let first_day = series.day.iter().copied().min().unwrap_or(last_day);
    let split = test_from_day.unwrap_or(first_day + (last_day - first_day) * 2 / 3);
    let h = params.horizon;
    let frame = Frame::compute(series, params)?;
    let series_count = frame.listing_id.windows(2).filter(|w| w[0] != w[1]).count()
        + usize::from(!frame.is_empty());

    // Train only on days whose whole horizon ended before the split.
    let horizon_days = i32::try_from(h).unwrap_or(i32::MAX);
    let models = Models::train(&frame, params, |i| frame.day[i] + horizon_days < split);

    // Score claims on the days after the split.
    let mut all = Vec::new();
    let mut by_action: [Vec<(f64, bool)>; 3] = Default::default();
    for i in 0..frame.len() {
        if frame.day[i] < split
            || !frame.observed[i]
            || !frame.future_min[i].is_finite()
            || !frame.future_max[i].is_finite()
        {
            continue;
        }
        let (claim, p) = models.recommend(&frame, i, h);
        let truth = claim.came_true(frame.future_min[i], frame.future_max[i]);
        all.push((p, truth));
        by_action[claim.action.index()].push((p, truth));
    }
    // The reference forecaster states, for every claim, how often the
    // claims made on the training days came true (overall, and per action
    // for the per-action scores): the claims as the method would have made
    // them there, waits that were not likely enough turned into holds.
    let mut made = [(0usize, 0usize); 3];
    for i in 0..frame.len() {
        if frame.day[i] + horizon_days >= split
            || !frame.observed[i]
            || !frame.future_min[i].is_finite()
            || !frame.future_max[i].is_finite()
        {
            continue;
        }
        let (claim, _) = models.recommend(&frame, i, h);
        let slot = &mut made[claim.action.index()];
        slot.0 += 1;
        slot.1 += usize::from(claim.came_true(frame.future_min[i], frame.future_max[i]));
    }
    let rate = |(n, t): (usize, usize)| (t as f64 + 1.0) / (n as f64 + 2.0);
    let reference = rate(made.iter().fold((0, 0), |a, m| (a.0 + m.0, a.1 + m.1)));
    let overall = calibration(&all, reference);
    let actions = Action::ALL
        .iter()
        .map(|a| ActionScore {
            action: *a,
            calibration: calibration(&by_action[a.index()], rate(made[a.index()])),
        })
        .collect();

    // MASE: errors over the test days, scaled by the in-sample mean
    // absolute one-day change over the training days.
    let (mut scale_sum, mut scale_n) = (0.0, 0usize);
    for i in 1..frame.len() {
        if frame.day[i] < split && frame.listing_id[i] == frame.listing_id[i - 1] {
            scale_sum += (frame.price[i] - frame.price[i - 1]).abs();
            scale_n += 1;
        }
    }
    let scale = if scale_n > 0 && scale_sum > 0.0 {
        scale_sum / scale_n as f64
    } else {
        1.0
    };
    let mut mase = Vec::new();
    for horizon in [1, h] {
        let (mut wma, mut naive, mut seasonal, mut model, mut n) = (0.0, 0.0, 0.0, 0.0, 0usize);
        for i in 0..frame.len() {
            if frame.day[i] < split || !frame.observed[i] {
                continue;
            }
            let Some(actual) = frame.ahead(i, horizon) else {
                continue;
            };
            // Seasonal naive: the same weekday one week before the target.
            let Some(week_before) = (horizon <= 7 && i + horizon >= 7)
                .then(|| i + horizon - 7)
                .filter(|j| frame.listing_id[*j] == frame.listing_id[i])
                .map(|j| frame.price[j])
            else {
                continue;
            };
            let s = frame.snapshot(i);
            let path = models.path(&s, horizon);
            let Some(point) = path.last() else {
                continue;
            };
            wma += (actual - recommend::wma_forecast(&s)).abs();
            naive += (actual - s.price).abs();
            seasonal += (actual - week_before).abs();
            model += (actual - point.predicted).abs();
            n += 1;
        }
        let d = n.max(1) as f64 * scale;
        mase.push(MaseRow {
            horizon,
            points: n,
            wma: wma / d,
            naive: naive / d,
            seasonal_naive: seasonal / d,
            model: model / d,
        });
        if h == 1 {
            break;
        }
    }
    let at_h = mase.last().cloned().context("no MASE computed")?;
    Ok(Report {
        series: series_count,
        horizon: h,
        train_until: date(split - horizon_days - 1),
        test_from: date(split),
        last_day: date(last_day),
        mase_wma: at_h.wma,
        mase_naive: at_h.naive,
        mase_seasonal_naive: at_h.seasonal_naive,
        mase_model: at_h.model,
        mase,
        brier: overall.brier,
        brier_skill: overall.brier_skill,
        ece: overall.ece,
        claims: overall.claims,
        mean_stated: overall.mean_stated,
        observed: overall.observed,
        reliability: overall.reliability,
        actions,
    })
}

/// The report for people.
pub fn render(r: &Report) -> String {
    let mut out = format!(
        "backtest over {} series, horizon {} days; confidence models trained on outcomes known by {}, scored from {} to {}\n\n",
        r.series, r.horizon, r.train_until, r.test_from, r.last_day
    );
    out.push_str("point forecasts (MASE, lower is better; 1.0 = in-sample one-day naive error)\n");
    out.push_str("  h   points   naive    seasonal  WMA      model\n");
    for m in &r.mase {
        out.push_str(&format!(
            "  {:<3} {:<8} {:<8.3} {:<9.3} {:<8.3} {:<8.3}\n",
            m.horizon, m.points, m.naive, m.seasonal_naive, m.wma, m.model
        ));
    }
    out.push_str(&format!(
        "\nconfidence on {} held-out claims: Brier {:.4}, Brier skill {:.3} (vs base rate), ECE {:.4}; mean stated {:.3}, came true {:.3}\n",
        r.claims, r.brier, r.brier_skill, r.ece, r.mean_stated, r.observed
    ));
    out.push_str("  stated      count    mean stated  came true\n");
    for b in &r.reliability {
        out.push_str(&format!(
            "  {:.1}-{:.1}     {:<8} {:<12.3} {:.3}\n",
            b.lower, b.upper, b.count, b.mean_stated, b.observed
        ));
    }
    out.push_str("\nby action:\n");
    for a in &r.actions {
        let c = &a.calibration;
        out.push_str(&format!(
            "  {:<8} claims {:<8} mean stated {:.3}  came true {:.3}  Brier {:.4}  ECE {:.4}\n",
            a.action.as_str(),
            c.claims,
            c.mean_stated,
            c.observed,
            c.brier,
            c.ece
        ));
    }
    out
}
