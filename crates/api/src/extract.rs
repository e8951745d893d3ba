//! Extractors whose rejections are problems (400 with what was wrong)
//! instead of axum's plain-text bodies. None lets a NUL character through:
//! PostgreSQL text cannot hold one, so it is a 400 here rather than a
//! database error later.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
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

/// JSON has one kind of number: `212.0` is the integer 212 to JSON
/// Schema (and to the document), so it is read as one.
fn whole_numbers_as_integers(value: &mut Value) {
    match value {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() <= 9_007_199_254_740_992.0
            {
                *value = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers_as_integers),
        Value::Object(map) => map.values_mut().for_each(whole_numbers_as_integers),
        _ => {}
    }
}

/// A parsed JSON body as `T`: 400 when it holds a NUL, 422 when its shape
/// is wrong. Every request body is an object: serde would also read a
/// struct from an array of its fields in order, which the document does
/// not allow.
fn body_as<T: DeserializeOwned>(mut value: Value) -> Result<T, ApiError> {
    whole_numbers_as_integers(&mut value);
    if json_has_nul(&value) {
        return Err(ApiError::bad_request(NUL_REFUSED));
    }
    if !value.is_object() {
        let kind = match value {
            Value::Array(_) => "an array",
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Object(_) => "an object",
        };
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("request body: expected an object, not {kind}"),
        ));
    }
    serde_json::from_value(value).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("request body: {}", in_our_words(&e.to_string())),
        )
    })
}

/// A JSON body axum refused, in the API's words (its own name the Rust
/// types and the parser).
fn body_refused(status: StatusCode) -> ApiError {
    let detail = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "request body too large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            "send the request body as JSON, with Content-Type: application/json"
        }
        _ => "request body is not valid JSON",
    };
    ApiError::new(status, detail)
}

/// A value's kind as a client knows it, for serde's names of Rust types.
fn kind(text: &str) -> String {
    let text = text.trim();
    let word = text.split([' ', '`']).next().unwrap_or_default();
    match word {
        "struct" | "map" => "an object".to_owned(),
        "enum" => "one of the allowed values".to_owned(),
        "sequence" => "an array".to_owned(),
        _ if text == "a sequence" => "an array".to_owned(),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "u8" | "u16" | "u32" | "u64" | "u128"
        | "usize" => "an integer".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        "option" => "a value or null".to_owned(),
        "unit" => "null".to_owned(),
        "integer" | "floating" | "string" | "boolean" | "char" => {
            text.replace("floating point", "number")
        }
        _ if text.starts_with("a tuple") => "an array".to_owned(),
        _ if text.starts_with("a map") => "an object".to_owned(),
        _ => text.to_owned(),
    }
}

/// serde's message about a value that does not fit, in the API's words:
/// JSON kinds (object, array, integer) instead of Rust type names, and
/// no parser positions.
pub fn in_our_words(message: &str) -> String {
    let message = message
        .split(" at line ")
        .next()
        .unwrap_or(message)
        .trim_start_matches("Failed to deserialize query string: ");
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((got, expected)) = rest.split_once(", expected ")
        {
            return format!("expected {}, not {}", kind(expected), kind(got));
        }
    }
    if let Some(rest) = message.strip_prefix("invalid length ")
        && let Some((_, expected)) = rest.split_once(", expected ")
    {
        return format!("expected {}", kind(expected));
    }
    for (prefix, what) in [
        ("unknown field ", "is not a field of this request"),
        ("unknown variant ", "is not one of the allowed values"),
        ("missing field ", "is required"),
        ("duplicate field ", "is given twice"),
    ] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let name = rest.split(", expected").next().unwrap_or(rest);
            return match rest.split_once(", expected one of ") {
                Some((_, allowed)) => format!("{name} {what}; expected one of {allowed}"),
                None => format!("{name} {what}"),
            };
        }
    }
    message
        .replace("invalid digit found in string", "not a whole number")
        .replace(
            "cannot parse integer from empty string",
            "empty where a number was expected",
        )
        .replace(
            "number too large to fit in target type",
            "a number out of range",
        )
        .replace(
            "number too small to fit in target type",
            "a number out of range",
        )
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
            .map_err(|e| ApiError::bad_request(in_our_words(&e.body_text())))
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
        let refused = match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(p) => return Ok(Path(p.0)),
            Err(e) => e.status(),
        };
        if refused != StatusCode::BAD_REQUEST {
            return Err(ApiError::new(refused, "the path could not be read"));
        }
        // A whole number written with a decimal point ("7.0") names the
        // same id: JSON Schema counts it as an integer, so a client
        // generated from the document may send it that way.
        if let Ok(raw) = axum::extract::RawPathParams::from_request_parts(parts, state).await {
            let mut params = raw.iter();
            if let (Some((_, value)), None) = (params.next(), params.next())
                && let Some(whole) = whole_number(value)
                && let Ok(t) = serde_json::from_value::<T>(serde_json::Value::from(whole))
            {
                return Ok(Path(t));
            }
        }
        Err(ApiError::bad_request(
            "a value in the path is not of the expected kind",
        ))
    }
}

/// `value` as a whole number if it is one, with or without a decimal
/// point followed by zeros ("7", "7.0", "7.000").
fn whole_number(value: &str) -> Option<i64> {
    let (int, frac) = value.split_once('.').unwrap_or((value, ""));
    if !frac.bytes().all(|b| b == b'0') || (value.contains('.') && frac.is_empty()) {
        return None;
    }
    int.parse().ok()
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
            .map_err(|e| body_refused(e.status()))?;
        body_as(value).map(Json)
    }
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

/// A JSON object body that may be left out: no body, an empty one and
/// JSON `null` all read as None (the defaults).
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
            .map_err(|e| body_refused(e.status()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        let value: Value =
            serde_json::from_slice(&bytes).map_err(|_| body_refused(StatusCode::BAD_REQUEST))?;
        if value.is_null() {
            return Ok(OptionalJson(None));
        }
        body_as(value).map(|v| OptionalJson(Some(v)))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn whole_numbers_may_carry_a_zero_fraction() {
        use super::whole_number;
        assert_eq!(whole_number("7"), Some(7));
        assert_eq!(whole_number("7.0"), Some(7));
        assert_eq!(whole_number("-3.000"), Some(-3));
        assert_eq!(whole_number("7.5"), None);
        assert_eq!(whole_number("7."), None);
        assert_eq!(whole_number("x.0"), None);
    }

    use super::*;

    #[test]
    fn serde_messages_are_put_in_the_apis_words() {
        for (serde, ours) in [
            (
                "invalid type: sequence, expected struct ScrapeRequest",
                "expected an object, not an array",
            ),
            (
                "invalid type: string \"x\", expected i64 at line 1 column 9",
                "expected an integer, not string \"x\"",
            ),
            (
                "invalid type: map, expected a string",
                "expected a string, not an object",
            ),
            ("missing field `product_id`", "`product_id` is required"),
            (
                "unknown field `owner`, expected one of `a`, `b`",
                "`owner` is not a field of this request; expected one of `a`, `b`",
            ),
            (
                "Failed to deserialize query string: limit: invalid digit found in string",
                "limit: not a whole number",
            ),
        ] {
            assert_eq!(in_our_words(serde), ours, "{serde}");
        }
    }

    #[test]
    fn whole_numbers_are_integers_and_fractions_stay_numbers() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Body {
            price: i64,
            share: Option<f64>,
        }
        let read = |text: &str| body_as::<Body>(serde_json::from_str(text).unwrap());
        assert_eq!(
            read(r#"{"price": 212.0, "share": 0.5}"#).unwrap(),
            Body {
                price: 212,
                share: Some(0.5)
            }
        );
        assert_eq!(read(r#"{"price": -3e2}"#).unwrap().price, -300);
        assert!(read(r#"{"price": 212.5}"#).is_err());
        assert!(read(r#"{"price": 1e300}"#).is_err());
    }
}
