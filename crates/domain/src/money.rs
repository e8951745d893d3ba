//! Shelf prices as whole pence: [`parse_pence`] reads a price and nothing
//! else; [`parse_price_in_text`] finds the one shelf price in labelled text
//! ("actual price £1.65", "£1.75/unit").

use super::quantity::lookup_unit;
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

const WHAT_IN_TEXT: &str = "a shelf price";

/// Labels that may stand before a shelf price ("actual price", "Item price",
/// "Now", "Only").
const LABELS: &[&str] = &["actual", "item", "price", "now", "only", "current", "our"];

/// Words after a shelf price that say it is for one item ("each", "/unit",
/// "per item").
const PER_ITEM: &[&str] = &["each", "ea", "unit", "item", "only"];

/// Words that mean the text holds some other price than the item's shelf
/// price, with why.
const NOT_SHELF: &[(&[&str], &str)] = &[
    (
        &["was", "rrp", "previously"],
        "it marks an earlier or reference price, not the shelf price",
    ),
    (
        &["save", "saving", "off", "discount"],
        "it is a saving, not a shelf price",
    ),
    (
        &["for", "any", "buy", "get", "free", "add", "multibuy", "mix"],
        "it is an offer on several items, not the price of one",
    ),
    (
        &["meal", "deal"],
        "it is a meal deal: the price is for several items together, not this item",
    ),
    (
        &["clubcard", "nectar", "member", "members", "loyalty"],
        "it is a loyalty price, not the shelf price",
    ),
    (
        &["guide", "estimated", "approx", "approximately"],
        "a guide price is an estimate, not the shelf price",
    ),
    (
        &["from"],
        "a \"from\" price is the lowest of several, not this item's",
    ),
    (
        &["spend", "when", "basket", "delivery", "total", "subtotal"],
        "it is about the basket, not this item's price",
    ),
];

/// A piece of lowercase shelf text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    Price(i64),
    Number(&'a str),
    Word(&'a str),
    Slash,
}

/// Finds the one shelf price in labelled text, as whole pence.
///
/// Reads what [`parse_pence`] reads, and also a price among labels
/// ("actual price £1.65", "actual price£1.65", "Item price £1.75", "Now
/// £1.30", "Only 95p") or with a per-item suffix ("£1.75/unit", "£1.25
/// each", "£2 per item"). The same price twice ("£1.65 £1.65") is one price.
///
/// Rejects text holding two different prices ("Was £2.10 Now £1.80", "£2.10
/// £1.80"), text whose words mark a price that is not the item's shelf price
/// (was, save, off, multibuys, loyalty, meal deal, guide, from, spend), unit
/// prices ("£18.86/kg", "Price per unit77p/litre"), any other word, and all
/// that [`parse_pence`] rejects in the price itself.
pub fn parse_price_in_text(text: &str) -> Result<i64, ParseError> {
    let err = |reason: String| ParseError::new(text, WHAT_IN_TEXT, reason);
    if text.trim().is_empty() {
        return Err(err("it is empty".into()));
    }
    if let Ok(p) = parse_pence(text) {
        return Ok(p);
    }
    let lower = text.to_lowercase();
    let tokens = tokenise(&lower).map_err(&err)?;
    let mut prices: Vec<i64> = Vec::new();
    let mut not_shelf: Option<String> = None;
    let mut odd: Option<String> = None;
    let mut k = 0;
    while let Some(&token) = tokens.get(k) {
        k += 1;
        let next = tokens.get(k).copied();
        let (verdict, skip) = match token {
            Token::Price(p) => {
                if !prices.contains(&p) {
                    prices.push(p);
                }
                match (next, tokens.get(k + 1)) {
                    (Some(Token::Slash), Some(Token::Word(w))) if PER_ITEM.contains(w) => (None, 2),
                    (Some(Token::Slash), Some(Token::Word(_) | Token::Number(_))) => (
                        Some((
                            true,
                            "a price per quantity is a unit price, not a shelf price".into(),
                        )),
                        0,
                    ),
                    _ => (None, 0),
                }
            }
            Token::Word("per") => match next {
                Some(Token::Word(w)) if !prices.is_empty() && PER_ITEM.contains(&w) => (None, 1),
                _ => (
                    Some((true, "\"per\" marks a unit price, not a shelf price".into())),
                    0,
                ),
            },
            Token::Word(w) => (word_verdict(w, next, !prices.is_empty()), 0),
            Token::Number(n) => (
                Some((
                    false,
                    format!("the number {n} has no £ or p, so it is no price"),
                )),
                0,
            ),
            Token::Slash => (None, 0),
        };
        k += skip;
        match verdict {
            Some((true, why)) if not_shelf.is_none() => not_shelf = Some(why),
            Some((false, why)) if odd.is_none() => odd = Some(why),
            _ => {}
        }
    }
    if let Some(why) = not_shelf {
        return Err(err(why));
    }
    match (&prices[..], odd) {
        ([_, _, ..], _) => {
            let shown: Vec<String> = prices.iter().map(|p| format_pence(*p)).collect();
            Err(err(format!(
                "it holds {} different prices ({}), so which is the shelf price is not clear",
                prices.len(),
                shown.join(", ")
            )))
        }
        (_, Some(why)) => Err(err(why)),
        ([p], None) => Ok(*p),
        ([], None) => Err(err("there is no price in it (no £ or p amount)".into())),
    }
}

/// What a word beside a price says: `None` if it is a harmless label, else
/// whether it marks another kind of price (`true`) or is only unexpected,
/// and why.
fn word_verdict(w: &str, next: Option<Token<'_>>, after_price: bool) -> Option<(bool, String)> {
    if let Some((_, why)) = NOT_SHELF.iter().find(|(words, _)| words.contains(&w)) {
        return Some((true, format!("{why} ({w:?})")));
    }
    if after_price && PER_ITEM.contains(&w) {
        return None;
    }
    if w == "unit" {
        return Some((
            true,
            "\"unit\" marks a unit price, not a shelf price".into(),
        ));
    }
    if LABELS.contains(&w) {
        return None;
    }
    if lookup_unit(w).is_some() {
        return Some((
            true,
            format!("it names a quantity ({w:?}): a unit price or pack size, not a shelf price"),
        ));
    }
    if next == Some(Token::Word("price")) {
        return Some((true, format!("it is a {w:?} price, not the shelf price")));
    }
    Some((false, format!("unexpected {w:?} beside the price")))
}

/// Splits lowercase text into prices, bare numbers, words and slashes;
/// other punctuation is dropped. Errors are reasons.
fn tokenise(s: &str) -> Result<Vec<Token<'_>>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(c) = s[i..].chars().next() {
        let rest = &s[i..];
        let after = &rest[c.len_utf8()..];
        let gbp = rest.starts_with("gbp") && !rest[3..].starts_with(char::is_alphabetic);
        if c == '£' || gbp {
            let sign = if gbp { 3 } else { c.len_utf8() };
            let amount = rest[sign..].trim_start();
            if starts_negative(amount) {
                return Err("a shelf price cannot be negative".into());
            }
            let Some((_, _, tail)) = read_decimal(amount)? else {
                return Err(format!("{} with no amount after it", &rest[..sign]));
            };
            if tail.starts_with('p') && !tail[1..].starts_with(char::is_alphabetic) {
                return Err("it has both £ and p".into());
            }
            let end = s.len() - tail.len();
            out.push(Token::Price(price_token(&s[i..end])?));
            i = end;
        } else if c.is_ascii_digit() {
            let Some((_, read, tail)) = read_decimal(rest)? else {
                return Err(format!("expected a number at {rest:?}"));
            };
            let spaced = tail.trim_start();
            let pence = spaced.starts_with('p') && !spaced[1..].starts_with(char::is_alphabetic);
            let end = if pence {
                s.len() - spaced.len() + 1
            } else {
                s.len() - tail.len()
            };
            out.push(if pence {
                Token::Price(price_token(&s[i..end])?)
            } else {
                Token::Number(read)
            });
            i = end;
        } else if starts_negative(rest)
            && after.starts_with(|c: char| c == '£' || c.is_ascii_digit())
        {
            return Err("a shelf price cannot be negative".into());
        } else if is_other_currency(c) {
            return Err(format!("only pounds (£) and pence (p) are read, not {c:?}"));
        } else if c.is_alphabetic() {
            let len = rest
                .find(|c: char| !c.is_alphabetic())
                .unwrap_or(rest.len());
            out.push(Token::Word(&rest[..len]));
            i += len;
        } else {
            if c == '/' {
                out.push(Token::Slash);
            }
            i += c.len_utf8();
        }
    }
    Ok(out)
}

/// Reads one price found in text, saying which.
fn price_token(token: &str) -> Result<i64, String> {
    parse_pence(token).map_err(|e| format!("the price {token:?}: {}", e.reason))
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
        crate::assert_reads(parse_pence, cases);
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
        crate::assert_rejects(parse_pence, "a price", cases);
    }

    #[test]
    fn finds_the_price_in_labelled_text() {
        let cases: &[(&str, i64)] = &[
            // Real wordings: Asda, Waitrose, Tesco.
            ("actual price £1.65", 165),
            ("actual price£1.65", 165),
            ("Item price£1.75", 175),
            ("Item price £1.75", 175),
            ("£1.75/unit", 175),
            ("£1.75 / unit", 175),
            ("£1.25 each", 125),
            ("£1.25/each", 125),
            ("£1.25 ea", 125),
            ("£2 per item", 200),
            ("£2.00 per unit", 200),
            ("95p", 95),
            ("£1.25", 125),
            ("Now £1.30", 130),
            ("Only 95p!", 95),
            ("Price: £3.30", 330),
            ("£1.65 £1.65", 165),
            ("actual price £1.65 £1.65", 165),
            ("  actual price\n\t£1.65 ", 165),
            ("GBP 1.25 each", 125),
            ("£1,299.00 each", 129900),
        ];
        crate::assert_reads(parse_price_in_text, cases);
    }

    #[test]
    fn refuses_text_that_is_not_one_shelf_price() {
        crate::assert_rejects(
            parse_price_in_text,
            "a shelf price",
            &[
                ("", "empty"),
                ("actual price", "no price"),
                (
                    "Was £2.10 Now £1.80",
                    "reference price, not the shelf price (\"was\")",
                ),
                ("£2.10 £1.80", "2 different prices (£2.10, £1.80)"),
                ("Now £1.80 Price £2.10", "2 different prices"),
                ("Was £2.10", "earlier or reference price"),
                ("Save 70p. Was £2.10", "a saving"),
                ("Add 2 for £4", "several items"),
                ("Any 2 for £4", "several items"),
                (
                    "Clubcard Price £1.50",
                    "loyalty price, not the shelf price (\"clubcard\")",
                ),
                ("£1.50 Clubcard Price", "loyalty price"),
                ("Nectar Price £1.25", "loyalty price"),
                (
                    "£3.85 Meal Deal Main Clubcard Price £4.25 Meal Deal Main Regular Price",
                    "meal deal",
                ),
                ("£65.95 Guide price", "guide price"),
                ("From £1.50", "lowest of several"),
                (
                    "£2 off Cleaning and Household products\u{a0}when you spend £12",
                    "a saving",
                ),
                ("£18.86/kg", "unit price"),
                ("£0.73/litre", "unit price"),
                ("(£1.25/lt)", "unit price"),
                ("25p/100g", "unit price"),
                ("(£24.35 per kilo)", "\"per\" marks a unit price"),
                ("Price per unit77p/litre", "\"per\" marks a unit price"),
                ("Unit price £1.75", "\"unit\" marks a unit price"),
                ("£1.65 4 pint", "names a quantity (\"pint\")"),
                ("Regular price £2.00", "\"regular\" price"),
                ("Tesco Milk £1.65", "unexpected \"tesco\""),
                ("price 1.65", "the number 1.65 has no £ or p"),
                ("actual price -£1.65", "negative"),
                ("actual price £-1.65", "negative"),
                ("actual price £", "£ with no amount"),
                ("actual price £1.2.3", "more than one decimal point"),
                (
                    "actual price £1.234",
                    "the price \"£1.234\": 1.234 has more than 2 decimal",
                ),
                ("actual price 1.5p", "fraction of a penny"),
                ("actual price £85p", "both £ and p"),
                ("actual price €1.65", "only pounds"),
                ("actual price £0.00", "zero"),
            ],
        );
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
        fn labelled_prices_round_trip(p in 1..=MAX_PRICE_PENCE, label in prop::sample::select(vec![
            "actual price", "Item price", "Now", "Only", "", "price:",
        ]), suffix in prop::sample::select(vec!["", "/unit", " each", " per item", "/ea"])) {
            for price in [format_pence(p), format!("{p}p")] {
                let text = format!("{label}{price}{suffix}");
                prop_assert_eq!(parse_price_in_text(&text), Ok(p), "{}", text);
                let spaced = format!("{label} {price} {suffix}");
                prop_assert_eq!(parse_price_in_text(&spaced), Ok(p), "{}", spaced);
            }
        }

        #[test]
        fn two_different_prices_are_refused(a in 1..=MAX_PRICE_PENCE, b in 1..=MAX_PRICE_PENCE) {
            let text = format!("{} {}", format_pence(a), format_pence(b));
            let read = parse_price_in_text(&text);
            if a == b {
                prop_assert_eq!(read, Ok(a));
            } else {
                prop_assert!(read.is_err(), "{}", text);
            }
        }

        #[test]
        fn text_finder_never_panics(s in any::<String>()) {
            let _ = parse_price_in_text(&s);
        }

        #[test]
        fn text_finder_never_panics_on_shelf_like(
            s in "(actual |item |was |now |save [0-9]{1,3}p\\. )?(price)?(£|gbp|-)?[0-9,.]{0,12}p?(/unit|/kg| each| per unit| per kg)?( clubcard price| meal deal)?"
        ) {
            if let Ok(p) = parse_price_in_text(&s) {
                prop_assert!((1..=MAX_PRICE_PENCE).contains(&p));
            }
        }

        #[test]
        fn never_panics_on_price_like(s in "[£$-]?[0-9,.]{0,30}[pP]?") {
            if let Ok(p) = parse_pence(&s) {
                prop_assert!((1..=MAX_PRICE_PENCE).contains(&p));
            }
        }
    }
}
