//! The one error type at the HTTP edge: RFC 9457 `application/problem+json`.
//!
//! 4xx problems say what the caller got wrong; 5xx problems say nothing
//! internal: the cause is logged with the request id, which the body quotes.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use shelfwatch_store::error::StoreError;
use utoipa::ToSchema;

pub const PROBLEM_JSON: &str = "application/problem+json";

tokio::task_local! {
    /// The id of the request being served (set by the request-id layer).
    pub static REQUEST_ID: String;
}

/// The current request's id, when serving one.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// An RFC 9457 problem details object.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`: the status code says what kind of problem it is.
    #[serde(rename = "type")]
    pub type_: String,
    /// The status code's reason phrase.
    pub title: String,
    pub status: u16,
    /// What went wrong, for the caller (never internal detail).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request id, to quote when asking about this response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, detail: Option<String>) -> Self {
        Self {
            type_: "about:blank".to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            request_id: current_request_id(),
        }
    }

    pub fn into_response_with(self, status: StatusCode) -> Response {
        let mut response = (status, Json(self)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// An error answered as a problem.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    detail: Option<String>,
    retry_after: Option<u64>,
    /// The cause of a 5xx, logged and never sent.
    source: Option<anyhow::Error>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: Some(detail.into()),
            retry_after: None,
            source: None,
        }
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, detail)
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }
    pub fn too_many_requests(retry_after_secs: u64) -> Self {
        Self {
            retry_after: Some(retry_after_secs.max(1)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate limit exceeded; retry after the number of seconds in Retry-After",
            )
        }
    }
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, detail)
    }
    /// An unexpected failure: logged with its cause, answered as a bare 500.
    pub fn internal(source: anyhow::Error) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            detail: None,
            retry_after: None,
            source: Some(source),
        }
    }
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        // A helper that wrapped a database error in context still means
        // "the database is away" when it is one.
        if shelfwatch_store::error::is_unavailable(&e) {
            tracing::warn!(error = format!("{e:#}"), "the database is not available");
            return Self::unavailable("the database is not available; try again shortly");
        }
        Self::internal(e)
    }
}

/// A query's failure, as the caller should see it. The database being away
/// (stopped, restarting, unreachable, every connection busy) is a 503 so
/// callers retry, and the pool reconnects by itself when it is back. A
/// constraint the request broke is the caller's: a duplicate is 409, a
/// value the database refused 400, and a reference to a missing row 422
/// (a route for which that means "not found" maps it itself). Anything
/// else is a 500.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %e, "the database is not available");
                Self::unavailable("the database is not available; try again shortly")
            }
            StoreError::NotFound => Self::not_found("the resource was not found"),
            StoreError::Conflict { .. } => Self::new(
                StatusCode::CONFLICT,
                "this conflicts with an existing resource",
            ),
            StoreError::ForeignKey { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "this refers to a resource that does not exist",
            ),
            StoreError::Invalid { .. } => Self::bad_request("a value in the request is not valid"),
            StoreError::Other(_) => Self::internal(anyhow::Error::new(e).context("database query")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let detail = if self.status.is_server_error() {
            if let Some(source) = &self.source {
                tracing::error!(
                    request_id = current_request_id().unwrap_or_default(),
                    error = format!("{source:#}"),
                    "request failed"
                );
            }
            Some(match self.detail {
                Some(d) => d,
                None => {
                    "an internal error occurred; quote the request id when reporting it".to_owned()
                }
            })
        } else {
            self.detail
        };
        let mut response = Problem::new(self.status, detail).into_response_with(self.status);
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"shelfwatch\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_away_is_503_and_other_failures_500() {
        let io = || {
            StoreError::Unavailable(
                std::io::Error::from(std::io::ErrorKind::ConnectionReset).into(),
            )
        };
        assert_eq!(
            ApiError::from(io()).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        // Wrapped in context by a helper, still the database being away.
        let wrapped = anyhow::Error::new(io()).context("recording an audit entry");
        assert_eq!(
            ApiError::from(wrapped).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let other = StoreError::Other(std::io::Error::other("x").into());
        assert_eq!(
            ApiError::from(other).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let other = anyhow::anyhow!("a bug");
        assert_eq!(
            ApiError::from(other).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn constraint_violations_are_the_callers() {
        let constraint = "c".to_owned();
        let cases = [
            (StoreError::NotFound, StatusCode::NOT_FOUND),
            (
                StoreError::Conflict {
                    constraint: constraint.clone(),
                },
                StatusCode::CONFLICT,
            ),
            (
                StoreError::ForeignKey { constraint },
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                StoreError::Invalid {
                    constraint: None,
                    message: "bad".into(),
                },
                StatusCode::BAD_REQUEST,
            ),
        ];
        for (e, status) in cases {
            assert_eq!(ApiError::from(e).status(), status);
        }
    }
}
