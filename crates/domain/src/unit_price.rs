//! Unit prices: "£2.50/kg", "25p/100g", "12.5p each", "(72.6p/lt)",
//! "Price per unit77p/litre".
//!
//! Two readings of the same text:
//! - [`UnitPrice`] ([`parse_unit_price`]): whole pence per kg, per litre or
//!   each, rounded to the nearest penny. This is what the store keeps.
//! - [`PreciseUnitPrice`] ([`parse_precise_unit_price`]): the price exactly as
//!   printed, in hundredths of a penny, for the quantity printed (100 g, 1 l,
//!   75 cl, 1 pint, 3 each). Nothing is rounded, so GBX prices in decimal pence
//!   ("80.1p/kg", "(72.6p/lt)") keep their tenths. From it,
//!   [`PreciseUnitPrice::tenths_per_norm`] gives tenths of a penny per kg,
//!   litre or item when that is exact (it always is for prices printed per kg,
//!   litre, 100 g, 100 ml or item with at most one decimal of a penny), and
//!   [`PreciseUnitPrice::rounded`] gives the same [`UnitPrice`] as
//!   [`parse_unit_price`].

use std::fmt;

use super::money::{MAX_PRICE_PENCE, format_pence, strip_prefix_ignore_case};
use super::quantity::{BaseUnit, KNOWN_UNITS, Pack, exact_times, lookup_unit};
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
        norm_label(self.per)
    }
}

/// "kg", "l" or "each": the normalised quantity of `unit`.
fn norm_label(unit: BaseUnit) -> &'static str {
    match unit {
        BaseUnit::Gram => "kg",
        BaseUnit::Millilitre => "l",
        BaseUnit::Each => "each",
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

/// A unit price exactly as printed: `centipence` hundredths of a penny for
/// `quantity` base units of `per` (grams, millilitres or items).
///
/// "(72.6p/lt)" is 7260 per 1000 ml, "20.8p/100g" is 2080 per 100 g,
/// "£8.00/75cl" is 80000 per 750 ml, "£0.50/pint" is 5000 per 568 ml.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreciseUnitPrice {
    /// The price printed, in hundredths of a penny (always above zero when parsed).
    pub centipence: i64,
    /// How many base units the price is for (always above zero when parsed).
    pub quantity: u64,
    /// The base unit of `quantity`.
    pub per: BaseUnit,
}

impl PreciseUnitPrice {
    /// Whole pence per kg, per litre or each, rounded to the nearest penny
    /// (halves away from zero): what [`parse_unit_price`] reads from the same
    /// text. `None` if that rounds to zero or does not fit.
    pub fn rounded(&self) -> Option<UnitPrice> {
        let pence = self
            .per_norm(CENTIPENCE_PER_PENNY)
            .and_then(|(n, d)| div_round(n, d))
            .and_then(|p| i64::try_from(p).ok())
            .filter(|p| *p != 0)?;
        Some(UnitPrice {
            pence,
            per: self.per,
        })
    }

    /// Tenths of a penny per kg, per litre or each, if that is a whole number:
    /// "(72.6p/lt)" -> 726, "20.85p/100g" -> 2085, "£1.25/lt" -> 1250.
    /// `None` when it is not exact ("£8.00/75cl" is 1066.67p per litre) or
    /// does not fit: such a price is never rounded here.
    pub fn tenths_per_norm(&self) -> Option<i64> {
        let (n, d) = self.per_norm(CENTIPENCE_PER_PENNY / 10)?;
        if d == 0 || n % d != 0 {
            return None;
        }
        i64::try_from(n / d).ok()
    }

    /// The price per kg, litre or item as `numerator / denominator` in units
    /// of `per_unit` hundredths of a penny.
    fn per_norm(&self, per_unit: u64) -> Option<(i128, i128)> {
        let n = i128::from(self.centipence).checked_mul(i128::try_from(norm(self.per)).ok()?)?;
        let d = i128::from(self.quantity).checked_mul(i128::from(per_unit))?;
        Some((n, d))
    }
}

impl fmt::Display for PreciseUnitPrice {
    /// "£1.25/l", "72.6p/l", "20.85p/100g", "£8.00/750ml", "12.5p each",
    /// "£1.00/3 each". Parses back with [`parse_precise_unit_price`] for
    /// positive prices.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cp = self.centipence;
        let (whole, frac) = (cp / 100, (cp % 100).abs());
        if frac == 0 {
            f.write_str(&format_pence(whole))?;
        } else if frac % 10 == 0 {
            write!(f, "{whole}.{}p", frac / 10)?;
        } else {
            write!(f, "{whole}.{frac:02}p")?;
        }
        let q = self.quantity;
        match self.per {
            BaseUnit::Each if q == 1 => f.write_str(" each"),
            BaseUnit::Each => write!(f, "/{q} each"),
            unit if u128::from(q) == norm(unit) => write!(f, "/{}", norm_label(unit)),
            unit => write!(f, "/{q}{unit}"),
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

/// Labels that shops print (often visually hidden) before a unit price.
const LABELS: &[&str] = &["price per unit", "unit price", "price/unit"];

/// A unit price as printed, before it is normalised.
struct Printed<'a> {
    centipence: u64,
    qty: Decimal,
    qty_text: &'a str,
    unit_word: &'a str,
    unit: BaseUnit,
    mult: u64,
}

/// Reads the parts of a unit price from lowercase text. Errors are reasons.
fn read_printed(lower: &str) -> Result<Printed<'_>, String> {
    let mut s = lower.trim();
    if let Some(rest) = LABELS.iter().find_map(|l| s.strip_prefix(l)) {
        s = rest.trim_start();
        s = s.strip_prefix(':').unwrap_or(s).trim_start();
        if s.is_empty() {
            return Err("there is only a label, no unit price after it".into());
        }
    }
    if let Some(inner) = s.strip_prefix('(').and_then(|s| s.strip_suffix(')')) {
        s = inner.trim();
    }
    if s.is_empty() {
        return Err("it is empty".into());
    }
    let (centipence, marked, rest) = read_price(s)?;

    // Separator: "/", "per" or nothing ("12.5p each").
    let mut rest = rest.trim_start();
    if let Some(r) = rest.strip_prefix('/') {
        rest = r.trim_start();
    } else if !marked {
        // "4 pint", "5 per pack", "415g": a pack size, not £4 per pint.
        return Err(format!(
            "a number with no £, p, GBP or GBX and no \"/\" before {:?} reads as a quantity, \
             not a price",
            rest
        ));
    } else if let Some(r) = rest.strip_prefix("per")
        && (r.is_empty() || r.starts_with(|c: char| c.is_whitespace() || c.is_ascii_digit()))
    {
        rest = r.trim_start();
    }
    if rest.is_empty() {
        return Err(format!(
            "there is no unit: expected e.g. \"/kg\", \"per litre\" or \"each\" ({KNOWN_UNITS})"
        ));
    }
    if starts_negative(rest) {
        return Err("a quantity cannot be negative".into());
    }

    // Quantity: an optional number ("100g", "75cl"), then a unit word.
    let (qty, qty_text, unit_word) = match read_decimal(rest)? {
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
        return Err(format!("no unit after {qty_text} (expected {KNOWN_UNITS})"));
    }
    let (unit, mult) = lookup_unit(unit_word)
        .ok_or_else(|| format!("unknown unit {unit_word:?} (expected {KNOWN_UNITS})"))?;
    if qty.mantissa == 0 {
        return Err(format!("a quantity of zero ({qty_text}{unit_word})"));
    }
    Ok(Printed {
        centipence,
        qty,
        qty_text,
        unit_word,
        unit,
        mult,
    })
}

/// Reads a unit price, normalised to pence per kg, per litre or each.
///
/// "£2.50/kg" -> 250/kg, "25p/100g" -> 250/kg, "£1.10 per litre" -> 110/l,
/// "12.5p each" -> 13 each, "£1.10/75cl" -> 147/l, "(£2.50/kg)", "£1.25/ea",
/// "£1.20 per 1l", "£4.40/1kg", "(£1.25/lt)", "(£24.35 per kilo)",
/// "£0.50/pint". The price may have fractions of a penny (up to 2 decimals
/// of a penny: "20.8p", "£0.0125", "GBX 80.1/kg"). A leading label is
/// dropped: "Price per unit77p/litre", "Unit price: £1.10/l".
///
/// Rejects text with no price, no unit, an unknown unit, a zero or negative
/// price, a zero quantity ("£1/0g"), or a result under half a penny.
pub fn parse_unit_price(text: &str) -> Result<UnitPrice, ParseError> {
    let err = |reason: String| ParseError::new(text, WHAT, reason);
    let lower = text.to_lowercase();
    let Printed {
        centipence,
        qty,
        unit,
        mult,
        ..
    } = read_printed(&lower).map_err(&err)?;

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
            norm_label(unit)
        )));
    }
    Ok(UnitPrice { pence, per: unit })
}

/// Reads a unit price exactly as printed, rounding nothing: see
/// [`PreciseUnitPrice`]. Reads the same wordings as [`parse_unit_price`].
///
/// "(72.6p/lt)" -> 7260 per 1000 ml, "GBX 80.1/kg" -> 8010 per 1000 g,
/// "£8.00/75cl" -> 80000 per 750 ml.
///
/// Rejects what [`parse_unit_price`] rejects except a result under half a
/// penny (here nothing is rounded), and also a quantity that is not a whole
/// number of grams, millilitres or items ("£1/0.5g") or above
/// [`BaseUnit::max_total`].
pub fn parse_precise_unit_price(text: &str) -> Result<PreciseUnitPrice, ParseError> {
    let err = |reason: String| ParseError::new(text, WHAT, reason);
    let lower = text.to_lowercase();
    let p = read_printed(&lower).map_err(&err)?;
    let quantity = exact_times(p.qty, p.mult)
        .ok_or_else(|| {
            err(format!(
                "the quantity {}{} is not a whole number of {}",
                p.qty_text,
                p.unit_word,
                p.unit.plural()
            ))
        })
        .and_then(|q| {
            u64::try_from(q)
                .ok()
                .filter(|q| *q <= p.unit.max_total())
                .ok_or_else(|| {
                    err(format!(
                        "the quantity {}{} is absurdly large",
                        p.qty_text, p.unit_word
                    ))
                })
        })?;
    let centipence =
        i64::try_from(p.centipence).map_err(|_| err("the price is too large".into()))?;
    Ok(PreciseUnitPrice {
        centipence,
        quantity,
        per: p.unit,
    })
}

/// Reads the price at the start of `s` (lowercase) in hundredths of a penny,
/// returning it, whether it was marked as money (£, p, GBP or GBX), and the
/// rest of `s`.
fn read_price(s: &str) -> Result<(u64, bool, &str), String> {
    let mut s = s;
    let gbp = strip_prefix_ignore_case(s, "gbp");
    if let Some(rest) = gbp {
        s = rest.trim_start();
    }
    // GBX: the amount is in pence, as in "GBX 80.1/kg".
    let gbx = match strip_prefix_ignore_case(s, "gbx") {
        Some(rest) => {
            s = rest.trim_start();
            true
        }
        None => false,
    };
    if starts_negative(s) {
        return Err("a unit price cannot be negative".into());
    }
    let pounds_sign = match s.strip_prefix('£') {
        Some(_) if gbx => return Err("it has both GBX (pence) and £".into()),
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
            if s.starts_with('/') || s.starts_with("per") || pounds_sign || gbx {
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
    let in_pence = |rest| {
        let cp = number
            .scaled_to(2)
            .ok_or_else(|| format!("{number_text}p has more than 2 decimal places of a penny"))?;
        Ok::<_, String>((cp, rest))
    };
    let (centipence, rest) = match pence_suffix {
        Some(_) if pounds_sign => return Err("it has both £ and p".into()),
        Some(_) if gbx => return Err("it has both GBX (pence) and p".into()),
        Some(r) => in_pence(r)?,
        None if gbx => in_pence(rest)?,
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
    let marked = gbp.is_some() || gbx || pounds_sign || pence_suffix.is_some();
    Ok((centipence, marked, rest))
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
            // Real wordings (Asda, Waitrose, Morrisons, Ocado, Tesco).
            ("(£1.25/lt)", up(125, Millilitre)),
            ("(72.6p/lt)", up(73, Millilitre)),
            ("(£24.35 per kilo)", up(2435, Gram)),
            ("(£1.35 per litre)", up(135, Millilitre)),
            ("77p/litre", up(77, Millilitre)),
            ("Price per unit77p/litre", up(77, Millilitre)),
            ("Price per unit£1.11/litre", up(111, Millilitre)),
            ("Price per unit (£1.25/lt)", up(125, Millilitre)),
            ("Unit price: £1.10/l", up(110, Millilitre)),
            ("£0.73/litre", up(73, Millilitre)),
            ("£18.86/kg", up(1886, Gram)),
            ("£20/kg", up(2000, Gram)),
            ("80.1p/kg", up(80, Gram)),
            ("GBX 80.1/kg", up(80, Gram)),
            ("gbx 80.5 per litre", up(81, Millilitre)),
            ("£0.50/pint", up(88, Millilitre)),
            ("50p per pint", up(88, Millilitre)),
        ];
        crate::assert_reads(parse_unit_price, cases);
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
            ("Price per unit", "only a label"),
            ("Price per unit:", "only a label"),
            ("Price per unit77p", "no unit"),
            ("80.1p", "no unit"),
            ("Price per kg £1", "no price"),
            ("GBX £80/kg", "both GBX (pence) and £"),
            ("GBX 80p/kg", "both GBX (pence) and p"),
            ("GBX/kg", "no price before the unit"),
            ("GBX 80.123/kg", "more than 2 decimal places of a penny"),
            ("(£1.25/lt", "no price"),
            ("(£1.25/parsec)", "unknown unit \"parsec\""),
            // Pack sizes in the unit price field are not prices.
            ("4 pint", "no £, p, GBP or GBX and no \"/\" before \"pint\""),
            ("5 per pack", "reads as a quantity"),
            ("415g", "reads as a quantity"),
            ("2.50 per kg", "reads as a quantity"),
        ];
        crate::assert_rejects(parse_unit_price, "a unit price", cases);
    }

    fn precise(centipence: i64, quantity: u64, per: BaseUnit) -> PreciseUnitPrice {
        PreciseUnitPrice {
            centipence,
            quantity,
            per,
        }
    }

    #[test]
    fn reads_precise_unit_prices() {
        // (text, as printed, tenths of a penny per kg/l/each if exact)
        let cases: &[(&str, PreciseUnitPrice, Option<i64>)] = &[
            ("(72.6p/lt)", precise(7260, 1000, Millilitre), Some(726)),
            ("80.1p/kg", precise(8010, 1000, Gram), Some(801)),
            ("GBX 80.1/kg", precise(8010, 1000, Gram), Some(801)),
            (
                "Price per unit77p/litre",
                precise(7700, 1000, Millilitre),
                Some(770),
            ),
            ("(£1.25/lt)", precise(12500, 1000, Millilitre), Some(1250)),
            (
                "(£24.35 per kilo)",
                precise(243500, 1000, Gram),
                Some(24350),
            ),
            ("20.85p/100g", precise(2085, 100, Gram), Some(2085)),
            ("20.8p/100g", precise(2080, 100, Gram), Some(2080)),
            ("0.4p/100g", precise(40, 100, Gram), Some(40)),
            ("12.5p each", precise(1250, 1, Each), Some(125)),
            ("12.25p each", precise(1225, 1, Each), None),
            ("£8.00/75cl", precise(80000, 750, Millilitre), None),
            ("£1.00/3 each", precise(10000, 3, Each), None),
            ("£0.50/pint", precise(5000, 568, Millilitre), None),
            ("£1/1.5l", precise(10000, 1500, Millilitre), None),
            ("£0.0125/g", precise(125, 1, Gram), Some(12500)),
            ("0.01p/kg", precise(1, 1000, Gram), None),
        ];
        for &(text, want, tenths) in cases {
            let got = parse_precise_unit_price(text);
            assert_eq!(got, Ok(want), "{text:?}");
            assert_eq!(want.tenths_per_norm(), tenths, "{text:?}");
            // Rounding the precise reading gives what parse_unit_price reads.
            assert_eq!(
                want.rounded().ok_or(()),
                parse_unit_price(text).map_err(|_| ()),
                "{text:?}"
            );
        }
    }

    #[test]
    fn rejects_bad_precise_unit_prices_with_reasons() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("80.1p", "no unit"),
            ("Price per unit", "only a label"),
            (
                "£1/0.5g",
                "the quantity 0.5g is not a whole number of grams",
            ),
            ("£1/0.0005l", "not a whole number of millilitres"),
            ("£1/1001kg", "absurdly large"),
            ("£1/10001 each", "absurdly large"),
            ("£0/kg", "zero"),
            ("£1/0g", "quantity of zero"),
            ("-72.6p/lt", "negative"),
            ("72.666p/lt", "more than 2 decimal places of a penny"),
        ];
        crate::assert_rejects(parse_precise_unit_price, "a unit price", cases);
    }

    #[test]
    fn displays_precise_unit_prices() {
        assert_eq!(precise(7260, 1000, Millilitre).to_string(), "72.6p/l");
        assert_eq!(precise(12500, 1000, Millilitre).to_string(), "£1.25/l");
        assert_eq!(precise(2085, 100, Gram).to_string(), "20.85p/100g");
        assert_eq!(precise(80000, 750, Millilitre).to_string(), "£8.00/750ml");
        assert_eq!(precise(1250, 1, Each).to_string(), "12.5p each");
        assert_eq!(precise(10000, 3, Each).to_string(), "£1.00/3 each");
        assert_eq!(precise(1, 1000, Gram).to_string(), "0.01p/kg");
        // Hand-built values that the parser never produces stay safe.
        assert_eq!(precise(100, 0, Gram).tenths_per_norm(), None);
        assert_eq!(precise(100, 0, Gram).rounded(), None);
        assert_eq!(precise(i64::MAX, 1, Gram).rounded(), None);
        assert_eq!(precise(i64::MAX, 1, Gram).tenths_per_norm(), None);
        assert_eq!(precise(-7260, 1000, Millilitre).to_string(), "-72.6p/l");
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
        fn precise_display_round_trips(
            centipence in 1..=MAX_PRICE_PENCE * 100,
            per in any_unit(),
            quantity in prop::sample::select(vec![1u64, 3, 100, 568, 750, 1000]),
        ) {
            let u = precise(centipence, quantity, per);
            prop_assert_eq!(parse_precise_unit_price(&u.to_string()), Ok(u));
        }

        #[test]
        fn gbx_tenths_are_kept(tenths in 1..=9_999_999i64, per in any_unit()) {
            let label = norm_label(per);
            let text = format!("({}.{}p/{label})", tenths / 10, tenths % 10);
            let u = parse_precise_unit_price(&text);
            prop_assert_eq!(u.map(|u| u.tenths_per_norm()), Ok(Some(tenths)), "{}", text);
        }

        #[test]
        fn never_panics_on_ascii(s in ".*") {
            let _ = parse_unit_price(&s);
            let _ = parse_precise_unit_price(&s);
        }

        #[test]
        fn never_panics_on_unicode(s in any::<String>()) {
            let _ = parse_unit_price(&s);
            let _ = parse_precise_unit_price(&s);
        }

        #[test]
        fn never_panics_on_price_like(s in "(Price per unit|GBX )?\\(?[£-]?[0-9.,]{0,25}p? ?(/|per )?-?[0-9.]{0,25}(g|kg|ml|l|lt|cl|each|kilo|pint)\\)?") {
            let rounded = parse_unit_price(&s);
            if let Ok(u) = rounded {
                prop_assert!(u.pence > 0);
            }
            if let Ok(p) = parse_precise_unit_price(&s) {
                prop_assert!(p.centipence > 0 && p.quantity > 0);
                prop_assert!(p.quantity <= p.per.max_total());
                prop_assert_eq!(p.rounded().ok_or(()), rounded.map_err(|_| ()));
            }
        }
    }
}
