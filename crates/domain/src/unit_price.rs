//! Unit prices: "£2.50/kg", "25p/100g", "12.5p each".

use std::fmt;

use super::money::{MAX_PRICE_PENCE, format_pence, strip_prefix_ignore_case};
use super::quantity::{BaseUnit, KNOWN_UNITS, Pack, lookup_unit};
use super::{Decimal, ParseError, div_round, read_decimal, starts_negative};

const WHAT: &str = "a unit price";

/// Unit prices normalised to whole pence per kg, per litre or each (rounded to the
/// nearest penny, halves away from zero). `per` is the BaseUnit the price is per:
/// Gram means per kg, Millilitre means per litre, Each means per item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitPrice {
    pub pence: i64,
    pub per: BaseUnit,
}

impl UnitPrice {
    /// "kg", "l" or "each": what the price is per.
    pub fn per_label(&self) -> &'static str {
        match self.per {
            BaseUnit::Gram => "kg",
            BaseUnit::Millilitre => "l",
            BaseUnit::Each => "each",
        }
    }
}

impl fmt::Display for UnitPrice {
    /// "£2.50/kg", "£1.10/l", "£0.13 each". Parses back with [`parse_unit_price`]
    /// for positive prices.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let price = format_pence(self.pence);
        match self.per {
            BaseUnit::Each => write!(f, "{price} each"),
            _ => write!(f, "{price}/{}", self.per_label()),
        }
    }
}

/// Base units in the normalised quantity: 1000 g (kg), 1000 ml (l) or 1 item.
fn norm(unit: BaseUnit) -> u128 {
    match unit {
        BaseUnit::Gram | BaseUnit::Millilitre => 1000,
        BaseUnit::Each => 1,
    }
}

/// Hundredths of a penny in a penny.
const CENTIPENCE_PER_PENNY: u64 = 100;

/// Reads a unit price, normalised to pence per kg, per litre or each.
///
/// "£2.50/kg" -> 250/kg, "25p/100g" -> 250/kg, "£1.10 per litre" -> 110/l,
/// "12.5p each" -> 13 each, "£1.10/75cl" -> 147/l, "(£2.50/kg)", "£1.25/ea",
/// "£1.20 per 1l", "£4.40/1kg". The price may have fractions of a penny
/// (up to 2 decimals of a penny: "20.8p", "£0.0125").
///
/// Rejects text with no price, no unit, an unknown unit, a zero or negative
/// price, a zero quantity ("£1/0g"), or a result under half a penny.
pub fn parse_unit_price(text: &str) -> Result<UnitPrice, ParseError> {
    let err = |reason: String| ParseError::new(text, WHAT, reason);
    let lower = text.trim().to_lowercase();
    let mut s = lower.as_str();
    if let Some(inner) = s.strip_prefix('(').and_then(|s| s.strip_suffix(')')) {
        s = inner.trim();
    }
    if s.is_empty() {
        return Err(err("it is empty".into()));
    }
    let (centipence, rest) = read_price(s).map_err(&err)?;

    // Separator: "/", "per" or nothing ("12.5p each").
    let mut rest = rest.trim_start();
    if let Some(r) = rest.strip_prefix('/') {
        rest = r.trim_start();
    } else if let Some(r) = rest.strip_prefix("per")
        && (r.is_empty() || r.starts_with(|c: char| c.is_whitespace() || c.is_ascii_digit()))
    {
        rest = r.trim_start();
    }
    if rest.is_empty() {
        return Err(err(format!(
            "there is no unit: expected e.g. \"/kg\", \"per litre\" or \"each\" ({KNOWN_UNITS})"
        )));
    }
    if starts_negative(rest) {
        return Err(err("a quantity cannot be negative".into()));
    }

    // Quantity: an optional number ("100g", "75cl"), then a unit word.
    let (qty, qty_text, unit_word) = match read_decimal(rest).map_err(&err)? {
        Some((d, t, r)) => (d, t, r.trim()),
        None => (
            Decimal {
                mantissa: 1,
                scale: 0,
            },
            "",
            rest,
        ),
    };
    if unit_word.is_empty() {
        return Err(err(format!(
            "no unit after {qty_text} (expected {KNOWN_UNITS})"
        )));
    }
    let (unit, mult) = lookup_unit(unit_word).ok_or_else(|| {
        err(format!(
            "unknown unit {unit_word:?} (expected {KNOWN_UNITS})"
        ))
    })?;
    if qty.mantissa == 0 {
        return Err(err(format!("a quantity of zero ({qty_text}{unit_word})")));
    }

    // pence per norm = (cp / 100) * norm / (mantissa * mult / 10^scale)
    let numerator = u128::from(centipence)
        .checked_mul(norm(unit))
        .and_then(|n| n.checked_mul(10u128.checked_pow(qty.scale)?))
        .ok_or_else(|| err("the numbers are too large".into()))?;
    let denominator = u128::from(CENTIPENCE_PER_PENNY)
        .checked_mul(u128::from(qty.mantissa))
        .and_then(|d| d.checked_mul(u128::from(mult)))
        .ok_or_else(|| err("the quantity is too large".into()))?;
    let pence = match (i128::try_from(numerator), i128::try_from(denominator)) {
        (Ok(n), Ok(d)) => div_round(n, d),
        _ => None,
    }
    .and_then(|p| i64::try_from(p).ok())
    .ok_or_else(|| err("the unit price is too large".into()))?;
    if pence == 0 {
        return Err(err(format!(
            "it comes to less than half a penny per {}",
            UnitPrice { pence, per: unit }.per_label()
        )));
    }
    Ok(UnitPrice { pence, per: unit })
}

/// Reads the price at the start of `s` (lowercase) in hundredths of a penny,
/// returning it and the rest of `s`.
fn read_price(s: &str) -> Result<(u64, &str), String> {
    let mut s = s;
    if let Some(rest) = strip_prefix_ignore_case(s, "gbp") {
        s = rest.trim_start();
    }
    if starts_negative(s) {
        return Err("a unit price cannot be negative".into());
    }
    let pounds_sign = match s.strip_prefix('£') {
        Some(rest) => {
            s = rest.trim_start();
            if starts_negative(s) {
                return Err("a unit price cannot be negative".into());
            }
            true
        }
        None => false,
    };
    let Some((number, number_text, rest)) = read_decimal(s)? else {
        return Err(
            if s.starts_with('/') || s.starts_with("per") || pounds_sign {
                "there is no price before the unit".into()
            } else {
                format!(
                    "there is no price: expected e.g. \"£2.50/kg\" or \"25p/100g\", found {s:?}"
                )
            },
        );
    };
    // A "p" suffix means pence, unless it starts a word such as "per".
    let after = rest.trim_start();
    let pence_suffix = after
        .strip_prefix('p')
        .filter(|r| !r.starts_with(char::is_alphabetic));
    let (centipence, rest) = match pence_suffix {
        Some(_) if pounds_sign => return Err("it has both £ and p".into()),
        Some(r) => {
            let cp = number.scaled_to(2).ok_or_else(|| {
                format!("{number_text}p has more than 2 decimal places of a penny")
            })?;
            (cp, r)
        }
        None => {
            let cp = number.scaled_to(4).ok_or_else(|| {
                format!("£{number_text} has more than 4 decimal places (2 of a penny)")
            })?;
            (cp, rest)
        }
    };
    if centipence == 0 {
        return Err("a unit price of zero is not a price".into());
    }
    if centipence > MAX_PRICE_PENCE.unsigned_abs() * CENTIPENCE_PER_PENNY {
        return Err(format!(
            "the price is above the {} limit",
            format_pence(MAX_PRICE_PENCE)
        ));
    }
    Ok((centipence, rest))
}

/// Unit price computed from a shelf price and a pack: pence per kg, per litre or
/// each, rounded to the nearest penny (halves away from zero).
///
/// Returns `None` for a pack total of 0, or if the result does not fit in `i64`.
pub fn unit_price_of(price_pence: i64, pack: &Pack) -> Option<UnitPrice> {
    let total = u128::from(pack.count) * u128::from(pack.each);
    if total == 0 {
        return None;
    }
    let n = i128::from(price_pence) * i128::try_from(norm(pack.unit)).ok()?;
    let pence = div_round(n, i128::try_from(total).ok()?)?;
    Some(UnitPrice {
        pence: i64::try_from(pence).ok()?,
        per: pack.unit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use BaseUnit::*;
    use proptest::prelude::*;

    fn up(pence: i64, per: BaseUnit) -> UnitPrice {
        UnitPrice { pence, per }
    }

    #[test]
    fn reads_good_unit_prices() {
        let cases: &[(&str, UnitPrice)] = &[
            ("£2.50/kg", up(250, Gram)),
            ("25p/100g", up(250, Gram)),
            ("£1.10 per litre", up(110, Millilitre)),
            ("12.5p each", up(13, Each)),
            ("£1.10/75cl", up(147, Millilitre)),
            ("£3.00 per kg", up(300, Gram)),
            ("(£2.50/kg)", up(250, Gram)),
            ("£0.40/100ml", up(400, Millilitre)),
            ("20.8p/100g", up(208, Gram)),
            ("£1.25/ea", up(125, Each)),
            ("£1.20 per 1l", up(120, Millilitre)),
            ("£4.40/1kg", up(440, Gram)),
            ("£1.67 / KG", up(167, Gram)),
            ("£1.05/ltr", up(105, Millilitre)),
            ("£0.25/each", up(25, Each)),
            ("15.0p/100g", up(150, Gram)),
            ("£1.33 per kilo", up(133, Gram)),
            ("£0.26/100g", up(260, Gram)),
            ("0.4p/100g", up(4, Gram)),
            ("£0.0125/g", up(1250, Gram)),
            ("2.50/kg", up(250, Gram)),
            ("£2/500g", up(400, Gram)),
            ("£1.00/3 each", up(33, Each)),
            ("£2.00/3 each", up(67, Each)),
            ("£1/1.5l", up(67, Millilitre)),
            ("£1,000.00/kg", up(100_000, Gram)),
            ("12.25p each", up(12, Each)),
            ("GBP 2.50 per kg", up(250, Gram)),
            ("£ 2.50/kg", up(250, Gram)),
        ];
        for &(text, want) in cases {
            assert_eq!(parse_unit_price(text), Ok(want), "{text:?}");
        }
    }

    #[test]
    fn rejects_bad_unit_prices_with_reasons() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("()", "empty"),
            ("per kg", "no price"),
            ("/kg", "no price"),
            ("£/kg", "no price"),
            ("kg", "no price"),
            ("£2.50", "no unit"),
            ("£2.50 per", "no unit"),
            ("£1/100", "no unit after 100"),
            ("£2.50/parsec", "unknown unit \"parsec\""),
            ("£0/kg", "zero"),
            ("0p each", "zero"),
            ("-£1/kg", "negative"),
            ("£-1/kg", "negative"),
            ("£1/-1kg", "negative"),
            ("£1/0g", "quantity of zero"),
            ("£1/0.0kg", "quantity of zero"),
            ("1.234p/100g", "more than 2 decimal places of a penny"),
            ("£1.23456/kg", "more than 4 decimal places"),
            ("£1p/kg", "both £ and p"),
            ("£100,000.01/kg", "limit"),
            ("0.01p/kg", "less than half a penny per kg"),
            ("£1.2.3/kg", "more than one decimal point"),
            ("£1/99999999999999999999g", "too long"),
        ];
        for &(text, why) in cases {
            let e = parse_unit_price(text).expect_err(text);
            assert_eq!(e.input, text);
            assert_eq!(e.what, "a unit price");
            assert!(
                e.reason.contains(why),
                "{text:?}: {:?} lacks {why:?}",
                e.reason
            );
            assert!(
                e.to_string()
                    .starts_with(&format!("cannot read {text:?} as a unit price: "))
            );
        }
    }

    #[test]
    fn computes_unit_price_of_packs() {
        let p = |count, each, unit| Pack { count, each, unit };
        assert_eq!(unit_price_of(125, &p(1, 500, Gram)), Some(up(250, Gram)));
        assert_eq!(
            unit_price_of(110, &p(1, 750, Millilitre)),
            Some(up(147, Millilitre))
        );
        assert_eq!(
            unit_price_of(400, &p(4, 330, Millilitre)),
            Some(up(303, Millilitre))
        );
        assert_eq!(unit_price_of(100, &p(3, 1, Each)), Some(up(33, Each)));
        assert_eq!(unit_price_of(25, &p(2, 1, Each)), Some(up(13, Each)));
        assert_eq!(unit_price_of(-25, &p(2, 1, Each)), Some(up(-13, Each)));
        assert_eq!(unit_price_of(100, &p(0, 500, Gram)), None);
        assert_eq!(unit_price_of(100, &p(4, 0, Gram)), None);
        assert_eq!(unit_price_of(i64::MAX, &p(1, 1, Gram)), None);
        assert_eq!(
            unit_price_of(i64::MAX, &p(u32::MAX, u64::MAX, Gram)),
            Some(up(0, Gram))
        );
    }

    #[test]
    fn displays_unit_prices() {
        assert_eq!(up(250, Gram).to_string(), "£2.50/kg");
        assert_eq!(up(110, Millilitre).to_string(), "£1.10/l");
        assert_eq!(up(13, Each).to_string(), "£0.13 each");
    }

    fn any_unit() -> impl Strategy<Value = BaseUnit> {
        prop_oneof![Just(Gram), Just(Millilitre), Just(Each)]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn display_round_trips(pence in 1..=MAX_PRICE_PENCE, per in any_unit()) {
            let u = up(pence, per);
            prop_assert_eq!(parse_unit_price(&u.to_string()), Ok(u));
        }

        #[test]
        fn other_styles_round_trip(pence in 1..=MAX_PRICE_PENCE, per in any_unit()) {
            let u = up(pence, per);
            let label = u.per_label();
            let price = format_pence(pence);
            let mut texts = vec![
                format!("{pence}p/{label}"),
                format!("({price}/{})", label.to_uppercase()),
                format!("{price} per {label}"),
                format!("{price} per 1{label}"),
            ];
            if per != Each {
                // Per 100 g / 100 ml, in pence with a decimal.
                let small = if per == Gram { "g" } else { "ml" };
                texts.push(format!("{}.{}p/100{small}", pence / 10, pence % 10));
            }
            for text in texts {
                prop_assert_eq!(parse_unit_price(&text), Ok(u), "{}", text);
            }
        }

        #[test]
        fn unit_price_of_agrees_with_parsing(price in 1..=100_000i64, each in 1..=5000u64, per in any_unit()) {
            let pack = Pack { count: 1, each, unit: per };
            let label = match per { Gram => "g", Millilitre => "ml", Each => "each" };
            let parsed = parse_unit_price(&format!("{}/{each}{label}", format_pence(price)));
            match unit_price_of(price, &pack) {
                Some(u) if u.pence > 0 => prop_assert_eq!(parsed, Ok(u)),
                _ => prop_assert!(parsed.is_err()),
            }
        }

        #[test]
        fn never_panics_on_ascii(s in ".*") {
            let _ = parse_unit_price(&s);
        }

        #[test]
        fn never_panics_on_unicode(s in any::<String>()) {
            let _ = parse_unit_price(&s);
        }

        #[test]
        fn never_panics_on_price_like(s in "\\(?[£-]?[0-9.,]{0,25}p? ?(/|per )?-?[0-9.]{0,25}(g|kg|ml|l|cl|each)\\)?") {
            if let Ok(u) = parse_unit_price(&s) {
                prop_assert!(u.pence > 0);
            }
        }
    }
}
