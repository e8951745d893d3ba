//! Fault injection: what a retailer's site does wrong, set per retailer at
//! run time, and the robots.txt it serves.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::sim::{mix, unit};

/// One fault for one retailer. Setting a fault replaces an earlier fault of
/// the same kind; faults of different kinds combine.
///
/// JSON (`POST /_control/faults`): `{"retailer": "icebox", "kind":
/// "rate_limit", "seconds": 30}`; the other kinds are `{"kind": "slow",
/// "ms": 800}`, `{"kind": "unavailable", "requests": 3}`, `{"kind":
/// "broken", "share": 0.2}` and `{"kind": "hide", "share": 0.3}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Delay every page and API response by `ms` milliseconds.
    Slow { ms: u64 },
    /// Answer 429 with `Retry-After` (the seconds left) for the next
    /// `seconds` seconds, on documents and the JSON API.
    RateLimit { seconds: u64 },
    /// Answer 503 to the next `requests` requests.
    Unavailable { requests: u32 },
    /// Render this share (0 to 1) of the tiles with malformed data.
    Broken { share: f64 },
    /// Drop this share (0 to 1) of the products from the listing.
    Hide { share: f64 },
    /// Serve a hostile listing page instead of the real one.
    Hostile { page: HostilePage },
}

/// Listing pages built to hurt a scraper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostilePage {
    /// The real page padded to about 24 MB.
    Huge,
    /// The real page inside 50,000 nested elements.
    Deep,
    /// A script that never finishes, before anything renders.
    Spin,
}

impl Fault {
    /// Checks the numbers: shares within 0..=1, times within an hour.
    pub fn check(&self) -> Result<(), String> {
        match *self {
            Fault::Broken { share } | Fault::Hide { share } if !(0.0..=1.0).contains(&share) => {
                Err(format!("share {share} is not between 0 and 1"))
            }
            Fault::Slow { ms } if ms > 3_600_000 => Err(format!("{ms} ms is more than an hour")),
            Fault::RateLimit { seconds } if seconds > 3_600 => {
                Err(format!("{seconds} s is more than an hour"))
            }
            _ => Ok(()),
        }
    }
}

/// How a tile is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Breakage {
    /// The price element is missing.
    MissingPrice,
    /// The price reads "£-1".
    NegativePrice,
    /// The price reads "£1e9".
    ExponentPrice,
    /// The price reads "NaN".
    NanPrice,
    /// The title element is missing.
    MissingTitle,
}

impl Breakage {
    /// The price text the broken tile shows in place of the real one
    /// (`None`: no price element).
    pub fn price_text(self, real: &str) -> Option<String> {
        match self {
            Breakage::MissingPrice => None,
            Breakage::NegativePrice => Some("£-1".to_owned()),
            Breakage::ExponentPrice => Some("£1e9".to_owned()),
            Breakage::NanPrice => Some("NaN".to_owned()),
            Breakage::MissingTitle => Some(real.to_owned()),
        }
    }
}

/// A retailer's faults in force.
#[derive(Debug, Clone, Default)]
pub struct RetailerFaults {
    pub slow_ms: u64,
    pub rate_limited_until: Option<Instant>,
    pub unavailable_left: u32,
    pub broken_share: f64,
    pub hide_share: f64,
    pub hostile: Option<HostilePage>,
}

/// What the fault layer does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 429 with `Retry-After: seconds`.
    RateLimited { seconds: u64 },
    /// 503.
    Unavailable,
    /// Serve it, after the delay.
    Serve { delay: Duration },
}

impl RetailerFaults {
    pub fn set(&mut self, fault: Fault, now: Instant) {
        match fault {
            Fault::Slow { ms } => self.slow_ms = ms,
            Fault::RateLimit { seconds } => {
                self.rate_limited_until = (seconds > 0).then(|| now + Duration::from_secs(seconds));
            }
            Fault::Unavailable { requests } => self.unavailable_left = requests,
            Fault::Broken { share } => self.broken_share = share,
            Fault::Hide { share } => self.hide_share = share,
            Fault::Hostile { page } => self.hostile = Some(page),
        }
    }

    /// Decides what to do with the next request (and counts it against an
    /// `unavailable` budget).
    pub fn admit(&mut self, now: Instant) -> Verdict {
        if let Some(until) = self.rate_limited_until {
            if until > now {
                let left = until - now;
                let seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
                return Verdict::RateLimited { seconds };
            }
            self.rate_limited_until = None;
        }
        if self.unavailable_left > 0 {
            self.unavailable_left -= 1;
            return Verdict::Unavailable;
        }
        Verdict::Serve {
            delay: Duration::from_millis(self.slow_ms),
        }
    }

    /// The faults still in force, as the JSON `GET /_control/faults` shows.
    pub fn active(&self, now: Instant) -> Vec<Fault> {
        let mut out = Vec::new();
        if self.slow_ms > 0 {
            out.push(Fault::Slow { ms: self.slow_ms });
        }
        if let Some(until) = self.rate_limited_until.filter(|u| *u > now) {
            out.push(Fault::RateLimit {
                seconds: (until - now).as_secs_f64().ceil() as u64,
            });
        }
        if self.unavailable_left > 0 {
            out.push(Fault::Unavailable {
                requests: self.unavailable_left,
            });
        }
        if self.broken_share > 0.0 {
            out.push(Fault::Broken {
                share: self.broken_share,
            });
        }
        if self.hide_share > 0.0 {
            out.push(Fault::Hide {
                share: self.hide_share,
            });
        }
        if let Some(page) = self.hostile {
            out.push(Fault::Hostile { page });
        }
        out
    }

    /// Whether the listing with this key is dropped from the listing pages.
    pub fn hides(&self, seed: u64, listing: u64) -> bool {
        self.hide_share > 0.0 && unit(mix(&[seed, listing, 11])) < self.hide_share
    }

    /// How the listing's tile is broken, if it is.
    pub fn breakage(&self, seed: u64, listing: u64) -> Option<Breakage> {
        if self.broken_share <= 0.0 {
            return None;
        }
        let h = mix(&[seed, listing, 12]);
        if unit(h) >= self.broken_share {
            return None;
        }
        Some(match mix(&[h]) % 5 {
            0 => Breakage::MissingPrice,
            1 => Breakage::NegativePrice,
            2 => Breakage::ExponentPrice,
            3 => Breakage::NanPrice,
            _ => Breakage::MissingTitle,
        })
    }
}

/// What `/robots.txt` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Robots {
    /// The default rules ([`DEFAULT_ROBOTS`]).
    Default,
    /// These rules instead.
    Text(String),
    /// This status (e.g. 503) with no rules.
    Status(u16),
}

/// Shops open, checkout and basket closed, the control endpoints closed.
pub const DEFAULT_ROBOTS: &str = "\
# Demo store: the shop pages may be fetched; checkout and baskets may not.
User-agent: *
Allow: /
Disallow: /*/checkout
Disallow: /*/basket
Disallow: /_control/
Disallow: /_truth
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_counts_down_and_unavailable_is_a_budget() {
        let t0 = Instant::now();
        let mut f = RetailerFaults::default();
        f.set(Fault::RateLimit { seconds: 3 }, t0);
        assert_eq!(f.admit(t0), Verdict::RateLimited { seconds: 3 });
        assert_eq!(
            f.admit(t0 + Duration::from_millis(1500)),
            Verdict::RateLimited { seconds: 2 }
        );
        assert!(matches!(
            f.admit(t0 + Duration::from_secs(3)),
            Verdict::Serve { .. }
        ));
        f.set(Fault::Unavailable { requests: 2 }, t0);
        assert_eq!(f.admit(t0), Verdict::Unavailable);
        assert_eq!(f.admit(t0), Verdict::Unavailable);
        assert_eq!(
            f.admit(t0),
            Verdict::Serve {
                delay: Duration::ZERO
            }
        );
    }

    #[test]
    fn fault_json_and_checks() {
        let f: Fault = serde_json::from_str(r#"{"kind":"broken","share":0.5}"#).expect("json");
        assert_eq!(f, Fault::Broken { share: 0.5 });
        assert!(Fault::Hide { share: 1.5 }.check().is_err());
        assert!(serde_json::from_str::<Fault>(r#"{"kind":"slow","ms":1,"x":2}"#).is_err());
    }

    #[test]
    fn shares_pick_about_that_share() {
        let mut f = RetailerFaults::default();
        f.set(Fault::Broken { share: 0.3 }, Instant::now());
        let broken = (0..1000).filter(|k| f.breakage(42, *k).is_some()).count();
        assert!((200..400).contains(&broken), "{broken}");
    }
}
