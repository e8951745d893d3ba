//! Webhook delivery: signed POSTs of queued deliveries, retried with
//! exponential backoff, every attempt recorded.

use std::time::{Duration, Instant};

use anyhow::Context;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use shelfwatch_store::PgPool;
use shelfwatch_store::watches::{self, Attempt, AttemptOutcome, DueDelivery};

use crate::metrics::webhook_attempt;
use crate::{WebhookClient, WebhookSettings, check_url, evaluate_watches};

/// The headers of the [Standard Webhooks] signature: the message id (the
/// same on every attempt of a delivery, so a receiver can drop repeats),
/// the Unix time of the attempt, and `v1,<base64 HMAC-SHA256>` of
/// `"{id}.{timestamp}.{body}"`, so a receiver that checks the timestamp
/// against its clock can refuse a replayed request.
///
/// [Standard Webhooks]: https://www.standardwebhooks.com/
pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// The HMAC key a watch's secret stands for: the base64 after `whsec_`
/// (standard alphabet; secrets made before it was used are URL-safe
/// without padding, and are read that way). Any other text is its bytes.
pub fn signing_key(secret: &str) -> Vec<u8> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    secret
        .strip_prefix("whsec_")
        .and_then(|b64| {
            STANDARD
                .decode(b64)
                .or_else(|_| URL_SAFE_NO_PAD.decode(b64))
                .ok()
        })
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

/// The `webhook-id` of a delivery.
pub fn message_id(delivery_id: i64) -> String {
    format!("msg_{delivery_id}")
}

/// The `webhook-signature` of `body` sent as message `id` at `timestamp`
/// (Unix seconds), keyed by `secret`.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    use base64::Engine;
    let mut mac = Hmac::<Sha256>::new_from_slice(&signing_key(secret))
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// The wait after `attempt` failed attempts: base x 2^(attempt-1), capped,
/// with +-20% jitter so retries from many watches spread out.
pub fn backoff(settings: &WebhookSettings, attempt: i32) -> Duration {
    let exp = 2f64.powi((attempt - 1).clamp(0, 30));
    let secs = (settings.backoff_base_secs * exp).min(settings.backoff_max_secs);
    let jitter = 0.8 + 0.4 * rand::random::<f64>();
    Duration::from_secs_f64((secs * jitter).max(0.0))
}

/// Sends the deliveries that are due through `client`; returns how many
/// were attempted.
pub async fn deliver_due(
    pool: &PgPool,
    settings: &WebhookSettings,
    client: &WebhookClient,
) -> anyhow::Result<usize> {
    // The lease: a row taken here is not due again until the attempt has
    // had time to finish, so a crashed worker's rows are retried later.
    let lease = settings.timeout_secs as f64 + 30.0;
    let due = watches::lease_due(pool, 16, lease)
        .await
        .context("leasing due webhook deliveries")?;
    let n = due.len();
    let sends = due.into_iter().map(|d| async move {
        let started = Instant::now();
        let result = send(&d, settings, client).await;
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

/// POSTs one delivery to its (re-checked) URL, http or https, connecting
/// to the addresses just checked; returns the receiver's status code, or
/// why nothing was answered.
pub async fn send(
    d: &DueDelivery,
    settings: &WebhookSettings,
    client: &WebhookClient,
) -> Result<u16, String> {
    let (url, addrs) = check_url(&d.webhook_url, settings).await?;
    let id = message_id(d.id);
    let timestamp = chrono::Utc::now().timestamp();
    let signature = sign(&d.secret, &id, timestamp, d.body.as_bytes());
    let headers = [
        (ID_HEADER, id),
        (TIMESTAMP_HEADER, timestamp.to_string()),
        (SIGNATURE_HEADER, signature),
        ("x-shelfwatch-attempt", d.attempts.to_string()),
    ];
    client
        .post(&url, &addrs, &headers, bytes::Bytes::from(d.body.clone()))
        .await
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

/// The delivery worker inside `serve`: sends due webhooks through
/// `client` every poll interval and evaluates watches on its own timer,
/// until `stop`.
pub async fn worker(
    pool: PgPool,
    settings: WebhookSettings,
    client: WebhookClient,
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
        match deliver_due(&pool, &settings, &client).await {
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
    fn signatures_follow_standard_webhooks() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let signed = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(signed, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        // The id and the time are signed: neither can be changed on replay.
        assert_ne!(sign(secret, "msg_other", 1614265330, body), signed);
        assert_ne!(
            sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265331, body),
            signed
        );
    }

    #[test]
    fn secrets_are_read_in_either_base64_alphabet() {
        let key = [0xfb_u8; 32];
        use base64::Engine;
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let standard = format!("whsec_{}", STANDARD.encode(key));
        let url_safe = format!("whsec_{}", URL_SAFE_NO_PAD.encode(key));
        assert_ne!(standard, url_safe);
        assert_eq!(signing_key(&standard), key);
        assert_eq!(signing_key(&url_safe), key);
        assert_eq!(signing_key("plain"), b"plain");
    }
}
