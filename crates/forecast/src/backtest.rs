//! `shelfwatch backtest`: walk forward through stored history without
//! peeking. Confidence models are trained on days whose outcome was known
//! before the split day and scored on the days after it; point forecasts
//! are scored with MASE against the naive forecast.

use std::io::Write as _;

use anyhow::Context;
use serde::Serialize;
use shelfwatch_store::PgPool;

use super::load::{self, Shard};
use super::model::{Calibration, calibration_against};
use super::recommend::{self, Action};
use super::{Frame, Models, Params};

/// Point forecasts scored at one horizon. Every figure is None (null in
/// JSON) when nothing was scored.
#[derive(Debug, Clone, Serialize)]
pub struct MaseRow {
    pub horizon: usize,
    /// Forecast errors scored on this many (listing, day) points: an
    /// observed day whose target day, `horizon` days later, is observed too.
    pub points: usize,
    pub wma: Option<f64>,
    pub naive: Option<f64>,
    /// The same weekday in the latest week before the forecast is made
    /// (`horizon` rounded up to whole weeks back from the target): defined
    /// at every horizon.
    pub seasonal_naive: Option<f64>,
    /// The forecast the recommendations use.
    pub model: Option<f64>,
    /// Share of the points inside the forecast band (nominal
    /// [`BAND_NOMINAL`]).
    pub band_coverage: Option<f64>,
}

/// The coverage the forecast band is meant to have.
pub const BAND_NOMINAL: f64 = 0.8;

/// The backtest trains the models again every this many days of the test
/// period, as the daily forecast job learns from each day's outcomes.
pub const REFIT_DAYS: i32 = 28;

#[derive(Debug, Clone, Serialize)]
pub struct ActionScore {
    pub action: Action,
    #[serde(flatten)]
    pub calibration: Calibration,
}

/// One held-out claim as it was scored: enough to see which claims failed,
/// on which listings and days (`backtest --claims`).
#[derive(Debug, Clone, Serialize)]
pub struct ScoredClaim {
    pub listing_id: i64,
    /// The day the claim was made (YYYY-MM-DD).
    pub day: String,
    pub action: Action,
    pub price_pence: i64,
    /// buy_now: the drop taken; wait: the drop expected; hold: the band.
    pub amount_pence: i64,
    /// The confidence stated with it.
    pub confidence: f64,
    pub came_true: bool,
    /// What the reference forecaster stated: how often the claims made on
    /// the training days came true, over all actions and for this action.
    pub reference: f64,
    pub action_reference: f64,
}

/// The `--json` report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub series: usize,
    pub horizon: usize,
    pub train_until: String,
    pub test_from: String,
    /// Models are trained again every this many days of the test period.
    pub refit_days: i32,
    pub last_day: String,
    /// Listings by observation cadence: (days between observations, how
    /// many listings).
    pub cadences: Vec<(i32, usize)>,
    pub mase_wma: Option<f64>,
    pub mase_naive: Option<f64>,
    pub mase_seasonal_naive: Option<f64>,
    pub mase_model: Option<f64>,
    pub band_nominal: f64,
    pub band_coverage: Option<f64>,
    pub mase: Vec<MaseRow>,
    pub brier: Option<f64>,
    pub brier_skill: Option<f64>,
    pub ece: Option<f64>,
    pub claims: usize,
    pub mean_stated: Option<f64>,
    pub observed: Option<f64>,
    pub reliability: Vec<super::model::ReliabilityBin>,
    pub actions: Vec<ActionScore>,
    /// Every scored claim, in listing and day order (not in the JSON
    /// report: `backtest --claims` writes them to a file).
    #[serde(skip)]
    pub scored: Vec<ScoredClaim>,
}

/// Runs the backtest. `test_from_day` (days since 1970) splits history;
/// None puts the split two thirds of the way through.
pub async fn run(
    pool: &PgPool,
    params: &Params,
    test_from_day: Option<i32>,
) -> anyhow::Result<Report> {
    Ok(run_with(pool, params, test_from_day, None).await?.0)
}

/// [`run`], also writing every day a model can learn from, with its
/// features and outcomes, to the CSV file `features` (see
/// [`labelled_days`]); returns the report and how many days were written.
/// The file is created before any work, and the history is loaded and its
/// features computed once for both.
pub async fn run_writing_features(
    pool: &PgPool,
    params: &Params,
    test_from_day: Option<i32>,
    features: &std::path::Path,
) -> anyhow::Result<(Report, usize)> {
    let file = tokio::fs::File::create(features)
        .await
        .with_context(|| format!("creating {}", features.display()))?
        .into_std()
        .await;
    let (report, rows) = run_with(pool, params, test_from_day, Some(Box::new(file)))
        .await
        .with_context(|| format!("writing the features to {}", features.display()))?;
    Ok((report, rows.unwrap_or(0)))
}

async fn run_with(
    pool: &PgPool,
    params: &Params,
    test_from_day: Option<i32>,
    features: Option<Box<dyn std::io::Write + Send>>,
) -> anyhow::Result<(Report, Option<usize>)> {
    let last_day = load::latest_day(pool, Shard::ALL)
        .await?
        .context("price_daily has no data: import or scrape prices first")?;
    let series = load::load(pool, Shard::ALL, last_day, params.max_gap_days).await?;
    let p = *params;
    tokio::task::spawn_blocking(move || evaluate(series, &p, last_day, test_from_day, features))
        .await
        .context("the backtest panicked")?
}

fn date(day: i32) -> String {
    load::day_to_date(day).map_or_else(|| day.to_string(), |d| d.to_string())
}

/// The backtest of `series` (see [`run`]); with `features`, every day a
/// model can learn from is written there first ([`labelled_days`]), and
/// their number returned beside the report.
pub fn evaluate(
    series: super::features::DailySeries,
    params: &Params,
    last_day: i32,
    test_from_day: Option<i32>,
    features: Option<Box<dyn std::io::Write + Send>>,
) -> anyhow::Result<(Report, Option<usize>)> {
    let first_day = series.day.iter().copied().min().unwrap_or(last_day);
    let split = test_from_day.unwrap_or(first_day + (last_day - first_day) * 2 / 3);
    let h = params.horizon;
    let frame = Frame::compute(series, params)?;
    let written = features
        .map(|out| labelled_days(&frame, h, out))
        .transpose()?;
    let series_count = frame.listing_id.windows(2).filter(|w| w[0] != w[1]).count()
        + usize::from(!frame.is_empty());

    // Walk forward as the daily job would: every `REFIT_DAYS` from the
    // split the models are trained again, each time only on days whose
    // whole horizon ended before that block begins, and they score the
    // days of that block.
    let horizon_days = i32::try_from(h).unwrap_or(i32::MAX);
    let blocks = usize::try_from((last_day - split).max(0) / REFIT_DAYS + 1).unwrap_or(1);
    let block_start = |b: usize| split + i32::try_from(b).unwrap_or(i32::MAX) * REFIT_DAYS;
    let block_of = |i: usize| usize::try_from((frame.day[i] - split) / REFIT_DAYS).ok();
    let mut models = Vec::with_capacity(blocks);
    // Per block: how often the claims the method made on its training days
    // came true (overall, and per action): what the reference forecaster
    // states.
    let mut made_rates: Vec<(f64, [f64; 3])> = Vec::with_capacity(blocks);
    for b in 0..blocks {
        let from = block_start(b);
        let m = Models::train(&frame, params, |i| frame.day[i] + horizon_days < from);
        let mut made = [(0usize, 0usize); 3];
        for i in 0..frame.len() {
            if frame.day[i] + horizon_days >= from || !frame.judgeable(i) {
                continue;
            }
            let (claim, _) = m.recommend(&frame, i, h);
            let slot = &mut made[claim.action.index()];
            slot.0 += 1;
            slot.1 += usize::from(claim.came_true(frame.future_min[i], frame.future_max[i]));
        }
        let rate = |(n, t): (usize, usize)| (t as f64 + 1.0) / (n as f64 + 2.0);
        let overall = rate(made.iter().fold((0, 0), |a, m| (a.0 + m.0, a.1 + m.1)));
        made_rates.push((overall, made.map(rate)));
        models.push(m);
    }

    // Score claims on the days after the split.
    let mut scored = Vec::new();
    for i in 0..frame.len() {
        let Some(b) = block_of(i).filter(|_| frame.day[i] >= split && frame.judgeable(i)) else {
            continue;
        };
        let (claim, p) = models[b].recommend(&frame, i, h);
        scored.push(ScoredClaim {
            listing_id: frame.listing_id[i],
            day: date(frame.day[i]),
            action: claim.action,
            price_pence: claim.price,
            amount_pence: claim.amount,
            confidence: p,
            came_true: claim.came_true(frame.future_min[i], frame.future_max[i]),
            reference: made_rates[b].0,
            action_reference: made_rates[b].1[claim.action.index()],
        });
    }
    // Scored against the reference's overall rate, and each action against
    // its own.
    let score = |claims: &[&ScoredClaim], reference: fn(&ScoredClaim) -> f64| {
        let pairs: Vec<(f64, bool)> = claims.iter().map(|c| (c.confidence, c.came_true)).collect();
        let references: Vec<f64> = claims.iter().map(|c| reference(c)).collect();
        calibration_against(&pairs, &references)
    };
    let overall = score(&scored.iter().collect::<Vec<_>>(), |c| c.reference);
    let actions = Action::ALL
        .iter()
        .map(|a| {
            let mine: Vec<&ScoredClaim> = scored.iter().filter(|c| c.action == *a).collect();
            ActionScore {
                action: *a,
                calibration: score(&mine, |c| c.action_reference),
            }
        })
        .collect();

    // MASE: errors over the test days, scaled by the in-sample mean
    // absolute change from one observation to the next (one day for a
    // listing seen daily, one week for one seen weekly). Only observed days
    // are scored, as origins and as targets: a forward-filled day repeats
    // the one before and would flatter every forecast.
    let (mut scale_sum, mut scale_n) = (0.0, 0usize);
    let mut last_seen: Option<usize> = None;
    for i in 0..frame.len() {
        if i > 0 && frame.listing_id[i] != frame.listing_id[i - 1] {
            last_seen = None;
        }
        if !frame.observed[i] {
            continue;
        }
        if let Some(j) = last_seen
            && frame.day[i] < split
        {
            scale_sum += (frame.price[i] - frame.price[j]).abs();
            scale_n += 1;
        }
        last_seen = Some(i);
    }
    let scale = (scale_n > 0 && scale_sum > 0.0).then(|| scale_sum / scale_n as f64);
    let mut mase = Vec::new();
    let mut horizons = vec![1, h];
    horizons.dedup();
    for horizon in horizons {
        let (mut wma, mut naive, mut seasonal, mut model, mut covered, mut n) =
            (0.0, 0.0, 0.0, 0.0, 0.0, 0usize);
        for i in 0..frame.len() {
            let Some(b) = block_of(i).filter(|_| frame.day[i] >= split && frame.observed[i]) else {
                continue;
            };
            let Some(actual) = frame.ahead(i, horizon) else {
                continue;
            };
            if !frame.observed[i + horizon] {
                continue;
            }
            // Seasonal naive: the same weekday in the latest week known
            // today.
            let back = horizon.div_ceil(7) * 7;
            let Some(week_before) = (i + horizon)
                .checked_sub(back)
                .filter(|j| frame.listing_id[*j] == frame.listing_id[i])
                .map(|j| frame.price[j])
            else {
                continue;
            };
            let s = frame.snapshot(i);
            let (claim, confidence) = models[b].recommend(&frame, i, h);
            let path = models[b].path(&s, &claim, confidence, horizon);
            let Some(point) = path.last() else {
                continue;
            };
            wma += (actual - recommend::wma_forecast(&s)).abs();
            naive += (actual - s.price).abs();
            seasonal += (actual - week_before).abs();
            model += (actual - point.predicted).abs();
            covered += point.covers(actual);
            n += 1;
        }
        let mean = |sum: f64| scale.filter(|_| n > 0).map(|d| sum / (n as f64 * d));
        mase.push(MaseRow {
            horizon,
            points: n,
            wma: mean(wma),
            naive: mean(naive),
            seasonal_naive: mean(seasonal),
            model: mean(model),
            band_coverage: (n > 0).then(|| covered / n as f64),
        });
    }
    let at_h = mase.last().cloned().context("no MASE computed")?;
    let report = Report {
        series: series_count,
        horizon: h,
        train_until: date(split - horizon_days - 1),
        test_from: date(split),
        refit_days: REFIT_DAYS,
        last_day: date(last_day),
        cadences: cadence_counts(&frame),
        mase_wma: at_h.wma,
        mase_naive: at_h.naive,
        mase_seasonal_naive: at_h.seasonal_naive,
        mase_model: at_h.model,
        band_nominal: BAND_NOMINAL,
        band_coverage: at_h.band_coverage,
        mase,
        brier: overall.brier,
        brier_skill: overall.brier_skill,
        ece: overall.ece,
        claims: overall.claims,
        mean_stated: overall.mean_stated,
        observed: overall.observed,
        reliability: overall.reliability,
        actions,
        scored,
    };
    Ok((report, written))
}

/// Writes, as CSV, every day of the history a model could learn from (an
/// observed day whose horizon holds an observed day): the listing, the
/// day, the action the rules choose before any confidence, whether that
/// claim came true, whether a hold would have, whether a wait could be
/// said and whether it would have come true, then every feature the
/// confidence models see ([`recommend::FEATURE_NAMES`]). `backtest
/// --features` writes it, so other learners can be tried on exactly the
/// model's inputs (`benches/learner_ceiling.py`).
fn labelled_days(frame: &Frame, h: usize, out: impl std::io::Write) -> anyhow::Result<usize> {
    // Every field is a number, a date or an action name: nothing to quote.
    let mut w = std::io::BufWriter::new(out);
    write!(
        w,
        "listing_id,day,action,came_true,hold_came_true,wait_eligible,wait_came_true"
    )?;
    for name in recommend::FEATURE_NAMES {
        write!(w, ",{name}")?;
    }
    writeln!(w)?;
    let flag = |b: bool| u8::from(b);
    let mut rows = 0;
    for i in 0..frame.len() {
        if !frame.judgeable(i) {
            continue;
        }
        let s = frame.snapshot(i);
        let claim = recommend::decide(&s, h);
        let (low, high) = (frame.future_min[i], frame.future_max[i]);
        let as_action = |action| recommend::Claim { action, ..claim };
        let wait_ok = recommend::wait_eligible(&s);
        write!(
            w,
            "{},{},{},{},{},{},",
            frame.listing_id[i],
            date(frame.day[i]),
            claim.action,
            flag(claim.came_true(low, high)),
            flag(as_action(Action::Hold).came_true(low, high)),
            flag(wait_ok),
        )?;
        if wait_ok {
            write!(w, "{}", flag(as_action(Action::Wait).came_true(low, high)))?;
        }
        for v in recommend::features(&s, h) {
            write!(w, ",{v}")?;
        }
        writeln!(w)?;
        rows += 1;
    }
    w.flush()?;
    Ok(rows)
}

/// Each listing's observation cadence: the median number of days between
/// its consecutive observations (1 for a listing seen daily, 7 weekly), or
/// None with fewer than two observations.
pub fn cadence(listing_id: &[i64], day: &[i32], observed: &[bool]) -> Vec<(i64, Option<i32>)> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 0..listing_id.len() {
        if i + 1 < listing_id.len() && listing_id[i + 1] == listing_id[i] {
            continue;
        }
        let seen: Vec<i32> = (start..=i)
            .filter(|j| observed[*j])
            .map(|j| day[j])
            .collect();
        let mut gaps: Vec<i32> = seen.windows(2).map(|w| w[1] - w[0]).collect();
        gaps.sort_unstable();
        out.push((listing_id[i], gaps.get(gaps.len() / 2).copied()));
        start = i + 1;
    }
    out
}

fn cadence_counts(frame: &Frame) -> Vec<(i32, usize)> {
    let mut counts = std::collections::BTreeMap::new();
    for (_, c) in cadence(&frame.listing_id, &frame.day, &frame.observed) {
        if let Some(c) = c {
            *counts.entry(c).or_insert(0usize) += 1;
        }
    }
    counts.into_iter().collect()
}

fn figure(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

/// The report for people ("-" for a figure with nothing to score).
pub fn render(r: &Report) -> String {
    let mut out = format!(
        "backtest over {} series, horizon {} days; models first trained on outcomes known by {}, scored from {} to {}, trained again every {} days on the outcomes known by then\n",
        r.series, r.horizon, r.train_until, r.test_from, r.last_day, r.refit_days
    );
    let cadences: Vec<String> = r
        .cadences
        .iter()
        .map(|(days, n)| format!("{n} every {days} day(s)"))
        .collect();
    out.push_str(&format!(
        "listings observed: {}; only observed days are scored\n\n",
        cadences.join(", ")
    ));
    out.push_str(
        "point forecasts (MASE, lower is better; 1.0 = in-sample naive error over one observation step)\n",
    );
    out.push_str(&format!(
        "  h   points   naive    seasonal  WMA      model    band coverage (nominal {:.2})\n",
        r.band_nominal
    ));
    for m in &r.mase {
        out.push_str(&format!(
            "  {:<3} {:<8} {:<8} {:<9} {:<8} {:<8} {}\n",
            m.horizon,
            m.points,
            figure(m.naive, 3),
            figure(m.seasonal_naive, 3),
            figure(m.wma, 3),
            figure(m.model, 3),
            figure(m.band_coverage, 3)
        ));
    }
    out.push_str(&format!(
        "\nconfidence on {} held-out claims: Brier {}, Brier skill {} (vs base rate), ECE {}; mean stated {}, came true {}\n",
        r.claims,
        figure(r.brier, 4),
        figure(r.brier_skill, 3),
        figure(r.ece, 4),
        figure(r.mean_stated, 3),
        figure(r.observed, 3)
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
            "  {:<8} claims {:<8} mean stated {}  came true {}  Brier {}  Brier skill {}  ECE {}\n",
            a.action.as_str(),
            c.claims,
            figure(c.mean_stated, 3),
            figure(c.observed, 3),
            figure(c.brier, 4),
            figure(c.brier_skill, 3),
            figure(c.ece, 4)
        ));
        for b in &c.reliability {
            out.push_str(&format!(
                "             {:.1}-{:.1}  {:<8} {:<12.3} {:.3}\n",
                b.lower, b.upper, b.count, b.mean_stated, b.observed
            ));
        }
    }
    out
}
