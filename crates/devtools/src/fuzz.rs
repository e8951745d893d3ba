//! Fuzzing the input parsers: shelf text (money, pack sizes, unit prices,
//! promotions), CSV import rows and retailer TOML configs.
//!
//! cargo-fuzz needs a nightly compiler for its sanitizers, and this
//! project builds on stable only, so these targets are driven by a seeded
//! mutation loop instead: start from the committed corpus in
//! `fuzz/corpus/`, mutate (flip, insert, delete, splice and repeat bytes,
//! drop in shop-text tokens), and run each input through the parser under
//! `catch_unwind`. A target fails on a panic, and on any single input
//! taking longer than [`SLOW`] (a hang in the making). A rejected input must
//! come with a reason.
//!
//! CI runs every target for a short while (`FUZZ_SECONDS`, default 2 s
//! each). The long run is
//! `FUZZ_SECONDS=300 cargo test --release --lib fuzz -- --nocapture`; its
//! last figures are in RELIABILITY.md. An input that ever fails goes into
//! the corpus, so it is replayed on every run after.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One input slower than this counts as a failure.
pub const SLOW: Duration = Duration::from_secs(1);

/// Bytes and tokens shop text is made of, to steer mutations toward inputs
/// that get past the first character.
const TOKENS: &[&str] = &[
    "£", "p", "P", ".", ",", "0", "1", "9", "99", "1e9", "-", "+", " ", "x", "X", "kg", "g", "ml",
    "l", "L", "litre", "per", "/", "100g", "each", "for", "Price", "Was", "Now", "off", "%", "NaN",
    "inf", "½", "١", "\u{200b}", "\t", "(", ")", "Clubcard", "Any", "Buy", "get", "free", "\"",
    "\n", "\r\n", "=", "[", "]", "{", "}", "#",
];

/// What a target says about one input: accepted, or rejected with a reason.
pub type Verdict = Result<(), String>;

/// A fuzz target: a name, a corpus, and the parser it drives.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&str) -> Verdict,
}

/// Every target.
pub fn targets() -> Vec<Target> {
    vec![
        Target {
            name: "money",
            run: |s| {
                shelfwatch_domain::money::parse_pence(s)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
        },
        Target {
            name: "pack",
            run: |s| {
                shelfwatch_domain::quantity::parse_pack(s)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
        },
        Target {
            name: "unit_price",
            run: |s| {
                shelfwatch_domain::unit_price::parse_unit_price(s)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
        },
        Target {
            name: "promo",
            run: |s| {
                shelfwatch_domain::promo::parse_promo(s)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
        },
        Target {
            name: "csv_row",
            run: csv_row,
        },
        Target {
            name: "retailer_config",
            run: retailer_config,
        },
    ]
}

/// A retailer config, named after the slug it declares (the loader checks
/// the two agree) so mutations reach the deeper checks.
fn retailer_config(text: &str) -> Verdict {
    let slug = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("slug"))
        .and_then(|rest| rest.split('"').nth(1))
        .filter(|s| !s.is_empty() && !s.contains(['/', '\\', '\0']))
        .unwrap_or("fuzz");
    let path = PathBuf::from(format!("retailers/{slug}.toml"));
    shelfwatch_scrape::config::RetailerConfig::parse(text, &path)
        .map(|_| ())
        .map_err(|e| format!("{e:#}"))
}

const CSV_HEADER: &str = "retailer,sku,title,observed_at,price_pence,was_price_pence,\
    unit_price_pence,unit,promo_text,in_stock,pack_text,url";

/// One CSV data line under the full import header.
fn csv_row(line: &str) -> Verdict {
    use shelfwatch_store::ingest::csv_import::Columns;
    let text = format!("{CSV_HEADER}\n{line}\n");
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let header = reader.headers().map_err(|e| e.to_string())?.clone();
    let columns = Columns::from_header(&header).map_err(|e| format!("{e:#}"))?;
    let mut record = csv::StringRecord::new();
    let mut any = false;
    while reader.read_record(&mut record).map_err(|e| e.to_string())? {
        any = true;
        if record.len() != header.len() {
            return Err(format!("has {} fields", record.len()));
        }
        columns.parse_row(&record, chrono::Utc::now())?;
    }
    if any { Ok(()) } else { Err("no row".into()) }
}

/// The committed corpus of `target`: one input a line in
/// `fuzz/corpus/<target>.txt`, or one a file in `fuzz/corpus/<target>/`
/// (for multi-line inputs such as TOML).
pub fn corpus(root: &Path, target: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(text) = std::fs::read_to_string(root.join(format!("{target}.txt"))) {
        out.extend(text.lines().map(str::to_owned));
    }
    let dir = root.join(target);
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            if let Ok(text) = std::fs::read_to_string(&p) {
                out.push(text);
            }
        }
    }
    if out.is_empty() {
        out.push(String::new());
    }
    out
}

/// One random mutation of `input`.
pub fn mutate(rng: &mut StdRng, input: &str, corpus: &[String]) -> String {
    let mut chars: Vec<char> = input.chars().collect();
    for _ in 0..rng.random_range(1..=4) {
        let at = if chars.is_empty() {
            0
        } else {
            rng.random_range(0..=chars.len())
        };
        match rng.random_range(0..7) {
            0 if !chars.is_empty() => {
                let i = rng.random_range(0..chars.len());
                chars.remove(i);
            }
            1 => {
                let t = TOKENS[rng.random_range(0..TOKENS.len())];
                chars.splice(at..at, t.chars());
            }
            2 if !chars.is_empty() => {
                // Replace a character with a random one (any plane).
                let i = rng.random_range(0..chars.len());
                chars[i] = char::from_u32(rng.random_range(0..0x11_0000)).unwrap_or('?');
            }
            3 if !corpus.is_empty() => {
                // Splice in part of another corpus entry.
                let other: Vec<char> = corpus[rng.random_range(0..corpus.len())].chars().collect();
                if !other.is_empty() {
                    let a = rng.random_range(0..other.len());
                    let b = rng.random_range(a..other.len());
                    chars.splice(at..at, other[a..=b].iter().copied());
                }
            }
            4 if !chars.is_empty() && chars.len() < 5_000 => {
                // Repeat a run: long digit strings, nested brackets.
                let a = rng.random_range(0..chars.len());
                let b = (a + rng.random_range(1..8)).min(chars.len());
                let run: Vec<char> = chars[a..b].to_vec();
                let times = rng.random_range(2..200);
                for _ in 0..times {
                    chars.splice(b..b, run.iter().copied());
                }
            }
            5 => {
                let digits: String = (0..rng.random_range(1..40))
                    .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
                    .collect();
                chars.splice(at..at, digits.chars());
            }
            _ => {
                if !chars.is_empty() {
                    let i = rng.random_range(0..chars.len());
                    let j = at.min(chars.len() - 1);
                    chars.swap(i, j);
                }
            }
        }
    }
    chars.into_iter().collect()
}

/// What a fuzzing run of one target did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub inputs: u64,
    pub accepted: u64,
    pub slowest: Duration,
    /// Inputs that panicked, hung or were rejected without a reason.
    pub failures: Vec<(String, String)>,
}

/// Runs `target` over its corpus, then on mutations of it for `budget`.
pub fn fuzz(target: &Target, corpus: &[String], budget: Duration, seed: u64) -> Report {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut report = Report::default();
    let started = Instant::now();
    let check = |input: &str, report: &mut Report| {
        let t = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| (target.run)(input)));
        let took = t.elapsed();
        report.inputs += 1;
        report.slowest = report.slowest.max(took);
        let failure = match outcome {
            Err(panic) => Some(format!(
                "panicked: {}",
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default()
            )),
            Ok(_) if took > SLOW => Some(format!("took {took:?}")),
            Ok(Err(reason)) if reason.trim().is_empty() => Some("rejected with no reason".into()),
            Ok(Ok(())) => {
                report.accepted += 1;
                None
            }
            Ok(Err(_)) => None,
        };
        if let Some(why) = failure
            && report.failures.len() < 20
        {
            report.failures.push((input.to_owned(), why));
        }
    };
    for input in corpus {
        check(input, &mut report);
    }
    while started.elapsed() < budget {
        let base = &corpus[rng.random_range(0..corpus.len())];
        let input = mutate(&mut rng, base, corpus);
        check(&input, &mut report);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> Duration {
        let secs = std::env::var("FUZZ_SECONDS")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(2.0);
        Duration::from_secs_f64(secs)
    }

    fn run(name: &str) {
        let root = crate::workspace_root().join("fuzz/corpus");
        let target = targets()
            .into_iter()
            .find(|t| t.name == name)
            .expect("a target");
        let mut corpus = corpus(&root, name);
        if name == "retailer_config" {
            // The shipped configs, real shops and demo store, are the best seeds.
            let root = crate::workspace_root().join("retailers");
            let mut paths: Vec<_> = [root.clone(), root.join("demo")]
                .iter()
                .flat_map(|dir| std::fs::read_dir(dir).unwrap().flatten())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect();
            paths.sort();
            corpus.extend(paths.iter().map(|p| std::fs::read_to_string(p).unwrap()));
        }
        let seed = std::env::var("FUZZ_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(rand::random::<u64>);
        let report = fuzz(&target, &corpus, budget(), seed);
        println!(
            "fuzz {name}: {} inputs ({} accepted) in {:?}, slowest {:?}, seed {seed}",
            report.inputs,
            report.accepted,
            budget(),
            report.slowest
        );
        assert!(
            report.failures.is_empty(),
            "{name} (seed {seed}) failed on: {:#?}",
            report.failures
        );
        assert!(report.inputs > corpus.len() as u64, "no mutations ran");
    }

    #[test]
    fn fuzz_money() {
        run("money");
    }

    #[test]
    fn fuzz_pack() {
        run("pack");
    }

    #[test]
    fn fuzz_unit_price() {
        run("unit_price");
    }

    #[test]
    fn fuzz_promo() {
        run("promo");
    }

    #[test]
    fn fuzz_csv_row() {
        run("csv_row");
    }

    #[test]
    fn fuzz_retailer_config() {
        run("retailer_config");
    }

    #[test]
    fn a_panicking_target_is_caught_and_reported() {
        let target = Target {
            name: "panics",
            run: |s| {
                if s.contains('!') {
                    panic!("boom");
                }
                Err("no".into())
            },
        };
        let report = fuzz(&target, &["a!".to_owned()], Duration::ZERO, 1);
        assert_eq!(report.failures.len(), 1);
        assert!(report.failures[0].1.contains("boom"));
    }
}
