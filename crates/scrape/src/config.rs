//! Retailer configs: one TOML file per retailer in `retailers/`. A new
//! retailer is a new file, not code. Files are validated on load, and every
//! error names the file, the key and the problem.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use shelfwatch_domain::retailer::RetailerSlug;

/// One retailer, as read from `retailers/<slug>.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetailerConfig {
    pub slug: RetailerSlug,
    pub name: String,
    #[serde(default = "default_currency")]
    pub currency: String,
    /// The shop's root, ending in `/`; `start_urls` are relative to it.
    pub base_url: String,
    pub start_urls: Vec<String>,
    #[serde(default)]
    pub consent: Consent,
    #[serde(default)]
    pub navigation: Navigation,
    pub wait: Wait,
    pub selectors: Selectors,
    #[serde(default)]
    pub politeness: Politeness,
    #[serde(default)]
    pub limits: Limits,
    /// Set by the loader: where the config came from.
    #[serde(skip)]
    pub source: PathBuf,
}

fn default_currency() -> String {
    "GBP".to_owned()
}

/// How to get past the cookie-consent overlay.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consent {
    /// CSS selector of the button to click when it is present.
    pub accept: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NavigationMode {
    /// Every tile is on the first page.
    #[default]
    Single,
    /// Follow a "next page" link until it is gone.
    Paginate,
    /// Scroll to the bottom until no more tiles load.
    Scroll,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Navigation {
    pub mode: NavigationMode,
    /// `paginate`: the next-page link (absent on the last page).
    pub next: Option<String>,
    pub max_pages: u32,
    /// `scroll`: how many scrolls at most, and how long to wait after each
    /// one for new tiles.
    pub max_scrolls: u32,
    pub settle_ms: u64,
}

impl Default for Navigation {
    fn default() -> Self {
        Self {
            mode: NavigationMode::Single,
            next: None,
            max_pages: 50,
            max_scrolls: 60,
            settle_ms: 400,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wait {
    /// What shows that the tiles have rendered.
    pub ready: String,
    /// What shows a page that legitimately has no tiles.
    pub empty: Option<String>,
    #[serde(default = "default_wait_ms")]
    pub timeout_ms: u64,
}

fn default_wait_ms() -> u64 {
    10_000
}

/// Where a field is read from: the text of the first match of `css` inside
/// the tile, or its attribute `attr`; `attr` alone reads the tile's own
/// attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Field {
    pub css: Option<String>,
    pub attr: Option<String>,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            css: Option<String>,
            attr: Option<String>,
        }
        let value = toml::Value::deserialize(d)?;
        match value {
            toml::Value::String(css) => Ok(Field {
                css: Some(css),
                attr: None,
            }),
            toml::Value::Table(t) => {
                let t: Table = toml::Value::Table(t)
                    .try_into()
                    .map_err(serde::de::Error::custom)?;
                if t.css.is_none() && t.attr.is_none() {
                    return Err(serde::de::Error::custom("give `css`, `attr` or both"));
                }
                Ok(Field {
                    css: t.css,
                    attr: t.attr,
                })
            }
            other => Err(serde::de::Error::custom(format!(
                "expected a CSS selector string or a table {{ css, attr }}, found {}",
                other.type_str()
            ))),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Selectors {
    pub tile: String,
    pub sku: Field,
    pub title: Field,
    pub price: Field,
    pub was_price: Option<Field>,
    pub unit_price: Option<Field>,
    pub pack: Option<Field>,
    pub promo: Option<Field>,
    /// Present means out of stock.
    pub out_of_stock: Option<Field>,
    pub url: Option<Field>,
}

/// What a page may cost before it is refused as hostile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// The HTML document's size (as decoded) at most.
    pub max_page_bytes: u64,
    /// Tiles on one page at most.
    pub max_tiles: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_page_bytes: 8 * 1024 * 1024,
            max_tiles: 2_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Politeness {
    /// Page loads per minute at most (robots.txt `Crawl-delay` may slow it).
    pub requests_per_minute: u32,
    /// Random extra delay, as a share of the base interval (0-1).
    pub jitter: f64,
    /// Retries of one page before it is given up.
    pub max_retries: u32,
    /// Retries allowed across one run before the retailer is given up.
    pub retry_budget: u32,
    /// First backoff; doubles each retry, capped at `max_backoff_ms`.
    pub backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// Longest `Retry-After` honoured; a longer one fails the page.
    pub max_retry_after_secs: u64,
    /// Consecutive failed pages that open the circuit breaker.
    pub breaker_threshold: u32,
    /// How long the breaker stays open before one trial page.
    pub breaker_cooldown_secs: u64,
    /// Page load timeout.
    pub page_timeout_ms: u64,
}

impl Default for Politeness {
    fn default() -> Self {
        Self {
            requests_per_minute: 60,
            jitter: 0.25,
            max_retries: 4,
            retry_budget: 20,
            backoff_ms: 500,
            max_backoff_ms: 30_000,
            max_retry_after_secs: 120,
            breaker_threshold: 5,
            breaker_cooldown_secs: 60,
            page_timeout_ms: 30_000,
        }
    }
}

impl Politeness {
    pub fn interval(&self) -> Duration {
        Duration::from_secs_f64(60.0 / f64::from(self.requests_per_minute.max(1)))
    }
}

impl RetailerConfig {
    /// Reads and validates one file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading retailer config {}", path.display()))?;
        Self::parse(&text, path)
    }

    /// Parses and validates `text`, naming `path` in errors.
    pub fn parse(text: &str, path: &Path) -> anyhow::Result<Self> {
        let mut config: RetailerConfig = toml::from_str(text)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), one_line(&e.to_string())))?;
        config.source = path.to_path_buf();
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if let Some(stem) = self.source.file_stem().and_then(|s| s.to_str())
            && stem != self.slug.as_str()
        {
            bail!(
                "key `slug`: {:?} does not match the file name ({stem}.toml)",
                self.slug.as_str()
            );
        }
        if self.name.trim().is_empty() {
            bail!("key `name`: must not be empty");
        }
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            bail!(
                "key `currency`: {:?} is not an ISO 4217 code such as \"GBP\"",
                self.currency
            );
        }
        let base = url_parts(&self.base_url).map_err(|e| anyhow::anyhow!("key `base_url`: {e}"))?;
        if !base.path.ends_with('/') {
            bail!("key `base_url`: must end with `/` (start_urls are relative to it)");
        }
        if self.start_urls.is_empty() {
            bail!("key `start_urls`: give at least one page");
        }
        for (i, u) in self.start_urls.iter().enumerate() {
            if u.contains("://") {
                url_parts(u).map_err(|e| anyhow::anyhow!("key `start_urls[{i}]`: {e}"))?;
            }
        }
        let nav = &self.navigation;
        match nav.mode {
            NavigationMode::Paginate if nav.next.is_none() => {
                bail!("key `navigation.next`: required when navigation.mode = \"paginate\"")
            }
            NavigationMode::Single | NavigationMode::Scroll if nav.next.is_some() => {
                bail!("key `navigation.next`: only used when navigation.mode = \"paginate\"")
            }
            _ => {}
        }
        if nav.max_pages == 0 {
            bail!("key `navigation.max_pages`: must be at least 1");
        }
        if self.wait.timeout_ms == 0 {
            bail!("key `wait.timeout_ms`: must be more than 0");
        }
        let p = &self.politeness;
        if p.requests_per_minute == 0 || p.requests_per_minute > 6000 {
            bail!("key `politeness.requests_per_minute`: must be between 1 and 6000");
        }
        if !(0.0..=1.0).contains(&p.jitter) {
            bail!("key `politeness.jitter`: must be between 0 and 1");
        }
        if p.breaker_threshold == 0 {
            bail!("key `politeness.breaker_threshold`: must be at least 1");
        }
        if self.limits.max_page_bytes == 0 || self.limits.max_tiles == 0 {
            bail!("key `limits`: max_page_bytes and max_tiles must be more than 0");
        }
        if p.page_timeout_ms == 0 {
            bail!("key `politeness.page_timeout_ms`: must be more than 0");
        }
        let s = &self.selectors;
        let mut fields: Vec<(&str, &Field)> =
            vec![("sku", &s.sku), ("title", &s.title), ("price", &s.price)];
        for (name, f) in [
            ("was_price", &s.was_price),
            ("unit_price", &s.unit_price),
            ("pack", &s.pack),
            ("promo", &s.promo),
            ("out_of_stock", &s.out_of_stock),
            ("url", &s.url),
        ] {
            if let Some(f) = f {
                fields.push((name, f));
            }
        }
        check_selector("selectors.tile", &s.tile)?;
        check_selector("wait.ready", &self.wait.ready)?;
        for (name, f) in fields {
            if let Some(css) = &f.css {
                check_selector(&format!("selectors.{name}.css"), css)?;
            }
            if let Some(attr) = &f.attr
                && (attr.is_empty() || attr.contains(char::is_whitespace))
            {
                bail!("key `selectors.{name}.attr`: {attr:?} is not an attribute name");
            }
        }
        Ok(())
    }

    /// The absolute URLs to start from, with the origin replaced by
    /// `origin_override` when given (a demo store on another port).
    pub fn start_pages(&self, origin_override: Option<&str>) -> anyhow::Result<Vec<String>> {
        let base = self.base_url_with(origin_override)?;
        Ok(self
            .start_urls
            .iter()
            .map(|u| {
                if u.contains("://") {
                    match origin_override {
                        Some(o) => replace_origin(u, o).unwrap_or_else(|_| u.clone()),
                        None => u.clone(),
                    }
                } else {
                    format!("{base}{}", u.trim_start_matches('/'))
                }
            })
            .collect())
    }

    /// `base_url`, with its origin replaced when asked.
    pub fn base_url_with(&self, origin_override: Option<&str>) -> anyhow::Result<String> {
        match origin_override {
            Some(o) => replace_origin(&self.base_url, o),
            None => Ok(self.base_url.clone()),
        }
    }
}

/// Loads every `*.toml` in `dir`, sorted by file name. Fails on the first
/// invalid file, naming it, and on two files with one slug.
pub fn load_dir(dir: &Path) -> anyhow::Result<Vec<RetailerConfig>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("reading the retailers directory {}", dir.display()))?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("listing {}", dir.display()))?
            .path();
        if path.extension().is_some_and(|e| e == "toml") {
            paths.push(path);
        }
    }
    paths.sort();
    let mut seen = BTreeMap::new();
    let mut configs = Vec::new();
    for path in paths {
        let config = RetailerConfig::load(&path)?;
        if let Some(other) = seen.insert(config.slug.as_str().to_owned(), path.clone()) {
            bail!(
                "{}: slug {:?} is already used by {}",
                path.display(),
                config.slug.as_str(),
                other.display()
            );
        }
        configs.push(config);
    }
    if configs.is_empty() {
        bail!("no retailer configs (*.toml) in {}", dir.display());
    }
    Ok(configs)
}

/// The parts of an http(s) URL the scraper needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts {
    /// `scheme://host[:port]`
    pub origin: String,
    /// From the first `/` after the authority, query included; `/` when empty.
    pub path: String,
}

pub fn url_parts(url: &str) -> anyhow::Result<UrlParts> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| anyhow::anyhow!("{url:?} is not an absolute URL"))?;
    if scheme != "http" && scheme != "https" {
        bail!("{url:?}: only http and https URLs are scraped");
    }
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains(char::is_whitespace) {
        bail!("{url:?} has no host");
    }
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    Ok(UrlParts {
        origin: format!("{scheme}://{authority}"),
        path,
    })
}

fn replace_origin(url: &str, origin: &str) -> anyhow::Result<String> {
    let parts = url_parts(url)?;
    Ok(format!("{}{}", origin.trim_end_matches('/'), parts.path))
}

/// Rejects selectors that cannot be valid CSS, so a typo fails on load
/// rather than as "no tiles" at scrape time. The browser has the last word.
fn check_selector(key: &str, css: &str) -> anyhow::Result<()> {
    let trimmed = css.trim();
    if trimmed.is_empty() {
        bail!("key `{key}`: empty selector");
    }
    let mut depth: i32 = 0;
    let mut quote: Option<char> = None;
    for c in trimmed.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '(') => depth += 1,
            (None, ']' | ')') => {
                depth -= 1;
                if depth < 0 {
                    bail!("key `{key}`: {css:?} closes a bracket it never opened");
                }
            }
            _ => {}
        }
    }
    if depth != 0 || quote.is_some() {
        bail!("key `{key}`: {css:?} has an unclosed bracket or quote");
    }
    if trimmed.ends_with([',', '>', '+', '~']) {
        bail!("key `{key}`: {css:?} ends with a combinator");
    }
    Ok(())
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r##"
slug = "shop"
name = "Shop"
base_url = "http://127.0.0.1:8700/shop/"
start_urls = ["groceries"]
[consent]
accept = "#accept"
[navigation]
mode = "paginate"
next = "a.next"
[wait]
ready = "li.tile"
[selectors]
tile = "li.tile"
sku = { attr = "data-sku" }
title = "h3"
price = ".price"
url = { css = "a", attr = "href" }
"##;

    fn parse(text: &str) -> anyhow::Result<RetailerConfig> {
        RetailerConfig::parse(text, Path::new("retailers/shop.toml"))
    }

    #[test]
    fn a_good_config_loads_with_defaults() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.slug.as_str(), "shop");
        assert_eq!(c.currency, "GBP");
        assert_eq!(c.navigation.mode, NavigationMode::Paginate);
        assert_eq!(c.politeness.requests_per_minute, 60);
        assert_eq!(
            c.selectors.sku,
            Field {
                css: None,
                attr: Some("data-sku".into())
            }
        );
        assert_eq!(
            c.start_pages(Some("http://127.0.0.1:9999")).unwrap(),
            vec!["http://127.0.0.1:9999/shop/groceries".to_owned()]
        );
    }

    #[test]
    fn errors_name_the_file_the_key_and_the_problem() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "name = \"Shop\"",
                "name = \"Shop\"\ncolour = \"red\"",
                "unknown field `colour`",
            ),
            ("mode = \"paginate\"", "mode = \"sideways\"", "sideways"),
            ("next = \"a.next\"\n", "", "navigation.next"),
            (
                "price = \".price\"",
                "price = \".price[\"",
                "selectors.price.css",
            ),
            ("price = \".price\"", "price = 3", "expected a CSS selector"),
            (
                "slug = \"shop\"",
                "slug = \"other\"",
                "does not match the file name",
            ),
            (
                "base_url = \"http://127.0.0.1:8700/shop/\"",
                "base_url = \"ftp://x/\"",
                "base_url",
            ),
            (
                "start_urls = [\"groceries\"]",
                "start_urls = []",
                "start_urls",
            ),
            (
                "tile = \"li.tile\"",
                "tile = \"li.tile >\"",
                "selectors.tile",
            ),
            (
                "[wait]\nready = \"li.tile\"",
                "[wait]\nready = \"li.tile\"\ntimeout_ms = 0",
                "wait.timeout_ms",
            ),
        ];
        for (from, to, want) in cases {
            assert!(GOOD.contains(from), "{from}");
            let text = GOOD.replacen(from, to, 1);
            let err = format!("{:#}", parse(&text).unwrap_err());
            assert!(err.contains("retailers/shop.toml"), "{err}");
            assert!(err.contains(want), "want {want:?} in: {err}");
        }
        let text = format!("{GOOD}[politeness]\njitter = 2.0\n");
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(err.contains("politeness.jitter"), "{err}");
    }

    #[test]
    fn the_shipped_retailer_configs_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../retailers");
        let configs = load_dir(&dir).unwrap();
        assert!(configs.len() >= 4, "{} configs", configs.len());
    }

    #[test]
    fn url_parts_split_origin_and_path() {
        let p = url_parts("http://127.0.0.1:8700/shop/x?page=2").unwrap();
        assert_eq!(p.origin, "http://127.0.0.1:8700");
        assert_eq!(p.path, "/shop/x?page=2");
        assert_eq!(url_parts("https://a.example").unwrap().path, "/");
        assert!(url_parts("a.example/x").is_err());
    }
}
