//! `shelfwatch retailer check`: the tool for writing a retailer config. It
//! loads one page through Chromium, reads it with the config exactly as a
//! run would, and shows every tile field by field, with the reason for each
//! field it could not read. A saved page is served on 127.0.0.1 the way
//! shops serve theirs (`text/html; charset=utf-8`), with Chromium's host
//! resolution locked to loopback so the page's own scripts reach nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;

use super::browser::{Browser, BrowserSettings};
use super::config::{PageKind, RetailerConfig, TileSource};
use super::extract::{Reading, read_tile, reading_json};
use super::run::read_page;

/// Chromium's host resolution locked to loopback: a saved page's scripts
/// and images cannot reach the shop (or anything else).
pub const LOOPBACK_ONLY: &str = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1";

/// What a check found on one page.
#[derive(Debug)]
pub struct CheckReport {
    pub url: String,
    /// The page kind the page was read as.
    pub kind: String,
    pub tiles: Vec<Reading>,
    /// The extraction script's time (CSS sources and fetching JSON).
    pub script: Duration,
    /// JSON and ld+json sources' time in Rust.
    pub json: Duration,
    pub jsonld: Duration,
    /// From navigation to the last tile read.
    pub total: Duration,
}

impl CheckReport {
    /// The tiles as `--json` prints them.
    pub fn json(&self) -> Value {
        Value::Array(self.tiles.iter().map(reading_json).collect())
    }

    /// The tiles as text, field by field.
    pub fn text(&self) -> String {
        let mut out = format!(
            "{}: page kind {:?}, {} tiles ({} ms; script {} ms, json {} us, ld+json {} us)\n",
            self.url,
            self.kind,
            self.tiles.len(),
            self.total.as_millis(),
            self.script.as_millis(),
            self.json.as_micros(),
            self.jsonld.as_micros()
        );
        for t in &self.tiles {
            let v = reading_json(t);
            let verdict = if !t.rejected.is_empty() {
                if t.in_stock {
                    "REJECTED"
                } else {
                    "out of stock"
                }
            } else {
                "ok"
            };
            out.push_str(&format!("\ntile {} ({verdict})\n", t.index));
            for key in [
                "sku",
                "title",
                "price_pence",
                "was_price_pence",
                "unit_price",
                "pack",
                "promo_text",
                "multibuy",
                "loyalty",
                "in_stock",
                "url",
            ] {
                let shown = match &v[key] {
                    Value::Null => "-".to_owned(),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                out.push_str(&format!("  {key:<16}{shown}\n"));
            }
            for e in t.rejected.iter().chain(&t.dropped) {
                out.push_str(&format!(
                    "  ! {:<14}{}{}\n",
                    e.field,
                    e.reason,
                    e.text
                        .as_ref()
                        .map_or(String::new(), |t| format!(" (text {t:?})"))
                ));
            }
        }
        out
    }
}

/// A saved page served on 127.0.0.1 until dropped.
pub struct ServedFile {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ServedFile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `path` on 127.0.0.1 at `/<its file name>` with `Content-Type:
/// text/html; charset=utf-8`; any other path answers 404.
pub async fn serve_file(path: &Path) -> anyhow::Result<ServedFile> {
    let body = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .context("the page has no file name")?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let wanted = format!("/{name}");
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let body = body.clone();
            let wanted = wanted.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let Ok(n) = stream.read(&mut buf).await else {
                    return;
                };
                let request = String::from_utf8_lossy(&buf[..n]);
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                let path = path.split('?').next().unwrap_or(path);
                let (status, body): (&str, &[u8]) = if path == wanted {
                    ("200 OK", &body)
                } else {
                    ("404 Not Found", b"not found")
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Ok(ServedFile {
        url: format!("http://{addr}/{}", percent_encode(&name)),
        task,
    })
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Which of `config`'s page kinds reads the page the session shows: the
/// one asked for, else the one whose `url` matches, else the first whose
/// tiles (or `wait.ready`) are on the page.
async fn choose_kind<'a>(
    session: &thirtyfour::WebDriver,
    config: &'a RetailerConfig,
    url: &str,
    wanted: Option<&str>,
) -> anyhow::Result<&'a PageKind> {
    if let Some(name) = wanted {
        return config.kind_named(name).with_context(|| {
            format!(
                "no page kind {name:?} in {} (there are: {})",
                config.source.display(),
                config
                    .pages
                    .iter()
                    .map(|k| k.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
    }
    if let Some(k) = config
        .pages
        .iter()
        .find(|k| k.url.as_ref().is_some_and(|re| re.is_match(url)))
    {
        return Ok(k);
    }
    let probes: Vec<&str> = config
        .pages
        .iter()
        .map(|k| match &k.selectors.tile {
            TileSource::Css(css) => css.as_str(),
            _ => k.wait.ready.as_str(),
        })
        .collect();
    let found: Vec<bool> = session
        .execute(
            "return arguments[0].map(s => { try { return !!document.querySelector(s); } \
             catch (e) { return false; } });",
            vec![json!(probes)],
        )
        .await?
        .convert()?;
    config
        .pages
        .iter()
        .zip(found)
        .find(|(_, f)| *f)
        .map(|(k, _)| k)
        .or_else(|| config.kind_for(url))
        .with_context(|| format!("no page kind of {} matches {url}", config.source.display()))
}

/// Loads `page` (a saved file, served on loopback, or a URL) in `browser`
/// and reads it with `config`.
pub async fn check_page(
    config: &RetailerConfig,
    browser: &mut Browser,
    url: &str,
    kind: Option<&str>,
) -> anyhow::Result<CheckReport> {
    let session = browser.session().await?;
    session
        .set_page_load_timeout(Duration::from_millis(config.politeness.page_timeout_ms))
        .await?;
    session
        .set_script_timeout(Duration::from_millis(config.max_wait_ms() + 10_000))
        .await?;
    let started = Instant::now();
    session.goto(url).await?;
    let kind = choose_kind(&session, config, url, kind).await?;
    let page = read_page(&session, config, kind)
        .await
        .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    let tiles = page.tiles.iter().map(read_tile).collect();
    Ok(CheckReport {
        url: url.to_owned(),
        kind: page.kind,
        tiles,
        script: page.script,
        json: page.times.json,
        jsonld: page.times.jsonld,
        total: started.elapsed(),
    })
}

/// `retailer check`: loads the config and the page and reads it. A local
/// file is served on 127.0.0.1 with host resolution locked to loopback.
pub async fn run(
    config_path: &Path,
    page: &str,
    kind: Option<&str>,
    mut browser_settings: BrowserSettings,
) -> anyhow::Result<CheckReport> {
    let config = RetailerConfig::load(config_path)?;
    let is_url = page.starts_with("http://") || page.starts_with("https://");
    let served = if is_url {
        None
    } else {
        let path = PathBuf::from(page);
        if !path.is_file() {
            bail!("{page}: no such file (give a saved page or an http(s) URL)");
        }
        browser_settings.extra_flags.push(LOOPBACK_ONLY.to_owned());
        Some(serve_file(&path).await?)
    };
    let url = served.as_ref().map_or(page, |s| s.url.as_str()).to_owned();
    let mut browser = Browser::new(browser_settings)?;
    let result = check_page(&config, &mut browser, &url, kind).await;
    browser.shutdown().await;
    drop(served);
    result
}
