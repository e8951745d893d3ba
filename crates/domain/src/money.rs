//! Shelf prices as whole pence.

use super::{ParseError, read_decimal, starts_negative};

/// £100,000: anything above is a parse error, not a price.
pub const MAX_PRICE_PENCE: i64 = 10_000_000;

const WHAT: &str = "a price";

/// Reads a shelf price as whole pence.
///
/// Accepts pounds with an optional `£` or `GBP` ("£1.25", "1.25", "£1",
/// "£1,299.00", "GBP 1.25") or whole pence with a `p` suffix ("85p").
/// Surrounding spaces are ignored.
///
/// Rejects empty text, other currencies, negatives, zero, more than two
/// decimals, fractional pence ("1.5p"), bad thousands grouping ("£1,29"),
/// anything trailing ("£1e9") and prices above [`MAX_PRICE_PENCE`].
pub fn parse_pence(text: &str) -> Result<i64, ParseError> {
    let err = |reason: String| ParseError::new(text, WHAT, reason);
    let mut s = text.trim();
    if s.is_empty() {
        return Err(err("it is empty".into()));
    }
    if let Some(rest) = strip_prefix_ignore_case(s, "gbp") {
        s = rest.trim_start();
    }
    if starts_negative(s) {
        return Err(err("a shelf price cannot be negative".into()));
    }
    let pounds_sign = match s.strip_prefix('£') {
        Some(rest) => {
            s = rest.trim_start();
            if starts_negative(s) {
                return Err(err("a shelf price cannot be negative".into()));
            }
            true
        }
        None => false,
    };
    if let Some(c) = s.chars().next().filter(|c| is_other_currency(*c)) {
        return Err(err(format!(
            "only pounds (£) and pence (p) are read, not {c:?}"
        )));
    }
    let (number, read, rest) = match read_decimal(s).map_err(&err)? {
        Some(found) => found,
        None if s.is_empty() => return Err(err("there is no amount in it".into())),
        None => return Err(err(format!("expected an amount, found {s:?}"))),
    };
    let rest = rest.trim_start();
    let pence = if rest.eq_ignore_ascii_case("p") {
        if pounds_sign {
            return Err(err("it has both £ and p".into()));
        }
        if number.scale > 0 {
            return Err(err(format!(
                "{read}p is a fraction of a penny; shelf prices are whole pence"
            )));
        }
        number.mantissa
    } else if rest.is_empty() {
        if number.scale > 2 {
            return Err(err(format!("{read} has more than 2 decimal places")));
        }
        number
            .scaled_to(2)
            .ok_or_else(|| err("the amount is too large".into()))?
    } else {
        return Err(err(format!("unexpected {rest:?} after the amount")));
    };
    check_range(pence).map_err(err)
}

/// Checks a price in pence is a plausible shelf price.
fn check_range(pence: u64) -> Result<i64, String> {
    match i64::try_from(pence) {
        Ok(0) => Err("a shelf price of zero is not a price".into()),
        Ok(p) if p <= MAX_PRICE_PENCE => Ok(p),
        _ => Err(format!(
            "it is above the {} limit for a shelf price",
            format_pence(MAX_PRICE_PENCE)
        )),
    }
}

/// Currency signs other than £ that might start a price.
fn is_other_currency(c: char) -> bool {
    matches!(c, '$' | '€' | '¥' | '¢' | '₹' | '₽' | '₩' | '₺' | '₪' | '฿')
}

/// `s` without `prefix`, compared ignoring ASCII case.
pub(crate) fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Formats pence for people: 125 -> "£1.25", 85 -> "£0.85",
/// 129900 -> "£1,299.00", -20 -> "-£0.20".
///
/// For `1..=MAX_PRICE_PENCE`, `parse_pence(&format_pence(p)) == Ok(p)`.
pub fn format_pence(pence: i64) -> String {
    let sign = if pence < 0 { "-" } else { "" };
    let abs = pence.unsigned_abs();
    let pounds = (abs / 100).to_string();
    let mut grouped = String::with_capacity(pounds.len() + pounds.len() / 3);
    for (i, c) in pounds.chars().enumerate() {
        if i > 0 && (pounds.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}£{grouped}.{:02}", abs % 100)
}

/// An amount of money in one currency.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Money {
    /// Integer minor units (pence for GBP).
    #[cfg_attr(feature = "openapi", schema(example = 125))]
    pub amount_minor: i64,
    /// The amount as a shopper reads it.
    #[cfg_attr(feature = "openapi", schema(example = "£1.25"))]
    pub formatted: String,
    /// ISO 4217 code.
    #[cfg_attr(feature = "openapi", schema(example = "GBP"))]
    pub currency: String,
}

impl Money {
    pub fn new(amount_minor: i64, currency: &str) -> Self {
        Self {
            amount_minor,
            formatted: format_money(amount_minor, currency),
            currency: currency.to_owned(),
        }
    }
}

/// `£1.25`, `€1.25`, `$1.25`, or `1.25 SEK` for currencies without a
/// symbol here. Amounts are never summed across currencies.
pub fn format_money(minor: i64, currency: &str) -> String {
    let gbp = format_pence(minor);
    let symbol = match currency {
        "GBP" => return gbp,
        "EUR" => "€",
        "USD" => "$",
        _ => "",
    };
    let (sign, digits) = match gbp.strip_prefix('-') {
        Some(rest) => ("-", rest.trim_start_matches('£')),
        None => ("", gbp.trim_start_matches('£')),
    };
    if symbol.is_empty() {
        format!("{sign}{digits} {currency}")
    } else {
        format!("{sign}{symbol}{digits}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_good_prices() {
        let cases: &[(&str, i64)] = &[
            ("£1.25", 125),
            ("85p", 85),
            ("85P", 85),
            ("85 p", 85),
            ("£1", 100),
            ("1.25", 125),
            ("£1,299.00", 129900),
            (" £0.99 ", 99),
            ("£0.5", 50),
            ("£ 2.00", 200),
            ("GBP 1.25", 125),
            ("gbp1.25", 125),
            ("£12,345.67", 1234567),
            ("£100,000", MAX_PRICE_PENCE),
            ("£100,000.00", MAX_PRICE_PENCE),
            ("1p", 1),
            ("£0.01", 1),
            ("\u{a0}£3.50\t", 350),
            ("£1299", 129900),
            ("1,000p", 1000),
            ("£007.10", 710),
        ];
        for &(text, want) in cases {
            assert_eq!(parse_pence(text), Ok(want), "{text:?}");
        }
    }

    #[test]
    fn rejects_bad_prices_with_reasons() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("   ", "empty"),
            ("£", "no amount"),
            ("GBP", "no amount"),
            ("£-1", "negative"),
            ("-1.25", "negative"),
            ("-£1.25", "negative"),
            ("\u{2212}£1", "negative"),
            ("£1e9", "unexpected \"e9\""),
            ("NaN", "expected an amount"),
            ("inf", "expected an amount"),
            ("£1.2.3", "more than one decimal point"),
            ("£1.234", "more than 2 decimal places"),
            ("£1.230", "more than 2 decimal places"),
            ("1.5p", "fraction of a penny"),
            ("£1,29", "thousands grouping"),
            ("£12,34.00", "thousands grouping"),
            ("£0", "zero"),
            ("0p", "zero"),
            ("£0.00", "zero"),
            ("£100,000.01", "limit"),
            ("10000001p", "limit"),
            ("£99999999999999999999", "too long"),
            ("£184467440737095517", "too large"),
            ("abc", "expected an amount"),
            ("€1.25", "only pounds"),
            ("$1", "only pounds"),
            ("£85p", "both £ and p"),
            ("£1.", "decimal point must be followed"),
            ("£.99", "expected an amount"),
            ("1.25 GBP", "unexpected"),
            ("£1.25 each", "unexpected"),
        ];
        for &(text, why) in cases {
            let e = parse_pence(text).expect_err(text);
            assert_eq!(e.input, text);
            assert_eq!(e.what, "a price");
            assert!(
                e.reason.contains(why),
                "{text:?}: {:?} lacks {why:?}",
                e.reason
            );
            let shown = e.to_string();
            assert!(
                shown.starts_with(&format!("cannot read {text:?} as a price: ")),
                "{shown}"
            );
        }
    }

    #[test]
    fn formats_prices() {
        assert_eq!(format_pence(125), "£1.25");
        assert_eq!(format_pence(85), "£0.85");
        assert_eq!(format_pence(129900), "£1,299.00");
        assert_eq!(format_pence(-20), "-£0.20");
        assert_eq!(format_pence(0), "£0.00");
        assert_eq!(format_pence(100_000), "£1,000.00");
        assert_eq!(format_pence(99_999), "£999.99");
        assert_eq!(format_pence(MAX_PRICE_PENCE), "£100,000.00");
        assert_eq!(format_pence(i64::MIN), "-£92,233,720,368,547,758.08");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn format_then_parse_round_trips(p in 1..=MAX_PRICE_PENCE) {
            prop_assert_eq!(parse_pence(&format_pence(p)), Ok(p));
        }

        #[test]
        fn pence_form_round_trips(p in 1..=MAX_PRICE_PENCE) {
            prop_assert_eq!(parse_pence(&format!("{p}p")), Ok(p));
        }

        #[test]
        fn never_panics_on_ascii(s in ".*") {
            let _ = parse_pence(&s);
        }

        #[test]
        fn never_panics_on_unicode(s in any::<String>()) {
            let _ = parse_pence(&s);
        }

        #[test]
        fn never_panics_on_price_like(s in "[£$-]?[0-9,.]{0,30}[pP]?") {
            if let Ok(p) = parse_pence(&s) {
                prop_assert!((1..=MAX_PRICE_PENCE).contains(&p));
            }
        }
    }
}
