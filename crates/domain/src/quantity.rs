//! Pack sizes: "415g", "4 x 330ml", "6 pack", "4 pints", "5 per pack".

use std::fmt;
use std::str::FromStr;

use super::{Decimal, ParseError, read_decimal, starts_negative};

const WHAT: &str = "a pack size";

/// The unit a pack is measured in: grams, millilitres or items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BaseUnit {
    Gram,
    Millilitre,
    Each,
}

impl BaseUnit {
    /// "g", "ml" or "each".
    pub fn as_str(self) -> &'static str {
        match self {
            BaseUnit::Gram => "g",
            BaseUnit::Millilitre => "ml",
            BaseUnit::Each => "each",
        }
    }

    /// Largest believable pack total in this unit: 1,000 kg, 1,000 l or 10,000 items.
    pub fn max_total(self) -> u64 {
        match self {
            BaseUnit::Gram | BaseUnit::Millilitre => 1_000_000,
            BaseUnit::Each => 10_000,
        }
    }

    /// Plural name for messages: "grams", "millilitres", "items".
    pub(crate) fn plural(self) -> &'static str {
        match self {
            BaseUnit::Gram => "grams",
            BaseUnit::Millilitre => "millilitres",
            BaseUnit::Each => "items",
        }
    }
}

impl fmt::Display for BaseUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BaseUnit {
    type Err = ParseError;

    /// Accepts "g", "ml" or "each", ignoring case and surrounding spaces.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "g" => Ok(BaseUnit::Gram),
            "ml" => Ok(BaseUnit::Millilitre),
            "each" => Ok(BaseUnit::Each),
            _ => Err(ParseError::new(
                s,
                "a base unit",
                "expected \"g\", \"ml\" or \"each\"",
            )),
        }
    }
}

/// Looks up a lowercase unit word: its base unit and how many base units one of it is.
pub(crate) fn lookup_unit(word: &str) -> Option<(BaseUnit, u64)> {
    use BaseUnit::*;
    Some(match word {
        "g" | "gs" | "gr" | "grm" | "gram" | "grams" | "gramme" | "grammes" => (Gram, 1),
        "kg" | "kgs" | "kilo" | "kilos" | "kilogram" | "kilograms" | "kilogramme"
        | "kilogrammes" => (Gram, 1000),
        "ml" | "mls" | "millilitre" | "millilitres" | "milliliter" | "milliliters" => {
            (Millilitre, 1)
        }
        "cl" | "centilitre" | "centilitres" | "centiliter" | "centiliters" => (Millilitre, 10),
        "l" | "lt" | "ltr" | "ltrs" | "litre" | "litres" | "liter" | "liters" => (Millilitre, 1000),
        "pint" | "pints" | "pt" | "pts" => (Millilitre, ML_PER_PINT),
        "each" | "ea" | "pack" | "packs" | "pk" | "pks" | "pc" | "pcs" | "piece" | "pieces" => {
            (Each, 1)
        }
        _ => return None,
    })
}

/// Millilitres in a pint as UK shelves count it: the imperial pint is
/// 568.26 ml, and milk is labelled 568ml (1 pint), 1.136litre (2 pints),
/// 2.272litre (4 pints), so a pint is read as exactly 568 ml.
pub const ML_PER_PINT: u64 = 568;

/// The units [`lookup_unit`] knows, for messages.
pub(crate) const KNOWN_UNITS: &str = "g, kg, ml, cl, l, pint, each or pack";

/// `d * mult` if that is a whole number, else `None`.
pub(crate) fn exact_times(d: Decimal, mult: u64) -> Option<u128> {
    let n = u128::from(d.mantissa) * u128::from(mult);
    let den = 10u128.checked_pow(d.scale)?;
    (n % den == 0).then_some(n / den)
}

/// A pack: `count` items of `each` base units; total() = count * each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pack {
    pub count: u32,
    pub each: u64,
    pub unit: BaseUnit,
}

impl Pack {
    /// `count * each` in base units (saturating; parsed packs are far below that).
    pub fn total(&self) -> u64 {
        u64::from(self.count).saturating_mul(self.each)
    }
}

impl fmt::Display for Pack {
    /// "415g", "4 x 330ml", "6 each" (6 single items), "2 x 6 each". Parses back
    /// with [`parse_pack`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Pack { count, each, unit } = *self;
        match unit {
            BaseUnit::Each if each == 1 => write!(f, "{count} each"),
            BaseUnit::Each => write!(f, "{count} x {each} each"),
            _ if count == 1 => write!(f, "{each}{unit}"),
            _ => write!(f, "{count} x {each}{unit}"),
        }
    }
}

/// Reads a pack size.
///
/// "415g" -> 1 x 415 g, "1.5kg" -> 1 x 1500 g, "4 x 330ml" / "4X330ML" -> 4 x 330 ml,
/// "2 x 1.5L" -> 2 x 1500 ml, "2L" / "2 litres" -> 1 x 2000 ml, "75cl" -> 1 x 750 ml,
/// "6 pack" / "12 pk" / "Pack of 4" / "5 per pack" -> N x 1 each, "Each" / "EA" -> 1 x 1 each,
/// "4 pint" / "1 Pint" -> 1 x 2272 ml / 1 x 568 ml ([`ML_PER_PINT`]).
/// A trailing estimated sign ("500ml ℮", "500ml e") is ignored. Case-insensitive;
/// spaces between number and unit are optional.
///
/// Rejects empty text, zero, negatives, unknown units, fractions of a base unit
/// ("1.5g") and totals above [`BaseUnit::max_total`].
pub fn parse_pack(text: &str) -> Result<Pack, ParseError> {
    let err = |reason: String| ParseError::new(text, WHAT, reason);
    let lower = text.trim().to_lowercase();
    let mut s = strip_estimated_sign(&lower);
    if s.is_empty() {
        return Err(err("it is empty".into()));
    }
    if matches!(s, "each" | "ea") {
        return Ok(Pack {
            count: 1,
            each: 1,
            unit: BaseUnit::Each,
        });
    }
    let pack_of = match s.strip_prefix("pack of") {
        Some(rest) => {
            s = rest.trim_start();
            true
        }
        None => false,
    };
    if !pack_of && let Some(after_x) = s.strip_prefix(['x', '×']) {
        // "x4": a count of items whose size is not given.
        let after_x = after_x.trim_start();
        if let Some((n, n_text, "")) = read_number(after_x).map_err(&err)? {
            let count = exact_times(n, 1)
                .ok_or_else(|| err(format!("the count {n_text} is not a whole number")))?;
            return finish(count, 1, BaseUnit::Each).map_err(err);
        }
    }
    let Some((first, first_text, rest)) = read_number(s).map_err(&err)? else {
        return Err(err(if pack_of {
            format!("expected a count after \"pack of\", found {s:?}")
        } else {
            format!("expected a size such as \"415g\", \"4 x 330ml\" or \"6 pack\", found {s:?}")
        }));
    };
    let rest = rest.trim_start();

    let (count, each, unit) = if let Some(after_x) = rest.strip_prefix(['x', '×', '*']) {
        // "4 x 330ml": a count of items, each of a size.
        let count = exact_times(first, 1)
            .ok_or_else(|| err(format!("the count {first_text} is not a whole number")))?;
        let after_x = after_x.trim_start();
        let Some((size, size_text, unit_word)) = read_number(after_x).map_err(&err)? else {
            return Err(err(if after_x.is_empty() {
                format!("expected a size after \"{first_text} x\", such as \"330ml\"")
            } else {
                format!("expected a size after \"{first_text} x\", found {after_x:?}")
            }));
        };
        let (unit, each) = amount(size, size_text, unit_word.trim()).map_err(&err)?;
        (count, each, unit)
    } else if (rest.is_empty() && pack_of) || (rest == "per pack" && !pack_of) {
        // "pack of 4", "5 per pack"
        let count = exact_times(first, 1)
            .ok_or_else(|| err(format!("the count {first_text} is not a whole number")))?;
        (count, 1, BaseUnit::Each)
    } else if let Some((size_unit, times)) = trailing_count(rest) {
        // "415g x4", "415g x 4": a size, then how many of it.
        let count = exact_times(times.0, 1)
            .ok_or_else(|| err(format!("the count {} is not a whole number", times.1)))?;
        let (unit, each) = amount(first, first_text, size_unit).map_err(&err)?;
        (count, each, unit)
    } else {
        match amount(first, first_text, rest).map_err(&err)? {
            (BaseUnit::Each, n) => (n, 1, BaseUnit::Each),
            (unit, n) => (1, n, unit),
        }
    };
    finish(count, each, unit).map_err(err)
}

/// Checks a parsed count and size against the limits and builds the pack.
fn finish(count: u128, each: u128, unit: BaseUnit) -> Result<Pack, String> {
    if count == 0 {
        return Err("a pack of zero items".into());
    }
    if each == 0 {
        return Err("a size of zero".into());
    }
    let limit = unit.max_total();
    let too_big = || match unit {
        BaseUnit::Gram => "it is absurdly large: more than 1,000 kg".to_owned(),
        BaseUnit::Millilitre => "it is absurdly large: more than 1,000 litres".to_owned(),
        BaseUnit::Each => "it is absurdly large: more than 10,000 items".to_owned(),
    };
    match count.checked_mul(each) {
        Some(total) if total <= u128::from(limit) => {}
        _ => return Err(too_big()),
    }
    // Both fit: each and count are at most `limit`, which is far below u32::MAX.
    let count = u32::try_from(count).map_err(|_| too_big())?;
    let each = u64::try_from(each).map_err(|_| too_big())?;
    Ok(Pack { count, each, unit })
}

/// "g x4" / "g x 4" after a size: the unit word and the count that follows.
fn trailing_count(rest: &str) -> Option<(&str, (Decimal, &str))> {
    let (unit, after) = rest.split_once(['x', '×'])?;
    let unit = unit.trim();
    lookup_unit(unit)?;
    match read_decimal(after.trim_start()) {
        Ok(Some((n, text, ""))) => Some((unit, (n, text))),
        _ => None,
    }
}

/// The pack a title ends with ("Heinz Beanz 415g", "... 4 x 415g",
/// "... 415g x4", "... 4 Pints"), with the title before it.
pub fn split_title_pack(title: &str) -> (&str, Option<Pack>) {
    let words: Vec<(usize, &str)> = title
        .split_whitespace()
        .map(|w| (w.as_ptr() as usize - title.as_ptr() as usize, w))
        .collect();
    for n in (1..=4.min(words.len())).rev() {
        let start = words[words.len() - n].0;
        if let Ok(pack) = parse_pack(&title[start..]) {
            return (title[..start].trim_end(), Some(pack));
        }
    }
    (title.trim_end(), None)
}

impl Pack {
    /// The pack as a product name ends with it: "415g", "1.5kg", "4 x 415g",
    /// "6 x 25g", "2.272l", "500ml", "6 pack", "each".
    pub fn label(&self) -> String {
        let Pack { count, each, unit } = *self;
        let size = match unit {
            BaseUnit::Each if each == 1 => {
                return if count == 1 {
                    "each".to_owned()
                } else {
                    format!("{count} pack")
                };
            }
            BaseUnit::Each => format!("{each} pack"),
            BaseUnit::Gram => metric(each, "g", "kg"),
            BaseUnit::Millilitre => metric(each, "ml", "l"),
        };
        if count == 1 {
            size
        } else {
            format!("{count} x {size}")
        }
    }
}

/// 415 -> "415g", 1500 -> "1.5kg", 2272 -> "2.272l": thousands in the big
/// unit when they divide evenly to at most three decimals.
fn metric(n: u64, small: &str, big: &str) -> String {
    if n < 1000 {
        return format!("{n}{small}");
    }
    let (whole, frac) = (n / 1000, n % 1000);
    if frac == 0 {
        return format!("{whole}{big}");
    }
    let decimals = format!("{frac:03}");
    format!("{whole}.{}{big}", decimals.trim_end_matches('0'))
}

/// Like [`read_decimal`], but rejects a leading minus sign with a reason.
fn read_number(s: &str) -> Result<Option<(Decimal, &str, &str)>, String> {
    if starts_negative(s) {
        return Err("a pack size cannot be negative".into());
    }
    read_decimal(s)
}

/// A number followed by a unit word: the base unit and the whole number of base units.
fn amount(number: Decimal, number_text: &str, unit_word: &str) -> Result<(BaseUnit, u128), String> {
    let unit_word = unit_word.trim();
    if unit_word.is_empty() {
        return Err(format!(
            "no unit after {number_text} (expected {KNOWN_UNITS})"
        ));
    }
    let (unit, mult) = lookup_unit(unit_word)
        .ok_or_else(|| format!("unknown unit {unit_word:?} (expected {KNOWN_UNITS})"))?;
    let n = exact_times(number, mult).ok_or_else(|| {
        format!(
            "{number_text}{unit_word} is not a whole number of {}",
            unit.plural()
        )
    })?;
    Ok((unit, n))
}

/// Drops a trailing estimated sign: "500ml ℮", "500ml℮" or "500ml e".
fn strip_estimated_sign(s: &str) -> &str {
    let s = s.trim();
    if let Some(rest) = s.strip_suffix('℮') {
        return rest.trim_end();
    }
    match s.strip_suffix('e') {
        Some(rest) if rest.ends_with(char::is_whitespace) => rest.trim_end(),
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BaseUnit::*;
    use proptest::prelude::*;

    fn pack(count: u32, each: u64, unit: BaseUnit) -> Pack {
        Pack { count, each, unit }
    }

    #[test]
    fn reads_good_packs() {
        let cases: &[(&str, Pack)] = &[
            ("415g", pack(1, 415, Gram)),
            ("1.5kg", pack(1, 1500, Gram)),
            ("4 x 330ml", pack(4, 330, Millilitre)),
            ("4x330ML", pack(4, 330, Millilitre)),
            ("4 X 330 ml", pack(4, 330, Millilitre)),
            ("4 × 330ml", pack(4, 330, Millilitre)),
            ("6 pack", pack(6, 1, Each)),
            ("6pk", pack(6, 1, Each)),
            ("12 pk", pack(12, 1, Each)),
            ("2L", pack(1, 2000, Millilitre)),
            ("2 litre", pack(1, 2000, Millilitre)),
            ("2 litres", pack(1, 2000, Millilitre)),
            ("75cl", pack(1, 750, Millilitre)),
            ("500ml e", pack(1, 500, Millilitre)),
            ("500ml ℮", pack(1, 500, Millilitre)),
            ("500ml℮", pack(1, 500, Millilitre)),
            ("Each", pack(1, 1, Each)),
            ("each", pack(1, 1, Each)),
            ("EA", pack(1, 1, Each)),
            ("Pack of 4", pack(4, 1, Each)),
            ("pack of 4 x 330ml", pack(4, 330, Millilitre)),
            ("2 x 1.5L", pack(2, 1500, Millilitre)),
            ("1kg", pack(1, 1000, Gram)),
            ("  1 KG ", pack(1, 1000, Gram)),
            ("0.5kg", pack(1, 500, Gram)),
            ("1,000g", pack(1, 1000, Gram)),
            ("2 x 6 pack", pack(2, 6, Each)),
            ("10 each", pack(10, 1, Each)),
            ("1000kg", pack(1, 1_000_000, Gram)),
            ("10000 pack", pack(10_000, 1, Each)),
            ("4.0 x 250g", pack(4, 250, Gram)),
            ("1.25 litres", pack(1, 1250, Millilitre)),
            // Real wordings (Asda, Waitrose, Tesco).
            ("4 pint", pack(1, 2272, Millilitre)),
            ("4 Pints", pack(1, 2272, Millilitre)),
            ("1 Pint", pack(1, 568, Millilitre)),
            ("2 pints", pack(1, 1136, Millilitre)),
            ("6 x 1 pint", pack(6, 568, Millilitre)),
            ("5 per pack", pack(5, 1, Each)),
            ("12 Per Pack", pack(12, 1, Each)),
            ("2.272litre", pack(1, 2272, Millilitre)),
            ("1.136litre", pack(1, 1136, Millilitre)),
            ("2litre", pack(1, 2000, Millilitre)),
            ("568ml", pack(1, 568, Millilitre)),
            ("1 litre", pack(1, 1000, Millilitre)),
            ("4x18g", pack(4, 18, Gram)),
            ("2l", pack(1, 2000, Millilitre)),
            // A count after the size, or alone.
            ("415g x4", pack(4, 415, Gram)),
            ("415G X 4", pack(4, 415, Gram)),
            ("250ml x 4", pack(4, 250, Millilitre)),
            ("x4", pack(4, 1, Each)),
            ("X 12", pack(12, 1, Each)),
        ];
        crate::assert_reads(parse_pack, cases);
    }

    #[test]
    fn rejects_bad_packs_with_reasons() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            (" ℮ ", "empty"),
            ("0g", "zero"),
            ("0 x 330ml", "zero items"),
            ("-1kg", "negative"),
            ("4 x -330ml", "negative"),
            ("abc", "expected a size"),
            ("1.5g", "1.5g is not a whole number of grams"),
            ("0.5 each", "not a whole number of items"),
            ("1.5 x 330ml", "count 1.5 is not a whole number"),
            ("12 parsecs", "unknown unit \"parsecs\""),
            ("1001kg", "more than 1,000 kg"),
            ("1001 l", "more than 1,000 litres"),
            ("10001 pack", "more than 10,000 items"),
            ("1000 x 2l", "more than 1,000 litres"),
            ("415", "no unit after 415"),
            ("4 x", "expected a size after \"4 x\""),
            ("4 x 330", "no unit after 330"),
            ("pack of", "expected a count"),
            ("pack of many", "expected a count"),
            ("99999999999999999999g", "too long"),
            ("4 x 18446744073709551615 kg", "more than 1,000 kg"),
            ("1.2.3kg", "more than one decimal point"),
            ("500ml bottle", "unknown unit \"ml bottle\""),
            ("1,5kg", "thousands grouping"),
            ("0.3 pint", "0.3pint is not a whole number of millilitres"),
            ("0 pints", "zero"),
            ("1761 pints", "more than 1,000 litres"),
            ("per pack", "expected a size"),
            ("0 per pack", "zero items"),
            ("1.5 per pack", "not a whole number"),
            ("5 per", "unknown unit \"per\""),
            ("pack of 5 per pack", "unknown unit \"per pack\""),
            ("5 per box", "unknown unit \"per box\""),
            ("10001 per pack", "more than 10,000 items"),
        ];
        crate::assert_rejects(parse_pack, "a pack size", cases);
    }

    #[test]
    fn titles_end_with_their_pack() {
        let cases: &[(&str, &str, Option<Pack>)] = &[
            ("Heinz Beanz 415G", "Heinz Beanz", Some(pack(1, 415, Gram))),
            (
                "Heinz Baked Beans 4 x 415g",
                "Heinz Baked Beans",
                Some(pack(4, 415, Gram)),
            ),
            (
                "Heinz Beanz 415g x4",
                "Heinz Beanz",
                Some(pack(4, 415, Gram)),
            ),
            (
                "Whole Milk 4 Pints",
                "Whole Milk",
                Some(pack(1, 2272, Millilitre)),
            ),
            (
                "Walkers Crisps 6x25g",
                "Walkers Crisps",
                Some(pack(6, 25, Gram)),
            ),
            ("Weetabix 24pk", "Weetabix", Some(pack(24, 1, Each))),
            ("Bananas Loose", "Bananas Loose", None),
        ];
        for (title, rest, want) in cases {
            assert_eq!(split_title_pack(title), (*rest, *want), "{title}");
        }
    }

    #[test]
    fn labels_read_as_shelves_write_them() {
        let cases: &[(Pack, &str)] = &[
            (pack(1, 415, Gram), "415g"),
            (pack(1, 1500, Gram), "1.5kg"),
            (pack(1, 1000, Gram), "1kg"),
            (pack(4, 415, Gram), "4 x 415g"),
            (pack(6, 25, Gram), "6 x 25g"),
            (pack(1, 2272, Millilitre), "2.272l"),
            (pack(1, 500, Millilitre), "500ml"),
            (pack(1, 1250, Millilitre), "1.25l"),
            (pack(6, 1, Each), "6 pack"),
            (pack(1, 1, Each), "each"),
            (pack(2, 6, Each), "2 x 6 pack"),
        ];
        for (p, want) in cases {
            assert_eq!(&p.label(), want);
            // A label reads back as the same pack.
            assert_eq!(parse_pack(want), Ok(*p), "{want}");
        }
    }

    #[test]
    fn base_unit_names() {
        for unit in [Gram, Millilitre, Each] {
            assert_eq!(unit.as_str().parse::<BaseUnit>(), Ok(unit));
            assert_eq!(unit.to_string(), unit.as_str());
        }
        assert_eq!(" EACH ".parse::<BaseUnit>(), Ok(Each));
        let e = "kg".parse::<BaseUnit>().expect_err("kg is not a base unit");
        assert_eq!(e.input, "kg");
        assert!(e.reason.contains("expected"));
    }

    #[test]
    fn totals_and_display() {
        assert_eq!(pack(4, 330, Millilitre).total(), 1320);
        assert_eq!(pack(u32::MAX, u64::MAX, Gram).total(), u64::MAX);
        assert_eq!(pack(1, 415, Gram).to_string(), "415g");
        assert_eq!(pack(4, 330, Millilitre).to_string(), "4 x 330ml");
        assert_eq!(pack(6, 1, Each).to_string(), "6 each");
        assert_eq!(pack(2, 6, Each).to_string(), "2 x 6 each");
    }

    /// A unit and a pack in it whose total is within limits.
    fn any_pack() -> impl Strategy<Value = Pack> {
        prop_oneof![Just(Gram), Just(Millilitre), Just(Each)]
            .prop_flat_map(|unit| (Just(unit), 1..=100u32))
            .prop_flat_map(|(unit, count)| {
                let max_each = unit.max_total() / u64::from(count);
                (Just(unit), Just(count), 1..=max_each)
            })
            .prop_map(|(unit, count, each)| Pack { count, each, unit })
    }

    /// The same pack written several ways a shelf might write it.
    fn styles(p: Pack) -> Vec<String> {
        let Pack { count, each, unit } = p;
        let mut out = vec![p.to_string()];
        let (small, big, mid) = match unit {
            Gram => ("g", "kg", None),
            Millilitre => ("ML", "L", Some("cl")),
            Each => ("each", "each", None),
        };
        let sized = |s: String| {
            if count == 1 && unit != Each {
                s
            } else {
                format!("{count}x{s}")
            }
        };
        if unit != Each {
            out.push(sized(format!("{each}{small}")));
            out.push(sized(format!("{each} {}", small.to_uppercase())));
            let (whole, frac) = (each / 1000, each % 1000);
            let big_text = if frac == 0 {
                whole.to_string()
            } else {
                format!("{whole}.{frac:03}")
            };
            out.push(sized(format!("{big_text}{big}")));
            if let (Some(cl), 0) = (mid, each % 10) {
                out.push(sized(format!("{}{cl} ℮", each / 10)));
            }
            if unit == Millilitre && each % ML_PER_PINT == 0 {
                let pints = each / ML_PER_PINT;
                out.push(sized(format!("{pints} Pints")));
            }
        } else if each == 1 {
            out.push(format!("{count} per pack"));
            out.push(format!("{count} pack"));
            out.push(format!("{count}PK"));
            out.push(format!("Pack of {count}"));
        } else {
            out.push(format!("{count} X {each} pack"));
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn packs_round_trip_in_many_styles(p in any_pack()) {
            for text in styles(p) {
                prop_assert_eq!(parse_pack(&text), Ok(p), "{}", text);
            }
        }

        #[test]
        fn pints_are_568_ml(n in 1..=1760u64, word in prop::sample::select(vec!["pint", "Pints", "PT", "pts"])) {
            let want = Ok(pack(1, n * ML_PER_PINT, Millilitre));
            prop_assert_eq!(parse_pack(&format!("{n} {word}")), want.clone());
            prop_assert_eq!(parse_pack(&format!("{n}{word}")), want);
        }

        #[test]
        fn parsed_packs_are_within_limits(s in "[0-9. xX]{0,12}(g|kg|ml|cl|l|pack|each|pint|pints| per pack)?") {
            if let Ok(p) = parse_pack(&s) {
                prop_assert!(p.count > 0 && p.each > 0);
                prop_assert!(p.total() <= p.unit.max_total());
            }
        }

        #[test]
        fn never_panics_on_ascii(s in ".*") {
            let _ = parse_pack(&s);
        }

        #[test]
        fn never_panics_on_unicode(s in any::<String>()) {
            let _ = parse_pack(&s);
        }
    }
}
