//! `shelfwatch bench load`: an open-loop HTTP load generator.
//!
//! Requests go out on a fixed schedule (`--rate` a second), whether or not
//! earlier ones have been answered, and each request's latency is counted
//! from the moment the schedule meant to send it. A server that stalls
//! therefore shows its stall in the percentiles instead of quietly lowering
//! the offered rate, which is what a closed-loop tool (each connection waits
//! for its reply) does. Paths are drawn uniformly at random from a file, so
//! the load spreads over the whole data set rather than one cached key.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use rand::Rng;
use tokio::sync::Mutex;

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Base URL of the server, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub base: String,
    /// A file with one path per line (e.g. `/v1/products/42`); each request
    /// takes one uniformly at random.
    #[arg(long)]
    pub paths: PathBuf,
    /// Requests a second, offered on a fixed schedule.
    #[arg(long, default_value_t = 1000)]
    pub rate: u32,
    /// Seconds of measured load.
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Seconds of load before measuring (connections open, caches settle).
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// A request still unanswered after this many seconds counts as an error.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
}

/// What one run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    /// Requests scheduled in the measured window.
    pub requests: usize,
    /// Answered with a 2xx or 304 status.
    pub ok: usize,
    /// Anything else: other statuses, connection errors, timeouts.
    pub errors: usize,
    /// Answers per second over the measured window.
    pub rps: f64,
    /// Latency percentiles in milliseconds, from the scheduled send time;
    /// `None` when nothing was answered.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
}

impl LoadReport {
    /// One line in the shape `benches/api.sh` reads (`key=value` pairs).
    pub fn result_line(&self) -> String {
        let ms = |v: Option<f64>| v.map_or_else(|| "null".to_owned(), |v| format!("{v:.3}"));
        format!(
            "RESULT requests={} rps={:.0} p50_ms={} p99_ms={} p999_ms={} errors={}",
            self.requests,
            self.rps,
            ms(self.p50_ms),
            ms(self.p99_ms),
            ms(self.p999_ms),
            self.errors
        )
    }
}

/// The value below which `q` of the sorted samples fall (nearest rank).
fn percentile(sorted: &[u64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1] as f64 / 1000.0)
}

fn read_paths(file: &PathBuf) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the paths file {}", file.display()))?;
    let paths: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some((n, bad)) = paths.iter().enumerate().find(|(_, p)| !p.starts_with('/')) {
        bail!(
            "{}: line {}: a path must start with '/', got {bad:?}",
            file.display(),
            n + 1
        );
    }
    if paths.is_empty() {
        bail!("{}: no paths in the file", file.display());
    }
    Ok(paths)
}

/// Runs the schedule and returns what it measured.
pub async fn run(args: &LoadArgs) -> anyhow::Result<LoadReport> {
    if args.rate == 0 {
        bail!("--rate must be at least 1 request a second");
    }
    if args.duration == 0 {
        bail!("--duration must be at least 1 second");
    }
    let paths = Arc::new(read_paths(&args.paths)?);
    let base = args.base.trim_end_matches('/').to_owned();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout))
        .pool_max_idle_per_host(usize::MAX)
        .build()
        .context("building the HTTP client")?;

    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let warmup = u64::from(args.rate) * args.warmup;
    let measured = u64::from(args.rate) * args.duration;
    // (latency in µs, or None for an error) per measured request.
    let samples: Arc<Mutex<Vec<Option<u64>>>> =
        Arc::new(Mutex::new(Vec::with_capacity(measured as usize)));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..warmup + measured {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let path = &paths[rand::rng().random_range(0..paths.len())];
        let request = client.get(format!("{base}{path}")).send();
        let samples = samples.clone();
        let counted = i >= warmup;
        tasks.spawn(async move {
            let outcome = match request.await {
                Ok(resp) => {
                    let good = resp.status().is_success() || resp.status().as_u16() == 304;
                    // Read the whole body: the answer is not done before it.
                    let body = resp.bytes().await;
                    good && body.is_ok()
                }
                Err(_) => false,
            };
            if counted {
                let latency = due.elapsed().as_micros() as u64;
                samples.lock().await.push(outcome.then_some(latency));
            }
        });
        // Reap finished tasks as we go so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    let measured_from = start + interval.mul_f64(warmup as f64);
    while tasks.join_next().await.is_some() {}
    let window = measured_from.elapsed().as_secs_f64();

    let samples = samples.lock().await;
    let mut latencies: Vec<u64> = samples.iter().flatten().copied().collect();
    latencies.sort_unstable();
    let ok = latencies.len();
    Ok(LoadReport {
        requests: samples.len(),
        ok,
        errors: samples.len() - ok,
        rps: ok as f64 / window.max(f64::MIN_POSITIVE),
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        p999_ms: percentile(&latencies, 0.999),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank_and_nothing_gives_none() {
        assert_eq!(percentile(&[], 0.99), None);
        let v: Vec<u64> = (1..=100).map(|x| x * 1000).collect();
        assert_eq!(percentile(&v, 0.50), Some(50.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&v, 0.999), Some(100.0));
    }

    #[test]
    fn a_report_with_no_answers_prints_null_not_zero() {
        let r = LoadReport {
            requests: 10,
            ok: 0,
            errors: 10,
            rps: 0.0,
            p50_ms: None,
            p99_ms: None,
            p999_ms: None,
        };
        let line = r.result_line();
        assert!(line.contains("p99_ms=null"), "{line}");
        assert!(line.contains("errors=10"), "{line}");
    }

    #[test]
    fn a_paths_file_with_a_bad_line_is_refused_with_its_line_number() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("paths");
        std::fs::write(&f, "/v1/products/1\nv1/products/2\n").unwrap();
        let err = read_paths(&f).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }
}
