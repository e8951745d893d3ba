//! Promotions: "2 for £3", "3 for 2", "Clubcard Price £1", "Was £1.50 Now £1.20",
//! "25% off", "Reduced to clear", and the wordings real shops print:
//! "Add 2 for £4", "Save 70p. Was £2.10", "£1.35 Clubcard Price".
//!
//! [`crate::offer`] reads the same text into structured offers, including the
//! ones a [`Promo`] cannot hold (Clubcard multibuys, loyalty unit prices,
//! meal deals).

use std::fmt;
use std::str::FromStr;

use super::money::{format_pence, parse_pence};
use super::offer::{Reading, read};
use super::{ParseError, div_round};

const WHAT: &str = "a promotion";

/// Most items a multibuy can ask for before it is taken as a misread.
pub const MAX_MULTIBUY_QTY: u32 = 100;

/// The broad kind of a promotion, for storage and filtering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PromoKind {
    None,
    Multibuy,
    Loyalty,
    PriceCut,
    Clearance,
}

impl PromoKind {
    /// "none", "multibuy", "loyalty", "price_cut" or "clearance".
    pub fn as_str(self) -> &'static str {
        match self {
            PromoKind::None => "none",
            PromoKind::Multibuy => "multibuy",
            PromoKind::Loyalty => "loyalty",
            PromoKind::PriceCut => "price_cut",
            PromoKind::Clearance => "clearance",
        }
    }
}

impl fmt::Display for PromoKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PromoKind {
    type Err = ParseError;

    /// Accepts the [`PromoKind::as_str`] names, ignoring case and surrounding spaces.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(PromoKind::None),
            "multibuy" => Ok(PromoKind::Multibuy),
            "loyalty" => Ok(PromoKind::Loyalty),
            "price_cut" => Ok(PromoKind::PriceCut),
            "clearance" => Ok(PromoKind::Clearance),
            _ => Err(ParseError::new(
                s,
                "a promotion kind",
                "expected none, multibuy, loyalty, price_cut or clearance",
            )),
        }
    }
}

/// A promotion read from a shelf tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Promo {
    /// "2 for £3": buy `qty` for `total_pence`
    MultiBuy { qty: u32, total_pence: i64 },
    /// "3 for 2": buy `qty`, pay for `pay_for`
    MultiBuyFree { qty: u32, pay_for: u32 },
    /// "Clubcard Price £1.00", "£1.00 Clubcard Price", "Nectar price" (no price:
    /// the tile price is the loyalty price). `scheme` is the lowercase text
    /// before "price" ("clubcard", "nectar", "my morrisons").
    Loyalty {
        scheme: String,
        price_pence: Option<i64>,
    },
    /// "Was £1.50 Now £1.20", "Was £1.50", "Now £1.20 was £1.50"
    WasNow {
        was_pence: i64,
        now_pence: Option<i64>,
    },
    /// "Half price" -> 50, "1/3 off" -> 33, "25% off" -> 25, "Save 25%" -> 25
    PercentOff { percent: u8 },
    /// "Reduced to clear", "Clearance": the shelf price is the clearance price.
    Clearance,
}

impl Promo {
    /// The broad kind: multibuys, loyalty, price cuts (was/now, percent off) or clearance.
    pub fn kind(&self) -> PromoKind {
        match self {
            Promo::MultiBuy { .. } | Promo::MultiBuyFree { .. } => PromoKind::Multibuy,
            Promo::Loyalty { .. } => PromoKind::Loyalty,
            Promo::WasNow { .. } | Promo::PercentOff { .. } => PromoKind::PriceCut,
            Promo::Clearance => PromoKind::Clearance,
        }
    }

    /// What one item effectively costs given the shelf price, rounded to the
    /// nearest penny: "2 for £3" -> 150, "3 for 2" at 120 -> 80, a loyalty or
    /// now price if stated (else the shelf price), 50% off 300 -> 150.
    /// Never above the shelf price and never below 1.
    pub fn effective_price(&self, shelf_pence: i64) -> i64 {
        let shelf = i128::from(shelf_pence);
        let price = match self {
            Promo::MultiBuy { qty, total_pence } => {
                div_round(i128::from(*total_pence), i128::from(*qty)).unwrap_or(shelf)
            }
            Promo::MultiBuyFree { qty, pay_for } => {
                div_round(shelf * i128::from(*pay_for), i128::from(*qty)).unwrap_or(shelf)
            }
            Promo::Loyalty { price_pence, .. } => price_pence.map_or(shelf, i128::from),
            Promo::WasNow { now_pence, .. } => now_pence.map_or(shelf, i128::from),
            Promo::PercentOff { percent } => {
                let pay = 100 - i128::from((*percent).min(100));
                div_round(shelf * pay, 100).unwrap_or(shelf)
            }
            Promo::Clearance => shelf,
        };
        // min(shelf) fits in i64 and max(1) keeps it there.
        i64::try_from(price.min(shelf).max(1)).unwrap_or(1)
    }

    /// The was price if the promo states one.
    pub fn was_pence(&self) -> Option<i64> {
        match self {
            Promo::WasNow { was_pence, .. } => Some(*was_pence),
            _ => None,
        }
    }
}

impl fmt::Display for Promo {
    /// A canonical wording that [`parse_promo`] reads back: "2 for £3.00",
    /// "3 for 2", "clubcard price £1.00", "was £1.50 now £1.20", "25% off",
    /// "reduced to clear".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Promo::MultiBuy { qty, total_pence } => {
                write!(f, "{qty} for {}", format_pence(*total_pence))
            }
            Promo::MultiBuyFree { qty, pay_for } => write!(f, "{qty} for {pay_for}"),
            Promo::Loyalty {
                scheme,
                price_pence: Some(p),
            } => write!(f, "{scheme} price {}", format_pence(*p)),
            Promo::Loyalty {
                scheme,
                price_pence: None,
            } => write!(f, "{scheme} price"),
            Promo::WasNow {
                was_pence,
                now_pence: Some(now),
            } => write!(
                f,
                "was {} now {}",
                format_pence(*was_pence),
                format_pence(*now)
            ),
            Promo::WasNow {
                was_pence,
                now_pence: None,
            } => write!(f, "was {}", format_pence(*was_pence)),
            Promo::PercentOff { percent } => write!(f, "{percent}% off"),
            Promo::Clearance => f.write_str("reduced to clear"),
        }
    }
}

/// Reads a promotion from shelf text.
///
/// Case-insensitive, tolerant of extra spaces, "only", "!" and "*" noise, and
/// leading "Any"/"Buy"/"Add" on multibuys. Also reads "Buy 1 get 1 free", "BOGOF",
/// "3 for the price of 2", "£1 Clubcard Price" (price first), "Clubcard Price
/// applied" (no price), "Save 70p. Was £2.10" (now £1.40), a loyalty price
/// followed by its unit price in brackets (the unit price is dropped: see
/// [`crate::offer::parse_offer`]) and a Tesco-style description after " - "
/// ("- Selected Coffee Pods", "- Cheapest Product Free"), which is ignored.
///
/// Rejects empty text, text that is none of the promotions above ("Buy me"),
/// multibuys of fewer than 2 or more than [`MAX_MULTIBUY_QTY`] items, zero prices,
/// "3 for 3" (pays for all), percentages outside 1..=99 ("150% off"), a now
/// price that is not below the was price, a saving that is not below the was
/// price, a multibuy only for loyalty-card holders ("Any 2 for £5.50 Clubcard
/// Price": a [`Promo`] cannot say so) and meal deals (their prices are for
/// several items together, never this item's).
pub fn parse_promo(text: &str) -> Result<Promo, ParseError> {
    let err = |reason: String| ParseError::new(text, WHAT, reason);
    match read(text).map_err(err)? {
        Some(Reading::Promo(p)) => Ok(p),
        Some(Reading::Offer(o)) => o.into_promo().map_err(err),
        None => Err(err(
            "it is not a promotion this reads: expected e.g. \"2 for £3\", \"3 for 2\", \
             \"Clubcard Price £1\", \"Was £1.50 Now £1.20\", \"25% off\" or \"Reduced to clear\""
                .into(),
        )),
    }
}

/// What a recogniser gives: `None` if the words are not its kind of promo,
/// otherwise the promo or why it is wrong.
pub(crate) type Found = Option<Result<Promo, String>>;

/// Lowercase words with noise removed: "!", "*", "only", lone dashes and bars,
/// trailing ",;:.". A lone "£" or "%" is joined to its neighbour.
pub(crate) fn words(text: &str) -> Vec<String> {
    let lower = text.to_lowercase().replace(['!', '*'], " ");
    let mut out: Vec<String> = Vec::new();
    for raw in lower.split_whitespace() {
        let w = raw.trim_end_matches([',', ';', ':', '.']);
        if w.is_empty() || matches!(w, "only" | "-" | "–" | "—" | "|") {
            continue;
        }
        match out.last_mut() {
            Some(last) if last == "£" => last.push_str(w),
            Some(last) if w == "%" => last.push('%'),
            _ => out.push(w.to_string()),
        }
    }
    out
}

pub(crate) fn fixed_phrase(w: &[&str]) -> Found {
    Some(Ok(match w {
        ["reduced", "to", "clear"] | ["reduced"] | ["clearance"] => Promo::Clearance,
        ["half", "price"] | ["1/2", "price"] => Promo::PercentOff { percent: 50 },
        ["bogof"] | ["bogo"] => Promo::MultiBuyFree { qty: 2, pay_for: 1 },
        _ => return None,
    }))
}

/// A count word: digits or "one" to "ten". `None` if it is not one.
fn count(word: &str) -> Option<Result<u32, String>> {
    const NAMES: [&str; 11] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    ];
    if let Some(n) = NAMES.iter().position(|name| *name == word) {
        return Some(u32::try_from(n).map_err(|_| format!("the count {word} is too large")));
    }
    if word.is_empty() || !word.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        word.parse::<u32>()
            .map_err(|_| format!("the count {word} is too large")),
    )
}

/// Whether a word looks like a price rather than a count: "£3", "85p", "1.50".
pub(crate) fn money_like(word: &str) -> bool {
    word.starts_with('£')
        || word.starts_with("gbp")
        || word.contains('.')
        || (word.ends_with('p') && word.starts_with(|c: char| c.is_ascii_digit()))
}

/// Reads a price word, saying which price it was if it is bad.
pub(crate) fn price(word: &str, which: &str) -> Result<i64, String> {
    parse_pence(word).map_err(|e| format!("{which} {word:?}: {}", e.reason))
}

pub(crate) fn multibuy(w: &[&str]) -> Found {
    let bought = matches!(w.first(), Some(&"buy"));
    let mut rest = w;
    while let [first, tail @ ..] = rest
        && matches!(*first, "buy" | "any" | "add")
    {
        rest = tail;
    }
    let (qty_word, pay) = match rest {
        [n, "for", x] => (*n, *x),
        [n, "for", "the", "price", "of", m] => (*n, *m),
        [n, "get", m, "free"] if bought => {
            let (paid, free) = match (count(n)?, count(m)?) {
                (Ok(paid), Ok(free)) => (paid, free),
                (Err(e), _) | (_, Err(e)) => return Some(Err(e)),
            };
            let qty = paid
                .checked_add(free)
                .ok_or_else(|| "the counts are too large".to_string());
            return Some(qty.and_then(|qty| multibuy_free(qty, paid)));
        }
        _ => return None,
    };
    let qty = match count(qty_word)? {
        Ok(q) => q,
        Err(e) => return Some(Err(e)),
    };
    if money_like(pay) {
        return Some(price(pay, "the multibuy price").and_then(|total_pence| {
            check_qty(qty)?;
            Ok(Promo::MultiBuy { qty, total_pence })
        }));
    }
    match count(pay)? {
        Ok(pay_for) => Some(multibuy_free(qty, pay_for)),
        Err(e) => Some(Err(e)),
    }
}

fn check_qty(qty: u32) -> Result<(), String> {
    match qty {
        0 => Err("a multibuy of 0 items".into()),
        1 => Err("a multibuy needs at least 2 items".into()),
        q if q > MAX_MULTIBUY_QTY => Err(format!(
            "a multibuy of {q} items is more than {MAX_MULTIBUY_QTY}"
        )),
        _ => Ok(()),
    }
}

fn multibuy_free(qty: u32, pay_for: u32) -> Result<Promo, String> {
    check_qty(qty)?;
    if pay_for == 0 {
        return Err(format!("it pays for nothing out of {qty} items"));
    }
    if pay_for == qty {
        return Err(format!("it pays for all {qty} items, so nothing is free"));
    }
    if pay_for > qty {
        return Err(format!("it pays for {pay_for} items but gives only {qty}"));
    }
    Ok(Promo::MultiBuyFree { qty, pay_for })
}

pub(crate) fn was_now(w: &[&str]) -> Found {
    let (was, now, save) = match w {
        ["was", was] => (*was, None, None),
        ["was", was, "now", now] | ["now", now, "was", was] => (*was, Some(*now), None),
        // Waitrose: "Save 70p. Was £2.10".
        ["save", save, "was", was] | ["was", was, "save", save] if money_like(save) => {
            (*was, None, Some(*save))
        }
        ["save", save, "was", was, "now", now] | ["was", was, "now", now, "save", save]
            if money_like(save) =>
        {
            (*was, Some(*now), Some(*save))
        }
        ["now", _] => return Some(Err("a now price with no was price".into())),
        _ => return None,
    };
    Some(was_now_prices(was, now).and_then(|p| with_saving(p, save)))
}

/// Sets the now price of a was/now promo to the was price less the saving,
/// checking it against a now price the text also gives.
fn with_saving(promo: Promo, save: Option<&str>) -> Result<Promo, String> {
    let (
        Some(save),
        Promo::WasNow {
            was_pence,
            now_pence,
        },
    ) = (save, &promo)
    else {
        return Ok(promo);
    };
    let save_pence = price(save, "the saving")?;
    if save_pence >= *was_pence {
        return Err(format!(
            "the saving {} is not below the was price {}",
            format_pence(save_pence),
            format_pence(*was_pence)
        ));
    }
    let now = was_pence - save_pence;
    match now_pence {
        Some(stated) if *stated != now => Err(format!(
            "the was price {} less the saving {} is {}, not the now price {}",
            format_pence(*was_pence),
            format_pence(save_pence),
            format_pence(now),
            format_pence(*stated)
        )),
        _ => Ok(Promo::WasNow {
            was_pence: *was_pence,
            now_pence: Some(now),
        }),
    }
}

/// Reads and checks the prices of a was/now promo.
fn was_now_prices(was: &str, now: Option<&str>) -> Result<Promo, String> {
    let was_pence = price(was, "the was price")?;
    let now_pence = now.map(|n| price(n, "the now price")).transpose()?;
    if let Some(now) = now_pence {
        if now > was_pence {
            return Err(format!(
                "the now price {} is above the was price {}",
                format_pence(now),
                format_pence(was_pence)
            ));
        }
        if now == was_pence {
            return Err(format!(
                "the now price {} is the same as the was price",
                format_pence(now)
            ));
        }
    }
    Ok(Promo::WasNow {
        was_pence,
        now_pence,
    })
}

pub(crate) fn percent_off(w: &[&str]) -> Found {
    let amount = match w {
        [x, "off"] | ["save", x] | ["save", x, "off"] => *x,
        _ => return None,
    };
    if let Some(digits) = amount.strip_suffix('%') {
        return Some(percent_from_digits(digits));
    }
    if let Some((a, b)) = amount.split_once('/') {
        return Some(percent_from_fraction(a, b));
    }
    if money_like(amount) {
        return Some(Err(format!(
            "money off ({amount}) is not read, only percentages and fractions"
        )));
    }
    None
}

fn percent_from_digits(digits: &str) -> Result<Promo, String> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{digits:?} is not a whole percentage"));
    }
    match digits.parse::<u64>() {
        Ok(0) => Err("0% off is not a price cut".into()),
        Ok(100) => Err("100% off would make it free".into()),
        Ok(p) => match u8::try_from(p) {
            Ok(percent) if percent < 100 => Ok(Promo::PercentOff { percent }),
            _ => Err(format!("{p}% off is more than the whole price")),
        },
        Err(_) => Err(format!("{digits}% off is more than the whole price")),
    }
}

fn percent_from_fraction(a: &str, b: &str) -> Result<Promo, String> {
    let part = |s: &str| -> Result<u64, String> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{a}/{b} is not a fraction"));
        }
        s.parse::<u64>()
            .map_err(|_| format!("{a}/{b} has numbers that are too large"))
    };
    let (num, den) = (part(a)?, part(b)?);
    if den == 0 {
        return Err(format!("{a}/{b} divides by zero"));
    }
    if num == 0 {
        return Err(format!("{a}/{b} off is not a price cut"));
    }
    if num == den {
        return Err(format!("{a}/{b} off would make it free"));
    }
    if num > den {
        return Err(format!("{a}/{b} off is more than the whole price"));
    }
    let percent = div_round(i128::from(num) * 100, i128::from(den)).unwrap_or(0);
    match u8::try_from(percent) {
        Ok(percent @ 1..=99) => Ok(Promo::PercentOff { percent }),
        Ok(0) => Err(format!("{a}/{b} off rounds to 0%")),
        _ => Err(format!("{a}/{b} off rounds to 100% and would make it free")),
    }
}

/// Words that mean the text is not a loyalty scheme name.
const NOT_SCHEMES: &[&str] = &[
    "half",
    "was",
    "now",
    "reduced",
    "clearance",
    "clear",
    "sale",
    "special",
    "offer",
    "low",
    "lower",
    "new",
    "any",
    "buy",
    "for",
    "the",
    "of",
    "save",
    "off",
    "per",
    "price",
    "best",
    "great",
    "to",
    "regular",
    "guide",
    "unit",
    "item",
    "actual",
    "meal",
    "deal",
];

/// Whether a word can be part of a loyalty scheme's name ("clubcard", "co-op").
pub(crate) fn scheme_word(s: &str) -> bool {
    !NOT_SCHEMES.contains(&s)
        && s.starts_with(char::is_alphabetic)
        && s.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '\'' | '&'))
}

/// Whether words name a loyalty scheme: one to three scheme words.
pub(crate) fn is_scheme(words: &[&str]) -> bool {
    (1..=3).contains(&words.len()) && words.iter().all(|w| scheme_word(w))
}

pub(crate) fn loyalty(w: &[&str]) -> Found {
    let at = w.iter().position(|x| *x == "price")?;
    let (before, after) = (&w[..at], &w[at + 1..]);
    let (price_word, scheme) = match (before, after) {
        ([m, scheme @ ..], []) if money_like(m) => (Some(*m), scheme),
        (scheme, []) | (scheme, ["applied"]) => (None, scheme),
        (scheme, [m]) => (Some(*m), scheme),
        _ => return None,
    };
    if !is_scheme(scheme) {
        return None;
    }
    let price_pence = match price_word
        .map(|m| price(m, "the loyalty price"))
        .transpose()
    {
        Ok(p) => p,
        Err(e) => return Some(Err(e)),
    };
    Some(Ok(Promo::Loyalty {
        scheme: scheme.join(" "),
        price_pence,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::MAX_PRICE_PENCE;
    use proptest::prelude::*;

    fn loyal(scheme: &str, price_pence: Option<i64>) -> Promo {
        Promo::Loyalty {
            scheme: scheme.into(),
            price_pence,
        }
    }

    fn multi(qty: u32, total_pence: i64) -> Promo {
        Promo::MultiBuy { qty, total_pence }
    }

    fn was_now_promo(was_pence: i64, now_pence: Option<i64>) -> Promo {
        Promo::WasNow {
            was_pence,
            now_pence,
        }
    }

    #[test]
    fn reads_good_promos() {
        use Promo::*;
        let cases: Vec<(&str, Promo)> = vec![
            (
                "2 for £3",
                MultiBuy {
                    qty: 2,
                    total_pence: 300,
                },
            ),
            (
                "2 For £3.00",
                MultiBuy {
                    qty: 2,
                    total_pence: 300,
                },
            ),
            (
                "Any 3 for £10",
                MultiBuy {
                    qty: 3,
                    total_pence: 1000,
                },
            ),
            (
                "3 for £5 only!",
                MultiBuy {
                    qty: 3,
                    total_pence: 500,
                },
            ),
            (
                "Buy any 2 for 85p",
                MultiBuy {
                    qty: 2,
                    total_pence: 85,
                },
            ),
            (
                "  2   for   £ 3  ",
                MultiBuy {
                    qty: 2,
                    total_pence: 300,
                },
            ),
            ("3 for 2", MultiBuyFree { qty: 3, pay_for: 2 }),
            (
                "Buy 3 for the price of 2",
                MultiBuyFree { qty: 3, pay_for: 2 },
            ),
            ("Buy one get one free", MultiBuyFree { qty: 2, pay_for: 1 }),
            ("Buy 2 get 1 free!", MultiBuyFree { qty: 3, pay_for: 2 }),
            ("BOGOF", MultiBuyFree { qty: 2, pay_for: 1 }),
            ("Clubcard Price £1.00", loyal("clubcard", Some(100))),
            ("Nectar price £1.50", loyal("nectar", Some(150))),
            ("Nectar price", loyal("nectar", None)),
            ("Clubcard Price: 85p", loyal("clubcard", Some(85))),
            ("£2.50 Clubcard Price", loyal("clubcard", Some(250))),
            ("My Morrisons Price £2", loyal("my morrisons", Some(200))),
            ("Lidl Plus price 99p", loyal("lidl plus", Some(99))),
            ("Co-op Member Price £1.25", loyal("co-op member", Some(125))),
            (
                "Was £1.50 Now £1.20",
                WasNow {
                    was_pence: 150,
                    now_pence: Some(120),
                },
            ),
            (
                "Was £1.50",
                WasNow {
                    was_pence: 150,
                    now_pence: None,
                },
            ),
            (
                "Now £1.20 was £1.50",
                WasNow {
                    was_pence: 150,
                    now_pence: Some(120),
                },
            ),
            (
                "WAS £1.50, NOW ONLY £1.20!",
                WasNow {
                    was_pence: 150,
                    now_pence: Some(120),
                },
            ),
            (
                "Was £1,299.00 - Now £999.00",
                WasNow {
                    was_pence: 129900,
                    now_pence: Some(99900),
                },
            ),
            ("Half price", PercentOff { percent: 50 }),
            ("Half Price!", PercentOff { percent: 50 }),
            ("1/3 off", PercentOff { percent: 33 }),
            ("2/3 off", PercentOff { percent: 67 }),
            ("25% off", PercentOff { percent: 25 }),
            ("25 % off", PercentOff { percent: 25 }),
            ("Save 25%", PercentOff { percent: 25 }),
            ("Save 1/4", PercentOff { percent: 25 }),
            ("save 10% off", PercentOff { percent: 10 }),
            ("Reduced to clear", Clearance),
            ("REDUCED TO CLEAR.", Clearance),
            ("Clearance", Clearance),
            ("Reduced", Clearance),
            // Real wordings: Waitrose, Asda, Ocado, Tesco.
            ("Add 2 for £4", multi(2, 400)),
            ("Buy any 2 for £4", multi(2, 400)),
            ("buy 1 get 1 free", MultiBuyFree { qty: 2, pay_for: 1 }),
            (
                "Any 4 for 3 - Cheapest Product Free - Selected Coffee Pods",
                MultiBuyFree { qty: 4, pay_for: 3 },
            ),
            ("Save 70p. Was £2.10", was_now_promo(210, Some(140))),
            ("Save 45p. Was £1.95", was_now_promo(195, Some(150))),
            ("Was £1.55 Now £1.30", was_now_promo(155, Some(130))),
            ("£1.35 Clubcard Price", loyal("clubcard", Some(135))),
            ("Clubcard Price applied", loyal("clubcard", None)),
            (
                "Clubcard Price £1.00 (£0.50/100g)",
                loyal("clubcard", Some(100)),
            ),
            ("Nectar Price £1.25", loyal("nectar", Some(125))),
        ];
        crate::assert_reads(parse_promo, &cases);
    }

    #[test]
    fn rejects_bad_promos_with_reasons() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("  \t ", "empty"),
            ("!!!", "no words"),
            ("Buy me", "not a promotion"),
            ("Great value", "not a promotion"),
            ("0 for £1", "0 items"),
            ("1 for £1", "at least 2 items"),
            ("101 for £1", "more than 100"),
            ("99999999999 for £1", "too large"),
            (
                "2 for £0",
                "the multibuy price \"£0\": a shelf price of zero",
            ),
            ("2 for £1.234", "more than 2 decimal places"),
            ("3 for 3", "pays for all 3 items"),
            ("2 for 3", "pays for 3 items but gives only 2"),
            ("3 for 0", "pays for nothing"),
            ("150% off", "150% off is more than the whole price"),
            ("100% off", "would make it free"),
            ("0% off", "not a price cut"),
            ("12.5% off", "not a whole percentage"),
            ("99999999999999999999999% off", "more than the whole price"),
            ("3/3 off", "would make it free"),
            ("4/3 off", "more than the whole price"),
            ("1/x off", "not a fraction"),
            ("1/0 off", "divides by zero"),
            ("1/300 off", "rounds to 0%"),
            ("199/200 off", "rounds to 100%"),
            ("Save £1", "money off"),
            (
                "Was £1.20 Now £1.50",
                "the now price £1.50 is above the was price £1.20",
            ),
            ("Was £1.20 Now £1.20", "the same as the was price"),
            ("Now £1.20", "no was price"),
            (
                "Was -£1",
                "the was price \"-£1\": a shelf price cannot be negative",
            ),
            (
                "Was £1.50 Now £0",
                "the now price \"£0\": a shelf price of zero",
            ),
            ("Clubcard Price £0", "the loyalty price \"£0\""),
            ("Clubcard Price €1", "only pounds"),
            (
                "£3.85 Meal Deal Main Clubcard Price £4.25 Meal Deal Main Regular Price - \
                 Selected Drink + Snack + Tesco Or Branded Sandwich, Wrap, Roll, Salad Or Sushi",
                "it is a meal deal",
            ),
            (
                "Any 2 for £5.50 Clubcard Price - Selected Tesco Finest* Sliced Cooked Meat Products",
                "a multibuy only for clubcard members",
            ),
            ("Regular Price £2.00", "not a promotion"),
            ("Unit price £2.00", "not a promotion"),
            ("Save 70p", "money off (70p) is not read"),
            (
                "Save 70p. Was 50p",
                "the saving £0.70 is not below the was price £0.50",
            ),
            ("Save 70p. Was £2.10 Now £1.50", "not the now price £1.50"),
            ("Add 2 for £0", "a shelf price of zero"),
            ("2 for £3 (£1.50/kg)", "read only after a loyalty price"),
            (
                "Clubcard Price £1 (£1/parsec)",
                "the unit price in brackets",
            ),
        ];
        crate::assert_rejects(parse_promo, "a promotion", cases);
    }

    #[test]
    fn kinds() {
        let kind = |t: &str| parse_promo(t).map(|p| p.kind());
        assert_eq!(kind("2 for £3"), Ok(PromoKind::Multibuy));
        assert_eq!(kind("3 for 2"), Ok(PromoKind::Multibuy));
        assert_eq!(kind("Nectar price"), Ok(PromoKind::Loyalty));
        assert_eq!(kind("Was £2"), Ok(PromoKind::PriceCut));
        assert_eq!(kind("25% off"), Ok(PromoKind::PriceCut));
        assert_eq!(kind("Clearance"), Ok(PromoKind::Clearance));
        for k in [
            PromoKind::None,
            PromoKind::Multibuy,
            PromoKind::Loyalty,
            PromoKind::PriceCut,
            PromoKind::Clearance,
        ] {
            assert_eq!(k.as_str().parse::<PromoKind>(), Ok(k));
            assert_eq!(k.to_string(), k.as_str());
        }
        assert_eq!(" Price_Cut ".parse::<PromoKind>(), Ok(PromoKind::PriceCut));
        let e = "sale".parse::<PromoKind>().expect_err("sale is not a kind");
        assert_eq!(e.input, "sale");
        assert!(e.to_string().contains("expected none, multibuy"));
    }

    #[test]
    fn effective_prices() {
        let eff = |t: &str, shelf: i64| parse_promo(t).map(|p| p.effective_price(shelf));
        assert_eq!(eff("2 for £3", 200), Ok(150));
        assert_eq!(eff("2 for £3", 140), Ok(140)); // never above the shelf price
        assert_eq!(eff("3 for £1", 50), Ok(33));
        assert_eq!(eff("3 for £2", 100), Ok(67));
        assert_eq!(eff("3 for 2", 120), Ok(80));
        assert_eq!(eff("3 for 2", 100), Ok(67));
        assert_eq!(eff("Clubcard Price £1.00", 150), Ok(100));
        assert_eq!(eff("Nectar price", 150), Ok(150));
        assert_eq!(eff("Was £1.50 Now £1.20", 150), Ok(120));
        assert_eq!(eff("Was £1.50", 120), Ok(120));
        assert_eq!(eff("Half price", 300), Ok(150));
        assert_eq!(eff("Half price", 1), Ok(1)); // never below 1
        assert_eq!(eff("25% off", 99), Ok(74)); // 74.25
        assert_eq!(eff("Reduced to clear", 45), Ok(45));
        assert_eq!(eff("100 for 1p", 10), Ok(1));
        // Hand-built values that parse_promo never produces stay safe.
        let odd = [
            Promo::MultiBuy {
                qty: 0,
                total_pence: 5,
            },
            Promo::MultiBuyFree { qty: 0, pay_for: 1 },
            Promo::PercentOff { percent: 200 },
            Promo::Loyalty {
                scheme: String::new(),
                price_pence: Some(-5),
            },
        ];
        for p in odd {
            for shelf in [i64::MIN, -1, 0, 1, 100, i64::MAX] {
                let e = p.effective_price(shelf);
                assert!(e >= 1 && e <= shelf.max(1), "{p:?} at {shelf}: {e}");
            }
        }
        assert_eq!(
            Promo::MultiBuyFree { qty: 3, pay_for: 2 }.effective_price(i64::MAX),
            6_148_914_691_236_517_205
        );
    }

    #[test]
    fn was_prices() {
        assert_eq!(
            parse_promo("Was £1.50 Now £1.20").map(|p| p.was_pence()),
            Ok(Some(150))
        );
        assert_eq!(parse_promo("Was £2").map(|p| p.was_pence()), Ok(Some(200)));
        assert_eq!(parse_promo("2 for £3").map(|p| p.was_pence()), Ok(None));
        assert_eq!(Promo::Clearance.was_pence(), None);
    }

    fn any_promo() -> impl Strategy<Value = Promo> {
        let price = 1..=MAX_PRICE_PENCE;
        prop_oneof![
            (2..=MAX_MULTIBUY_QTY, price.clone())
                .prop_map(|(qty, total_pence)| Promo::MultiBuy { qty, total_pence }),
            (2..=MAX_MULTIBUY_QTY)
                .prop_flat_map(|qty| (Just(qty), 1..qty))
                .prop_map(|(qty, pay_for)| Promo::MultiBuyFree { qty, pay_for }),
            (
                prop::sample::select(vec!["clubcard", "nectar", "my morrisons", "lidl plus"]),
                prop::option::of(price.clone())
            )
                .prop_map(|(s, price_pence)| loyal(s, price_pence)),
            (2..=MAX_PRICE_PENCE)
                .prop_flat_map(|was| (Just(was), prop::option::of(1..was)))
                .prop_map(|(was_pence, now_pence)| Promo::WasNow {
                    was_pence,
                    now_pence
                }),
            (1..=99u8).prop_map(|percent| Promo::PercentOff { percent }),
            Just(Promo::Clearance),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn n_for_price_round_trips(qty in 2..=MAX_MULTIBUY_QTY, total in 1..=MAX_PRICE_PENCE) {
            let want = Promo::MultiBuy { qty, total_pence: total };
            for text in [
                format!("{qty} for {}", format_pence(total)),
                format!("Any {qty} for {} only!", format_pence(total)),
                format!("{qty} FOR {total}p"),
            ] {
                prop_assert_eq!(parse_promo(&text), Ok(want.clone()), "{}", text);
            }
        }

        #[test]
        fn display_round_trips(p in any_promo()) {
            prop_assert_eq!(parse_promo(&p.to_string()), Ok(p));
        }

        #[test]
        fn effective_price_is_within_bounds(p in any_promo(), shelf in 1..=MAX_PRICE_PENCE) {
            let e = p.effective_price(shelf);
            prop_assert!((1..=shelf).contains(&e));
        }

        #[test]
        fn never_panics_on_ascii(s in ".*") {
            let _ = parse_promo(&s);
        }

        #[test]
        fn never_panics_on_unicode(s in any::<String>()) {
            let _ = parse_promo(&s);
        }

        #[test]
        fn never_panics_on_real_like(s in "(add |any |buy |save [0-9£.p]{0,5}\\. )?[0-9£.p]{0,6} ?(for|was|now|meal deal|clubcard)? ?[0-9£.p]{0,6} ?(clubcard|nectar|regular)? ?(price|applied)? ?(\\([0-9£.p]{0,6}/[0-9]{0,3}(g|kg|lt)\\))?( - (selected|cheapest product free)[a-z ]{0,8})?") {
            let _ = parse_promo(&s);
        }

        #[test]
        fn never_panics_on_promo_like(s in "(any |buy |was |now |save )?[0-9£.,/%p]{0,12} ?(for|off|price|now|was|get)? ?[0-9£.,/%p]{0,12}( free| off)?") {
            let _ = parse_promo(&s);
        }
    }
}
