//! `LISTEN/NOTIFY`: how one process tells every other that something they
//! keep in memory has changed (a revoked key, a forecast run that landed).
//! A note is sent inside the transaction that makes the change, so
//! listeners hear of it exactly when it is committed.

use sqlx::postgres::PgListener;
use sqlx::{PgExecutor, PgPool};

use crate::error::StoreResult;

/// Announces `payload` on `channel` when the surrounding transaction
/// commits (at once outside one).
pub async fn notify<'e>(
    executor: impl PgExecutor<'e>,
    channel: &str,
    payload: &str,
) -> StoreResult<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(payload)
        .execute(executor)
        .await?;
    Ok(())
}

/// A subscription to one channel. It holds one connection of the pool for
/// as long as it lives.
pub struct Subscription {
    listener: PgListener,
}

impl Subscription {
    /// Subscribes; from the moment this returns, every committed note on
    /// `channel` is heard.
    pub async fn listen(pool: &PgPool, channel: &str) -> StoreResult<Self> {
        let mut listener = PgListener::connect_with(pool).await?;
        // A lost connection is reported (`None` from `next`), not silently
        // replaced: notes may have been missed, and whoever caches must
        // then forget what it holds.
        listener.eager_reconnect(false);
        listener.listen(channel).await?;
        Ok(Self { listener })
    }

    /// The payload of the next note; `None` when the connection was lost,
    /// after which this subscription should be dropped for a new one.
    pub async fn next(&mut self) -> StoreResult<Option<String>> {
        Ok(self
            .listener
            .try_recv()
            .await?
            .map(|note| note.payload().to_owned()))
    }
}
