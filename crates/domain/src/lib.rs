//! Reading the text printed on supermarket shelves: prices, pack sizes,
//! unit prices, promotions and structured offers (plus retailer slugs).
//!
//! Every parser is hand-written, never panics, and reports failures as a
//! [`ParseError`] naming the text and the reason.

pub mod action;
pub mod effective;
pub mod money;
pub mod offer;
pub mod promo;
pub mod quantity;
pub mod retailer;
pub mod unit_price;

/// Error for any shelf text that could not be read. Display: `cannot read "{input}" as {what}: {reason}`
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read {input:?} as {what}: {reason}")]
pub struct ParseError {
    /// The text exactly as it was given.
    pub input: String,
    /// What the text was read as, e.g. "a price".
    pub what: &'static str,
    /// Why it could not be read.
    pub reason: String,
}

impl ParseError {
    /// Builds an error for `input` read as `what`.
    pub fn new(input: &str, what: &'static str, reason: impl Into<String>) -> Self {
        ParseError {
            input: input.to_string(),
            what,
            reason: reason.into(),
        }
    }
}

/// A non-negative decimal number as written: `mantissa / 10^scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decimal {
    pub(crate) mantissa: u64,
    pub(crate) scale: u32,
}

impl Decimal {
    /// The value in units of `10^-target` (e.g. target 2 turns pounds into
    /// pence), or `None` if it has more decimals than that or overflows.
    pub(crate) fn scaled_to(self, target: u32) -> Option<u64> {
        let shift = target.checked_sub(self.scale)?;
        self.mantissa.checked_mul(10u64.checked_pow(shift)?)
    }
}

/// Most decimal places any parser accepts before giving up on a number.
const MAX_SCALE: u32 = 18;

/// Reads a number at the start of `s`: ASCII digits, optionally grouped in
/// thousands with commas ("1,299"), optionally followed by a fraction ("1.25").
///
/// Returns `Ok(None)` if `s` does not start with a digit, otherwise the number,
/// the text it was read from, and the rest of `s`. Errors are reasons.
pub(crate) fn read_decimal(s: &str) -> Result<Option<(Decimal, &str, &str)>, String> {
    let bytes = s.as_bytes();
    if !bytes.first().is_some_and(u8::is_ascii_digit) {
        return Ok(None);
    }
    let mut mantissa: u64 = 0;
    let mut i = 0;
    // Integer part, with optional thousands separators.
    let mut group_len = 0;
    let mut grouped = false;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_digit() {
            mantissa = push_digit(mantissa, b)?;
            group_len += 1;
            i += 1;
        } else if b == b',' {
            let first_ok = grouped || (1..=3).contains(&group_len);
            let next_three = bytes
                .get(i + 1..i + 4)
                .is_some_and(|g| g.iter().all(u8::is_ascii_digit));
            let then_stop = !bytes.get(i + 4).is_some_and(u8::is_ascii_digit);
            if !(first_ok && (!grouped || group_len == 3) && next_three && then_stop) {
                return Err(format!(
                    "bad thousands grouping in {:?}: commas must separate groups of three digits",
                    number_text(s)
                ));
            }
            grouped = true;
            group_len = 0;
            i += 1;
        } else {
            break;
        }
    }
    // Fraction.
    let mut scale = 0;
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        if !bytes.get(i).is_some_and(u8::is_ascii_digit) {
            return Err("a decimal point must be followed by digits".to_string());
        }
        while let Some(&b) = bytes.get(i).filter(|b| b.is_ascii_digit()) {
            mantissa = push_digit(mantissa, b)?;
            scale += 1;
            if scale > MAX_SCALE {
                return Err("the number has too many decimal places".to_string());
            }
            i += 1;
        }
        if bytes.get(i) == Some(&b'.') {
            return Err("the number has more than one decimal point".to_string());
        }
    }
    // Everything consumed is ASCII, so `i` is a char boundary.
    let (read, rest) = s.split_at(i);
    Ok(Some((Decimal { mantissa, scale }, read, rest)))
}

/// `m * 10 + digit`, or a reason if that overflows.
fn push_digit(m: u64, digit: u8) -> Result<u64, String> {
    m.checked_mul(10)
        .and_then(|m| m.checked_add(u64::from(digit - b'0')))
        .ok_or_else(|| "the number is too long".to_string())
}

/// The leading run of digits, commas and dots of `s`, for error messages.
fn number_text(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == ',' || c == '.'))
        .unwrap_or(s.len());
    &s[..end]
}

/// `n / d` rounded to the nearest integer, halves away from zero.
/// Returns `None` if `d` is zero (or negating a negative `d` overflows).
pub(crate) fn div_round(n: i128, d: i128) -> Option<i128> {
    if d == 0 {
        return None;
    }
    let (n, d) = if d < 0 {
        (n.checked_neg()?, d.checked_neg()?)
    } else {
        (n, d)
    };
    let q = n / d;
    let r = n % d;
    if r.unsigned_abs() * 2 >= d.unsigned_abs() {
        Some(if n < 0 { q - 1 } else { q + 1 })
    } else {
        Some(q)
    }
}

/// Whether `s` starts with a minus sign (ASCII hyphen or Unicode minus).
pub(crate) fn starts_negative(s: &str) -> bool {
    s.starts_with(['-', '\u{2212}'])
}

/// Test helper: checks that `parse` reads each text of `cases` as its value.
#[cfg(test)]
pub(crate) fn assert_reads<T: std::fmt::Debug + PartialEq + Clone>(
    parse: impl Fn(&str) -> Result<T, ParseError>,
    cases: &[(&str, T)],
) {
    for (text, want) in cases {
        assert_eq!(parse(text), Ok(want.clone()), "{text:?}");
    }
}

/// Test helper: checks that `parse` refuses each text of `cases` as `what`,
/// with a reason holding the case's words, and that the error shows both.
#[cfg(test)]
pub(crate) fn assert_rejects<T: std::fmt::Debug>(
    parse: impl Fn(&str) -> Result<T, ParseError>,
    what: &str,
    cases: &[(&str, &str)],
) {
    for &(text, why) in cases {
        let e = parse(text).expect_err(text);
        assert_eq!(e.input, text);
        assert_eq!(e.what, what);
        assert!(
            e.reason.contains(why),
            "{text:?}: {:?} lacks {why:?}",
            e.reason
        );
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("cannot read {text:?} as {what}: ")),
            "{shown}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Result<Option<(u64, u32, &str)>, String> {
        read_decimal(s).map(|o| o.map(|(d, _, rest)| (d.mantissa, d.scale, rest)))
    }

    #[test]
    fn reads_decimals() {
        assert_eq!(dec("415g"), Ok(Some((415, 0, "g"))));
        assert_eq!(dec("1.25"), Ok(Some((125, 2, ""))));
        assert_eq!(dec("1,299.00 x"), Ok(Some((129900, 2, " x"))));
        assert_eq!(dec("12,345,678"), Ok(Some((12345678, 0, ""))));
        assert_eq!(dec("007"), Ok(Some((7, 0, ""))));
        assert_eq!(dec("x1"), Ok(None));
        assert_eq!(dec(""), Ok(None));
        assert_eq!(dec(".5"), Ok(None));
    }

    #[test]
    fn rejects_bad_numbers() {
        for bad in [
            "1,29",
            "1,2345",
            "1234,567",
            "1,",
            "1,234,56",
            "1.",
            "1.2.3",
            "99999999999999999999",
            "0.0000000000000000001",
        ] {
            assert!(dec(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn rounds_halves_away_from_zero() {
        assert_eq!(div_round(25, 2), Some(13));
        assert_eq!(div_round(-25, 2), Some(-13));
        assert_eq!(div_round(24, 2), Some(12));
        assert_eq!(div_round(1, 3), Some(0));
        assert_eq!(div_round(2, 3), Some(1));
        assert_eq!(div_round(-2, 3), Some(-1));
        assert_eq!(div_round(5, -2), Some(-3));
        assert_eq!(div_round(1, 0), None);
        assert_eq!(div_round(i128::MIN, -1), None);
        assert_eq!(div_round(i128::MIN, 2), Some(i128::MIN / 2));
        assert_eq!(div_round(i128::MAX, 2), Some(i128::MAX / 2 + 1));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Long digit strings must be rejected with a reason, never overflow.
        #[test]
        fn long_numbers_never_panic(
            s in "[£(]?[0-9,]{15,60}(\\.[0-9]{0,30})?( ?(p|g|kg|x 2l|/kg|/0.5g|p each| for £1|% off|/3 off))?"
        ) {
            let _ = money::parse_pence(&s);
            let _ = quantity::parse_pack(&s);
            let _ = unit_price::parse_unit_price(&s);
            let _ = unit_price::parse_precise_unit_price(&s);
            let _ = promo::parse_promo(&s);
            let _ = offer::parse_offer(&s);
        }
    }

    #[test]
    fn error_display_names_input_and_reason() {
        let e = ParseError::new("£1.2.3", "a price", "more than one decimal point");
        assert_eq!(
            e.to_string(),
            r#"cannot read "£1.2.3" as a price: more than one decimal point"#
        );
    }
}
