//! Watch evaluation: which watches the current prices and recommendations
//! meet, each queued once as a delivery.

use anyhow::Context;
use shelfwatch_domain::effective::EffectivePrice;
use shelfwatch_domain::money::{Money, format_money};
use shelfwatch_store::PgPool;
use shelfwatch_store::watches::{Evaluation, PriceState, WaitState, WatchTerms, cheapest};

/// The price at or below which a watch fires, once known.
fn threshold(target: Option<i64>, drop_percent: Option<i32>, baseline: Option<i64>) -> Option<i64> {
    match (target, drop_percent) {
        (Some(t), _) => Some(t),
        (None, Some(d)) => baseline.map(|b| b * i64::from(100 - d) / 100),
        _ => None,
    }
}

/// Compares every active watch with current prices and the current
/// recommendations, and queues a webhook for each new event:
///
/// - `price_at_target`: the cheapest in-stock offer, by the price that
///   counts (an offer's per-item or loyalty price, as recommendations count
///   it), is at or below the watch's threshold while the watch is armed.
///   Firing disarms the watch; it re-arms only once that price is above the
///   threshold again, so a price that stays low, or falls further, notifies
///   once;
/// - `drop_expected`: a current `wait` recommendation expects the price to
///   fall to the threshold, which it has not reached yet (once per run,
///   while the watch is armed).
///
/// Returns the number of deliveries queued. Running it twice queues nothing
/// the second time.
pub async fn evaluate_watches(pool: &PgPool) -> anyhow::Result<usize> {
    // One evaluator at a time, so two processes never notify the same event twice.
    let mut eval = Evaluation::begin(pool)
        .await
        .context("starting watch evaluation")?;
    let states = eval
        .price_states()
        .await
        .context("reading watches and current prices")?;
    let mut queued = 0;
    for s in &states {
        queued += price_event(&mut eval, s).await?;
    }
    let runs = shelfwatch_store::recommendations::current_runs(pool).await?;
    let waits = eval
        .wait_states(&runs)
        .await
        .context("reading recommendations for watches")?;
    for s in &waits {
        queued += wait_event(&mut eval, s).await?;
    }
    eval.commit().await.context("committing watch evaluation")?;
    if queued > 0 {
        tracing::info!(queued, "webhook deliveries queued");
    }
    Ok(queued)
}

/// What a watch does about its cheapest price now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Armed and met: notify and disarm.
    Fire,
    /// Disarmed and the price is above the threshold again: re-arm.
    Rearm,
    Nothing,
}

/// The re-arm rule: `notified` is the price last notified, None while armed.
fn step(price: i64, limit: i64, notified: Option<i64>) -> Step {
    match (price <= limit, notified.is_some()) {
        (true, false) => Step::Fire,
        (false, true) => Step::Rearm,
        _ => Step::Nothing,
    }
}

/// Queues `price_at_target` for one watch when its cheapest offer meets it.
async fn price_event(eval: &mut Evaluation, s: &PriceState) -> anyhow::Result<usize> {
    let Some((offer, effective)) = cheapest(&s.offers) else {
        return Ok(0);
    };
    let price = effective.pence;
    let w = &s.watch;
    // A drop watch made before any offer existed measures from the first one seen.
    let mut baseline = w.baseline_pence;
    if baseline.is_none() && w.drop_percent.is_some() {
        baseline = Some(price);
        eval.set_baseline(w.watch_id, price).await?;
    }
    let Some(limit) = threshold(w.target_price_pence, w.drop_percent, baseline) else {
        return Ok(0);
    };
    match step(price, limit, s.notified_pence) {
        Step::Nothing => return Ok(0),
        Step::Rearm => {
            eval.set_notified(w.watch_id, None).await?;
            return Ok(0);
        }
        Step::Fire => {}
    }
    let body = serde_json::json!({
        "event": "price_at_target",
        "watch_id": w.watch_id,
        "product": product(w),
        "listing_id": offer.listing_id,
        "retailer": offer.retailer,
        "price": Money::new(price, &w.currency),
        "shelf_price": Money::new(offer.price_pence, &w.currency),
        "effective_price": Money::new(price, &w.currency),
        "promotion": offer.promo_text,
        "threshold": Money::new(limit, &w.currency),
        "message": at_target_message(w, &offer.retailer, &effective, limit),
        "observed_at": offer.observed_at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
    });
    let key = format!(
        "price:{}:{}",
        offer.listing_id,
        offer.observed_at.timestamp_micros()
    );
    let queued = enqueue(eval, w.watch_id, &key, &body).await?;
    eval.set_notified(w.watch_id, Some(price)).await?;
    Ok(queued)
}

/// "Heinz Beanz 4x415g is £0.75 each when you buy 2 at tesco (shelf price
/// £1.20), at or below your target of £0.80".
fn at_target_message(w: &WatchTerms, retailer: &str, price: &EffectivePrice, limit: i64) -> String {
    let money = |p: i64| format_money(p, &w.currency);
    let paid = match price.describe_with(money) {
        Some(offer) => format!(
            "{offer} at {retailer} (shelf price {})",
            money(price.shelf_pence)
        ),
        None => format!("{} at {retailer}", money(price.pence)),
    };
    format!(
        "{} is {paid}, at or below your target of {}",
        w.product_name,
        money(limit)
    )
}

/// Queues `drop_expected` for one watch when a `wait` recommendation
/// expects its threshold to be reached.
async fn wait_event(eval: &mut Evaluation, s: &WaitState) -> anyhow::Result<usize> {
    let w = &s.watch;
    let Some(limit) = threshold(w.target_price_pence, w.drop_percent, w.baseline_pence) else {
        return Ok(0);
    };
    let current = s.current_pence;
    let expected = current + s.expected_change_pence;
    // A disarmed watch has told of a price at its threshold already.
    if s.notified_pence.is_some() || current <= limit || expected > limit {
        return Ok(0);
    }
    let body = serde_json::json!({
        "event": "drop_expected",
        "watch_id": w.watch_id,
        "product": product(w),
        "listing_id": s.listing_id,
        "retailer": s.retailer,
        "price": Money::new(current, &w.currency),
        "shelf_price": s.shelf_pence.map(|p| Money::new(p, &w.currency)),
        "effective_price": Money::new(current, &w.currency),
        "promotion": s.promo_text,
        "expected_price": Money::new(expected, &w.currency),
        "threshold": Money::new(limit, &w.currency),
        "confidence": s.confidence,
        "message": s.message,
        "run_id": s.run_id,
    });
    let key = format!("rec:{}:{}", s.run_id, s.listing_id);
    enqueue(eval, w.watch_id, &key, &body).await
}

/// The product a notification is about.
fn product(w: &WatchTerms) -> serde_json::Value {
    serde_json::json!({"id": w.product_id, "name": w.product_name})
}

async fn enqueue(
    eval: &mut Evaluation,
    watch_id: i64,
    key: &str,
    body: &serde_json::Value,
) -> anyhow::Result<usize> {
    let queued = eval
        .enqueue(watch_id, key, &body.to_string())
        .await
        .context("queueing a webhook delivery")?;
    Ok(usize::from(queued))
}

#[cfg(test)]
mod tests {
    use super::{Step, step, threshold};

    #[test]
    fn thresholds() {
        assert_eq!(threshold(Some(150), None, Some(200)), Some(150));
        assert_eq!(threshold(None, Some(10), Some(200)), Some(180));
        assert_eq!(threshold(None, Some(10), None), None);
    }

    #[test]
    fn a_watch_fires_once_until_the_price_rises_above_its_threshold() {
        // Armed and met: fires.
        assert_eq!(step(100, 120, None), Step::Fire);
        assert_eq!(step(120, 120, None), Step::Fire);
        // Fired: staying low, or falling further, is no new event.
        assert_eq!(step(100, 120, Some(100)), Step::Nothing);
        assert_eq!(step(90, 120, Some(100)), Step::Nothing);
        // Above the threshold again: re-armed, and armed above it nothing happens.
        assert_eq!(step(121, 120, Some(100)), Step::Rearm);
        assert_eq!(step(121, 120, None), Step::Nothing);
    }
}
