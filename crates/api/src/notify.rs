//! Following a `LISTEN/NOTIFY` channel for as long as the server runs, so
//! what the API keeps in memory (checked keys, the current forecast runs)
//! changes the moment the database does, in every process.

use std::future::Future;
use std::time::Duration;

use shelfwatch_store::PgPool;
use shelfwatch_store::notify::Subscription;

/// What a follower hears.
pub(crate) enum Heard<'a> {
    /// The subscription is up: from now on every change is heard, so what
    /// was kept before may be stale and what is kept from now on is safe.
    Live,
    /// A note's payload.
    Note(&'a str),
    /// The subscription was lost: changes may be missed until it is back.
    Lost,
}

/// Listens on `channel` until `stop`, telling `on` what it hears, and
/// subscribes again (every second) whenever the subscription cannot be had
/// or is lost. `what` names the channel in the logs.
pub(crate) async fn follow(
    pool: &PgPool,
    channel: &str,
    what: &str,
    stop: impl Future<Output = ()>,
    mut on: impl FnMut(Heard<'_>),
) {
    tokio::pin!(stop);
    loop {
        let mut subscription = tokio::select! {
            () = &mut stop => return,
            r = Subscription::listen(pool, channel) => match r {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot hear {what}; retrying in a second");
                    tokio::select! {
                        () = &mut stop => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            },
        };
        on(Heard::Live);
        loop {
            let next = tokio::select! {
                () = &mut stop => return,
                next = subscription.next() => next,
            };
            match next {
                Ok(Some(payload)) => on(Heard::Note(&payload)),
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "lost the subscription to {what}");
                    break;
                }
            }
        }
        on(Heard::Lost);
    }
}
