//! From one listing's features on one day to a forecast path and a
//! recommendation: an action whose claim is a checkable event over the
//! horizon, and a message in plain English.

use shelfwatch_domain::money::format_pence;

use super::shelf::Shelf;

/// What is known about a listing on one day (from `features::compute`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snapshot {
    pub price: f64,
    pub regular: f64,
    pub wma: f64,
    pub volatility: f64,
    pub promo: bool,
    pub promo_freq: f64,
    pub days_in_promo: f64,
    pub days_since_promo: f64,
    pub mean_promo_len: Option<f64>,
    pub mean_promo_gap: Option<f64>,
    pub history_days: f64,
    /// The shelf price is cut below the reference price (`events`).
    pub cut: bool,
    /// Days since the latest promotion started.
    pub since_start: Option<f64>,
    /// Share of the listing's ended promotions that cut the shelf price.
    pub cut_share: Option<f64>,
    /// How many of its promotions have ended.
    pub promos_ended: f64,
    /// Standard deviation of the gaps between promotion starts, days.
    pub gap_sd: Option<f64>,
    /// Mean depth of its ended cuts (share of the reference price).
    pub cut_depth: Option<f64>,
    /// Length of its ended promotions, the latest weighing most.
    pub recent_promo_len: Option<f64>,
    /// Its track record (`evidence`): shares of its past days after which
    /// the price moved meaningfully, fell meaningfully, went lower after a
    /// cut, and was back at the regular price after a cut.
    pub moved_rate: Option<f64>,
    pub fell_rate: Option<f64>,
    /// The share of its past uncut days after which the price moved
    /// meaningfully: how often a hold said on such a day failed.
    pub moved_uncut_rate: Option<f64>,
    pub lower_after_cut_rate: Option<f64>,
    pub reverted_rate: Option<f64>,
    /// Decayed number of its past days with a known outcome.
    pub evidence_weight: f64,
    /// Days since its regular price last changed, and the mean days
    /// between such changes.
    pub since_regular_change: Option<f64>,
    pub regular_change_gap: Option<f64>,
    /// Log ratios of today's price to the highest and to the mean of its
    /// recent observed prices (`evidence`).
    pub below_recent_max: Option<f64>,
    pub against_recent_mean: Option<f64>,
}

pub use shelfwatch_domain::action::Action;

/// The claim an action makes, with the amounts it is about (pence).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Claim {
    pub action: Action,
    /// Today's price.
    pub price: i64,
    /// The regular (non-promotion) price.
    pub regular: i64,
    /// buy_now: the drop below regular; wait: the drop the claim expects at
    /// least; hold: the band the price is claimed to stay within.
    pub amount: i64,
    pub horizon: usize,
}

impl Claim {
    /// What the claim says, checkably.
    pub fn statement(&self) -> String {
        let h = self.horizon;
        match self.action {
            Action::BuyNow => format!(
                "the price will not be lower than today's {} within {h} days",
                format_pence(self.price)
            ),
            Action::Wait => format!(
                "the price will drop by at least {} below today's {} within {h} days",
                format_pence(self.amount),
                format_pence(self.price)
            ),
            Action::Hold => format!(
                "the price will stay within {} of today's {} for {h} days",
                format_pence(self.amount),
                format_pence(self.price)
            ),
        }
    }

    /// Whether the claim came true, given the lowest and highest price over
    /// the next `horizon` days.
    pub fn came_true(&self, future_min: f64, future_max: f64) -> bool {
        let price = self.price as f64;
        let amount = self.amount as f64;
        match self.action {
            Action::BuyNow => future_min >= price,
            Action::Wait => future_min <= price - amount,
            Action::Hold => future_min >= price - amount && future_max <= price + amount,
        }
    }

    /// The expected change against today's price: buy_now reports the drop
    /// already taken (negative), wait the drop expected (negative), hold 0.
    pub fn expected_change(&self) -> i64 {
        match self.action {
            Action::BuyNow | Action::Wait => -self.amount,
            Action::Hold => 0,
        }
    }

    /// The sentence shoppers see. The percentage stays within 1..=99: the
    /// model never knows for certain, and the message should not say so.
    pub fn message(&self, confidence: f64) -> String {
        let pct = percent(confidence);
        match self.action {
            Action::BuyNow => format!(
                "Good time to buy: {} drop detected, {pct}% confidence",
                format_pence(self.amount)
            ),
            Action::Wait => format!(
                "Wait: a drop of at least {} is likely within {} days ({pct}% confidence)",
                format_pence(self.amount),
                self.horizon
            ),
            // A hold less likely than not still states the same claim and
            // confidence, but "Price is stable (30% confidence)" would read
            // as a promise of stability: say what is likelier (decided on
            // the percentage shown, so words and number agree).
            Action::Hold if pct < 50 => format!(
                "Price may change within {} days ({pct}% chance it stays stable)",
                self.horizon
            ),
            Action::Hold => format!("Price is stable ({pct}% confidence)"),
        }
    }
}

/// What the shelf shows today decides the claim where it knows better than
/// the history: the was-price is the reference, an offer's effective price
/// is what a shopper pays, and an item out of stock is never a buy.
pub fn decide_on_shelf(s: &Snapshot, horizon: usize, shelf: Option<&Shelf>) -> Claim {
    let learned = decide(s, horizon);
    let Some(shelf) = shelf else {
        return learned;
    };
    let hold = |c: Claim| {
        if c.action == Action::BuyNow {
            Claim {
                action: Action::Hold,
                amount: meaningful_move(s.price),
                ..c
            }
        } else {
            c
        }
    };
    if !shelf.in_stock {
        return hold(learned);
    }
    let reference = shelf
        .was_pence
        .unwrap_or_else(|| s.regular.round().max(s.price.round()) as i64);
    let pay = shelf.effective_pence;
    let drop = reference - pay;
    if drop >= meaningful_move(reference as f64) {
        return Claim {
            action: Action::BuyNow,
            price: pay,
            regular: reference,
            amount: drop,
            horizon,
        };
    }
    if shelf.was_pence.is_some() {
        // The shelf's own reference shows no meaningful drop: the history's
        // regular price is older than the shelf's.
        return hold(learned);
    }
    learned
}

/// The snapshot the confidence of `claim` is computed on: a buy on the
/// shelf's was-price or offer is judged as a cut from that reference to
/// the price paid.
pub fn snapshot_for(s: &Snapshot, claim: &Claim) -> Snapshot {
    if claim.action != Action::BuyNow {
        return *s;
    }
    let price = claim.price as f64;
    let regular = claim.regular as f64;
    if (price - s.price).abs() < 0.5 && (regular - s.regular).abs() < 0.5 {
        return *s;
    }
    Snapshot {
        price,
        regular,
        cut: true,
        promo: true,
        days_in_promo: s.days_in_promo.max(1.0),
        ..*s
    }
}

/// The sentence shoppers see, with what the shelf adds: what the price
/// paid takes ("£0.75 each when you buy 2") and stock.
pub fn shelf_message(claim: &Claim, confidence: f64, shelf: Option<&Shelf>) -> String {
    let plain = claim.message(confidence);
    let Some(shelf) = shelf else {
        return plain;
    };
    if !shelf.in_stock {
        return format!("{plain}; out of stock today");
    }
    let Some(condition) = &shelf.condition else {
        return plain;
    };
    // "£0.75 each when you buy 2", "£1.00 with a Clubcard".
    let each = if condition.starts_with("when you buy") {
        " each"
    } else {
        ""
    };
    if claim.action == Action::BuyNow && claim.price < shelf.price_pence {
        let pct = percent(confidence);
        return format!(
            "Good time to buy: {} drop detected ({}{each} {condition}), {pct}% confidence",
            format_pence(claim.amount),
            format_pence(claim.price)
        );
    }
    format!(
        "{plain}; {}{each} {condition}",
        format_pence(shelf.effective_pence)
    )
}

/// A confidence as a whole percentage within 1..=99.
fn percent(confidence: f64) -> i64 {
    ((confidence * 100.0).round() as i64).clamp(1, 99)
}

/// The smallest move that counts: 5% of the price, and at least 5p.
pub fn meaningful_move(price: f64) -> i64 {
    ((price * 0.05).round() as i64).max(5)
}

/// Days until the next promotion is expected to start, from the listing's
/// own cycle (negative when it is overdue); None during a promotion or
/// without a cycle.
pub fn days_to_next_promo(s: &Snapshot) -> Option<f64> {
    let gap = s.mean_promo_gap?;
    if s.promo {
        return None;
    }
    let since_start = s
        .since_start
        .unwrap_or(s.days_since_promo + s.mean_promo_len.unwrap_or(0.0));
    Some(gap - since_start)
}

/// A smooth stand-in for the normal distribution function (logistic with
/// the usual 1.702 scale): good enough for a feature, which the model
/// weighs and the isotonic step recalibrates.
fn smooth_cdf(z: f64) -> f64 {
    1.0 / (1.0 + (-1.702 * z).exp())
}

/// How much of the listing's next promotion start falls within the next
/// `horizon` days, given it has not started by today, if the starts
/// scatter around the cycle as the past gaps did. A feature summarising
/// timing and regularity, not a stated probability.
pub fn start_in_window(s: &Snapshot, horizon: usize) -> f64 {
    let (Some(gap), Some(days)) = (s.mean_promo_gap, days_to_next_promo(s)) else {
        return 0.0;
    };
    let spread = s.gap_sd.unwrap_or(gap * 0.25).max(1.0);
    let not_yet = 1.0 - smooth_cdf(-days / spread);
    let within = smooth_cdf((horizon as f64 - days) / spread) - smooth_cdf(-days / spread);
    if not_yet < 1e-6 {
        1.0
    } else {
        (within / not_yet).clamp(0.0, 1.0)
    }
}

/// Whether a wait could be said of the listing today at all: it is not on
/// promotion, has a promotion cycle, and has cut its shelf price in a past
/// promotion.
pub fn wait_eligible(s: &Snapshot) -> bool {
    !s.promo && s.mean_promo_gap.is_some() && s.cut_share.is_some_and(|c| c > 0.0)
}

/// The action the rules choose before any confidence is attached. Wait is
/// considered only for a listing that has cut its shelf price in a past
/// promotion and whose next promotion is due within the horizon.
pub fn decide(s: &Snapshot, horizon: usize) -> Claim {
    let price = s.price.round() as i64;
    let regular = s.regular.round().max(s.price.round()) as i64;
    let drop = regular - price;
    let step = meaningful_move(s.price);
    let claim = |action, amount| Claim {
        action,
        price,
        regular,
        amount,
        horizon,
    };
    if drop >= meaningful_move(s.regular) {
        return claim(Action::BuyNow, drop);
    }
    if wait_eligible(s)
        && let Some(days) = days_to_next_promo(s)
        && days <= horizon as f64
    {
        return claim(Action::Wait, step);
    }
    claim(Action::Hold, step)
}

/// The names of [`features`], in order (`backtest --features` writes them
/// as its header).
pub const FEATURE_NAMES: [&str; 43] = [
    "drop_ratio",
    "in_promo",
    "cut",
    "promo_age",
    "promo_end_by",
    "cut_x_promo_end_by",
    "promo_freq",
    "ln_history_days",
    "volatility",
    "due_ratio",
    "has_cycle",
    "days_since_promo_30",
    "cut_share",
    "cut_share_known",
    "ln_promos_ended",
    "gap_regularity",
    "start_in_window",
    "start_x_cut_share",
    "cut_depth",
    "relative_depth",
    "moved_logit",
    "fell_logit",
    "moved_uncut_logit",
    "below_recent_max",
    "against_recent_mean",
    "lower_after_cut_logit",
    "cut_x_lower_after_cut_logit",
    "cut_x_reverted_logit",
    "ln_evidence_weight",
    "recent_promo_age",
    "cut_x_recent_promo_age_at_horizon",
    "regular_change_due",
    "since_regular_change_0_30",
    "since_regular_change_30_60",
    "since_regular_change_60_75",
    "since_regular_change_75_90",
    "since_regular_change_90_105",
    "since_regular_change_105_120",
    "since_regular_change_120_180",
    "phase_early_x_cut_share",
    "phase_due_x_cut_share",
    "phase_late_x_cut_share",
    "phase_overdue_x_cut_share",
];

/// Features the confidence model sees (no intercept; names in
/// [`FEATURE_NAMES`]). Every value is known on the day itself: nothing
/// from the future.
pub fn features(s: &Snapshot, horizon: usize) -> Vec<f64> {
    let drop_ratio = if s.regular > 0.0 {
        (s.regular - s.price) / s.regular
    } else {
        0.0
    };
    let promo_len = s.mean_promo_len.unwrap_or(7.0).max(1.0);
    let (due_ratio, has_cycle) = match (s.mean_promo_gap, days_to_next_promo(s)) {
        (Some(gap), Some(days)) if gap > 0.0 => ((days / gap).clamp(-1.0, 2.0), 1.0),
        (Some(_), _) => (0.0, 1.0),
        _ => (0.0, 0.0),
    };
    let regularity = match (s.gap_sd, s.mean_promo_gap) {
        (Some(sd), Some(gap)) if gap > 0.0 => (sd / gap).min(1.0),
        _ => 1.0,
    };
    let cut_share = s.cut_share.unwrap_or(0.0);
    let start = start_in_window(s, horizon);
    let in_promo = if s.promo { 1.0 } else { 0.0 };
    let cut = if s.cut { 1.0 } else { 0.0 };
    let age = s.days_in_promo / promo_len;
    let end_by = if s.promo {
        (s.days_in_promo + horizon as f64) / promo_len
    } else {
        0.0
    };
    vec![
        drop_ratio,
        in_promo,
        cut,
        age,
        end_by.min(4.0),
        cut * end_by.min(4.0),
        s.promo_freq,
        // Capped: beyond a season more history says little, and an
        // uncapped count would only tell the model how late in the
        // training period a day was.
        s.history_days.clamp(1.0, 180.0).ln(),
        s.volatility,
        due_ratio,
        has_cycle,
        s.days_since_promo.min(60.0) / 30.0,
        cut_share,
        if s.cut_share.is_some() { 1.0 } else { 0.0 },
        (1.0 + s.promos_ended.min(4.0)).ln(),
        regularity,
        start,
        start * cut_share,
        s.cut_depth.unwrap_or(0.0),
        relative_depth(s).0,
        // The listing's own track record.
        log_odds(s.moved_rate),
        log_odds(s.fell_rate),
        log_odds(s.moved_uncut_rate),
        // Where today's price stands in its own recent range.
        s.below_recent_max.unwrap_or(0.0),
        s.against_recent_mean.unwrap_or(0.0),
        log_odds(s.lower_after_cut_rate),
        cut * log_odds(s.lower_after_cut_rate),
        cut * log_odds(s.reverted_rate),
        (1.0 + s.evidence_weight).ln(),
        // How far into the promotion against its recent length.
        recent_age(s, 0),
        cut * recent_age(s, horizon),
        // How due a change of the regular price is: against the
        // listing's own spacing of changes, and in bands of days since
        // the last one (the pooled hazard of a change is learned).
        regular_change_due(s, horizon),
        since_band(s, 0.0, 30.0),
        since_band(s, 30.0, 60.0),
        since_band(s, 60.0, 75.0),
        since_band(s, 75.0, 90.0),
        since_band(s, 90.0, 105.0),
        since_band(s, 105.0, 120.0),
        since_band(s, 120.0, 180.0),
        // Where the next promotion start stands against the spread of
        // the past starts, in bands (the chance of a start is not
        // monotone in it: early, due, long overdue).
        phase_band(s, horizon, -1.0, 0.0) * cut_share,
        phase_band(s, horizon, 0.0, 1.0) * cut_share,
        phase_band(s, horizon, 1.0, 2.0) * cut_share,
        phase_band(s, horizon, 2.0, 4.0) * cut_share,
    ]
}

/// Days since the regular price last changed, plus the horizon, against
/// the mean days between its changes (capped at 3; 0 when unknown).
fn regular_change_due(s: &Snapshot, horizon: usize) -> f64 {
    match (s.since_regular_change, s.regular_change_gap) {
        (Some(since), Some(gap)) if gap > 0.0 => ((since + horizon as f64) / gap).min(3.0),
        _ => 0.0,
    }
}

/// 1 when the days since the regular price last changed lie in
/// `[from, to)`.
fn since_band(s: &Snapshot, from: f64, to: f64) -> f64 {
    match s.since_regular_change {
        Some(d) if (from..to).contains(&d) => 1.0,
        _ => 0.0,
    }
}

/// 1 when the days until the next promotion start, in units of the spread
/// of past starts and measured from the end of the horizon, lie in
/// `[from, to)`: below 0 the start is due within the horizon.
fn phase_band(s: &Snapshot, horizon: usize, from: f64, to: f64) -> f64 {
    let (Some(gap), Some(days)) = (s.mean_promo_gap, days_to_next_promo(s)) else {
        return 0.0;
    };
    let spread = s.gap_sd.unwrap_or(gap * 0.25).max(1.0);
    let z = (days - horizon as f64) / spread;
    if (from..to).contains(&z) { 1.0 } else { 0.0 }
}

/// The log-odds of a track-record share (0 when nothing is known yet).
fn log_odds(rate: Option<f64>) -> f64 {
    rate.map_or(0.0, |r| {
        let r = r.clamp(0.01, 0.99);
        (r / (1.0 - r)).ln()
    })
}

/// `k` days after today, how far into the current promotion against the
/// listing's recent promotion length (capped at 4; 0 off promotion).
fn recent_age(s: &Snapshot, k: usize) -> f64 {
    if !s.promo {
        return 0.0;
    }
    let len = s
        .recent_promo_len
        .or(s.mean_promo_len)
        .unwrap_or(7.0)
        .max(1.0);
    ((s.days_in_promo + k as f64) / len).min(4.0)
}

/// Today's drop below the regular price against the listing's typical
/// cut (capped at 2), and whether it has a typical cut: a drop much
/// shallower than its promotions is more likely a permanent change.
fn relative_depth(s: &Snapshot) -> (f64, f64) {
    let drop_ratio = if s.regular > 0.0 {
        ((s.regular - s.price) / s.regular).max(0.0)
    } else {
        0.0
    };
    match s.cut_depth {
        Some(d) if d > 0.0 => ((drop_ratio / d).min(2.0), 1.0),
        _ => (0.0, 0.0),
    }
}

/// Features of the models that say whether, `k` days ahead, a cut price
/// will be back at the regular price (rather than still at today's): how
/// far into the promotion it is, against the listing's typical length.
pub fn path_features(s: &Snapshot, k: usize) -> Vec<f64> {
    let promo_len = s.mean_promo_len.unwrap_or(7.0).max(1.0);
    let (relative_depth, has_depth) = relative_depth(s);
    vec![
        relative_depth,
        has_depth,
        (s.days_in_promo / promo_len).min(4.0),
        ((s.days_in_promo + k as f64) / promo_len).min(4.0),
        s.days_in_promo.min(30.0),
        if s.mean_promo_len.is_some() { 1.0 } else { 0.0 },
        (1.0 + s.promos_ended.min(6.0)).ln(),
        recent_age(s, k),
        log_odds(s.reverted_rate),
    ]
}

/// Whether the path model applies on this day: the shelf price is cut.
pub fn path_applies(s: &Snapshot) -> bool {
    s.cut
}

/// One forecast day: point and band, pence.
///
/// Shelf prices are sticky, so the predictive distribution of a day ahead
/// often has a point mass (most often at today's price) right at an end of
/// the band. The band holds [`crate::distribution::BAND_COVERAGE`] of the
/// probability: all of it strictly inside, and at each end only the share
/// of that end's point mass the band needs (`lower_share`,
/// `upper_share`, 1 for an end with no point mass or one set to agree
/// with the claim). The backtest counts an outcome at an end by that
/// share: the expected coverage of a randomised PIT.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForecastPoint {
    pub predicted: f64,
    pub lower: f64,
    pub upper: f64,
    pub lower_share: f64,
    pub upper_share: f64,
}

impl ForecastPoint {
    /// How much an outcome of `actual` pence counts as inside the band:
    /// 1 strictly inside, the end's share at an end (within half a
    /// penny), 0 outside.
    pub fn covers(&self, actual: f64) -> f64 {
        let at = |end: f64| (actual - end).abs() < 0.5;
        match (at(self.lower), at(self.upper)) {
            (true, true) => self.lower_share.min(self.upper_share),
            (true, false) => self.lower_share,
            (false, true) => self.upper_share,
            _ if self.lower < actual && actual < self.upper => 1.0,
            _ => 0.0,
        }
    }
}

/// The forecast the recommendations use, for days 1..=horizon: today's
/// price, unless the shelf price is cut and `back_to_regular(k)` (the
/// learned probability that `k` days ahead the price is back at the
/// regular price rather than still at today's) is above one half; from
/// then on, the regular price. Shelf prices are sticky: the point forecast
/// changes only when a change is likelier than not. Bands widen with
/// volatility and reach down to a typical cut when a promotion is due.
pub fn forecast_path(
    s: &Snapshot,
    horizon: usize,
    back_to_regular: impl Fn(usize) -> f64,
) -> Vec<ForecastPoint> {
    let next_promo = days_to_next_promo(s);
    let typical_cut = s.cut_depth.unwrap_or(0.25).clamp(0.05, 0.9);
    let mut reverted = false;
    (1..=horizon)
        .map(|h| {
            let hf = h as f64;
            reverted = reverted || (path_applies(s) && back_to_regular(h) > 0.5);
            let predicted = if reverted {
                s.regular.max(s.price)
            } else {
                s.price
            };
            let spread = (1.64 * s.volatility * predicted * hf.sqrt()).max(1.0);
            let mut lower = predicted - spread;
            let mut upper = predicted + spread;
            if s.promo {
                upper = upper.max(s.regular);
            }
            if next_promo.is_some_and(|d| d <= hf) && s.cut_share.is_some_and(|c| c > 0.0) {
                lower = lower.min(s.price * (1.0 - typical_cut));
            }
            ForecastPoint {
                predicted,
                lower: lower.max(1.0),
                upper,
                lower_share: 1.0,
                upper_share: 1.0,
            }
        })
        .collect()
}

/// The plain weighted moving average forecast: the WMA, flat.
pub fn wma_forecast(s: &Snapshot) -> f64 {
    s.wma
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> Snapshot {
        Snapshot {
            price: 100.0,
            regular: 100.0,
            wma: 100.0,
            volatility: 0.0,
            promo: false,
            promo_freq: 0.0,
            days_in_promo: 0.0,
            days_since_promo: 999.0,
            mean_promo_len: None,
            mean_promo_gap: None,
            history_days: 60.0,
            cut: false,
            since_start: None,
            cut_share: None,
            promos_ended: 0.0,
            gap_sd: None,
            cut_depth: None,
            recent_promo_len: None,
            moved_rate: None,
            fell_rate: None,
            moved_uncut_rate: None,
            lower_after_cut_rate: None,
            reverted_rate: None,
            evidence_weight: 0.0,
            since_regular_change: None,
            regular_change_gap: None,
            below_recent_max: None,
            against_recent_mean: None,
        }
    }

    #[test]
    fn a_price_below_regular_is_a_buy() {
        let s = Snapshot {
            price: 80.0,
            promo: true,
            days_in_promo: 1.0,
            ..snap()
        };
        let c = decide(&s, 7);
        assert_eq!((c.action, c.amount), (Action::BuyNow, 20));
        assert!(c.came_true(80.0, 100.0));
        assert!(!c.came_true(79.0, 100.0));
    }

    #[test]
    fn a_due_promotion_says_wait() {
        let s = Snapshot {
            mean_promo_gap: Some(21.0),
            mean_promo_len: Some(5.0),
            days_since_promo: 12.0,
            ..snap()
        };
        // 17 days since the last start of a 21-day cycle: due in 4 days.
        assert_eq!(days_to_next_promo(&s), Some(4.0));
        // Only a listing whose promotions have cut its price is told to wait.
        assert_eq!(decide(&s, 7).action, Action::Hold);
        let s = Snapshot {
            cut_share: Some(0.5),
            since_start: Some(18.0),
            ..s
        };
        assert_eq!(days_to_next_promo(&s), Some(3.0));
        let due = start_in_window(&s, 7);
        let later = start_in_window(
            &Snapshot {
                since_start: Some(5.0),
                ..s
            },
            7,
        );
        assert!(due > 0.5 && later < 0.1, "{due} {later}");
        let c = decide(&s, 7);
        assert_eq!((c.action, c.amount), (Action::Wait, 5));
        assert!(c.came_true(95.0, 100.0));
        assert!(!c.came_true(96.0, 100.0));
    }

    #[test]
    fn otherwise_hold() {
        let c = decide(&snap(), 7);
        assert_eq!(c.action, Action::Hold);
        assert!(c.came_true(95.0, 105.0));
        assert!(!c.came_true(94.0, 100.0));
    }

    #[test]
    fn promotions_revert_in_the_forecast() {
        let s = Snapshot {
            price: 75.0,
            promo: true,
            days_in_promo: 3.0,
            mean_promo_len: Some(5.0),
            cut: true,
            ..snap()
        };
        // Back at the regular price once that is likelier than not, and
        // it stays there.
        let odds = [0.1, 0.2, 0.4, 0.45, 0.6, 0.4, 0.7];
        let path = forecast_path(&s, 7, |k| odds[k - 1]);
        assert_eq!(path[3].predicted, 75.0);
        assert!(path[4..].iter().all(|p| p.predicted == 100.0));
        assert!(
            path.iter()
                .all(|p| p.lower <= p.predicted && p.predicted <= p.upper)
        );
        // Without a cut there is nothing to revert.
        let flat = forecast_path(&Snapshot { cut: false, ..s }, 7, |_| 0.9);
        assert!(flat.iter().all(|p| p.predicted == 75.0));
    }

    #[test]
    fn every_feature_has_a_name() {
        let mut s = snap();
        assert_eq!(features(&s, 7).len(), FEATURE_NAMES.len());
        s.promo = true;
        s.cut = true;
        s.mean_promo_gap = Some(28.0);
        s.cut_share = Some(1.0);
        assert_eq!(features(&s, 7).len(), FEATURE_NAMES.len());
        let mut names = FEATURE_NAMES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FEATURE_NAMES.len(), "feature names repeat");
    }

    #[test]
    fn messages_read_as_the_product_speaks() {
        let buy = Claim {
            action: Action::BuyNow,
            price: 105,
            regular: 125,
            amount: 20,
            horizon: 7,
        };
        assert_eq!(
            buy.message(0.849),
            "Good time to buy: £0.20 drop detected, 85% confidence"
        );
        assert_eq!(
            buy.statement(),
            "the price will not be lower than today's £1.05 within 7 days"
        );
        let wait = Claim {
            action: Action::Wait,
            amount: 30,
            ..buy
        };
        assert_eq!(
            wait.message(0.72),
            "Wait: a drop of at least £0.30 is likely within 7 days (72% confidence)"
        );
        let hold = Claim {
            action: Action::Hold,
            ..buy
        };
        assert_eq!(hold.message(0.9), "Price is stable (90% confidence)");
        assert_eq!(hold.message(0.999), "Price is stable (99% confidence)");
        // The words follow the number shown: 49.7% reads as 50%.
        assert_eq!(hold.message(0.497), "Price is stable (50% confidence)");
        assert_eq!(
            hold.message(0.37),
            "Price may change within 7 days (37% chance it stays stable)"
        );
        assert_eq!(
            hold.message(0.001),
            "Price may change within 7 days (1% chance it stays stable)"
        );
        assert_eq!(hold.expected_change(), 0);
        assert_eq!(wait.expected_change(), -30);
    }
}
