//! Extractors whose rejections are problems (400 with what was wrong)
//! instead of axum's plain-text bodies. None lets a NUL character through:
//! PostgreSQL text cannot hold one, so it is a 400 here rather than a
//! database error later.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::IntoResponse;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::ApiError;

/// The detail of a 400 for a NUL character anywhere in the input.
pub const NUL_REFUSED: &str = "text must not contain NUL (U+0000) characters";

/// Whether any string (or object key) in a JSON value holds a NUL.
pub fn json_has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(json_has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || json_has_nul(v)),
        _ => false,
    }
}

/// Refuses a URI part that decodes to a NUL (`%00`; a raw NUL is not a
/// valid URI byte and never gets this far).
fn refuse_encoded_nul(text: Option<&str>) -> Result<(), ApiError> {
    match text {
        Some(t) if t.contains("%00") => Err(ApiError::bad_request(NUL_REFUSED)),
        _ => Ok(()),
    }
}

/// A parsed JSON body as `T`: 400 when it holds a NUL, 422 when its shape
/// is wrong.
fn body_as<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    if json_has_nul(&value) {
        return Err(ApiError::bad_request(NUL_REFUSED));
    }
    serde_json::from_value(value).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            format!("request body: {e}"),
        )
    })
}

/// Query parameters; a missing, mistyped or unknown parameter is a 400.
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        refuse_encoded_nul(parts.uri.query())?;
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

/// Path parameters; one that does not parse is a 400.
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        refuse_encoded_nul(Some(parts.uri.path()))?;
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| ApiError::new(e.status(), e.body_text()))
    }
}

/// A JSON body; the status says why it was refused (400 syntax, 413 too
/// large, 415 not JSON, 422 wrong shape).
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<Value>::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        body_as(value).map(Json)
    }
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

/// A JSON body that may be absent (an empty body reads as None).
pub struct OptionalJson<T>(pub Option<T>);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("request body: {e}")))?;
        body_as(value).map(|v| OptionalJson(Some(v)))
    }
}
