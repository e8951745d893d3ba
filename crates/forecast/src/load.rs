//! Reading `price_daily` for the forecast: `COPY (SELECT ...) TO STDOUT`
//! streamed and parsed straight into columns, gaps filled on the way; and
//! which listings a run reads together (its training sample, its chunks).

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};

use super::features::DailySeries;
use shelfwatch_store::forecasts;
use shelfwatch_store::{PgConnection, PgPool};

pub use shelfwatch_store::forecasts::{Listings, Shard};

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
    let mut conn = pool
        .acquire()
        .await
        .context("connecting for the forecast read")?;
    load_on(&mut conn, Listings::Shard(shard), until_day, max_gap).await
}

/// [`load`] for `listings`, over `conn`.
pub async fn load_on(
    conn: &mut PgConnection,
    listings: Listings<'_>,
    until_day: i32,
    max_gap: i32,
) -> anyhow::Result<DailySeries> {
    let mut builder = Builder::new(until_day, max_gap);
    forecasts::read_daily(conn, listings, until_day, |r| {
        builder.push(r.listing_id, r.day, r.close_pence, r.any_promo);
    })
    .await?;
    Ok(builder.finish())
}

/// The listings the confidence models learn from: at most `cap` of `ids`,
/// those with the smallest [`sample_key`], ascending. The choice depends
/// on the ids alone, never on a shard, so every shard of a split trains on
/// the same listings (and gets the same models) as a run over everything.
/// With no more than `cap` ids, it is all of them.
pub fn training_sample(ids: &[i64], cap: usize) -> Vec<i64> {
    let mut sample = ids.to_vec();
    if sample.len() > cap {
        if cap == 0 {
            return Vec::new();
        }
        sample.select_nth_unstable_by_key(cap - 1, |id| (sample_key(*id), *id));
        sample.truncate(cap);
    }
    sample.sort_unstable();
    sample.dedup();
    sample
}

/// A fixed pseudo-random key of a listing id (the SplitMix64 finaliser):
/// the same on every machine and in every release, unlike std's hasher.
pub fn sample_key(id: i64) -> u64 {
    let mut z = (id as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The shard's listings among `ids`.
pub fn in_shard(ids: &[i64], shard: Shard) -> Vec<i64> {
    let (count, index) = (i64::from(shard.count), i64::from(shard.index));
    ids.iter()
        .copied()
        .filter(|id| id.rem_euclid(count) == index)
        .collect()
}

/// `ids` (one shard's, ascending) in chunks of at most `size` listings.
/// Over everything a chunk is one key range of `price_daily`'s primary key;
/// within a shard, a list of ids (a range would read the other shards'
/// rows too, only to drop them).
pub fn chunks(ids: &[i64], shard: Shard, size: usize) -> impl Iterator<Item = Listings<'_>> {
    ids.chunks(size.max(1)).filter_map(move |c| {
        if shard != Shard::ALL {
            return Some(Listings::Ids(c));
        }
        Some(Listings::Range {
            shard,
            first: *c.first()?,
            last: *c.last()?,
        })
    })
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
    fn the_training_sample_is_capped_and_the_same_from_any_order() {
        let ids: Vec<i64> = (1..=1000).collect();
        let sample = training_sample(&ids, 100);
        assert_eq!(sample.len(), 100);
        assert!(sample.windows(2).all(|w| w[0] < w[1]));
        // Spread over the ids, not the first hundred.
        assert!(sample.iter().any(|id| *id > 500));
        let mut reversed = ids.clone();
        reversed.reverse();
        assert_eq!(training_sample(&reversed, 100), sample);
        // A smaller catalogue is sampled whole.
        assert_eq!(training_sample(&ids[..50], 100), ids[..50].to_vec());
        assert!(training_sample(&ids, 0).is_empty());
    }

    #[test]
    fn chunks_cover_the_shard() {
        let ids: Vec<i64> = (1..=10).collect();
        let ranges: Vec<(i64, i64)> = chunks(&ids, Shard::ALL, 4)
            .map(|c| match c {
                Listings::Range { first, last, .. } => (first, last),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ranges, [(1, 4), (5, 8), (9, 10)]);
        let shard = Shard { index: 1, count: 3 };
        let mine = in_shard(&ids, shard);
        assert_eq!(mine, [1, 4, 7, 10]);
        let lists: Vec<Vec<i64>> = chunks(&mine, shard, 3)
            .map(|c| match c {
                Listings::Ids(ids) => ids.to_vec(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(lists, [vec![1, 4, 7], vec![10]]);
        assert_eq!(chunks(&[], Shard::ALL, 100).count(), 0);
    }

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
