//! Offers as structured values, each for its own field: multibuys (with the
//! price per item when you take them), loyalty prices (scheme, price, unit
//! price), was-prices, and meal deals, which are never a price of the item.
//!
//! Reads the wordings [`crate::promo::parse_promo`] reads, plus those a
//! [`Promo`] cannot hold: "Any 2 for £5.50 Clubcard Price", "Clubcard Price
//! £1.00 (£0.50/100g)" and Tesco's meal deal bar ("£3.85 Meal Deal Main
//! Clubcard Price £4.25 Meal Deal Main Regular Price - Selected Drink + Snack
//! + ...").

use std::fmt;

use super::money::{format_pence, parse_pence};
use super::promo::{
    Found, Promo, PromoKind, fixed_phrase, is_scheme, loyalty, money_like, multibuy, percent_off,
    price, was_now, words,
};
use super::unit_price::{PreciseUnitPrice, parse_precise_unit_price};
use super::{ParseError, div_round};

/// Why a meal deal is never read as the item's price.
const MEAL_DEAL: &str = "it is a meal deal: its prices are for several items bought together \
                         (a main, a drink and a snack), not a price of this item";

/// An offer read from a shelf tag, for its own structured field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// "Any 2 for £4", "3 for 2", "Buy 1 get 1 free", "Any 2 for £5.50 Clubcard Price".
    MultiBuy(MultiBuy),
    /// "Clubcard Price £1.50", "£1.50 Clubcard Price", "Nectar Price £1.25".
    Loyalty(LoyaltyPrice),
    /// "Was £2.10", "Save 70p. Was £2.10", "Was £1.55 Now £1.30".
    WasPrice(WasPrice),
    /// "£3.85 Meal Deal Main Clubcard Price £4.25 Meal Deal Main Regular Price".
    /// Not a price of the item: see [`Offer::per_item_pence`].
    MealDeal(MealDeal),
}

/// A multibuy: `quantity` items for a total price, or for the price of fewer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiBuy {
    /// How many items the offer is for (2 to [`crate::promo::MAX_MULTIBUY_QTY`]).
    pub quantity: u32,
    /// What those items cost.
    pub deal: MultiBuyDeal,
    /// The loyalty scheme the offer needs ("clubcard"), if any.
    pub scheme: Option<String>,
}

/// What the items of a [`MultiBuy`] cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultiBuyDeal {
    /// "2 for £4": all of them for `price_pence`.
    Total { price_pence: i64 },
    /// "3 for 2", "buy 1 get 1 free": pay the shelf price of `items` of them.
    PayFor { items: u32 },
}

impl MultiBuy {
    /// What `quantity` items cost under the offer: the stated total, or the
    /// shelf price times the items paid for. `None` for a pay-for deal without
    /// a positive shelf price, or if it overflows.
    pub fn total_pence(&self, shelf_pence: Option<i64>) -> Option<i64> {
        match self.deal {
            MultiBuyDeal::Total { price_pence } => Some(price_pence),
            MultiBuyDeal::PayFor { items } => shelf_pence
                .filter(|p| *p > 0)
                .and_then(|p| p.checked_mul(i64::from(items))),
        }
    }

    /// The price of one item when you take the offer: [`MultiBuy::total_pence`]
    /// divided by `quantity`, rounded to the nearest penny, halves up.
    /// "2 for £4" -> 200, "3 for £10" -> 333, "2 for £3.25" -> 163,
    /// "3 for 2" at £1.00 -> 67. It is not capped at the shelf price ("2 for
    /// £6" on a £2.50 item is 300). `None` when `total_pence` is.
    pub fn effective_unit_price(&self, shelf_pence: Option<i64>) -> Option<i64> {
        let total = self.total_pence(shelf_pence)?;
        let each = div_round(i128::from(total), i128::from(self.quantity))?;
        i64::try_from(each).ok()
    }
}

/// A loyalty price: the price for members of `scheme`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoyaltyPrice {
    /// The lowercase scheme name: "clubcard", "nectar", "my morrisons".
    pub scheme: String,
    /// The members' price; `None` when the tag names no price ("Nectar
    /// price", "Clubcard Price applied"): the shelf price beside it is then
    /// the members' price.
    pub price_pence: Option<i64>,
    /// The members' unit price, if printed in brackets after the price.
    pub unit_price: Option<PreciseUnitPrice>,
}

/// A was-price, with the now price when the tag states or implies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WasPrice {
    pub was_pence: i64,
    /// "Was £1.55 Now £1.30" -> 130; "Save 70p. Was £2.10" -> 140 (was less
    /// the saving); "Was £2.10" -> `None`.
    pub now_pence: Option<i64>,
}

impl WasPrice {
    /// Was less now, if the now price is known.
    pub fn saving_pence(&self) -> Option<i64> {
        self.now_pence.map(|now| self.was_pence - now)
    }
}

/// A meal deal: a price for several items together, never the item's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MealDeal {
    /// The price for everyone ("£4.25 Meal Deal Main Regular Price").
    pub regular_pence: Option<i64>,
    /// The members' price ("£3.85 Meal Deal Main Clubcard Price"), without a
    /// unit price.
    pub loyalty: Option<LoyaltyPrice>,
}

impl Offer {
    /// The broad kind, as a [`Promo`] would have it; `None` for a meal deal,
    /// which is no offer on this item's price.
    pub fn kind(&self) -> Option<PromoKind> {
        match self {
            Offer::MultiBuy(_) => Some(PromoKind::Multibuy),
            Offer::Loyalty(_) => Some(PromoKind::Loyalty),
            Offer::WasPrice(_) => Some(PromoKind::PriceCut),
            Offer::MealDeal(_) => None,
        }
    }

    /// What one item costs under the offer: a multibuy's
    /// [`MultiBuy::effective_unit_price`], a loyalty or now price (else the
    /// shelf price). `None` for a meal deal (not a per-item price), or where
    /// the shelf price is needed and not given.
    pub fn per_item_pence(&self, shelf_pence: Option<i64>) -> Option<i64> {
        match self {
            Offer::MultiBuy(m) => m.effective_unit_price(shelf_pence),
            Offer::Loyalty(l) => l.price_pence.or(shelf_pence),
            Offer::WasPrice(w) => w.now_pence.or(shelf_pence),
            Offer::MealDeal(_) => None,
        }
    }

    /// "a multibuy", "a loyalty price", "a was-price" or "a meal deal".
    fn describe(&self) -> &'static str {
        match self {
            Offer::MultiBuy(_) => "a multibuy",
            Offer::Loyalty(_) => "a loyalty price",
            Offer::WasPrice(_) => "a was-price",
            Offer::MealDeal(_) => "a meal deal",
        }
    }

    /// The [`Promo`] for this offer, or why a promo cannot hold it.
    pub(crate) fn into_promo(self) -> Result<Promo, String> {
        match self {
            Offer::MultiBuy(MultiBuy {
                scheme: Some(scheme),
                ..
            }) => Err(format!(
                "it is a multibuy only for {scheme} members, which a promotion cannot hold: \
                 read it as an offer"
            )),
            Offer::MultiBuy(MultiBuy {
                quantity: qty,
                deal,
                scheme: None,
            }) => Ok(match deal {
                MultiBuyDeal::Total { price_pence } => Promo::MultiBuy {
                    qty,
                    total_pence: price_pence,
                },
                MultiBuyDeal::PayFor { items } => Promo::MultiBuyFree {
                    qty,
                    pay_for: items,
                },
            }),
            Offer::Loyalty(LoyaltyPrice {
                scheme,
                price_pence,
                ..
            }) => Ok(Promo::Loyalty {
                scheme,
                price_pence,
            }),
            Offer::WasPrice(WasPrice {
                was_pence,
                now_pence,
            }) => Ok(Promo::WasNow {
                was_pence,
                now_pence,
            }),
            Offer::MealDeal(_) => Err(MEAL_DEAL.into()),
        }
    }

    /// The offer for a [`Promo`], or why it is not one.
    fn from_promo(promo: Promo) -> Result<Offer, String> {
        Ok(match promo {
            Promo::MultiBuy { qty, total_pence } => Offer::MultiBuy(MultiBuy {
                quantity: qty,
                deal: MultiBuyDeal::Total {
                    price_pence: total_pence,
                },
                scheme: None,
            }),
            Promo::MultiBuyFree { qty, pay_for } => Offer::MultiBuy(MultiBuy {
                quantity: qty,
                deal: MultiBuyDeal::PayFor { items: pay_for },
                scheme: None,
            }),
            Promo::Loyalty {
                scheme,
                price_pence,
            } => Offer::Loyalty(LoyaltyPrice {
                scheme,
                price_pence,
                unit_price: None,
            }),
            Promo::WasNow {
                was_pence,
                now_pence,
            } => Offer::WasPrice(WasPrice {
                was_pence,
                now_pence,
            }),
            Promo::PercentOff { percent } => {
                return Err(format!(
                    "{percent}% off states no price: it is a promotion, not a multibuy, \
                     loyalty price, was-price or meal deal"
                ));
            }
            Promo::Clearance => {
                return Err("a clearance tag states no price: it is a promotion, not a \
                            multibuy, loyalty price, was-price or meal deal"
                    .into());
            }
        })
    }
}

impl fmt::Display for Offer {
    /// A canonical wording that [`parse_offer`] reads back: "2 for £4.00",
    /// "3 for 2", "2 for £5.50 clubcard price", "clubcard price £1.00
    /// (£0.50/100g)", "was £2.10 now £1.40", "£3.85 meal deal clubcard price
    /// £4.25 meal deal regular price".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Offer::MultiBuy(m) => {
                match m.deal {
                    MultiBuyDeal::Total { price_pence } => {
                        write!(f, "{} for {}", m.quantity, format_pence(price_pence))?;
                    }
                    MultiBuyDeal::PayFor { items } => write!(f, "{} for {items}", m.quantity)?,
                }
                match &m.scheme {
                    Some(scheme) => write!(f, " {scheme} price"),
                    None => Ok(()),
                }
            }
            Offer::Loyalty(l) => {
                write!(f, "{} price", l.scheme)?;
                if let Some(p) = l.price_pence {
                    write!(f, " {}", format_pence(p))?;
                }
                match &l.unit_price {
                    Some(u) => write!(f, " ({u})"),
                    None => Ok(()),
                }
            }
            Offer::WasPrice(w) => {
                write!(f, "was {}", format_pence(w.was_pence))?;
                match w.now_pence {
                    Some(now) => write!(f, " now {}", format_pence(now)),
                    None => Ok(()),
                }
            }
            Offer::MealDeal(d) => {
                let mut clauses = Vec::new();
                if let Some(LoyaltyPrice {
                    scheme,
                    price_pence: Some(p),
                    ..
                }) = &d.loyalty
                {
                    clauses.push(format!("{} meal deal {scheme} price", format_pence(*p)));
                }
                if let Some(p) = d.regular_pence {
                    clauses.push(format!("{} meal deal regular price", format_pence(p)));
                }
                f.write_str(&clauses.join(" "))
            }
        }
    }
}

const WHAT: &str = "an offer";

/// How [`parse_offer`] starts its reason for text that is no offer wording.
const NOT_AN_OFFER: &str = "it is not an offer this reads";

/// Reads an offer: a multibuy, a loyalty price, a was-price or a meal deal.
///
/// Reads what [`crate::promo::parse_promo`] reads of those kinds, and also
/// multibuys for loyalty members ("Any 4 for 3 Clubcard Price - Cheapest
/// Product Free - Selected Coffee Pods"), a loyalty unit price in brackets
/// ("Clubcard Price £1.00 (£0.50/100g)") and meal deals.
///
/// Rejects what `parse_promo` rejects except those, and also percentages off
/// and clearance tags (they state no price), and a unit price in brackets
/// after anything but a loyalty price.
pub fn parse_offer(text: &str) -> Result<Offer, ParseError> {
    let err = |reason: String| ParseError::new(text, WHAT, reason);
    match read(text).map_err(err)? {
        Some(Reading::Offer(o)) => Ok(o),
        Some(Reading::Promo(p)) => Offer::from_promo(p).map_err(err),
        None => Err(err(format!(
            "{NOT_AN_OFFER}: expected e.g. \"Any 2 for £4\", \"3 for 2\", \
             \"Clubcard Price £1.50\", \"Save 70p. Was £2.10\" or a meal deal"
        ))),
    }
}

/// Reads text that must be a multibuy ("Add 2 for £4", "Buy any 2 for £4",
/// "3 for 2", "buy 1 get 1 free", "Any 2 for £5.50 Clubcard Price").
/// Rejects other offers, naming what they are.
pub fn parse_multibuy(text: &str) -> Result<MultiBuy, ParseError> {
    parse_one(text, "a multibuy", |o| match o {
        Offer::MultiBuy(m) => Ok(m),
        other => Err(other),
    })
}

/// Reads text that must be a loyalty price ("Clubcard Price £1.50",
/// "£1.50 Clubcard Price", "Nectar Price £1.25", "Clubcard Price £1.00
/// (£0.50/100g)"). Rejects other offers, naming what they are; a meal deal
/// is refused as not a price of this item.
pub fn parse_loyalty_price(text: &str) -> Result<LoyaltyPrice, ParseError> {
    parse_one(text, "a loyalty price", |o| match o {
        Offer::Loyalty(l) => Ok(l),
        other => Err(other),
    })
}

/// Reads text that must be a was-price ("Was £2.10", "Save 70p. Was £2.10",
/// "Was £1.55 Now £1.30"). Rejects other offers, naming what they are.
pub fn parse_was_price(text: &str) -> Result<WasPrice, ParseError> {
    parse_one(text, "a was-price", |o| match o {
        Offer::WasPrice(w) => Ok(w),
        other => Err(other),
    })
}

/// Reads a was-price field as the was price in pence: a plain price ("£2.10",
/// "95p") or a was wording ("Was £2.10", "Save 70p. Was £2.10", "Was £1.55
/// Now £1.30"). Rejects anything else, with the reason a was-price gives.
pub fn parse_was_pence(text: &str) -> Result<i64, ParseError> {
    parse_pence(text).or_else(|as_price| {
        parse_was_price(text).map(|w| w.was_pence).map_err(|e| {
            if e.reason.starts_with(NOT_AN_OFFER) {
                // No wording at all: say what is wrong with it as a price.
                ParseError::new(text, e.what, as_price.reason)
            } else {
                e
            }
        })
    })
}

/// Reads an offer of one kind: `pick` gives it back, or the offer it is not.
fn parse_one<T>(
    text: &str,
    what: &'static str,
    pick: impl FnOnce(Offer) -> Result<T, Offer>,
) -> Result<T, ParseError> {
    let err = |reason: String| ParseError::new(text, what, reason);
    let offer = parse_offer(text).map_err(|e| err(e.reason))?;
    pick(offer).map_err(|other| {
        err(match other {
            Offer::MealDeal(_) => MEAL_DEAL.into(),
            other => format!("it is {}, not {what}", other.describe()),
        })
    })
}

/// What promotion text says, before it is handed out as a [`Promo`] or an [`Offer`].
pub(crate) enum Reading {
    /// Wordings a [`Promo`] holds.
    Promo(Promo),
    /// Wordings only an [`Offer`] holds.
    Offer(Offer),
}

/// Reads promotion or offer text; `Ok(None)` if it is no wording read here.
pub(crate) fn read(text: &str) -> Result<Option<Reading>, String> {
    if text.trim().is_empty() {
        return Err("it is empty".into());
    }
    let (head, unit_price) = split_unit_price(strip_description(text))?;
    let owned = words(head);
    let w: Vec<&str> = owned.iter().map(String::as_str).collect();
    if w.is_empty() {
        return Err(if unit_price.is_some() {
            "it is only a unit price".into()
        } else {
            "there are no words in it, only punctuation".into()
        });
    }
    if let Some(deal) = meal_deal(&w) {
        return deal.map(|d| Some(Reading::Offer(Offer::MealDeal(d))));
    }
    let found = scheme_multibuy(&w)
        .map(|r| r.map(Reading::Offer))
        .or_else(|| {
            let found: Found = fixed_phrase(&w)
                .or_else(|| multibuy(&w))
                .or_else(|| was_now(&w))
                .or_else(|| percent_off(&w))
                .or_else(|| loyalty(&w));
            found.map(|r| r.map(Reading::Promo))
        });
    let Some(reading) = found.transpose()? else {
        return Ok(None);
    };
    match (reading, unit_price) {
        (reading, None) => Ok(Some(reading)),
        (
            Reading::Promo(Promo::Loyalty {
                scheme,
                price_pence,
            }),
            unit_price,
        ) => Ok(Some(Reading::Offer(Offer::Loyalty(LoyaltyPrice {
            scheme,
            price_pence,
            unit_price,
        })))),
        _ => Err("a unit price in brackets is read only after a loyalty price".into()),
    }
}

/// Parts of a Tesco-style description after " - " that say which products
/// the offer covers, not what it costs.
const DESCRIPTIONS: &[&str] = &["selected ", "cheapest product free", "offer valid "];

/// `text` without a trailing description ("... - Selected Coffee Pods",
/// "... - Cheapest Product Free - Selected ..."); unchanged if any part after
/// a " - " is something else (as in "Was £1.50 - Now £1.20").
fn strip_description(text: &str) -> &str {
    let mut cut = None;
    for (at, _) in text
        .match_indices(" - ")
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        let part = text[at + 3..].split(" - ").next().unwrap_or("");
        let part = part.trim().to_lowercase();
        if DESCRIPTIONS
            .iter()
            .any(|d| part.starts_with(d) || part == d.trim_end())
        {
            cut = Some(at);
        } else {
            break;
        }
    }
    cut.map_or(text, |at| &text[..at])
}

/// Splits a trailing unit price in brackets ("Clubcard Price £1.00
/// (£0.50/100g)") from the text before it.
fn split_unit_price(text: &str) -> Result<(&str, Option<PreciseUnitPrice>), String> {
    let trimmed = text.trim_end();
    let Some(open) = trimmed.strip_suffix(')').and_then(|t| t.rfind('(')) else {
        return Ok((text, None));
    };
    let inner = &trimmed[open + 1..trimmed.len() - 1];
    let starts_price = inner
        .trim_start()
        .starts_with(|c: char| c == '£' || c.is_ascii_digit());
    if !starts_price {
        return Ok((text, None));
    }
    let unit = parse_precise_unit_price(inner)
        .map_err(|e| format!("the unit price in brackets {inner:?}: {}", e.reason))?;
    Ok((&trimmed[..open], Some(unit)))
}

/// "any 2 for £5.50 clubcard price", "any 4 for 3 clubcard price": a
/// multibuy for members of a scheme.
fn scheme_multibuy(w: &[&str]) -> Option<Result<Offer, String>> {
    let [head @ .., "price"] = w else {
        return None;
    };
    let at = head.iter().position(|x| *x == "for")?;
    let (deal, scheme) = head.split_at((at + 2).min(head.len()));
    if !is_scheme(scheme) {
        return None;
    }
    let promo = multibuy(deal)?;
    Some(promo.and_then(Offer::from_promo).map(|offer| match offer {
        Offer::MultiBuy(m) => Offer::MultiBuy(MultiBuy {
            scheme: Some(scheme.join(" ")),
            ..m
        }),
        other => other,
    }))
}

/// Any text with "meal deal" in it: a price for several items, never this
/// item's. Reads each "<price> meal deal ... <label> price" clause; the label
/// is "regular" (or none) or a scheme.
fn meal_deal(w: &[&str]) -> Option<Result<MealDeal, String>> {
    if !w.windows(2).any(|p| p == ["meal", "deal"]) {
        return None;
    }
    let mut deal = MealDeal {
        regular_pence: None,
        loyalty: None,
    };
    let starts: Vec<usize> = (0..w.len()).filter(|i| money_like(w[*i])).collect();
    if starts.is_empty() {
        return Some(Err(format!("{MEAL_DEAL}; it states no price")));
    }
    for (k, &at) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(w.len());
        let clause = &w[at + 1..end];
        let label = clause
            .iter()
            .position(|x| *x == "price")
            .and_then(|p| p.checked_sub(1))
            .map(|p| clause[p])
            .filter(|l| !matches!(*l, "regular" | "normal" | "standard" | "meal" | "deal"));
        let pence = match price(w[at], "the meal deal price") {
            Ok(p) => p,
            Err(e) => return Some(Err(e)),
        };
        let twice = |which: &str| Some(Err(format!("a meal deal with two {which} prices")));
        match label {
            None if deal.regular_pence.is_some() => return twice("regular"),
            None => deal.regular_pence = Some(pence),
            Some(_) if deal.loyalty.is_some() => return twice("members'"),
            Some(scheme) if is_scheme(&[scheme]) => {
                deal.loyalty = Some(LoyaltyPrice {
                    scheme: scheme.to_string(),
                    price_pence: Some(pence),
                    unit_price: None,
                });
            }
            Some(other) => {
                return Some(Err(format!(
                    "a meal deal price labelled {other:?}, which is no scheme"
                )));
            }
        }
    }
    if let (
        Some(regular),
        Some(LoyaltyPrice {
            scheme,
            price_pence: Some(members),
            ..
        }),
    ) = (deal.regular_pence, &deal.loyalty)
        && *members >= regular
    {
        return Some(Err(format!(
            "the {scheme} meal deal price {} is not below the regular {}",
            format_pence(*members),
            format_pence(regular)
        )));
    }
    Some(Ok(deal))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::MAX_PRICE_PENCE;
    use crate::promo::MAX_MULTIBUY_QTY;
    use crate::quantity::BaseUnit;
    use proptest::prelude::*;

    fn total(quantity: u32, price_pence: i64, scheme: Option<&str>) -> Offer {
        Offer::MultiBuy(MultiBuy {
            quantity,
            deal: MultiBuyDeal::Total { price_pence },
            scheme: scheme.map(Into::into),
        })
    }

    fn pay_for(quantity: u32, items: u32, scheme: Option<&str>) -> Offer {
        Offer::MultiBuy(MultiBuy {
            quantity,
            deal: MultiBuyDeal::PayFor { items },
            scheme: scheme.map(Into::into),
        })
    }

    fn loyal(scheme: &str, price_pence: Option<i64>, unit: Option<PreciseUnitPrice>) -> Offer {
        Offer::Loyalty(LoyaltyPrice {
            scheme: scheme.into(),
            price_pence,
            unit_price: unit,
        })
    }

    fn was(was_pence: i64, now_pence: Option<i64>) -> Offer {
        Offer::WasPrice(WasPrice {
            was_pence,
            now_pence,
        })
    }

    fn meal(members: Option<(&str, i64)>, regular_pence: Option<i64>) -> Offer {
        Offer::MealDeal(MealDeal {
            regular_pence,
            loyalty: members.map(|(scheme, p)| LoyaltyPrice {
                scheme: scheme.into(),
                price_pence: Some(p),
                unit_price: None,
            }),
        })
    }

    const TESCO_MEAL_DEAL: &str = "£3.85 Meal Deal Main Clubcard Price £4.25 Meal Deal Main \
         Regular Price - Selected Drink + Snack + Tesco Or Branded Sandwich, Wrap, Roll, Salad \
         Or Sushi";

    #[test]
    fn reads_good_offers() {
        let per_100g = PreciseUnitPrice {
            centipence: 5000,
            quantity: 100,
            per: BaseUnit::Gram,
        };
        let cases: Vec<(&str, Offer)> = vec![
            // Real wordings: Waitrose, Asda, Ocado, Tesco.
            ("Add 2 for £4", total(2, 400, None)),
            ("Any 2 for £4", total(2, 400, None)),
            ("Buy any 2 for £4", total(2, 400, None)),
            ("2 for £3", total(2, 300, None)),
            ("3 for 2", pay_for(3, 2, None)),
            ("buy 1 get 1 free", pay_for(2, 1, None)),
            (
                "Any 2 for £5.50 Clubcard Price - Selected Tesco Finest* Sliced Cooked Meat Products",
                total(2, 550, Some("clubcard")),
            ),
            (
                "Any 4 for 3 Clubcard Price - Cheapest Product Free - Selected Coffee Pods",
                pay_for(4, 3, Some("clubcard")),
            ),
            ("Clubcard Price £1.50", loyal("clubcard", Some(150), None)),
            ("£1.50 Clubcard Price", loyal("clubcard", Some(150), None)),
            ("£1.35 Clubcard Price", loyal("clubcard", Some(135), None)),
            ("Nectar Price £1.25", loyal("nectar", Some(125), None)),
            ("Nectar price", loyal("nectar", None, None)),
            ("Clubcard Price applied", loyal("clubcard", None, None)),
            (
                "Clubcard Price £1.00 (£0.50/100g)",
                loyal("clubcard", Some(100), Some(per_100g)),
            ),
            (
                "£1.00 Clubcard Price (50p/100g)",
                loyal("clubcard", Some(100), Some(per_100g)),
            ),
            ("Was £2.10", was(210, None)),
            ("Save 70p. Was £2.10", was(210, Some(140))),
            ("Save 45p. Was £1.95", was(195, Some(150))),
            ("Save 75p. Was £3.00", was(300, Some(225))),
            ("Was £2.10 Save 70p", was(210, Some(140))),
            ("Save 70p. Was £2.10 Now £1.40", was(210, Some(140))),
            ("Was £1.55 Now £1.30", was(155, Some(130))),
            (TESCO_MEAL_DEAL, meal(Some(("clubcard", 385)), Some(425))),
            ("Meal Deal £3.50", meal(None, Some(350))),
            ("£3.50 Meal Deal", meal(None, Some(350))),
        ];
        crate::assert_reads(parse_offer, &cases);
    }

    #[test]
    fn rejects_bad_offers_with_reasons() {
        crate::assert_rejects(
            parse_offer,
            "an offer",
            &[
                ("", "empty"),
                ("Buy me", "not an offer"),
                ("25% off", "25% off states no price"),
                ("Half price", "50% off states no price"),
                ("Reduced to clear", "clearance tag states no price"),
                ("Save 70p", "money off (70p) is not read"),
                (
                    "Save £2.10. Was £2.10",
                    "the saving £2.10 is not below the was price £2.10",
                ),
                (
                    "Save 70p. Was £2.10 Now £1.50",
                    "is £1.40, not the now price £1.50",
                ),
                (
                    "Save 0p. Was £2.10",
                    "the saving \"0p\": a shelf price of zero",
                ),
                ("Add 1 for £4", "at least 2 items"),
                ("Any 2 for £0 Clubcard Price", "a shelf price of zero"),
                ("Any 2 for 2 Clubcard Price", "pays for all 2 items"),
                ("2 for £3 (£1.50/kg)", "read only after a loyalty price"),
                ("(£0.50/100g)", "only a unit price"),
                (
                    "Clubcard Price £1.00 (£0.50/parsec)",
                    "the unit price in brackets",
                ),
                ("Clubcard Price £1.00 (£0.50)", "no unit"),
                ("Meal Deal", "meal deal"),
                ("£4.25 Meal Deal £3.85 Meal Deal", "two regular prices"),
                (
                    "£4.50 Meal Deal Clubcard Price £4.25 Meal Deal Regular Price",
                    "not below",
                ),
                (
                    "£3 Meal Deal Clubcard Price £2.50 Meal Deal Nectar Price",
                    "two members' prices",
                ),
                ("£0 Meal Deal", "the meal deal price \"£0\""),
                ("2 for £3 - Now £1", "not an offer"),
            ],
        );
    }

    #[test]
    fn one_kind_parsers_name_what_the_text_is() {
        assert_eq!(
            parse_multibuy("Add 2 for £4").map(|m| m.effective_unit_price(Some(290))),
            Ok(Some(200))
        );
        assert_eq!(
            parse_loyalty_price("Nectar Price £1.25").map(|l| l.price_pence),
            Ok(Some(125))
        );
        assert_eq!(
            parse_was_price("Save 70p. Was £2.10").map(|w| w.saving_pence()),
            Ok(Some(70))
        );
        crate::assert_rejects(
            parse_loyalty_price,
            "a loyalty price",
            &[
                (TESCO_MEAL_DEAL, "it is a meal deal"),
                ("Any 2 for £4", "it is a multibuy, not a loyalty price"),
                ("Was £2.10", "it is a was-price, not a loyalty price"),
                ("25% off", "states no price"),
                ("", "empty"),
            ],
        );
        crate::assert_rejects(
            parse_multibuy,
            "a multibuy",
            &[
                (
                    "Clubcard Price £1.50",
                    "it is a loyalty price, not a multibuy",
                ),
                ("Meal Deal £3.50", "not a price of this item"),
            ],
        );
        crate::assert_reads(
            parse_was_pence,
            &[
                ("£2.10", 210),
                ("95p", 95),
                ("Was £2.10", 210),
                ("Save 70p. Was £2.10", 210),
                ("Was £1.55 Now £1.30", 155),
            ],
        );
        crate::assert_rejects(
            parse_was_pence,
            "a was-price",
            &[
                ("", "empty"),
                ("Now £1.30", "no was price"),
                ("Add 2 for £4", "it is a multibuy, not a was-price"),
                ("£0", "a shelf price of zero"),
                ("£1.2.3", "more than one decimal point"),
                ("Great value", "expected an amount"),
            ],
        );
        crate::assert_rejects(
            parse_was_price,
            "a was-price",
            &[
                ("Add 2 for £4", "it is a multibuy, not a was-price"),
                ("Now £1.30", "no was price"),
            ],
        );
    }

    #[test]
    fn per_item_prices() {
        let each = |t: &str, shelf: Option<i64>| parse_offer(t).map(|o| o.per_item_pence(shelf));
        assert_eq!(each("Any 2 for £4", Some(250)), Ok(Some(200)));
        assert_eq!(each("Any 2 for £4", None), Ok(Some(200)));
        assert_eq!(each("3 for £10", None), Ok(Some(333)));
        assert_eq!(each("2 for £3.25", None), Ok(Some(163))); // 162.5, halves up
        assert_eq!(each("2 for £6", Some(250)), Ok(Some(300))); // not capped
        assert_eq!(each("3 for 2", Some(100)), Ok(Some(67)));
        assert_eq!(each("3 for 2", Some(120)), Ok(Some(80)));
        assert_eq!(each("buy 1 get 1 free", Some(125)), Ok(Some(63)));
        assert_eq!(each("3 for 2", None), Ok(None));
        assert_eq!(each("3 for 2", Some(0)), Ok(None));
        assert_eq!(each("Clubcard Price £1.50", Some(200)), Ok(Some(150)));
        assert_eq!(each("Nectar price", Some(200)), Ok(Some(200)));
        assert_eq!(each("Was £2.10", Some(140)), Ok(Some(140)));
        assert_eq!(each("Save 70p. Was £2.10", None), Ok(Some(140)));
        assert_eq!(each(TESCO_MEAL_DEAL, Some(330)), Ok(None));
        assert_eq!(parse_offer(TESCO_MEAL_DEAL).map(|o| o.kind()), Ok(None));
        assert_eq!(
            parse_offer("Any 4 for 3 Clubcard Price").map(|o| o.kind()),
            Ok(Some(PromoKind::Multibuy))
        );
        let huge = MultiBuy {
            quantity: 2,
            deal: MultiBuyDeal::PayFor { items: 3 },
            scheme: None,
        };
        assert_eq!(huge.effective_unit_price(Some(i64::MAX)), None);
        assert_eq!(
            WasPrice {
                was_pence: 210,
                now_pence: None
            }
            .saving_pence(),
            None
        );
    }

    fn any_offer() -> impl Strategy<Value = Offer> {
        let price = 1..=MAX_PRICE_PENCE;
        let scheme = prop::option::of(prop::sample::select(vec![
            "clubcard",
            "nectar",
            "my morrisons",
        ]));
        let unit = (
            1..=MAX_PRICE_PENCE * 100,
            prop::sample::select(vec![1u64, 100, 1000]),
        )
            .prop_map(|(centipence, quantity)| PreciseUnitPrice {
                centipence,
                quantity,
                per: BaseUnit::Gram,
            });
        prop_oneof![
            (2..=MAX_MULTIBUY_QTY, price.clone(), scheme.clone())
                .prop_map(|(q, p, s)| total(q, p, s)),
            (2..=MAX_MULTIBUY_QTY)
                .prop_flat_map(move |q| (Just(q), 1..q, scheme.clone()))
                .prop_map(|(q, items, s)| pay_for(q, items, s)),
            (
                prop::sample::select(vec!["clubcard", "nectar", "my morrisons"]),
                prop::option::of(price.clone()),
                prop::option::of(unit)
            )
                .prop_map(|(s, p, u)| loyal(s, p, u)),
            (2..=MAX_PRICE_PENCE)
                .prop_flat_map(|w| (Just(w), prop::option::of(1..w)))
                .prop_map(|(w, now)| was(w, now)),
            (2..=MAX_PRICE_PENCE)
                .prop_flat_map(|r| (Just(r), 1..r))
                .prop_map(|(r, m)| meal(Some(("clubcard", m)), Some(r))),
            price.prop_map(|r| meal(None, Some(r))),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn display_round_trips(o in any_offer()) {
            prop_assert_eq!(parse_offer(&o.to_string()), Ok(o));
        }

        #[test]
        fn save_and_was_give_the_now_price(was_pence in 2..=MAX_PRICE_PENCE, frac in 0.0..1.0f64) {
            // A saving from 1p to one below the was price.
            let save = 1 + ((was_pence - 2) as f64 * frac) as i64;
            let text = format!("Save {}. Was {}", format_pence(save), format_pence(was_pence));
            prop_assert_eq!(parse_offer(&text), Ok(was(was_pence, Some(was_pence - save))), "{}", text);
        }

        #[test]
        fn multibuy_unit_price_is_the_rounded_share(q in 2..=MAX_MULTIBUY_QTY, p in 1..=MAX_PRICE_PENCE) {
            let m = parse_multibuy(&format!("Any {q} for {}", format_pence(p))).expect("reads");
            let each = m.effective_unit_price(None).expect("a total needs no shelf price");
            // Within half a penny of the exact share, and halves go up.
            let twice = 2 * i128::from(each) * i128::from(q);
            prop_assert!((twice - 2 * i128::from(p)).abs() <= i128::from(q));
            prop_assert!(twice - 2 * i128::from(p) > -i128::from(q));
        }

        #[test]
        fn never_panics_on_ascii(s in ".*") {
            let _ = parse_offer(&s);
            let _ = parse_loyalty_price(&s);
            let _ = parse_was_pence(&s);
        }

        #[test]
        fn never_panics_on_unicode(s in any::<String>()) {
            let _ = parse_offer(&s);
        }

        #[test]
        fn never_panics_on_offer_like(
            s in "(add |any |buy |save [0-9£.p]{0,5}\\.? )?[0-9£.,p]{0,8} ?(for|was|now|meal deal)? ?[0-9£.,p]{0,8} ?(clubcard|nectar|regular|meal deal)? ?(price)? ?(\\([0-9£.p]{0,6}/[0-9]{0,3}(g|kg|l|lt)\\))?( - selected [a-z ]{0,10})?"
        ) {
            if let Ok(o) = parse_offer(&s) {
                // A meal deal is never a price of the item.
                let per_item = o.per_item_pence(Some(100));
                prop_assert_eq!(per_item.is_none(), matches!(o, Offer::MealDeal(_)));
            }
            parse_promo_compat(&s);
        }
    }

    /// parse_promo reads every offer a Promo can hold the same way.
    fn parse_promo_compat(s: &str) {
        if let (Ok(o), Ok(p)) = (parse_offer(s), crate::promo::parse_promo(s)) {
            assert_eq!(o.into_promo(), Ok(p), "{s:?}");
        }
    }
}
