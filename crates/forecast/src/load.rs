//! Reading `price_daily` for the forecast: one `COPY (SELECT ...) TO STDOUT`
//! streamed and parsed straight into columns, gaps filled on the way.

use chrono::{DateTime, NaiveDate, Utc};

use super::features::DailySeries;
use shelfwatch_store::PgPool;
use shelfwatch_store::forecasts;

pub use shelfwatch_store::forecasts::Shard;

pub fn epoch_day(t: DateTime<Utc>) -> i32 {
    i32::try_from(t.timestamp().div_euclid(86_400)).unwrap_or(i32::MAX)
}

pub fn day_to_date(day: i32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(chrono::Duration::days(day.into()))
}

/// The last day with data in the shard, as days since 1970-01-01.
pub async fn latest_day(pool: &PgPool, shard: Shard) -> anyhow::Result<Option<i32>> {
    Ok(forecasts::latest_day(pool, shard).await?.map(epoch_day))
}

/// Loads every listing's daily close price and promotion flag up to
/// `until_day`, dense: a day with no observation repeats the day before
/// (marked unobserved). A listing is extended to `until_day` only while its
/// last observation is at most `max_gap` days old; longer silences are
/// left out, and such a listing gets no forecast.
pub async fn load(
    pool: &PgPool,
    shard: Shard,
    until_day: i32,
    max_gap: i32,
) -> anyhow::Result<DailySeries> {
    let mut builder = Builder::new(until_day, max_gap);
    forecasts::read_daily(pool, shard, until_day, |r| {
        builder.push(r.listing_id, r.day, r.close_pence, r.any_promo);
    })
    .await?;
    Ok(builder.finish())
}

/// Turns sorted (listing, day, price, promo) rows into dense columns.
pub struct Builder {
    series: DailySeries,
    until_day: i32,
    max_gap: i32,
    current: Option<i64>,
}

impl Builder {
    pub fn new(until_day: i32, max_gap: i32) -> Self {
        Self {
            series: DailySeries {
                listing_id: Vec::new(),
                day: Vec::new(),
                price: Vec::new(),
                promo: Vec::new(),
                observed: Vec::new(),
            },
            until_day,
            max_gap,
            current: None,
        }
    }

    /// Adds one observed day; rows must arrive sorted by (listing, day).
    pub fn push(&mut self, listing: i64, day: i32, price: f64, promo: bool) {
        if self.current != Some(listing) {
            self.close_listing();
            self.current = Some(listing);
        } else if let (Some(&last_day), Some(&last_price), Some(&last_promo)) = (
            self.series.day.last(),
            self.series.price.last(),
            self.series.promo.last(),
        ) {
            for filled in last_day + 1..day {
                self.emit(listing, filled, last_price, last_promo, false);
            }
        }
        self.emit(listing, day, price, promo, true);
    }

    fn emit(&mut self, listing: i64, day: i32, price: f64, promo: bool, observed: bool) {
        let s = &mut self.series;
        s.listing_id.push(listing);
        s.day.push(day);
        s.price.push(price);
        s.promo.push(promo);
        s.observed.push(observed);
    }

    /// Extends the current listing to `until_day` if it was seen recently.
    fn close_listing(&mut self) {
        let Some(listing) = self.current else {
            return;
        };
        let (Some(&last_day), Some(&last_price), Some(&last_promo)) = (
            self.series.day.last(),
            self.series.price.last(),
            self.series.promo.last(),
        ) else {
            return;
        };
        if self.until_day - last_day <= self.max_gap {
            for filled in last_day + 1..=self.until_day {
                self.emit(listing, filled, last_price, last_promo, false);
            }
        }
    }

    pub fn finish(mut self) -> DailySeries {
        self.close_listing();
        self.series
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_filled_and_recent_listings_extended() {
        let mut b = Builder::new(10, 3);
        b.push(1, 5, 100.0, false);
        b.push(1, 8, 90.0, true); // days 6 and 7 repeat day 5
        b.push(2, 1, 50.0, false); // last seen day 1: 9 days before day 10
        b.push(3, 9, 70.0, false);
        let s = b.finish();
        // Listing 1: 5..=8 plus 9, 10 (seen 2 days before).
        assert_eq!(&s.day[..6], &[5, 6, 7, 8, 9, 10]);
        assert_eq!(&s.price[..6], &[100.0, 100.0, 100.0, 90.0, 90.0, 90.0]);
        assert_eq!(&s.observed[..6], &[true, false, false, true, false, false]);
        assert!(s.promo[4]);
        // Listing 2 vanished: not extended.
        assert_eq!(s.listing_id.iter().filter(|l| **l == 2).count(), 1);
        // Listing 3 extended to day 10.
        assert_eq!(s.listing_id.iter().filter(|l| **l == 3).count(), 2);
    }
}
