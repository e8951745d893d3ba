//! Values shared by the API's responses: money, units, pagination cursors.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};
use utoipa::ToSchema;

use super::error::ApiError;

pub use shelfwatch_domain::money::{Money, format_money};

/// RFC 3339 in UTC with a `Z`, to the second (or finer when the value has it).
pub fn rfc3339<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

pub fn rfc3339_opt<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

/// An opaque position in a sorted list: base64url of the last item's sort key.
pub fn encode_cursor<T: Serialize>(key: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).unwrap_or_default())
}

/// The key in a cursor. One that is not a cursor's shape (the documented
/// pattern: 1 to 512 base64url characters) is a 400; one of that shape
/// that this API never gave out names no page, a 404, as an unknown id
/// does. A cursor holding a NUL is a 400, as NUL is anywhere.
pub fn decode_cursor<T: DeserializeOwned>(cursor: &str) -> Result<T, ApiError> {
    let well_formed = (1..=512).contains(&cursor.len())
        && cursor
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return Err(ApiError::bad_request(
            "cursor must be 1 to 512 base64url characters (pass next_cursor back unchanged)",
        ));
    }
    let unknown = || {
        ApiError::not_found(
            "no page at this cursor: it is not one this API gave out (pass next_cursor back unchanged)",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| unknown())?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| unknown())?;
    if super::extract::json_has_nul(&value) {
        return Err(ApiError::bad_request(super::extract::NUL_REFUSED));
    }
    serde_json::from_value(value).map_err(|_| unknown())
}

/// Page size: default when absent, 400 outside 1..=max.
pub fn limit(requested: Option<i64>, default: i64, max: i64) -> Result<i64, ApiError> {
    match requested {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(format!(
            "limit must be between 1 and {max}, not {n}"
        ))),
    }
}

/// The years a time in a query may fall in: from the first year an
/// observation may have (as import accepts) to the last year RFC 3339 can
/// write, so every time the API echoes back is RFC 3339 and every time it
/// queries with is one PostgreSQL can hold.
pub const TIME_YEARS: std::ops::RangeInclusive<i32> =
    shelfwatch_store::ingest::FIRST_OBSERVED_YEAR..=9999;

/// Reads an RFC 3339 time or a `YYYY-MM-DD` date (midnight UTC). Its year
/// must be written with four digits (RFC 3339 has no other), or it is a
/// 400; a time outside [`TIME_YEARS`] is moved to the nearest end of them
/// (no price is older than their start, and none is later than their
/// end), so every time the API queries with and echoes is in range.
pub fn parse_time(name: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    let four_digit_year = text.len() >= 5
        && text.as_bytes()[..4].iter().all(u8::is_ascii_digit)
        && text.as_bytes()[4] == b'-';
    let parsed = four_digit_year
        .then(|| {
            DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| t.with_timezone(&Utc))
                .or_else(|| {
                    NaiveDate::parse_from_str(text, "%Y-%m-%d")
                        .ok()
                        .and_then(|d| d.and_hms_opt(0, 0, 0))
                        .map(|t| t.and_utc())
                })
        })
        .flatten();
    let Some(parsed) = parsed else {
        return Err(ApiError::bad_request(format!(
            "{name} must be an RFC 3339 time (2026-01-02T08:00:00Z) or a date (2026-01-02) \
             with a four-digit year, not {text:?}"
        )));
    };
    let earliest = NaiveDate::from_ymd_opt(*TIME_YEARS.start(), 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc());
    let latest = NaiveDate::from_ymd_opt(*TIME_YEARS.end(), 12, 31)
        .and_then(|d| d.and_hms_opt(23, 59, 59))
        .map(|t| t.and_utc());
    Ok(match (earliest, latest) {
        (Some(earliest), _) if parsed < earliest => earliest,
        (_, Some(latest)) if parsed > latest => latest,
        _ => parsed,
    })
}

/// A category filter: at most 200 characters.
pub fn check_category(category: Option<&str>) -> Result<(), ApiError> {
    if category.is_some_and(|c| c.chars().count() > 200) {
        return Err(ApiError::bad_request(
            "category is longer than 200 characters",
        ));
    }
    Ok(())
}

/// A retailer slug from a query parameter, checked for shape before any
/// lookup (the lookup decides whether it exists).
pub fn retailer_slug(text: &str) -> Result<shelfwatch_domain::retailer::RetailerSlug, ApiError> {
    shelfwatch_domain::retailer::RetailerSlug::parse(text)
        .map_err(|_| ApiError::bad_request(format!("unknown retailer {text:?}")))
}

/// A price per kilogram, litre or item.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UnitPrice {
    pub price: Money,
    /// `kg`, `l` or `each`.
    #[schema(example = "kg")]
    pub per: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn money_formats_per_currency() {
        assert_eq!(format_money(125, "GBP"), "£1.25");
        assert_eq!(format_money(-20, "GBP"), "-£0.20");
        assert_eq!(format_money(123456, "EUR"), "€1,234.56");
        assert_eq!(format_money(5, "SEK"), "0.05 SEK");
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = encode_cursor(&("Beans", 42i64));
        let back: (String, i64) = decode_cursor(&c).unwrap();
        assert_eq!(back, ("Beans".to_owned(), 42));
        let status = |c: &str| decode_cursor::<(String, i64)>(c).unwrap_err().status();
        assert_eq!(status("!!!"), StatusCode::BAD_REQUEST);
        assert_eq!(status(""), StatusCode::BAD_REQUEST);
        assert_eq!(status(&"a".repeat(513)), StatusCode::BAD_REQUEST);
        // The cursor's shape, but not one this API made: no such page.
        assert_eq!(status("0"), StatusCode::NOT_FOUND);
        assert_eq!(status(&encode_cursor(&7)), StatusCode::NOT_FOUND);
        assert_eq!(status(&encode_cursor(&("\0", 1))), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn times_and_limits() {
        assert!(parse_time("from", "2026-01-02").is_ok());
        assert!(parse_time("from", "2026-01-02T08:00:00+01:00").is_ok());
        assert!(parse_time("from", "yesterday").is_err());
        assert!(parse_time("from", "1970-01-01").is_ok());
        assert!(parse_time("to", "9999-12-31T23:59:59Z").is_ok());
        // Not RFC 3339: other than four digits of year.
        for outside in ["-5000-01-01", "+262000-01-01", "10000-01-01", "", "0"] {
            assert!(parse_time("from", outside).is_err(), "{outside}");
        }
        // RFC 3339 beyond the years: moved to their ends.
        for (beyond, moved) in [
            ("1969-12-31", "1970-01-01T00:00:00Z"),
            ("0001-01-01T00:00:00+01:00", "1970-01-01T00:00:00Z"),
            ("9999-12-31T23:00:00-05:00", "9999-12-31T23:59:59Z"),
        ] {
            let t = parse_time("from", beyond).unwrap();
            assert_eq!(t.to_rfc3339_opts(SecondsFormat::AutoSi, true), moved);
        }
        assert_eq!(limit(None, 20, 100).unwrap(), 20);
        assert!(limit(Some(0), 20, 100).is_err());
        assert!(limit(Some(101), 20, 100).is_err());
    }
}

/// How well an `Accept` header takes a representation: its quality, and
/// whether the header names it exactly (`text/csv`) rather than through a
/// wildcard (`text/*`, `*/*`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Acceptance {
    quality: f32,
    exact: bool,
}

fn acceptance(accept: &str, kind: &str, subtype: &str) -> Acceptance {
    // The most specific range that covers the type wins (RFC 9110 12.5.1).
    let mut best: Option<(u8, f32)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let quality = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0)
            .clamp(0.0, 1.0);
        let Some((t, s)) = media.split_once('/') else {
            continue;
        };
        let specificity = match (t, s) {
            _ if t == kind && s == subtype => 2,
            _ if t == kind && s == "*" => 1,
            ("*", "*") => 0,
            _ => continue,
        };
        if best.is_none_or(|(b, _)| specificity > b) {
            best = Some((specificity, quality));
        }
    }
    best.map_or(Acceptance::default(), |(specificity, quality)| Acceptance {
        quality,
        exact: specificity == 2,
    })
}

/// Whether a request's `Accept` header asks for CSV rather than JSON:
/// `text/csv` acceptable and preferred, or named while JSON is only
/// covered by a wildcard. No header, or a tie between named types, is JSON.
pub fn wants_csv(headers: &axum::http::HeaderMap) -> bool {
    let accept = headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    if accept.trim().is_empty() {
        return false;
    }
    let csv = acceptance(&accept, "text", "csv");
    let json = acceptance(&accept, "application", "json");
    csv.quality > 0.0
        && (csv.quality > json.quality || (csv.quality == json.quality && csv.exact && !json.exact))
}

#[cfg(test)]
mod accept_tests {
    use super::wants_csv;
    use axum::http::{HeaderMap, HeaderValue, header};

    fn csv(accept: Option<&'static str>) -> bool {
        let mut h = HeaderMap::new();
        if let Some(a) = accept {
            h.insert(header::ACCEPT, HeaderValue::from_static(a));
        }
        wants_csv(&h)
    }

    #[test]
    fn csv_only_when_asked_for_and_preferred() {
        assert!(csv(Some("text/csv")));
        assert!(csv(Some("text/csv; charset=utf-8")));
        assert!(csv(Some("TEXT/CSV, */*;q=0.1")));
        assert!(csv(Some("text/csv, */*")));
        assert!(csv(Some("application/json;q=0.5, text/csv")));
        assert!(csv(Some("text/*")));
        assert!(!csv(None));
        assert!(!csv(Some("*/*")));
        assert!(!csv(Some("application/json")));
        assert!(!csv(Some("application/json, text/csv")));
        assert!(!csv(Some("text/csv;q=0.4, application/json")));
        assert!(!csv(Some("text/csv;q=0")));
        assert!(!csv(Some("text/html, application/xhtml+xml, */*;q=0.8")));
    }
}
