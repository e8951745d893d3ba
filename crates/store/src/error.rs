//! What a query can fail with, typed so callers can answer a constraint
//! violation with a 4xx instead of a 500.
//!
//! [`StoreError`] is built from sqlx's error by the database's SQLSTATE:
//! a unique violation is a [`Conflict`](StoreError::Conflict), a foreign
//! key a [`ForeignKey`](StoreError::ForeignKey), a check or a value the
//! database could not read is [`Invalid`](StoreError::Invalid), and a
//! database that is away (stopped, restarting, unreachable, every
//! connection busy) is [`Unavailable`](StoreError::Unavailable).

/// A failed query, by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row asked for does not exist.
    #[error("not found")]
    NotFound,
    /// A unique constraint refused the row (SQLSTATE 23505).
    #[error("conflicts with an existing row ({constraint})")]
    Conflict { constraint: String },
    /// The row refers to one that does not exist (SQLSTATE 23503).
    #[error("refers to a row that does not exist ({constraint})")]
    ForeignKey { constraint: String },
    /// A check constraint or the value's type refused it (SQLSTATE 23514,
    /// 22P02, 22021, 22007, 22008).
    #[error("invalid value: {message}")]
    Invalid {
        /// The constraint, when a check refused it.
        constraint: Option<String>,
        message: String,
    },
    /// The database is away; retry later. The pool reconnects by itself.
    #[error("the database is not available: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// Anything else: a bug or an unexpected state.
    #[error("database query failed: {0}")]
    Other(#[source] sqlx::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// Whether retrying later may succeed (the database was away).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if database_away(&e) {
            return StoreError::Unavailable(e);
        }
        let sqlx::Error::Database(db) = &e else {
            return match e {
                sqlx::Error::RowNotFound => StoreError::NotFound,
                e => StoreError::Other(e),
            };
        };
        let constraint = || db.constraint().unwrap_or_default().to_owned();
        match db.code().as_deref() {
            Some("23505") => StoreError::Conflict {
                constraint: constraint(),
            },
            Some("23503") => StoreError::ForeignKey {
                constraint: constraint(),
            },
            Some("23514") => StoreError::Invalid {
                constraint: db.constraint().map(str::to_owned),
                message: db.message().to_owned(),
            },
            Some("22P02" | "22021" | "22007" | "22008") => StoreError::Invalid {
                constraint: None,
                message: db.message().to_owned(),
            },
            _ => StoreError::Other(e),
        }
    }
}

/// Whether a database error says the database is away (stopped,
/// restarting, unreachable, or every connection busy) rather than that
/// this query went wrong.
pub fn database_away(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => true,
        // Class 08: connection exception; 57P01-57P05: the server is
        // shutting down, crashed, or not accepting connections yet.
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

/// Whether an error from a store function that adds context (anyhow)
/// says the database is away.
pub fn is_unavailable(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<StoreError>()
            .is_some_and(StoreError::is_unavailable)
            || c.downcast_ref::<sqlx::Error>().is_some_and(database_away)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_away_is_unavailable_and_other_failures_are_not() {
        let io = || sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        for e in [sqlx::Error::PoolTimedOut, sqlx::Error::PoolClosed, io()] {
            assert!(StoreError::from(e).is_unavailable());
        }
        // Wrapped in context by a helper, still the database being away.
        let wrapped = anyhow::Error::new(io()).context("recording an audit entry");
        assert!(is_unavailable(&wrapped));
        let typed = anyhow::Error::new(StoreError::from(io())).context("reading");
        assert!(is_unavailable(&typed));
        assert!(matches!(
            StoreError::from(sqlx::Error::RowNotFound),
            StoreError::NotFound
        ));
        assert!(matches!(
            StoreError::from(sqlx::Error::ColumnNotFound("x".into())),
            StoreError::Other(_)
        ));
        assert!(!is_unavailable(&anyhow::anyhow!("a bug")));
    }
}
