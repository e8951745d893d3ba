//! Shelf wording: how each retailer writes a day's prices on a tile.
//!
//! Every text produced here reads back with the parsers in
//! [`crate::domain`]; the tests check that for every listing over months of
//! simulated days.

use serde::Serialize;

use super::catalog::{Listing, Measure, Retailer};
use super::sim::{ActivePromo, DayState};

/// What one tile shows, as text and as the numbers behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shelf {
    /// The current price (the now price during a price cut).
    pub price_pence: i64,
    pub price_text: String,
    /// The regular price during a price cut.
    pub was_price_pence: Option<i64>,
    /// The text of the separate "was" element, at retailers that print one.
    pub was_text: Option<String>,
    /// The text of the promotion element, if any.
    pub promo_text: Option<String>,
    /// "price_cut", "multibuy" or "loyalty".
    pub promo_kind: Option<&'static str>,
    /// What a loyalty-card holder pays, during a loyalty offer.
    pub loyalty_price_pence: Option<i64>,
    pub unit_price_text: String,
    pub pack_text: String,
    pub in_stock: bool,
}

/// "£1.25" (also "£0.85").
pub fn pounds(pence: i64) -> String {
    format!("£{}.{:02}", pence / 100, pence % 100)
}

/// "85p" below a pound, else "£1.25".
fn pence_or_pounds(pence: i64) -> String {
    if pence < 100 {
        format!("{pence}p")
    } else {
        pounds(pence)
    }
}

/// "£5" for whole pounds, else "£5.50".
fn short_pounds(pence: i64) -> String {
    if pence % 100 == 0 {
        format!("£{}", pence / 100)
    } else {
        pounds(pence)
    }
}

/// The price text of a tile at this retailer.
pub fn price_text(r: Retailer, pence: i64) -> String {
    match r {
        Retailer::Aldwick | Retailer::Morrow => pence_or_pounds(pence),
        Retailer::Sainsway | Retailer::Icebox => pounds(pence),
    }
}

/// Integer division rounded half up (inputs are positive).
fn div_round(n: i64, d: i64) -> i64 {
    (2 * n + d) / (2 * d)
}

/// The unit price as the retailer prints it, computed from the shelf price.
pub fn unit_price_text(r: Retailer, listing: &Listing, shelf_pence: i64) -> String {
    let pack = listing.product.pack;
    let total = i64::from(pack.total());
    let per_kg = || div_round(shelf_pence * 1000, total).max(1);
    let each = || div_round(shelf_pence, total).max(1);
    match (r, pack.measure) {
        (Retailer::Sainsway, Measure::Grams) => format!("{} / kg", pounds(per_kg())),
        (Retailer::Sainsway, Measure::Millilitres) => format!("{} / ltr", pounds(per_kg())),
        (Retailer::Sainsway, Measure::Items) => format!("{} / ea", pounds(each())),
        (Retailer::Aldwick, Measure::Grams) => format!("({}/kg)", pounds(per_kg())),
        (Retailer::Aldwick, Measure::Millilitres) => format!("({}/L)", pounds(per_kg())),
        (Retailer::Aldwick, Measure::Items) => format!("({} each)", pence_or_pounds(each())),
        (Retailer::Icebox, Measure::Grams) => {
            let per_100g = div_round(shelf_pence * 100, total);
            if per_100g >= 1 {
                format!("{} per 100g", pounds(per_100g))
            } else {
                format!("{} per kg", pounds(per_kg()))
            }
        }
        (Retailer::Icebox, Measure::Millilitres) => format!("{} per litre", pounds(per_kg())),
        (Retailer::Icebox, Measure::Items) => format!("{} each", pence_or_pounds(each())),
        (Retailer::Morrow, Measure::Grams) => format!("{} per kg", pounds(per_kg())),
        (Retailer::Morrow, Measure::Millilitres) => format!("{} per litre", pounds(per_kg())),
        (Retailer::Morrow, Measure::Items) => format!("{} each", pounds(each())),
    }
}

/// The tile of `listing` for a simulated day.
pub fn shelf(listing: &Listing, state: &DayState) -> Shelf {
    let r = listing.retailer;
    let price = state.shelf_price();
    let mut s = Shelf {
        price_pence: price,
        price_text: price_text(r, price),
        was_price_pence: None,
        was_text: None,
        promo_text: None,
        promo_kind: None,
        loyalty_price_pence: None,
        unit_price_text: unit_price_text(r, listing, price),
        pack_text: listing.pack_text.clone(),
        in_stock: state.in_stock,
    };
    let Some(promo) = state.promo else {
        return s;
    };
    match promo {
        ActivePromo::Cut { now } => {
            let was = state.regular;
            s.was_price_pence = Some(was);
            s.promo_kind = Some("price_cut");
            match r {
                Retailer::Sainsway => {
                    s.promo_text = Some(format!("Was {} Now {}", pounds(was), pounds(now)));
                }
                Retailer::Aldwick => s.was_text = Some(pence_or_pounds(was)),
                Retailer::Icebox => s.was_text = Some(pounds(was)),
                Retailer::Morrow => {
                    s.was_text = Some(pounds(was));
                    s.promo_text = Some(format!(
                        "Was {} Now {}",
                        pence_or_pounds(was),
                        pence_or_pounds(now)
                    ));
                }
            }
        }
        ActivePromo::MultiBuy { qty, total } => {
            s.promo_kind = Some("multibuy");
            s.promo_text = Some(match r {
                Retailer::Sainsway => format!("Any {qty} for {}", pounds(total)),
                Retailer::Icebox => format!("{qty} for {}", short_pounds(total)),
                Retailer::Aldwick | Retailer::Morrow => {
                    format!("{qty} for {}", pence_or_pounds(total))
                }
            });
        }
        ActivePromo::ThreeForTwo => {
            s.promo_kind = Some("multibuy");
            s.promo_text = Some("3 for 2".to_owned());
        }
        ActivePromo::Loyalty { price: loyalty } => {
            s.promo_kind = Some("loyalty");
            s.loyalty_price_pence = Some(loyalty);
            s.promo_text = Some(match r {
                Retailer::Morrow => format!("More Card Price {}", pence_or_pounds(loyalty)),
                _ => format!("Nectar Price {}", pounds(loyalty)),
            });
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_wordings() {
        assert_eq!(pounds(85), "£0.85");
        assert_eq!(pounds(1250), "£12.50");
        assert_eq!(pence_or_pounds(85), "85p");
        assert_eq!(pence_or_pounds(100), "£1.00");
        assert_eq!(short_pounds(500), "£5");
        assert_eq!(short_pounds(550), "£5.50");
        assert_eq!(div_round(5, 2), 3);
        assert_eq!(div_round(4, 3), 1);
    }
}
