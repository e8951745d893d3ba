//! `shelfwatch import FILE.csv`: bulk backfill through the ingest path.
//!
//! Columns (by header name, any order): `retailer,sku,title,observed_at,
//! price_pence` are required; `was_price_pence, unit_price_pence, unit,
//! promo_text, in_stock, pack_text, url, category` are optional. A bad row is
//! reported with its line number and reason and written to a rejects file
//! (the original fields plus `line` and `reason`); the good rows beside it
//! are stored.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, Utc};
use tokio::sync::mpsc;

use super::{BatchReport, Ingestor, Observation};
use shelfwatch_domain::promo::parse_promo;
use shelfwatch_domain::quantity::{BaseUnit, parse_pack};
use shelfwatch_domain::retailer::RetailerSlug;
use shelfwatch_domain::unit_price::UnitPrice;

pub const REQUIRED_COLUMNS: [&str; 5] = ["retailer", "sku", "title", "observed_at", "price_pence"];
pub const OPTIONAL_COLUMNS: [&str; 8] = [
    "was_price_pence",
    "unit_price_pence",
    "unit",
    "promo_text",
    "in_stock",
    "pack_text",
    "url",
    "category",
];

/// Which field index holds each known column.
#[derive(Debug, Clone)]
pub struct Columns {
    index: HashMap<&'static str, usize>,
    header: Vec<String>,
}

impl Columns {
    /// Reads a header row; unknown, duplicate or missing columns are errors
    /// that name them.
    pub fn from_header(header: &csv::StringRecord) -> anyhow::Result<Self> {
        let mut index = HashMap::new();
        for (i, raw) in header.iter().enumerate() {
            let name = raw
                .trim()
                .trim_start_matches('\u{feff}')
                .to_ascii_lowercase();
            let Some(known) = REQUIRED_COLUMNS
                .iter()
                .chain(OPTIONAL_COLUMNS.iter())
                .find(|c| **c == name)
            else {
                bail!(
                    "unknown column {raw:?} (column {}): the columns are {} (required) and {} (optional)",
                    i + 1,
                    REQUIRED_COLUMNS.join(","),
                    OPTIONAL_COLUMNS.join(",")
                );
            };
            if index.insert(*known, i).is_some() {
                bail!("column {known:?} appears twice in the header");
            }
        }
        let missing: Vec<&str> = REQUIRED_COLUMNS
            .iter()
            .filter(|c| !index.contains_key(*c))
            .copied()
            .collect();
        if !missing.is_empty() {
            bail!(
                "the header lacks required column(s) {}: the header must name {}",
                missing.join(", "),
                REQUIRED_COLUMNS.join(",")
            );
        }
        Ok(Self {
            index,
            header: header.iter().map(str::to_owned).collect(),
        })
    }

    fn get<'r>(&self, record: &'r csv::StringRecord, column: &str) -> Option<&'r str> {
        let i = *self.index.get(column)?;
        record.get(i).map(str::trim).filter(|s| !s.is_empty())
    }

    fn required<'r>(&self, record: &'r csv::StringRecord, column: &str) -> Result<&'r str, String> {
        self.get(record, column)
            .ok_or_else(|| format!("{column} is empty"))
    }

    /// Turns one data row into an observation, or says what is wrong with it.
    pub fn parse_row(
        &self,
        record: &csv::StringRecord,
        now: DateTime<Utc>,
    ) -> Result<Observation, String> {
        let retailer =
            RetailerSlug::parse(self.required(record, "retailer")?).map_err(|e| e.to_string())?;
        let sku = self.required(record, "sku")?;
        let title = self.required(record, "title")?;
        let observed_at = parse_time(self.required(record, "observed_at")?)?;
        if observed_at > now + chrono::Duration::days(1) {
            return Err(format!(
                "observed_at {} is in the future",
                observed_at.to_rfc3339()
            ));
        }
        let price_pence = parse_pence_column("price_pence", self.required(record, "price_pence")?)?;
        let mut obs = Observation::new(retailer, sku, title, observed_at, price_pence);
        obs.was_price_pence = self
            .get(record, "was_price_pence")
            .map(|v| parse_pence_column("was_price_pence", v))
            .transpose()?;
        let unit_price = self
            .get(record, "unit_price_pence")
            .map(|v| parse_pence_column("unit_price_pence", v))
            .transpose()?;
        let unit = self.get(record, "unit").map(parse_unit).transpose()?;
        obs.unit_price = match (unit_price, unit) {
            (Some(pence), Some(per)) => Some(UnitPrice { pence, per }),
            (None, None) => None,
            (Some(_), None) => return Err("unit_price_pence is given without unit".into()),
            (None, Some(_)) => return Err("unit is given without unit_price_pence".into()),
        };
        if let Some(text) = self.get(record, "promo_text") {
            obs.promo = Some(parse_promo(text).map_err(|e| e.to_string())?);
            obs.promo_text = Some(text.to_owned());
        }
        if let Some(v) = self.get(record, "in_stock") {
            obs.in_stock = parse_bool(v)
                .ok_or_else(|| format!("in_stock {v:?} is not true/false, yes/no or 1/0"))?;
        }
        if let Some(text) = self.get(record, "pack_text") {
            obs.pack = Some(parse_pack(text).map_err(|e| e.to_string())?);
        }
        obs.url = self.get(record, "url").map(str::to_owned);
        obs.category = self.get(record, "category").map(str::to_owned);
        obs.check()?;
        Ok(obs)
    }
}

/// RFC 3339 with an offset, or a bare date (midnight UTC).
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return d
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc())
            .ok_or_else(|| format!("observed_at {text:?} is not a valid date"));
    }
    if chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").is_ok()
        || chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").is_ok()
    {
        return Err(format!(
            "observed_at {text:?} has no time zone: write it as RFC 3339 with an offset, \
             e.g. 2026-01-02T08:00:00Z"
        ));
    }
    Err(format!(
        "observed_at {text:?} is not an RFC 3339 time (2026-01-02T08:00:00Z) or a date (2026-01-02)"
    ))
}

fn parse_pence_column(column: &str, text: &str) -> Result<i64, String> {
    let value: i64 = text
        .parse()
        .map_err(|_| format!("{column} {text:?} is not a whole number of pence"))?;
    if value <= 0 {
        return Err(format!("{column} {value} is not positive"));
    }
    Ok(value)
}

fn parse_unit(text: &str) -> Result<BaseUnit, String> {
    match text.to_ascii_lowercase().as_str() {
        "kg" | "per kg" => Ok(BaseUnit::Gram),
        "l" | "litre" | "liter" | "per litre" => Ok(BaseUnit::Millilitre),
        "each" | "ea" => Ok(BaseUnit::Each),
        _ => Err(format!("unit {text:?} is not kg, l or each")),
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "1" => Some(true),
        "false" | "f" | "no" | "n" | "0" => Some(false),
        _ => None,
    }
}

/// Options for one import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub batch_size: usize,
    /// Where rejected rows go; default `<FILE>.rejects.csv`, the input's
    /// whole name with `.rejects.csv` added (`prices.csv.rejects.csv`).
    pub rejects: Option<PathBuf>,
    pub progress: bool,
}

/// What one import did.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    pub rows: u64,
    pub stored: BatchReport,
    pub rejected: u64,
    pub rejects_file: Option<PathBuf>,
    /// The first few rejections, for the summary.
    pub sample_rejections: Vec<String>,
}

enum Parsed {
    /// Observations and the last CSV line they came from.
    Batch(Vec<Observation>, u64),
    Done {
        rows: u64,
        rejected: u64,
        sample: Vec<String>,
    },
}

/// Imports `path`. Reading and parsing run on a blocking thread while the
/// previous batch is written, so the database is never idle waiting on CSV.
pub async fn import_file(
    ingestor: &mut Ingestor,
    path: &Path,
    options: &ImportOptions,
) -> anyhow::Result<ImportReport> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(BufReader::with_capacity(1 << 20, file));
    let header = reader
        .headers()
        .with_context(|| format!("reading the header of {}", path.display()))?
        .clone();
    let columns =
        Columns::from_header(&header).with_context(|| format!("{}: line 1", path.display()))?;
    let rejects_path = options
        .rejects
        .clone()
        .unwrap_or_else(|| default_rejects_path(path));
    // A rejects file from an earlier run would mislead: start afresh.
    if rejects_path.exists() {
        std::fs::remove_file(&rejects_path)
            .with_context(|| format!("removing old {}", rejects_path.display()))?;
    }

    let progress = if options.progress {
        let bar = indicatif::ProgressBar::new(size);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta}) {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };

    let (tx, mut rx) = mpsc::channel::<anyhow::Result<Parsed>>(2);
    let batch_size = options.batch_size.max(1);
    let bar = progress.clone();
    let reject_target = rejects_path.clone();
    let parser = tokio::task::spawn_blocking(move || {
        let result = parse_all(&mut reader, &columns, batch_size, &reject_target, &bar, &tx);
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(e));
        }
    });

    let mut report = ImportReport::default();
    // Listings seen again are updated once at the end, not in every batch.
    ingestor.defer_sightings();
    let written = write_batches(ingestor, &mut rx, &progress, path, &mut report).await;
    // The sightings of the batches stored, even when a later one failed.
    let flushed = ingestor
        .flush_sightings()
        .await
        .context("recording when listings were seen");
    written?;
    flushed?;
    parser.await.context("the CSV reader thread failed")?;
    progress.finish_and_clear();
    if report.rejected > 0 {
        report.rejects_file = Some(rejects_path);
    }
    Ok(report)
}

/// Stores the parsed batches as they come, and the parser's summary.
async fn write_batches(
    ingestor: &mut Ingestor,
    rx: &mut mpsc::Receiver<anyhow::Result<Parsed>>,
    progress: &indicatif::ProgressBar,
    path: &Path,
    report: &mut ImportReport,
) -> anyhow::Result<()> {
    // Every row up to this line is stored (or rejected to the rejects file).
    let mut stored_through = 1u64;
    while let Some(message) = rx.recv().await {
        match message? {
            Parsed::Batch(batch, last_line) => {
                let stored = ingestor.ingest(&batch).await.with_context(|| {
                    format!(
                        "storing lines {}-{last_line} of {}: lines up to {stored_through} are \
                         stored, the rest are not; re-running the import stores the rest and \
                         skips what is already there",
                        stored_through + 1,
                        path.display()
                    )
                })?;
                stored_through = last_line;
                report.stored += stored;
                progress.set_message(format!("{} stored", report.stored.inserted));
            }
            Parsed::Done {
                rows,
                rejected,
                sample,
            } => {
                report.rows = rows;
                report.rejected = rejected;
                super::metrics::METRICS.rejected.inc_by(rejected);
                report.sample_rejections = sample;
            }
        }
    }
    Ok(())
}

pub fn default_rejects_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".rejects.csv");
    path.with_file_name(name)
}

fn parse_all(
    reader: &mut csv::Reader<BufReader<File>>,
    columns: &Columns,
    batch_size: usize,
    rejects_path: &Path,
    bar: &indicatif::ProgressBar,
    tx: &mpsc::Sender<anyhow::Result<Parsed>>,
) -> anyhow::Result<()> {
    let now = Utc::now();
    let mut rejects: Option<csv::Writer<File>> = None;
    let mut batch = Vec::with_capacity(batch_size);
    let (mut rows, mut rejected) = (0u64, 0u64);
    let mut sample = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut last_line = 1u64;
    let expected_fields = columns.header.len();
    loop {
        let next_line = reader.position().line();
        let read = reader.read_record(&mut record);
        let line = match &read {
            Ok(_) => record.position().map_or(next_line, |p| p.line()),
            Err(e) => e.position().map_or(next_line, |p| p.line()),
        };
        let outcome = match read {
            Ok(false) => break,
            Ok(true) if record.len() != expected_fields => Err(format!(
                "has {} fields, the header has {expected_fields}",
                record.len()
            )),
            Ok(true) => columns.parse_row(&record, now),
            Err(e) => match e.kind() {
                csv::ErrorKind::Utf8 { .. } => Err("is not valid UTF-8".to_owned()),
                csv::ErrorKind::Io(_) => {
                    return Err(anyhow::Error::new(e).context("reading the CSV file"));
                }
                _ => Err(format!("cannot be read as CSV: {e}")),
            },
        };
        rows += 1;
        last_line = line;
        match outcome {
            Ok(obs) => {
                batch.push(obs);
                if batch.len() >= batch_size {
                    bar.set_position(reader.position().byte());
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(batch_size));
                    if tx.blocking_send(Ok(Parsed::Batch(full, line))).is_err() {
                        return Ok(()); // the writer stopped; its error is reported there
                    }
                }
            }
            Err(reason) => {
                rejected += 1;
                if sample.len() < 10 {
                    sample.push(format!("line {line}: {reason}"));
                }
                tracing::debug!(line, %reason, "row rejected");
                let writer = match &mut rejects {
                    Some(w) => w,
                    None => {
                        let mut w = csv::WriterBuilder::new()
                            .flexible(true)
                            .from_path(rejects_path)
                            .with_context(|| format!("creating {}", rejects_path.display()))?;
                        let mut head = vec!["line".to_owned(), "reason".to_owned()];
                        head.extend(columns.header.iter().cloned());
                        w.write_record(&head)?;
                        rejects.insert(w)
                    }
                };
                let mut out = vec![line.to_string(), reason];
                out.extend(record.iter().map(str::to_owned));
                writer
                    .write_record(&out)
                    .with_context(|| format!("writing {}", rejects_path.display()))?;
            }
        }
    }
    if let Some(mut w) = rejects {
        w.flush()
            .with_context(|| format!("writing {}", rejects_path.display()))?;
    }
    bar.set_position(reader.position().byte());
    if !batch.is_empty()
        && tx
            .blocking_send(Ok(Parsed::Batch(batch, last_line)))
            .is_err()
    {
        return Ok(());
    }
    let _ = tx.blocking_send(Ok(Parsed::Done {
        rows,
        rejected,
        sample,
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(header: &str) -> anyhow::Result<Columns> {
        Columns::from_header(&csv::StringRecord::from(
            header.split(',').collect::<Vec<_>>(),
        ))
    }

    fn row(cols: &Columns, fields: &str) -> Result<Observation, String> {
        let now = DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        cols.parse_row(
            &csv::StringRecord::from(fields.split('|').collect::<Vec<_>>()),
            now,
        )
    }

    #[test]
    fn header_errors_name_the_column() {
        let e = columns("retailer,sku,title,observed_at,price_pence,colour")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"colour\"") && e.contains("column 6"), "{e}");
        let e = columns("retailer,sku,observed_at,price_pence")
            .unwrap_err()
            .to_string();
        assert!(e.contains("title"), "{e}");
        let e = columns("retailer,sku,title,observed_at,price_pence,sku")
            .unwrap_err()
            .to_string();
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn good_row_with_every_optional_column() {
        let c = columns("retailer,sku,title,observed_at,price_pence,was_price_pence,unit_price_pence,unit,promo_text,in_stock,pack_text,url").unwrap();
        let o = row(
            &c,
            "tesco|123|Heinz Beanz 415G|2026-01-02T08:00:00Z|100|150|241|kg|2 for £1.50|no|415g|http://x",
        )
        .unwrap();
        assert_eq!(o.price_pence, 100);
        assert_eq!(o.was_price_pence, Some(150));
        assert_eq!(o.unit_price.unwrap().pence, 241);
        assert_eq!(o.effective_price_pence(), 75);
        assert!(!o.in_stock);
        assert_eq!(o.pack.unwrap().total(), 415);
    }

    #[test]
    fn bad_rows_say_what_and_why() {
        let c = columns("retailer,sku,title,observed_at,price_pence,promo_text,unit_price_pence,unit,was_price_pence").unwrap();
        let cases = [
            ("Tesco|1|t|2026-01-02|100||||", "retailer slug"),
            ("tesco||t|2026-01-02|100||||", "sku is empty"),
            ("tesco|1|t|yesterday|100||||", "observed_at \"yesterday\""),
            ("tesco|1|t|2026-01-02 08:00:00|100||||", "no time zone"),
            ("tesco|1|t|2027-01-02|100||||", "in the future"),
            ("tesco|1|t|2026-01-02|£1.00||||", "not a whole number"),
            ("tesco|1|t|2026-01-02|-5||||", "not positive"),
            ("tesco|1|t|2026-01-02|100|Buy me||||", "Buy me"),
            ("tesco|1|t|2026-01-02|100||250|||", "without unit"),
            ("tesco|1|t|2026-01-02|100||250|stone||", "\"stone\""),
            ("tesco|1|t|2026-01-02|100||||90", "not above"),
            ("tesco|1|t|2026-01-02|99999999999||||", "outside"),
            ("tesco|1|t|1969-12-31|100||||", "outside the years 1970"),
        ];
        for (fields, expect) in cases {
            let err = row(&c, fields).unwrap_err();
            assert!(err.contains(expect), "{fields}: {err}");
        }
    }

    #[test]
    fn historical_panels_from_1970_on_are_accepted() {
        let c = columns("retailer,sku,title,observed_at,price_pence").unwrap();
        for day in ["1970-01-01", "1989-09-14"] {
            let o = row(&c, &format!("dominicks|tuna-1|Tuna|{day}|91")).unwrap();
            assert_eq!(o.observed_at.date_naive().to_string(), day);
        }
    }

    #[test]
    fn bare_dates_are_midnight_utc() {
        let t = parse_time("2026-03-04").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-03-04T00:00:00+00:00");
        let t = parse_time("2026-03-04T10:00:00+01:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-03-04T09:00:00+00:00");
    }
}
