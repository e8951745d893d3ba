//! Webhook delivery: signed POSTs of queued deliveries, retried with
//! exponential backoff, every attempt recorded.

use std::time::{Duration, Instant};

use anyhow::Context;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use shelfwatch_store::PgPool;
use shelfwatch_store::watches::{self, Attempt, AttemptOutcome, DueDelivery};

use crate::metrics::webhook_attempt;
use crate::{WebhookSettings, check_url, evaluate_watches};

/// The signature header: `sha256=<hex HMAC-SHA256 of the body>` keyed by
/// the watch's secret.
pub const SIGNATURE_HEADER: &str = "x-shelfwatch-signature";

/// Signs `body` with `secret` as sent in [`SIGNATURE_HEADER`].
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The wait after `attempt` failed attempts: base x 2^(attempt-1), capped,
/// with +-20% jitter so retries from many watches spread out.
pub fn backoff(settings: &WebhookSettings, attempt: i32) -> Duration {
    let exp = 2f64.powi((attempt - 1).clamp(0, 30));
    let secs = (settings.backoff_base_secs * exp).min(settings.backoff_max_secs);
    let jitter = 0.8 + 0.4 * rand::random::<f64>();
    Duration::from_secs_f64((secs * jitter).max(0.0))
}

/// Sends the deliveries that are due; returns how many were attempted.
pub async fn deliver_due(pool: &PgPool, settings: &WebhookSettings) -> anyhow::Result<usize> {
    // The lease: a row taken here is not due again until the attempt has
    // had time to finish, so a crashed worker's rows are retried later.
    let lease = settings.timeout_secs as f64 + 30.0;
    let due = watches::lease_due(pool, 16, lease)
        .await
        .context("leasing due webhook deliveries")?;
    let n = due.len();
    let sends = due.into_iter().map(|d| async move {
        let started = Instant::now();
        let result = send(&d, settings).await;
        let elapsed = started.elapsed();
        if let Err(e) = record(pool, settings, &d, result, elapsed).await {
            tracing::error!(
                delivery = d.id,
                error = format!("{e:#}"),
                "recording a webhook attempt failed"
            );
        }
    });
    futures_util::future::join_all(sends).await;
    Ok(n)
}

/// POSTs one delivery to its (re-checked) URL; returns the receiver's
/// status code, or why nothing was answered.
pub async fn send(d: &DueDelivery, settings: &WebhookSettings) -> Result<u16, String> {
    let (url, addrs) = check_url(&d.webhook_url, settings).await?;
    let mut client = reqwest::Client::builder()
        .timeout(Duration::from_secs(settings.timeout_secs.max(1)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("shelfwatch-webhooks/", env!("CARGO_PKG_VERSION")));
    if let Some(host) = url.host_str() {
        // Connect to the addresses just checked, not to a fresh DNS answer.
        client = client.resolve_to_addrs(host, &addrs);
    }
    let client = client
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))?;
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, sign(&d.secret, d.body.as_bytes()))
        .header("x-shelfwatch-delivery", d.id.to_string())
        .header("x-shelfwatch-attempt", d.attempts.to_string())
        .body(d.body.clone())
        .send()
        .await
        .map_err(|e| format!("sending: {e}"))?;
    Ok(response.status().as_u16())
}

async fn record(
    pool: &PgPool,
    settings: &WebhookSettings,
    d: &DueDelivery,
    result: Result<u16, String>,
    elapsed: Duration,
) -> anyhow::Result<()> {
    let (code, error) = match &result {
        Ok(code) => (Some(i32::from(*code)), None),
        Err(e) => (None, Some(e.clone())),
    };
    let delivered = matches!(result, Ok(c) if (200..300).contains(&c));
    let error =
        error.or_else(|| (!delivered).then(|| format!("receiver answered {}", code.unwrap_or(0))));
    let outcome = if delivered {
        webhook_attempt("delivered");
        AttemptOutcome::Delivered
    } else if d.attempts >= settings.max_attempts {
        webhook_attempt("failed");
        tracing::warn!(
            delivery = d.id,
            attempts = d.attempts,
            error = error.as_deref().unwrap_or(""),
            "webhook delivery given up"
        );
        AttemptOutcome::Failed
    } else {
        webhook_attempt("retry");
        AttemptOutcome::Retry {
            after_secs: backoff(settings, d.attempts).as_secs_f64(),
        }
    };
    let attempt = Attempt {
        delivery_id: d.id,
        attempt: d.attempts,
        status_code: code,
        error: error.as_deref(),
        duration_ms: i32::try_from(elapsed.as_millis()).unwrap_or(i32::MAX),
    };
    watches::record_attempt(pool, &attempt, outcome).await?;
    Ok(())
}

/// The delivery worker inside `serve`: sends due webhooks every poll
/// interval and evaluates watches on its own timer, until `stop`.
pub async fn worker(
    pool: PgPool,
    settings: WebhookSettings,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    if !settings.worker {
        return;
    }
    let mut stop = std::pin::pin!(stop);
    let poll = Duration::from_millis(settings.poll_interval_ms.max(10));
    let evaluate_every = Duration::from_secs(settings.evaluate_every_secs);
    let mut last_evaluated: Option<Instant> = None;
    loop {
        if settings.evaluate_every_secs > 0
            && last_evaluated.is_none_or(|t| t.elapsed() >= evaluate_every)
        {
            last_evaluated = Some(Instant::now());
            if let Err(e) = evaluate_watches(&pool).await {
                tracing::error!(error = format!("{e:#}"), "evaluating watches failed");
            }
        }
        match deliver_due(&pool, &settings).await {
            // More may be due: go again without waiting.
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::error!(error = format!("{e:#}"), "webhook delivery round failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = &mut stop => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let s = WebhookSettings::default();
        let first = backoff(&s, 1).as_secs_f64();
        let fourth = backoff(&s, 4).as_secs_f64();
        assert!((4.0..=6.0).contains(&first), "{first}");
        assert!((32.0..=48.0).contains(&fourth), "{fourth}");
        assert!(backoff(&s, 40).as_secs_f64() <= 3600.0 * 1.2);
    }

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
