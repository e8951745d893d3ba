//! The forecast batch job: daily aggregates in, forecasts and
//! recommendations out.
//!
//! 1. `load` streams `price_daily` out of PostgreSQL into dense columns.
//! 2. `features` computes per (listing, day) features with polars.
//! 3. Every past day with a known future is a labelled example: what would
//!    have been claimed that day, and did it come true? A logistic model per
//!    action learns, from those examples, the probability that its claim
//!    holds: that probability is the confidence (`model`). The models learn
//!    from a sample of at most `Params::train_listings` listings chosen by
//!    id alone (`load::training_sample`), so every shard of a split gets the
//!    same models as one run over everything.
//! 4. For each listing's latest day, `recommend` picks the action and the
//!    forecast path. The run reads, computes and writes its shard a chunk
//!    of `Params::chunk_listings` listings at a time, so its memory does not
//!    grow with the catalogue; all chunks go into one transaction per run.

pub mod backtest;
pub mod distribution;
pub mod events;
pub mod evidence;
pub mod features;
pub mod load;
pub mod metrics;
pub mod model;
pub mod recommend;
#[cfg(test)]
mod reference;
pub mod reliability;
pub mod shelf;

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;

use features::FeatureParams;
use load::{Listings, Shard};
use model::Calibrated;
use recommend::{Action, Claim, Snapshot};
use shelfwatch_store::PgPool;
use shelfwatch_store::forecasts::{self, ForecastDay, NewRun, Recommendation, RunWriter};
use shelfwatch_store::jobs::Job;

/// Stored with every run; bump when the method changes.
pub const MODEL_VERSION: &str = "shelf-outcomes-logit-crossfit-9";

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Params {
    pub wma_window: usize,
    pub horizon: usize,
    pub vol_window: usize,
    pub promo_window: usize,
    /// A listing unseen for longer than this many days gets no forecast.
    pub max_gap_days: i32,
    /// At most this many training examples per action (evenly spaced).
    pub max_examples: usize,
    pub ridge: f64,
    /// The confidence models learn from at most this many listings
    /// (`load::training_sample`).
    pub train_listings: usize,
    /// Listings read, computed and written together.
    pub chunk_listings: usize,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            wma_window: 7,
            horizon: 7,
            vol_window: 28,
            promo_window: 56,
            max_gap_days: 7,
            max_examples: 300_000,
            ridge: 1.0,
            train_listings: 20_000,
            chunk_listings: 5_000,
        }
    }
}

impl Params {
    pub fn features(&self) -> FeatureParams {
        FeatureParams {
            wma_window: self.wma_window,
            horizon: self.horizon,
            vol_window: self.vol_window,
            promo_window: self.promo_window,
        }
    }
}

/// The feature columns, taken out of the polars frame once.
pub struct Frame {
    pub listing_id: Vec<i64>,
    pub day: Vec<i32>,
    pub price: Vec<f64>,
    pub promo: Vec<bool>,
    pub observed: Vec<bool>,
    pub history_days: Vec<f64>,
    pub wma: Vec<f64>,
    pub regular: Vec<f64>,
    pub volatility: Vec<f64>,
    pub promo_freq: Vec<f64>,
    pub future_min: Vec<f64>,
    pub future_max: Vec<f64>,
    /// Promotion facts read from the shelf price (`events`).
    pub cut: Vec<bool>,
    pub since_start: Vec<f32>,
    pub cut_share: Vec<f32>,
    pub promos_ended: Vec<f32>,
    pub days_in_promo: Vec<f32>,
    pub days_since_promo: Vec<f32>,
    pub mean_promo_len: Vec<f32>,
    pub mean_promo_gap: Vec<f32>,
    pub gap_sd: Vec<f32>,
    pub cut_depth: Vec<f32>,
    pub recent_promo_len: Vec<f32>,
    /// Each listing's track record (`evidence`).
    pub evidence: evidence::Evidence,
    /// The horizon the `future_*` columns look over.
    pub future_horizon: usize,
    /// Days from each row to the listing's next observed day (u32::MAX
    /// when there is none).
    pub next_observed: Vec<u32>,
}

/// The input columns come back from polars as they went in (never null).
fn typed_column<T>(
    df: &polars::prelude::DataFrame,
    name: &str,
    read: impl Fn(&polars::prelude::Column) -> polars::prelude::PolarsResult<Vec<T>>,
) -> anyhow::Result<Vec<T>> {
    let column = df
        .column(name)
        .with_context(|| format!("feature column {name}"))?;
    read(column).with_context(|| format!("feature column {name}"))
}

fn f64_column(df: &polars::prelude::DataFrame, name: &str) -> anyhow::Result<Vec<f64>> {
    let column = df
        .column(name)
        .with_context(|| format!("feature column {name}"))?;
    let values = column
        .f64()
        .with_context(|| format!("feature column {name} as f64"))?;
    Ok(values.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
}

fn bool_column(df: &polars::prelude::DataFrame, name: &str) -> anyhow::Result<Vec<bool>> {
    let column = df
        .column(name)
        .with_context(|| format!("feature column {name}"))?;
    let values = column
        .bool()
        .with_context(|| format!("feature column {name} as bool"))?;
    Ok(values.iter().map(|v| v.unwrap_or(false)).collect())
}

impl Frame {
    /// Computes features for `series` (CPU-bound: call off the async runtime).
    /// The feature pipeline sees the promotion flag of `events` (flagged or
    /// cut), not the stored flag alone; the run features (days in and
    /// since, mean length and gap) are taken from `events`, which can
    /// forget a drop that turned out to be a permanent price change.
    pub fn compute(mut series: features::DailySeries, params: &Params) -> anyhow::Result<Self> {
        let mut events = events::annotate(&series);
        series.promo = std::mem::take(&mut events.promo);
        let df = features::compute(series, &params.features())?;
        let mut frame = Self {
            cut: events.cut,
            since_start: events.since_start,
            cut_share: events.cut_share,
            promos_ended: events.ended,
            days_in_promo: events.days_in_promo,
            days_since_promo: events.days_since_promo,
            mean_promo_len: events.mean_promo_len,
            mean_promo_gap: events.mean_promo_gap,
            gap_sd: events.gap_sd,
            cut_depth: events.cut_depth,
            recent_promo_len: events.recent_promo_len,
            evidence: evidence::Evidence::default(),
            next_observed: Vec::new(),
            future_horizon: params.horizon,
            listing_id: typed_column(&df, "listing_id", |c| {
                Ok(c.i64()?.iter().map(|v| v.unwrap_or(-1)).collect())
            })?,
            day: typed_column(&df, "day", |c| {
                Ok(c.i32()?.iter().map(|v| v.unwrap_or(i32::MIN)).collect())
            })?,
            price: f64_column(&df, "price")?,
            promo: bool_column(&df, "promo")?,
            observed: bool_column(&df, "observed")?,
            history_days: f64_column(&df, "history_days")?,
            wma: f64_column(&df, "wma")?,
            regular: f64_column(&df, "regular")?,
            volatility: f64_column(&df, "volatility")?,
            promo_freq: f64_column(&df, "promo_freq")?,
            future_min: f64_column(&df, "future_min")?,
            future_max: f64_column(&df, "future_max")?,
        };
        frame.next_observed = next_observed(&frame.listing_id, &frame.observed);
        frame.evidence = evidence::annotate(
            &evidence::Rows {
                listing_id: &frame.listing_id,
                price: &frame.price,
                observed: &frame.observed,
                regular: &frame.regular,
                cut: &frame.cut,
                future_min: &frame.future_min,
                future_max: &frame.future_max,
                next_observed: &frame.next_observed,
            },
            params.horizon,
        );
        Ok(frame)
    }

    /// Whether row `i` is an observed day whose next `h` days are known
    /// and hold an observed day: only then can a claim made on it be
    /// judged (a forward-filled day only repeats the one before).
    pub fn judgeable(&self, i: usize) -> bool {
        let h = u32::try_from(self.future_horizon).unwrap_or(u32::MAX);
        self.observed[i]
            && self.future_min[i].is_finite()
            && self.future_max[i].is_finite()
            && self.next_observed[i] <= h
    }

    pub fn len(&self) -> usize {
        self.listing_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.listing_id.is_empty()
    }

    pub fn snapshot(&self, i: usize) -> Snapshot {
        let finite = |v: f64| v.is_finite().then_some(v);
        Snapshot {
            price: self.price[i],
            regular: finite(self.regular[i]).unwrap_or(self.price[i]),
            wma: finite(self.wma[i]).unwrap_or(self.price[i]),
            volatility: finite(self.volatility[i]).unwrap_or(0.0),
            promo: self.promo[i],
            promo_freq: finite(self.promo_freq[i]).unwrap_or(0.0),
            days_in_promo: finite(f64::from(self.days_in_promo[i])).unwrap_or(0.0),
            days_since_promo: finite(f64::from(self.days_since_promo[i]))
                .unwrap_or(features::NO_PROMO_YET),
            mean_promo_len: finite(f64::from(self.mean_promo_len[i])),
            mean_promo_gap: finite(f64::from(self.mean_promo_gap[i])),
            history_days: finite(self.history_days[i]).unwrap_or(1.0),
            cut: self.cut[i],
            since_start: finite(f64::from(self.since_start[i])),
            cut_share: finite(f64::from(self.cut_share[i])),
            promos_ended: f64::from(self.promos_ended[i]),
            gap_sd: finite(f64::from(self.gap_sd[i])),
            cut_depth: finite(f64::from(self.cut_depth[i])),
            recent_promo_len: finite(f64::from(self.recent_promo_len[i])),
            moved_rate: finite(f64::from(self.evidence.moved[i])),
            fell_rate: finite(f64::from(self.evidence.fell[i])),
            moved_uncut_rate: finite(f64::from(self.evidence.moved_uncut[i])),
            lower_after_cut_rate: finite(f64::from(self.evidence.lower_after_cut[i])),
            reverted_rate: finite(f64::from(self.evidence.reverted[i])),
            evidence_weight: f64::from(self.evidence.weight[i]),
            since_regular_change: finite(f64::from(self.evidence.since_regular_change[i])),
            regular_change_gap: finite(f64::from(self.evidence.regular_change_gap[i])),
            below_recent_max: finite(f64::from(self.evidence.below_recent_max[i])),
            against_recent_mean: finite(f64::from(self.evidence.against_recent_mean[i])),
        }
    }

    /// Price `h` days after row `i` of the same listing, if the series has it.
    pub fn ahead(&self, i: usize, h: usize) -> Option<f64> {
        let j = i + h;
        (j < self.len() && self.listing_id[j] == self.listing_id[i]).then(|| self.price[j])
    }
}

/// Training examples of one model: feature rows, whether the claim came
/// true, and the day each was made.
#[derive(Default)]
struct Examples(Vec<Vec<f64>>, Vec<bool>, Vec<i32>);

/// Days from each row to the next observed row of the same listing.
fn next_observed(listing_id: &[i64], observed: &[bool]) -> Vec<u32> {
    let mut out = vec![u32::MAX; listing_id.len()];
    let mut next: Option<usize> = None;
    for i in (0..listing_id.len()).rev() {
        if i + 1 < listing_id.len() && listing_id[i + 1] != listing_id[i] {
            next = None;
        }
        if let Some(j) = next {
            out[i] = u32::try_from(j - i).unwrap_or(u32::MAX);
        }
        if observed[i] {
            next = Some(i);
        }
    }
    out
}

/// One logistic model per action, and the one behind the forecast path.
#[derive(Debug, Clone, Serialize)]
pub struct Models {
    pub buy_now: Calibrated,
    pub wait: Calibrated,
    pub hold: Calibrated,
    /// On a day the shelf price is cut: the probability that `k` days
    /// ahead it is back at the regular price (closer to it than to
    /// today's), one model per `k` in 1..=horizon.
    pub back_to_regular: Vec<Calibrated>,
    /// What followed the claims made on the training days: the forecast
    /// bands (`distribution`).
    pub outcomes: distribution::Outcomes,
}

impl Models {
    pub fn get(&self, action: Action) -> &Calibrated {
        match action {
            Action::BuyNow => &self.buy_now,
            Action::Wait => &self.wait,
            Action::Hold => &self.hold,
        }
    }

    /// Trains on the labelled examples at rows where `use_row` holds (at
    /// most `max_examples` per action, evenly spaced, so large histories
    /// stay cheap). A day the rules call buy_now is a buy_now example;
    /// every other day is a hold example (any of them may end as hold),
    /// and also a wait example when a wait could be said of the listing at
    /// all (`recommend::wait_eligible`), due or not, so the wait model
    /// learns how timing and habit change the odds from many more days
    /// than the few it is finally stated on.
    pub fn train(frame: &Frame, params: &Params, use_row: impl Fn(usize) -> bool) -> Self {
        let examples = |i: usize| -> Option<(Claim, bool)> {
            if !use_row(i) || !frame.judgeable(i) {
                return None;
            }
            let s = frame.snapshot(i);
            Some((
                recommend::decide(&s, params.horizon),
                recommend::wait_eligible(&s),
            ))
        };
        // The claims a day teaches, as (model slot, claim).
        let slots = |claim: Claim, wait_ok: bool| {
            let as_action = |action| Claim { action, ..claim };
            let mut out = [None; 2];
            if claim.action == Action::BuyNow {
                out[0] = Some(claim);
            } else {
                out[0] = Some(as_action(Action::Hold));
                if wait_ok {
                    out[1] = Some(as_action(Action::Wait));
                }
            }
            out
        };
        // First pass: count each action's examples, so the second keeps
        // every k-th one and never holds more than `max_examples` rows.
        let mut counts = [0usize; 3];
        for i in 0..frame.len() {
            if let Some((claim, wait_ok)) = examples(i) {
                for c in slots(claim, wait_ok).into_iter().flatten() {
                    counts[c.action.index()] += 1;
                }
            }
        }
        let cap = params.max_examples.max(1);
        let steps = counts.map(|n| n.div_ceil(cap).max(1));
        let mut seen = [0usize; 3];
        let mut data: [Examples; 3] = Default::default();
        for i in 0..frame.len() {
            let Some((claim, wait_ok)) = examples(i) else {
                continue;
            };
            let s = frame.snapshot(i);
            let (fmin, fmax) = (frame.future_min[i], frame.future_max[i]);
            let mut x = None;
            for c in slots(claim, wait_ok).into_iter().flatten() {
                let slot = c.action.index();
                if seen[slot] % steps[slot] == 0 {
                    let row = x
                        .get_or_insert_with(|| recommend::features(&s, params.horizon))
                        .clone();
                    data[slot].0.push(row);
                    data[slot].1.push(c.came_true(fmin, fmax));
                    data[slot].2.push(frame.day[i]);
                }
                seen[slot] += 1;
            }
        }
        let fit = |Examples(rows, labels, days): &Examples| {
            Calibrated::fit(rows, labels, days, params.ridge)
        };
        let mut models = Self {
            buy_now: fit(&data[0]),
            wait: fit(&data[1]),
            hold: fit(&data[2]),
            back_to_regular: Self::train_path(frame, params, &use_row),
            outcomes: distribution::Outcomes::default(),
        };
        models.outcomes = models.train_outcomes(frame, params, &use_row);
        models
    }

    /// The outcomes of the claims the fitted models make on the training
    /// days (at most `max_examples`, evenly spaced): the price on each
    /// later observed day against the claim's price.
    fn train_outcomes(
        &self,
        frame: &Frame,
        params: &Params,
        use_row: &impl Fn(usize) -> bool,
    ) -> distribution::Outcomes {
        let h = params.horizon;
        let rows: Vec<usize> = (0..frame.len())
            .filter(|i| use_row(*i) && frame.observed[*i] && frame.ahead(*i, h).is_some())
            .collect();
        let step = rows.len().div_ceil(params.max_examples.max(1)).max(1);
        let examples: Vec<distribution::Example> = rows
            .iter()
            .step_by(step)
            .map(|i| {
                let (claim, confidence) = self.recommend(frame, *i, h);
                let base = claim.price.max(1) as f64;
                distribution::Example {
                    action: claim.action,
                    confidence,
                    ratios: (1..=h)
                        .map(|k| {
                            if frame.observed[i + k] {
                                frame.price[i + k] / base
                            } else {
                                f64::NAN
                            }
                        })
                        .collect(),
                }
            })
            .collect();
        distribution::Outcomes::fit(&examples, h)
    }

    /// The path models learn from every cut day at rows where `use_row`
    /// holds: `k` days later, was the price closer to the regular price
    /// than to the cut one? (At most `max_examples` per model, evenly
    /// spaced.)
    fn train_path(
        frame: &Frame,
        params: &Params,
        use_row: &impl Fn(usize) -> bool,
    ) -> Vec<Calibrated> {
        let applies = |i: usize| {
            use_row(i) && frame.observed[i] && recommend::path_applies(&frame.snapshot(i))
        };
        let rows: Vec<usize> = (0..frame.len()).filter(|i| applies(*i)).collect();
        let step = rows.len().div_ceil(params.max_examples.max(1)).max(1);
        (1..=params.horizon)
            .map(|k| {
                let (mut x, mut y, mut days) = (Vec::new(), Vec::new(), Vec::new());
                for i in rows.iter().step_by(step) {
                    let Some(later) = frame.ahead(*i, k) else {
                        continue;
                    };
                    let s = frame.snapshot(*i);
                    x.push(recommend::path_features(&s, k));
                    y.push((later - s.regular).abs() < (later - s.price).abs());
                    days.push(frame.day[*i]);
                }
                Calibrated::fit(&x, &y, &days, params.ridge)
            })
            .collect()
    }

    /// The forecast path for a day with snapshot `s`, beside `claim`
    /// stated with `confidence`: the point forecast of
    /// `recommend::forecast_path`, and the band of the outcomes of like
    /// claims (`distribution`), made to agree with the claim.
    pub fn path(
        &self,
        s: &Snapshot,
        claim: &Claim,
        confidence: f64,
        horizon: usize,
    ) -> Vec<recommend::ForecastPoint> {
        let mut path = recommend::forecast_path(s, horizon, |k| {
            self.back_to_regular
                .get(k.wrapping_sub(1))
                .map_or(0.0, |m| m.predict(&recommend::path_features(s, k)))
        });
        let base = claim.price.max(1) as f64;
        for (k, p) in path.iter_mut().enumerate() {
            if let Some(band) = self.outcomes.ratios(claim.action, confidence, k + 1) {
                p.lower = base * band.lower;
                p.upper = base * band.upper;
                p.lower_share = band.lower_share;
                p.upper_share = band.upper_share;
            }
        }
        distribution::consistent_band(claim, confidence, &mut path);
        path
    }

    /// The claim for row `i` with its confidence. A wait that is less likely
    /// than not becomes a hold: we do not tell people to wait on a coin flip.
    pub fn recommend(&self, frame: &Frame, i: usize, horizon: usize) -> (Claim, f64) {
        self.recommend_on_shelf(frame, i, horizon, None)
    }

    /// [`Models::recommend`], with what the shelf shows today (the
    /// was-price, the offer, stock: `recommend::decide_on_shelf`).
    pub fn recommend_on_shelf(
        &self,
        frame: &Frame,
        i: usize,
        horizon: usize,
        shelf: Option<&shelf::Shelf>,
    ) -> (Claim, f64) {
        let history = frame.snapshot(i);
        let claim = recommend::decide_on_shelf(&history, horizon, shelf);
        let s = recommend::snapshot_for(&history, &claim);
        let x = recommend::features(&s, horizon);
        let p = self.get(claim.action).predict(&x);
        if claim.action == Action::Wait && p < 0.5 {
            let hold = Claim {
                action: Action::Hold,
                ..claim
            };
            return (hold, self.hold.predict(&x));
        }
        (claim, p)
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// Nothing changed since run `run_id`, which already has the results.
    Unchanged {
        run_id: i64,
    },
    Completed {
        run_id: i64,
        series: usize,
    },
}

/// Runs the job once over `shard`, as of the latest day with data (in
/// any shard, so every shard of a split forecasts as of the same day).
#[tracing::instrument(skip_all, fields(shard = %shard))]
pub async fn run_once(pool: &PgPool, params: &Params, shard: Shard) -> anyhow::Result<RunOutcome> {
    let Some(as_of_day) = load::latest_day(pool, Shard::ALL).await? else {
        anyhow::bail!("price_daily has no data: import or scrape prices first");
    };
    let ids = forecasts::listing_ids(pool).await?;
    let sample = load::training_sample(&ids, params.train_listings);
    let fingerprint = fingerprint(pool, params, shard, &sample, as_of_day).await?;
    let previous = forecasts::succeeded_run_with_fingerprint(pool, &fingerprint).await?;
    if let Some(run_id) = previous {
        tracing::info!(run_id, "inputs unchanged since that run; nothing to do");
        return Ok(RunOutcome::Unchanged { run_id });
    }
    let as_of = load::day_to_date(as_of_day)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .context("as-of day out of range")?;
    let run_id = forecasts::start_run(
        pool,
        &NewRun {
            model_version: MODEL_VERSION,
            params,
            as_of,
            shard,
            input_fingerprint: &fingerprint,
        },
    )
    .await?;
    let run = Run {
        params: *params,
        shard,
        as_of_day,
        as_of,
        run_id,
    };
    match compute_and_store(pool, &run, &ids, &sample).await {
        Ok(series) => Ok(RunOutcome::Completed { run_id, series }),
        Err(e) => {
            let _ = forecasts::fail_run(pool, run_id, &format!("{e:#}")).await;
            Err(e)
        }
    }
}

/// The shard a queued forecast job asks for (`{"shard": "i/n"}` in its
/// params), or `default` (the worker's own) when it names none.
pub fn job_shard(job: Option<&Job>, default: Shard) -> anyhow::Result<Shard> {
    match job.and_then(|j| j.params.get("shard")) {
        None | Some(serde_json::Value::Null) => Ok(default),
        Some(serde_json::Value::String(text)) => Shard::parse(text),
        Some(other) => anyhow::bail!("job shard {other} is not a string like \"0/4\""),
    }
}

/// A worker's pass: a scheduled run over `default` (no job), or the run a
/// queued job asks for ([`job_shard`]), counted and timed.
pub async fn run_job(
    pool: &PgPool,
    params: &Params,
    default: Shard,
    job: Option<&Job>,
) -> anyhow::Result<RunOutcome> {
    let shard = job_shard(job, default)?;
    metrics::timed_run(pool, params, shard).await
}

/// Identifies the inputs of a run: the daily data of the shard and of the
/// training sample, the as-of day, the method and its parameters. An equal
/// fingerprint means an equal result.
async fn fingerprint(
    pool: &PgPool,
    params: &Params,
    shard: Shard,
    sample: &[i64],
    as_of_day: i32,
) -> anyhow::Result<String> {
    let mut h = DefaultHasher::new();
    let mut summaries = vec![forecasts::daily_summary(pool, Listings::Shard(shard)).await?];
    // A run over everything has read the sample's rows already.
    if shard != Shard::ALL {
        summaries.push(forecasts::daily_summary(pool, Listings::Ids(sample)).await?);
    }
    for forecasts::DailySummary {
        rows,
        observations,
        sum_pence: pence,
        last_at: last,
    } in summaries
    {
        (
            rows,
            observations,
            pence,
            last.map(|t| t.timestamp_micros()),
        )
            .hash(&mut h);
    }
    sample.hash(&mut h);
    as_of_day.hash(&mut h);
    MODEL_VERSION.hash(&mut h);
    serde_json::to_string(params)?.hash(&mut h);
    shard.to_string().hash(&mut h);
    Ok(format!("{:016x}", h.finish()))
}

/// Per listing, what is stored.
pub struct Output {
    pub listing_id: i64,
    pub claim: Claim,
    pub confidence: f64,
    pub message: String,
    pub path: Vec<recommend::ForecastPoint>,
}

/// What a run is, once started.
struct Run {
    params: Params,
    shard: Shard,
    as_of_day: i32,
    as_of: DateTime<Utc>,
    run_id: i64,
}

/// How much the confidence models learnt from: stored with the run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Training {
    /// Listings in the sample.
    pub listings: usize,
    /// Daily rows of those listings (gaps filled).
    pub rows: usize,
}

/// Trains on the sample, then reads, computes and writes the shard a chunk
/// at a time, all in the run's one transaction. Computing a chunk overlaps
/// with reading the next one and writing the one before.
async fn compute_and_store(
    pool: &PgPool,
    run: &Run,
    ids: &[i64],
    sample: &[i64],
) -> anyhow::Result<usize> {
    let p = run.params;
    let mut writer = RunWriter::begin(pool, run.run_id, run.as_of).await?;
    let series = load::load_on(
        writer.conn(),
        Listings::Ids(sample),
        run.as_of_day,
        p.max_gap_days,
    )
    .await?;
    let as_of_day = run.as_of_day;
    let (models, training, measured) = tokio::task::spawn_blocking(move || {
        let frame = Frame::compute(series, &p)?;
        let training = Training {
            listings: frame.listing_id.chunk_by(|a, b| a == b).count(),
            rows: frame.len(),
        };
        let (models, measured) = train_and_measure(&frame, &p, as_of_day)?;
        anyhow::Ok((models, training, measured))
    })
    .await
    .context("training the confidence models panicked")??;
    tracing::info!(
        listings = training.listings,
        rows = training.rows,
        "confidence models trained on the sample"
    );
    // In the run's transaction, so a succeeded run has its table from the
    // moment it is current.
    if let Some(m) = &measured {
        tracing::info!(
            claims = m.all.claims,
            ece = m.all.ece,
            "calibration measured out of sample"
        );
        shelfwatch_store::calibration::store(writer.conn(), run.run_id, &m.bins()).await?;
    }
    let models = Arc::new(models);
    let until = run.as_of + chrono::Duration::days(1);
    let mut pending: Option<tokio::task::JoinHandle<anyhow::Result<Vec<Output>>>> = None;
    let mine = load::in_shard(ids, run.shard);
    for chunk in load::chunks(&mine, run.shard, p.chunk_listings) {
        let series = load::load_on(writer.conn(), chunk, run.as_of_day, p.max_gap_days).await?;
        let mut today: Vec<i64> = (0..series.day.len())
            .filter(|i| series.day[*i] == run.as_of_day)
            .map(|i| series.listing_id[i])
            .collect();
        today.dedup();
        let shelves = shelf::latest(writer.conn(), &today, until).await?;
        if let Some(previous) = pending.take() {
            let outputs = previous
                .await
                .context("the forecast computation panicked")??;
            writer.write(&recommendations(&outputs)).await?;
        }
        let (models, as_of_day) = (Arc::clone(&models), run.as_of_day);
        pending = Some(tokio::task::spawn_blocking(move || {
            let frame = Frame::compute(series, &p)?;
            Ok(recommend_all(&frame, &models, &p, as_of_day, &shelves))
        }));
    }
    if let Some(last) = pending {
        let outputs = last.await.context("the forecast computation panicked")??;
        writer.write(&recommendations(&outputs)).await?;
    }
    writer
        .finish(&*models, &serde_json::json!({ "training": training }))
        .await
}

/// What is stored of each output.
fn recommendations(outputs: &[Output]) -> Vec<Recommendation> {
    outputs
        .iter()
        .map(|o| Recommendation {
            listing_id: o.listing_id,
            action: o.claim.action,
            claim: o.claim.statement(),
            current_pence: o.claim.price,
            regular_pence: o.claim.regular,
            expected_change_pence: o.claim.expected_change(),
            confidence: o.confidence,
            message: o.message.clone(),
            path: o
                .path
                .iter()
                .map(|point| ForecastDay {
                    predicted_pence: point.predicted.round() as i64,
                    lower_pence: point.lower.round() as i64,
                    upper_pence: point.upper.round() as i64,
                })
                .collect(),
        })
        .collect()
}

/// Writes a run's results and marks it succeeded, in one transaction.
pub async fn store(
    pool: &PgPool,
    run_id: i64,
    as_of: DateTime<Utc>,
    outputs: &[Output],
    models: &Models,
) -> anyhow::Result<usize> {
    forecasts::store_results(pool, run_id, as_of, &recommendations(outputs), models).await
}

/// The confidence models trained on the sample `frame`, and the method's
/// calibration measured out of sample on the same listings' recent past
/// ([`reliability::measure`]). The measurement trains models of its own: on
/// a second thread, so a run takes little longer where a second core is
/// free.
fn train_and_measure(
    frame: &Frame,
    params: &Params,
    as_of_day: i32,
) -> anyhow::Result<(Models, Option<reliability::Measured>)> {
    std::thread::scope(|scope| {
        let measuring = scope.spawn(|| reliability::measure(frame, params, as_of_day));
        let models = Models::train(frame, params, |_| true);
        let measured = measuring
            .join()
            .map_err(|_| anyhow::anyhow!("measuring calibration panicked"))?;
        Ok((models, measured))
    })
}

/// The recommendation and forecast path of every listing whose last row is
/// on `as_of_day`, with what its shelf shows today where known.
pub fn recommend_all(
    frame: &Frame,
    models: &Models,
    params: &Params,
    as_of_day: i32,
    shelves: &HashMap<i64, shelf::Shelf>,
) -> Vec<Output> {
    let mut outputs = Vec::new();
    for i in 0..frame.len() {
        let last_of_listing =
            i + 1 == frame.len() || frame.listing_id[i + 1] != frame.listing_id[i];
        if !last_of_listing || frame.day[i] != as_of_day {
            continue;
        }
        let shelf = shelves.get(&frame.listing_id[i]);
        let (claim, confidence) = models.recommend_on_shelf(frame, i, params.horizon, shelf);
        outputs.push(Output {
            listing_id: frame.listing_id[i],
            claim,
            confidence,
            message: recommend::shelf_message(&claim, confidence, shelf),
            path: models.path(&frame.snapshot(i), &claim, confidence, params.horizon),
        });
    }
    outputs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::lcg;

    /// Random listings: some flat, some with their own promotion cycle
    /// (cut or not), some changing their regular price, some seen weekly.
    fn random_series(seed: u64, listings: i64, days: i32) -> features::DailySeries {
        let mut seed = seed;
        let mut b = load::Builder::new(days - 1, 7);
        for id in 0..listings {
            let mut regular = (60.0 + 300.0 * lcg(&mut seed)).round();
            let cycle = 14 + (lcg(&mut seed) * 40.0) as i32;
            let length = 3 + (lcg(&mut seed) * 8.0) as i32;
            let promotes = lcg(&mut seed) < 0.7;
            let depth = 0.1 + 0.3 * lcg(&mut seed);
            let weekly = lcg(&mut seed) < 0.2;
            let offset = (lcg(&mut seed) * cycle as f64) as i32;
            for day in 0..days {
                if lcg(&mut seed) < 0.01 {
                    regular = (regular * (0.9 + 0.25 * lcg(&mut seed))).round();
                }
                let on = promotes && (day + offset) % cycle < length;
                let cut = on && id % 3 != 0;
                let price = if cut {
                    (regular * (1.0 - depth)).round()
                } else {
                    regular
                };
                if !weekly || day % 7 == 0 {
                    b.push(id, day, price, on);
                }
            }
        }
        b.finish()
    }

    /// Property: on every day of every listing, with or without a shelf
    /// (was-price, multi-buy, out of stock), the claim the trained models
    /// make and the band they draw beside it never disagree, and the point
    /// forecast lies inside the band.
    #[test]
    fn trained_claims_and_bands_never_disagree() {
        let params = Params::default();
        for seed in [3, 11] {
            let frame = Frame::compute(random_series(seed, 40, 200), &params).unwrap();
            let models = Models::train(&frame, &params, |_| true);
            let mut shelf_seed = seed;
            let mut confidences = std::collections::BTreeSet::new();
            for i in (0..frame.len()).filter(|i| frame.observed[*i]) {
                let price = frame.price[i].round() as i64;
                let r = lcg(&mut shelf_seed);
                let shelf = match (r * 5.0) as u32 {
                    0 => None,
                    1 => Some(shelf::Shelf {
                        was_pence: Some(price + 1 + (price as f64 * r) as i64),
                        ..shelf::Shelf::plain(price)
                    }),
                    2 => Some(shelf::Shelf {
                        effective_pence: (price * 3 / 4).max(1),
                        condition: Some("when you buy 2".to_owned()),
                        ..shelf::Shelf::plain(price)
                    }),
                    3 => Some(shelf::Shelf {
                        in_stock: false,
                        ..shelf::Shelf::plain(price)
                    }),
                    _ => Some(shelf::Shelf::plain(price)),
                };
                let (claim, confidence) =
                    models.recommend_on_shelf(&frame, i, params.horizon, shelf.as_ref());
                let path = models.path(&frame.snapshot(i), &claim, confidence, params.horizon);
                assert_eq!(path.len(), params.horizon);
                assert!(
                    !distribution::disagrees(&claim, confidence, &path),
                    "row {i}: {claim:?} at {confidence} beside {path:?}"
                );
                if shelf.as_ref().is_some_and(|s| !s.in_stock) {
                    assert_ne!(claim.action, Action::BuyNow, "row {i}: out of stock");
                }
                confidences.insert((confidence * 1000.0).round() as i64);
            }
            // Confidence follows each listing's evidence: no one constant.
            assert!(confidences.len() > 20, "{confidences:?}");
        }
    }

    #[test]
    fn next_observed_counts_days_within_a_listing() {
        let ids = [1, 1, 1, 1, 2, 2];
        let seen = [true, false, false, true, true, false];
        assert_eq!(
            next_observed(&ids, &seen),
            [3, 2, 1, u32::MAX, u32::MAX, u32::MAX]
        );
    }
}
