//! Being a good guest: a paced rate limit with jitter, exponential backoff
//! under a retry budget, and a circuit breaker per retailer.

use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use prometheus::IntGauge;

use super::config::Politeness;
use super::metrics::METRICS;

/// Spaces page loads at least `interval` apart, plus a random jitter.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    jitter: f64,
    next: Option<Instant>,
}

impl Pacer {
    pub fn new(p: &Politeness, crawl_delay: Option<f64>) -> Self {
        let mut interval = p.interval();
        if let Some(d) = crawl_delay {
            interval = interval.max(Duration::from_secs_f64(d.min(600.0)));
        }
        Self {
            interval,
            jitter: p.jitter,
            next: None,
        }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Waits until the next page load is allowed, then books the one after.
    pub async fn wait(&mut self) {
        if let Some(next) = self.next {
            tokio::time::sleep_until(next).await;
        }
        let extra = if self.jitter > 0.0 {
            rand::rng().random_range(0.0..=self.jitter)
        } else {
            0.0
        };
        self.next = Some(Instant::now() + self.interval.mul_f64(1.0 + extra));
    }

    /// Pushes the next load out to at least `at` (a `Retry-After`).
    pub fn defer_until(&mut self, at: Instant) {
        self.next = Some(self.next.map_or(at, |n| n.max(at)));
    }
}

/// Exponential backoff with full jitter: attempt `n` (0-based) waits a
/// random time up to `base * 2^n`, capped.
pub fn backoff(p: &Politeness, attempt: u32) -> Duration {
    let cap = p.max_backoff_ms.max(1);
    let exp = p
        .backoff_ms
        .saturating_mul(1u64 << attempt.min(20))
        .min(cap);
    let ms = rand::rng().random_range(exp / 2..=exp.max(1));
    Duration::from_millis(ms)
}

/// Retries left in one run for one retailer.
#[derive(Debug)]
pub struct RetryBudget {
    left: u32,
}

impl RetryBudget {
    pub fn new(p: &Politeness) -> Self {
        Self {
            left: p.retry_budget,
        }
    }

    /// Takes one retry; false when the budget is spent.
    pub fn take(&mut self) -> bool {
        if self.left == 0 {
            return false;
        }
        self.left -= 1;
        true
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    /// Failing: no page loads until the cooldown ends.
    Open {
        until: Instant,
    },
    /// Cooldown over: one trial page decides.
    HalfOpen,
}

impl BreakerState {
    /// The value `shelfwatch_scrape_circuit_state` shows: 0 closed, 1
    /// half-open, 2 open.
    pub fn code(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open { .. } => 2,
        }
    }
}

/// Opens after `threshold` consecutive failed pages; after the cooldown one
/// trial page closes it again or re-opens it.
#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    cooldown: Duration,
    failures: u32,
    state: BreakerState,
    /// Where every transition is shown, if anywhere.
    gauge: Option<IntGauge>,
}

impl CircuitBreaker {
    pub fn new(p: &Politeness) -> Self {
        Self {
            threshold: p.breaker_threshold.max(1),
            cooldown: Duration::from_secs(p.breaker_cooldown_secs),
            failures: 0,
            state: BreakerState::Closed,
            gauge: None,
        }
    }

    /// A closed breaker whose every transition sets the retailer's
    /// `shelfwatch_scrape_circuit_state`.
    pub fn for_retailer(p: &Politeness, retailer: &str) -> Self {
        let mut breaker = Self::new(p);
        breaker.gauge = Some(METRICS.circuit_state.with_label_values(&[retailer]));
        breaker.set(BreakerState::Closed);
        breaker
    }

    fn set(&mut self, state: BreakerState) {
        self.state = state;
        if let Some(gauge) = &self.gauge {
            gauge.set(state.code());
        }
    }

    pub fn state(&mut self) -> BreakerState {
        if let BreakerState::Open { until } = self.state
            && Instant::now() >= until
        {
            self.set(BreakerState::HalfOpen);
        }
        self.state
    }

    /// Whether a page may be tried now.
    pub fn allows(&mut self) -> bool {
        !matches!(self.state(), BreakerState::Open { .. })
    }

    pub fn success(&mut self) {
        self.failures = 0;
        self.set(BreakerState::Closed);
    }

    /// Records a failed page; true when this opened the breaker.
    pub fn failure(&mut self) -> bool {
        self.failures += 1;
        let open =
            matches!(self.state(), BreakerState::HalfOpen) || self.failures >= self.threshold;
        if open {
            self.set(BreakerState::Open {
                until: Instant::now() + self.cooldown,
            });
        }
        open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn politeness() -> Politeness {
        Politeness {
            requests_per_minute: 600,
            jitter: 0.5,
            backoff_ms: 100,
            max_backoff_ms: 1000,
            breaker_threshold: 3,
            breaker_cooldown_secs: 60,
            retry_budget: 2,
            ..Politeness::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_pacer_spaces_loads_by_the_interval_plus_jitter() {
        let p = politeness();
        let mut pacer = Pacer::new(&p, None);
        assert_eq!(pacer.interval(), Duration::from_millis(100));
        let start = Instant::now();
        pacer.wait().await;
        assert_eq!(Instant::now(), start, "the first load does not wait");
        for _ in 0..10 {
            let before = Instant::now();
            pacer.wait().await;
            let gap = Instant::now() - before;
            assert!(gap >= Duration::from_millis(100), "{gap:?}");
            assert!(gap <= Duration::from_millis(150), "{gap:?}");
        }
        let later = Instant::now() + Duration::from_secs(5);
        pacer.defer_until(later);
        pacer.wait().await;
        assert!(Instant::now() >= later);
    }

    #[test]
    fn crawl_delay_slows_the_pacer_but_never_speeds_it() {
        let p = politeness();
        assert_eq!(Pacer::new(&p, Some(2.0)).interval(), Duration::from_secs(2));
        assert_eq!(
            Pacer::new(&p, Some(0.01)).interval(),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = politeness();
        for attempt in 0..8 {
            let d = backoff(&p, attempt).as_millis() as u64;
            let exp = (100u64 << attempt).min(1000);
            assert!(d >= exp / 2 && d <= exp, "attempt {attempt}: {d} ms");
        }
    }

    #[test]
    fn the_retry_budget_runs_out() {
        let mut b = RetryBudget::new(&politeness());
        assert!(b.take());
        assert!(b.take());
        assert!(!b.take());
    }

    #[tokio::test(start_paused = true)]
    async fn the_breaker_opens_cools_down_and_half_opens() {
        let mut b = CircuitBreaker::new(&politeness());
        assert!(!b.failure());
        assert!(!b.failure());
        assert!(b.failure(), "third consecutive failure opens");
        assert!(!b.allows());
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.allows());
        assert!(b.failure(), "a failed trial re-opens at once");
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(b.allows());
        b.success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(!b.failure(), "the count restarted");
    }

    /// Every transition shows on the retailer's gauge, as it happens.
    #[tokio::test(start_paused = true)]
    async fn the_breaker_gauge_follows_every_transition() {
        let gauge = || {
            METRICS
                .circuit_state
                .with_label_values(&["breaker-gauge-test"])
                .get()
        };
        METRICS
            .circuit_state
            .with_label_values(&["breaker-gauge-test"])
            .set(2);
        let mut b = CircuitBreaker::for_retailer(&politeness(), "breaker-gauge-test");
        assert_eq!(gauge(), 0, "a new breaker is closed");
        b.failure();
        b.failure();
        assert_eq!(gauge(), 0);
        b.failure();
        assert_eq!(gauge(), 2, "open");
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(b.allows());
        assert_eq!(gauge(), 1, "half-open once the cooldown is over");
        b.failure();
        assert_eq!(gauge(), 2, "a failed trial re-opens");
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(b.allows());
        b.success();
        assert_eq!(gauge(), 0, "a good trial closes");
    }
}
