//! The price that counts: what one item costs a shopper who takes the
//! shelf's offer, and what taking it needs. Recommendations, watches and
//! the product page all read an offer's price through [`effective_price`],
//! so they never disagree about which price an offer is at.

use std::fmt;

use crate::money::format_pence;
use crate::offer::{Offer, parse_offer};

/// What an effective price below the shelf price takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Buying `quantity` items, with a loyalty card if `scheme` is set.
    Buy {
        quantity: u32,
        scheme: Option<String>,
    },
    /// A loyalty card of `scheme` ("clubcard", "nectar").
    Card { scheme: String },
}

impl fmt::Display for Condition {
    /// "when you buy 2", "with a Clubcard", "when you buy 2 with a Clubcard".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::Buy { quantity, scheme } => {
                write!(f, "when you buy {quantity}")?;
                if let Some(s) = scheme {
                    write!(f, " {}", with_card(s))?;
                }
                Ok(())
            }
            Condition::Card { scheme } => f.write_str(&with_card(scheme)),
        }
    }
}

/// "with a Clubcard", "with a Nectar card", "with a My Morrisons card".
fn with_card(scheme: &str) -> String {
    let name: Vec<String> = scheme
        .split_whitespace()
        .map(|w| {
            let mut c = w.chars();
            c.next().map_or_else(String::new, |first| {
                first
                    .to_uppercase()
                    .chain(c.flat_map(char::to_lowercase))
                    .collect()
            })
        })
        .collect();
    let name = name.join(" ");
    if name.to_lowercase().ends_with("card") {
        format!("with a {name}")
    } else {
        format!("with a {name} card")
    }
}

/// An offer's price per item and what it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectivePrice {
    /// The shelf price as shown.
    pub shelf_pence: i64,
    /// What one item costs: below the shelf price only when `condition` says
    /// what that takes.
    pub pence: i64,
    pub condition: Option<Condition>,
}

impl EffectivePrice {
    /// No offer: the shelf price.
    pub fn shelf(shelf_pence: i64) -> Self {
        Self {
            shelf_pence,
            pence: shelf_pence,
            condition: None,
        }
    }

    /// "£0.75 each when you buy 2", "£1.00 with a Clubcard"; None when the
    /// price is the shelf price.
    pub fn describe(&self) -> Option<String> {
        self.describe_with(format_pence)
    }

    /// [`EffectivePrice::describe`] with amounts written by `money`
    /// (another currency's format).
    pub fn describe_with(&self, money: impl Fn(i64) -> String) -> Option<String> {
        let condition = self.condition.as_ref()?;
        let each = match condition {
            Condition::Buy { .. } => " each",
            Condition::Card { .. } => "",
        };
        Some(format!("{}{each} {condition}", money(self.pence)))
    }
}

/// What one item costs on a shelf at `shelf_pence` with the offer text
/// `offer_text`, given `promo_pence`, the price after the promotion as it
/// was stored when the observation came in.
///
/// A multibuy (per item, "2 for £1.50" -> 75) or a loyalty price counts,
/// and only when it is below the shelf price and its wording says what it
/// takes. A was-price is the shelf price itself; a percentage off or a
/// clearance tag states no price of its own; a meal deal is no price of
/// the item: each of those leaves the shelf price. Never below 1.
pub fn effective_price(
    shelf_pence: i64,
    offer_text: Option<&str>,
    promo_pence: i64,
) -> EffectivePrice {
    let Some(offer) = offer_text.and_then(|t| parse_offer(t).ok()) else {
        return EffectivePrice::shelf(shelf_pence);
    };
    let condition = match &offer {
        Offer::MultiBuy(m) => Condition::Buy {
            quantity: m.quantity,
            scheme: m.scheme.clone(),
        },
        Offer::Loyalty(l) => Condition::Card {
            scheme: l.scheme.clone(),
        },
        Offer::WasPrice(_) | Offer::MealDeal(_) => return EffectivePrice::shelf(shelf_pence),
    };
    // The wording's own price where it states one, else the stored one
    // (a loyalty tag that names no price: the stored price came from the
    // loyalty field beside it).
    let stated = match &offer {
        Offer::Loyalty(l) if l.price_pence.is_none() => None,
        _ => offer.per_item_pence(Some(shelf_pence)),
    };
    let pence = stated.unwrap_or(promo_pence).max(1);
    if pence >= shelf_pence {
        return EffectivePrice::shelf(shelf_pence);
    }
    EffectivePrice {
        shelf_pence,
        pence,
        condition: Some(condition),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eff(shelf: i64, text: &str, stored: i64) -> (i64, Option<String>) {
        let e = effective_price(shelf, Some(text), stored);
        (e.pence, e.describe())
    }

    #[test]
    fn multibuys_and_loyalty_prices_count_and_say_what_they_take() {
        assert_eq!(
            eff(120, "2 for £1.50", 75),
            (75, Some("£0.75 each when you buy 2".into()))
        );
        assert_eq!(
            eff(120, "3 for 2", 80),
            (80, Some("£0.80 each when you buy 3".into()))
        );
        assert_eq!(
            eff(150, "Clubcard Price £1.00", 100),
            (100, Some("£1.00 with a Clubcard".into()))
        );
        assert_eq!(
            eff(150, "Nectar Price £1.25", 125).1.as_deref(),
            Some("£1.25 with a Nectar card")
        );
        // A members' multibuy a promotion cannot hold: the stored price is
        // the shelf price, the wording still counts.
        assert_eq!(
            eff(300, "Any 2 for £5.50 Clubcard Price", 300),
            (
                275,
                Some("£2.75 each when you buy 2 with a Clubcard".into())
            )
        );
        // A loyalty tag naming no price: the stored loyalty price.
        assert_eq!(eff(150, "Clubcard Price", 110).0, 110);
    }

    #[test]
    fn other_tags_leave_the_shelf_price() {
        // A was-price is the shelf price; a percentage states no price.
        assert_eq!(eff(130, "Was £1.55 Now £1.30", 130), (130, None));
        assert_eq!(eff(300, "25% off", 225), (300, None));
        assert_eq!(eff(300, "Reduced to clear", 300), (300, None));
        // A multibuy dearer than the shelf price is no saving.
        assert_eq!(eff(250, "2 for £6", 250), (250, None));
        // No offer, or text that is none.
        assert_eq!(effective_price(99, None, 50), EffectivePrice::shelf(99));
        assert_eq!(eff(99, "Buy some", 50), (99, None));
    }

    use proptest::prelude::*;

    use crate::money::MAX_PRICE_PENCE;

    /// Offer wordings of every kind, with prices and quantities drawn.
    fn any_offer_text() -> impl Strategy<Value = String> {
        let price = 1..=MAX_PRICE_PENCE;
        prop_oneof![
            (2..=10u32, price.clone()).prop_map(|(q, p)| format!("{q} for {}", format_pence(p))),
            (2..=10u32)
                .prop_flat_map(|q| (Just(q), 1..q))
                .prop_map(|(q, m)| format!("{q} for {m}")),
            (2..=10u32, price.clone())
                .prop_map(|(q, p)| format!("Any {q} for {} Clubcard Price", format_pence(p))),
            price
                .clone()
                .prop_map(|p| format!("Clubcard Price {}", format_pence(p))),
            price
                .clone()
                .prop_map(|p| format!("Was {}", format_pence(p))),
            (1..=99u8).prop_map(|p| format!("{p}% off")),
            Just("Reduced to clear".to_owned()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn the_price_that_counts_is_never_above_the_shelf_and_says_what_it_takes(
            shelf in 1..=MAX_PRICE_PENCE,
            text in any_offer_text(),
            stored in 1..=MAX_PRICE_PENCE,
        ) {
            let e = effective_price(shelf, Some(&text), stored.min(shelf));
            prop_assert!(e.pence >= 1 && e.pence <= shelf, "{text}: {e:?}");
            prop_assert_eq!(e.shelf_pence, shelf);
            // Below the shelf price exactly when a condition says why.
            prop_assert_eq!(e.pence < shelf, e.condition.is_some(), "{}: {:?}", text, e);
            prop_assert_eq!(e.describe().is_some(), e.condition.is_some());
        }
    }
}
