//! Watch evaluation: which watches the current prices and recommendations
//! meet, each queued once as a delivery.

use anyhow::Context;
use shelfwatch_domain::money::Money;
use shelfwatch_store::PgPool;
use shelfwatch_store::watches::{Evaluation, PriceState, WaitState, WatchTerms};

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
/// - `price_at_target`: the cheapest in-stock offer is at or below the
///   watch's threshold, and lower than anything notified since it last
///   crossed (a price that rises above the threshold and comes back
///   notifies again);
/// - `drop_expected`: a current `wait` recommendation expects the price to
///   fall to the threshold, which it has not reached yet (once per run).
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

/// Queues `price_at_target` for one watch when its cheapest offer meets it.
async fn price_event(eval: &mut Evaluation, s: &PriceState) -> anyhow::Result<usize> {
    let (Some(listing_id), Some(price), Some(observed_at)) = (s.listing_id, s.price, s.observed_at)
    else {
        return Ok(0);
    };
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
    if price > limit {
        if s.notified_pence.is_some() {
            eval.set_notified(w.watch_id, None).await?;
        }
        return Ok(0);
    }
    if s.notified_pence.is_some_and(|n| price >= n) {
        return Ok(0);
    }
    let body = serde_json::json!({
        "event": "price_at_target",
        "watch_id": w.watch_id,
        "product": product(w),
        "listing_id": listing_id,
        "retailer": s.retailer,
        "price": Money::new(price, &w.currency),
        "threshold": Money::new(limit, &w.currency),
        "observed_at": observed_at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
    });
    let key = format!("price:{listing_id}:{}", observed_at.timestamp_micros());
    let queued = enqueue(eval, w.watch_id, &key, &body).await?;
    eval.set_notified(w.watch_id, Some(price)).await?;
    Ok(queued)
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
    if current <= limit || expected > limit {
        return Ok(0);
    }
    let body = serde_json::json!({
        "event": "drop_expected",
        "watch_id": w.watch_id,
        "product": product(w),
        "listing_id": s.listing_id,
        "retailer": s.retailer,
        "price": Money::new(current, &w.currency),
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
    use super::threshold;

    #[test]
    fn thresholds() {
        assert_eq!(threshold(Some(150), None, Some(200)), Some(150));
        assert_eq!(threshold(None, Some(10), Some(200)), Some(180));
        assert_eq!(threshold(None, Some(10), None), None);
    }
}
