//! What the shelf shows today, beside the history: the was-price, the
//! offer and what it takes, and stock. The history (`price_daily`) holds
//! the shelf price; a recommendation is about what a shopper pays, so it
//! reads the listing's latest observation too.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use shelfwatch_store::PgConnection;

use shelfwatch_domain::effective::effective_price;
use shelfwatch_domain::offer::{Offer, parse_offer};

/// One listing's latest observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shelf {
    pub price_pence: i64,
    /// The struck-through price, when shown and above the price.
    pub was_pence: Option<i64>,
    /// What one item costs after the offer
    /// ([`shelfwatch_domain::effective::effective_price`], the price
    /// watches fire on).
    pub effective_pence: i64,
    /// What the effective price takes ("when you buy 2", "with a
    /// Clubcard"), when it is below the shelf price.
    pub condition: Option<String>,
    pub in_stock: bool,
}

impl Shelf {
    /// A shelf with the price only: no offer, in stock.
    pub fn plain(price_pence: i64) -> Self {
        Self {
            price_pence,
            was_pence: None,
            effective_pence: price_pence,
            condition: None,
            in_stock: true,
        }
    }

    /// Reads the stored fields of an observation.
    pub fn from_observation(
        price_pence: i64,
        was_pence: Option<i64>,
        promo_text: Option<&str>,
        effective_pence: i64,
        in_stock: bool,
    ) -> Self {
        let offer = promo_text.and_then(|t| parse_offer(t).ok());
        let shown = match &offer {
            Some(Offer::WasPrice(w)) => Some(w.was_pence),
            _ => None,
        };
        let was = was_pence.or(shown).filter(|w| *w > price_pence);
        // The price watches and the product page count too.
        let effective = effective_price(price_pence, promo_text, effective_pence);
        Self {
            price_pence,
            was_pence: was,
            effective_pence: effective.pence,
            condition: effective.condition.map(|c| c.to_string()),
            in_stock,
        }
    }
}

/// The latest observation of each listing before `until`, read over `conn`.
pub async fn latest(
    conn: &mut PgConnection,
    listing_ids: &[i64],
    until: DateTime<Utc>,
) -> anyhow::Result<HashMap<i64, Shelf>> {
    let rows = shelfwatch_store::forecasts::latest_observations(conn, listing_ids, until).await?;
    Ok(rows
        .into_iter()
        .map(|o| {
            let shelf = Shelf::from_observation(
                o.price_pence,
                o.was_price_pence,
                o.promo_text.as_deref(),
                o.effective_price_pence,
                o.in_stock,
            );
            (o.listing_id, shelf)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_say_what_they_take() {
        let s = Shelf::from_observation(120, None, Some("2 for £1.50"), 75, true);
        assert_eq!(s.effective_pence, 75);
        assert_eq!(s.condition.as_deref(), Some("when you buy 2"));
        let s = Shelf::from_observation(150, None, Some("Clubcard Price £1.00"), 100, true);
        assert_eq!(
            (s.effective_pence, s.condition.as_deref()),
            (100, Some("with a Clubcard"))
        );
        let s = Shelf::from_observation(150, None, Some("Nectar Price £1.25"), 125, true);
        assert_eq!(s.condition.as_deref(), Some("with a Nectar card"));
        let s = Shelf::from_observation(130, None, Some("Was £1.55 Now £1.30"), 130, false);
        assert_eq!(
            (s.was_pence, s.condition, s.in_stock),
            (Some(155), None, false)
        );
        // A was-price field below the price is no was-price.
        assert_eq!(
            Shelf::from_observation(130, Some(120), None, 130, true).was_pence,
            None
        );
    }
}
