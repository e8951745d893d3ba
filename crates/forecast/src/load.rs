//! Reading `price_daily` for the forecast: one `COPY (SELECT ...) TO STDOUT`
//! streamed and parsed straight into columns, gaps filled on the way.

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, Utc};
use futures_util::TryStreamExt;
use sqlx::PgPool;

use super::features::DailySeries;

/// Which listings a run covers: those whose id is `index` modulo `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Reads `i/n` with 0 <= i < n.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let (i, n) = text
            .split_once('/')
            .with_context(|| format!("shard {text:?} is not of the form i/n (e.g. 0/4)"))?;
        let index: u32 = i
            .trim()
            .parse()
            .with_context(|| format!("shard {text:?}: {i:?} is not a number"))?;
        let count: u32 = n
            .trim()
            .parse()
            .with_context(|| format!("shard {text:?}: {n:?} is not a number"))?;
        if count == 0 || index >= count {
            bail!("shard {text:?}: need 0 <= i < n");
        }
        Ok(Self { index, count })
    }

    pub fn sql_filter(&self, column: &str) -> String {
        if self.count == 1 {
            "TRUE".to_owned()
        } else {
            format!("{column} % {} = {}", self.count, self.index)
        }
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

pub fn epoch_day(t: DateTime<Utc>) -> i32 {
    i32::try_from(t.timestamp().div_euclid(86_400)).unwrap_or(i32::MAX)
}

pub fn day_to_date(day: i32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(chrono::Duration::days(day.into()))
}

/// The last day with data in the shard, as days since 1970-01-01.
pub async fn latest_day(pool: &PgPool, shard: Shard) -> anyhow::Result<Option<i32>> {
    let sql = format!(
        "SELECT max(day) FROM price_daily WHERE {}",
        shard.sql_filter("listing_id")
    );
    let latest: Option<DateTime<Utc>> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(pool)
        .await
        .context("finding the latest day of price_daily")?;
    Ok(latest.map(epoch_day))
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
    let sql = format!(
        "COPY (SELECT listing_id, (extract(epoch FROM day) / 86400)::int, close_pence, any_promo \
         FROM price_daily WHERE day < to_timestamp({}) AND {} ORDER BY listing_id, day) \
         TO STDOUT",
        (i64::from(until_day) + 1) * 86_400,
        shard.sql_filter("listing_id")
    );
    let mut conn = pool
        .acquire()
        .await
        .context("connecting for the forecast read")?;
    let mut stream = conn
        .copy_out_raw(&sql)
        .await
        .context("reading price_daily")?;
    let mut builder = Builder::new(until_day, max_gap);
    let mut carry: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.try_next().await.context("reading price_daily")? {
        carry.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(end) = carry[start..].iter().position(|b| *b == b'\n') {
            builder.line(&carry[start..start + end])?;
            start += end + 1;
        }
        carry.drain(..start);
    }
    if !carry.is_empty() {
        builder.line(&carry)?;
    }
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

    fn line(&mut self, line: &[u8]) -> anyhow::Result<()> {
        let text = std::str::from_utf8(line).context("price_daily COPY output is not UTF-8")?;
        let mut f = text.split('\t');
        let (Some(l), Some(d), Some(p), Some(pr)) = (f.next(), f.next(), f.next(), f.next()) else {
            bail!("unexpected price_daily COPY line {text:?}");
        };
        let listing: i64 = l.parse().context("listing id")?;
        let day: i32 = d.parse().context("day")?;
        let price: f64 = p.parse().context("close price")?;
        self.push(listing, day, price, pr == "t");
        Ok(())
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

    #[test]
    fn shards_parse_and_filter() {
        assert_eq!(Shard::parse("1/4").unwrap(), Shard { index: 1, count: 4 });
        assert!(Shard::parse("4/4").is_err());
        assert!(Shard::parse("x").is_err());
        assert_eq!(Shard::ALL.sql_filter("l"), "TRUE");
        assert_eq!(Shard::parse("2/3").unwrap().sql_filter("l"), "l % 3 = 2");
    }
}
