//! Retailer configs: one TOML file per retailer in `retailers/` (the real
//! shops; the demo store's are in `retailers/demo/`). A new retailer is a
//! new file, not code. Files are validated on load, and every
//! error names the file, the key and the problem.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json_path::JsonPath;

use shelfwatch_domain::retailer::RetailerSlug;

/// A start URL, alone or with the category of the aisle it shows.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StartUrl {
    Plain(String),
    Aisle(AislePage),
}

/// `{ url = "groceries?aisle=frozen", category = "Frozen" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AislePage {
    pub url: String,
    pub category: String,
}

impl StartUrl {
    pub fn url(&self) -> &str {
        match self {
            StartUrl::Plain(u) => u,
            StartUrl::Aisle(a) => &a.url,
        }
    }

    pub fn category(&self) -> Option<&str> {
        match self {
            StartUrl::Plain(_) => None,
            StartUrl::Aisle(a) => Some(&a.category),
        }
    }
}

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
    /// Pages to start from: a URL, or `{ url = "...", category = "Dairy" }`
    /// to give every listing reached from it that category.
    pub start_urls: Vec<StartUrl>,
    #[serde(default)]
    pub consent: Consent,
    #[serde(default)]
    pub navigation: Navigation,
    /// The one page layout of a shop with one (`[wait]` and `[selectors]`);
    /// moved into `pages` as the kind "default" on load.
    #[serde(default)]
    wait: Option<Wait>,
    #[serde(default)]
    selectors: Option<Selectors>,
    /// The page layouts (`[[pages]]`), tried in order: the first whose `url`
    /// matches the page's URL is used.
    #[serde(default)]
    pub pages: Vec<PageKind>,
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

/// One place a field's text can come from. A field lists one or more, tried
/// in order until one gives a value.
///
/// In TOML a source is a CSS selector string, or a table with exactly one of
/// `css`/`attr` (an element's text, its own text only with `own_text`, or an
/// attribute), `jsonld` (a JSONPath into the tile's schema.org `Product`),
/// `json` (a JSONPath into the tile's JSON object, or into the page document
/// named by `from`) or `page_url = true` (the page's address); and, for any
/// of them, `regex` (the first capture group, else the whole match, is the
/// value; no match gives no value), `strip` (strings removed) and `matches`
/// (a regex the value must match, else the source gives no value).
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    pub kind: SourceKind,
    #[serde(serialize_with = "ser_regex")]
    pub regex: Option<Regex>,
    pub strip: Vec<String>,
    #[serde(serialize_with = "ser_regex")]
    pub matches: Option<Regex>,
}

/// Where a [`Source`] reads.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// The first match of `css` in the tile (the tile itself without it):
    /// its attribute `attr`, its own text (`own_text`), or all its text.
    Css {
        css: Option<String>,
        attr: Option<String>,
        own_text: bool,
    },
    /// A JSONPath into the tile's schema.org Product (ld+json).
    JsonLd {
        #[serde(serialize_with = "ser_display")]
        path: JsonPath,
    },
    /// A JSONPath into the tile's JSON (tiles read from JSON), or into the
    /// page's JSON document `from` (the n-th match for the n-th tile, or the
    /// one match for every tile).
    Json {
        #[serde(serialize_with = "ser_display")]
        path: JsonPath,
        from: Option<String>,
    },
    /// The page's URL.
    PageUrl,
}

fn ser_regex<S: serde::Serializer>(r: &Option<Regex>, s: S) -> Result<S::Ok, S::Error> {
    match r {
        Some(r) => s.serialize_some(r.as_str()),
        None => s.serialize_none(),
    }
}

fn ser_display<S: serde::Serializer, T: std::fmt::Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl Source {
    /// A CSS source reading the text of `css`.
    pub fn css(css: &str) -> Self {
        Self::of(SourceKind::Css {
            css: Some(css.to_owned()),
            attr: None,
            own_text: false,
        })
    }

    fn of(kind: SourceKind) -> Self {
        Self {
            kind,
            regex: None,
            strip: Vec::new(),
            matches: None,
        }
    }

    /// Cleans a value read from the page: strips, captures, checks `matches`.
    /// `None` when nothing is left.
    pub fn refine(&self, raw: &str) -> Option<String> {
        let mut v = raw.to_owned();
        for s in &self.strip {
            v = v.replace(s.as_str(), "");
        }
        if let Some(re) = &self.regex {
            let caps = re.captures(&v)?;
            v = caps
                .get(1)
                .or_else(|| caps.get(0))
                .map(|m| m.as_str().to_owned())?;
        }
        let v = v.split_whitespace().collect::<Vec<_>>().join(" ");
        if let Some(re) = &self.matches
            && !re.is_match(&v)
        {
            return None;
        }
        Some(v)
    }
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        source_from_value(toml::Value::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

fn source_from_value(value: toml::Value) -> Result<Source, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Table {
        css: Option<String>,
        attr: Option<String>,
        #[serde(default)]
        own_text: bool,
        jsonld: Option<String>,
        json: Option<String>,
        from: Option<String>,
        #[serde(default)]
        page_url: bool,
        regex: Option<String>,
        #[serde(default)]
        strip: Vec<String>,
        matches: Option<String>,
    }
    let t: Table = match value {
        toml::Value::String(css) => return Ok(Source::css(&css)),
        toml::Value::Table(t) => toml::Value::Table(t)
            .try_into()
            .map_err(|e| one_line(&e.to_string()))?,
        other => {
            return Err(format!(
                "expected a CSS selector string or a table {{ css, attr, jsonld, json, page_url, \
                 regex, strip }}, found {}",
                other.type_str()
            ));
        }
    };
    let css_like = t.css.is_some() || t.attr.is_some() || t.own_text;
    let kinds = [css_like, t.jsonld.is_some(), t.json.is_some(), t.page_url]
        .iter()
        .filter(|k| **k)
        .count();
    if kinds != 1 {
        return Err(
            "give exactly one of `css`/`attr`, `jsonld`, `json` or `page_url` for a source".into(),
        );
    }
    if t.from.is_some() && t.json.is_none() {
        return Err("`from` is only used with `json`".into());
    }
    if t.own_text && t.attr.is_some() {
        return Err("`own_text` reads text, not an attribute: drop `attr` or `own_text`".into());
    }
    let kind = if let Some(p) = &t.jsonld {
        SourceKind::JsonLd {
            path: parse_json_path(p)?,
        }
    } else if let Some(p) = &t.json {
        SourceKind::Json {
            path: parse_json_path(p)?,
            from: t.from.clone(),
        }
    } else if t.page_url {
        SourceKind::PageUrl
    } else {
        SourceKind::Css {
            css: t.css.clone(),
            attr: t.attr.clone(),
            own_text: t.own_text,
        }
    };
    let regex = |r: &Option<String>| {
        r.as_deref()
            .map(|r| {
                Regex::new(r)
                    .map_err(|e| format!("{r:?} is not a regex: {}", one_line(&e.to_string())))
            })
            .transpose()
    };
    Ok(Source {
        kind,
        regex: regex(&t.regex)?,
        strip: t.strip,
        matches: regex(&t.matches)?,
    })
}

/// Where a field is read from: one or more [`Source`]s, tried in order.
/// In TOML a single source or an array of them.
#[derive(Debug, Clone, Serialize)]
pub struct Field(pub Vec<Source>);

impl Field {
    /// The text of the first match of `css` in the tile.
    pub fn css(css: &str) -> Self {
        Field(vec![Source::css(css)])
    }
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = toml::Value::deserialize(d)?;
        let sources = match value {
            toml::Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| source_from_value(v).map_err(|e| format!("source {i}: {e}")))
                .collect::<Result<Vec<_>, _>>(),
            other => source_from_value(other).map(|s| vec![s]),
        }
        .map_err(serde::de::Error::custom)?;
        if sources.is_empty() {
            return Err(serde::de::Error::custom("give at least one source"));
        }
        Ok(Field(sources))
    }
}

/// Where a page's tiles come from.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TileSource {
    /// Every match of a CSS selector.
    Css(String),
    /// Every match of a JSONPath into the page's JSON document `from`.
    Json {
        #[serde(serialize_with = "ser_display")]
        path: JsonPath,
        from: String,
    },
    /// Every schema.org Product in the page's ld+json (an ItemList's too).
    JsonLd,
}

impl TileSource {
    /// The CSS selector, for tiles read from the DOM.
    pub fn css(&self) -> Option<&str> {
        match self {
            TileSource::Css(c) => Some(c),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for TileSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            json: Option<String>,
            from: Option<String>,
            #[serde(default)]
            jsonld: bool,
        }
        fn err<E: serde::de::Error>(m: impl std::fmt::Display) -> E {
            E::custom(m)
        }
        match toml::Value::deserialize(d)? {
            toml::Value::String(css) => Ok(TileSource::Css(css)),
            toml::Value::Table(t) => {
                let t: Table = toml::Value::Table(t).try_into().map_err(err::<D::Error>)?;
                match (t.json, t.from, t.jsonld) {
                    (Some(p), Some(from), false) => Ok(TileSource::Json {
                        path: parse_json_path(&p).map_err(err::<D::Error>)?,
                        from,
                    }),
                    (None, None, true) => Ok(TileSource::JsonLd),
                    _ => Err(err(
                        "a tile is a CSS selector, { json = PATH, from = DOCUMENT } or { jsonld = true }",
                    )),
                }
            }
            other => Err(err(format!(
                "expected a CSS selector or a table, found {}",
                other.type_str()
            ))),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Selectors {
    pub tile: TileSource,
    pub sku: Field,
    pub title: Field,
    pub price: Field,
    pub was_price: Option<Field>,
    pub unit_price: Option<Field>,
    pub pack: Option<Field>,
    pub promo: Option<Field>,
    /// A multibuy ("Any 2 for £4") in its own element.
    pub multibuy: Option<Field>,
    /// A loyalty price ("Clubcard Price £1.50") in its own element.
    pub loyalty: Option<Field>,
    /// Out of stock when a source gives a value: an element that is there,
    /// or a value that `matches` (`{ attr = "data-auto-available", matches
    /// = "^false$" }`, `{ css = ".status", matches = "(?i)sold out" }`).
    pub out_of_stock: Option<Field>,
    pub url: Option<Field>,
}

impl Selectors {
    /// Every field by name, the optional ones when given.
    pub fn fields(&self) -> Vec<(&'static str, &Field)> {
        let mut fields = vec![
            ("sku", &self.sku),
            ("title", &self.title),
            ("price", &self.price),
        ];
        for (name, f) in [
            ("was_price", &self.was_price),
            ("unit_price", &self.unit_price),
            ("pack", &self.pack),
            ("promo", &self.promo),
            ("multibuy", &self.multibuy),
            ("loyalty", &self.loyalty),
            ("out_of_stock", &self.out_of_stock),
            ("url", &self.url),
        ] {
            if let Some(f) = f {
                fields.push((name, f));
            }
        }
        fields
    }
}

/// One layout of the shop's pages (a search listing, a product page), with
/// the URLs it is used for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageKind {
    pub name: String,
    /// A regex on the page's URL; without it the kind takes any page.
    #[serde(default, deserialize_with = "de_regex")]
    pub url: Option<Regex>,
    pub wait: Wait,
    pub selectors: Selectors,
}

fn de_regex<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Regex>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    s.map(|s| {
        Regex::new(&s).map_err(|e| {
            serde::de::Error::custom(format!(
                "{s:?} is not a regex: {}",
                one_line(&e.to_string())
            ))
        })
    })
    .transpose()
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
        match (config.wait.take(), config.selectors.take()) {
            (Some(wait), Some(selectors)) => config.pages.push(PageKind {
                name: "default".into(),
                url: None,
                wait,
                selectors,
            }),
            (None, None) => {}
            (Some(_), None) => bail!(
                "{}: key `selectors`: required with `[wait]`",
                path.display()
            ),
            (None, Some(_)) => bail!(
                "{}: key `wait`: required with `[selectors]`",
                path.display()
            ),
        }
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
        for (i, start) in self.start_urls.iter().enumerate() {
            if let Some(c) = start.category()
                && (c.trim().is_empty() || c.trim() != c || c.chars().count() > 200)
            {
                bail!(
                    "key `start_urls[{i}].category`: {c:?} must be 1 to 200 characters \
                     without surrounding spaces"
                );
            }
            let u = start.url();
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
        if let Some(next) = &nav.next {
            check_selector("navigation.next", next)?;
        }
        if let Some(accept) = &self.consent.accept {
            check_selector("consent.accept", accept)?;
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
        if self.pages.is_empty() {
            bail!("key `pages`: give `[wait]` and `[selectors]`, or at least one `[[pages]]`");
        }
        let single = self.pages.len() == 1 && self.pages[0].name == "default";
        let mut names = std::collections::BTreeSet::new();
        for (i, kind) in self.pages.iter().enumerate() {
            let at = if single {
                String::new()
            } else {
                format!("pages[{i}].")
            };
            if !names.insert(kind.name.as_str()) {
                bail!("key `{at}name`: {:?} is used twice", kind.name);
            }
            kind.validate(&at)?;
        }
        Ok(())
    }

    /// The page kind for `url`: the first whose `url` pattern matches, else
    /// the first without a pattern.
    pub fn kind_for(&self, url: &str) -> Option<&PageKind> {
        self.pages
            .iter()
            .find(|k| k.url.as_ref().is_some_and(|re| re.is_match(url)))
            .or_else(|| self.pages.iter().find(|k| k.url.is_none()))
    }

    /// The page kind called `name`.
    pub fn kind_named(&self, name: &str) -> Option<&PageKind> {
        self.pages.iter().find(|k| k.name == name)
    }

    /// The longest a page may wait for its tiles, over every page kind.
    pub fn max_wait_ms(&self) -> u64 {
        self.pages
            .iter()
            .map(|k| k.wait.timeout_ms)
            .max()
            .unwrap_or(0)
    }

    /// The absolute URLs to start from, with the origin replaced by
    /// `origin_override` when given (a demo store on another port).
    pub fn start_pages(&self, origin_override: Option<&str>) -> anyhow::Result<Vec<String>> {
        Ok(self
            .start_pages_with_categories(origin_override)?
            .into_iter()
            .map(|(url, _)| url)
            .collect())
    }

    /// [`RetailerConfig::start_pages`], each with its category, if it has one.
    pub fn start_pages_with_categories(
        &self,
        origin_override: Option<&str>,
    ) -> anyhow::Result<Vec<(String, Option<String>)>> {
        let base = self.base_url_with(origin_override)?;
        Ok(self
            .start_urls
            .iter()
            .map(|start| {
                let u = start.url();
                let url = if u.contains("://") {
                    match origin_override {
                        Some(o) => replace_origin(u, o).unwrap_or_else(|_| u.to_owned()),
                        None => u.to_owned(),
                    }
                } else {
                    format!("{base}{}", u.trim_start_matches('/'))
                };
                (url, start.category().map(str::to_owned))
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
    let loaded = load_dir_lenient(dir)?;
    if let Some(e) = loaded.broken.into_iter().next() {
        return Err(e.error);
    }
    Ok(loaded.configs)
}

/// A retailer file that could not be loaded.
#[derive(Debug)]
pub struct BrokenConfig {
    pub path: PathBuf,
    /// The slug the file name says it is for.
    pub slug: String,
    pub error: anyhow::Error,
}

/// The configs of a directory that loaded, and those that did not.
#[derive(Debug, Default)]
pub struct Loaded {
    pub configs: Vec<RetailerConfig>,
    pub broken: Vec<BrokenConfig>,
}

/// Loads every `*.toml` in `dir`, sorted by file name, keeping going past
/// broken files (each is returned with its error) so one broken retailer
/// does not stop the others. A second file with a slug already used is
/// broken. Fails only when the directory cannot be read or holds no file.
pub fn load_dir_lenient(dir: &Path) -> anyhow::Result<Loaded> {
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
    if paths.is_empty() {
        bail!("no retailer configs (*.toml) in {}", dir.display());
    }
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut loaded = Loaded::default();
    for path in paths {
        let slug = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let config = RetailerConfig::load(&path).and_then(|config| {
            if let Some(other) = seen.get(config.slug.as_str()) {
                bail!(
                    "{}: slug {:?} is already used by {}",
                    path.display(),
                    config.slug.as_str(),
                    other.display()
                );
            }
            seen.insert(config.slug.as_str().to_owned(), path.clone());
            Ok(config)
        });
        match config {
            Ok(c) => loaded.configs.push(c),
            Err(error) => loaded.broken.push(BrokenConfig { path, slug, error }),
        }
    }
    Ok(loaded)
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

/// Compiles a CSS selector, so a typo fails on load, named with its key,
/// rather than at scrape time as "the element is in an invalid state".
fn check_selector(key: &str, css: &str) -> anyhow::Result<()> {
    if css.trim().is_empty() {
        bail!("key `{key}`: empty selector");
    }
    // The selector parser recurses once per nested `:is(`, `:not(` and
    // the like, and enough of them overflow the stack, which no error
    // handling catches: refuse deep nesting before parsing.
    let depth = bracket_depth(css);
    if depth > MAX_SELECTOR_DEPTH {
        bail!(
            "key `{key}`: the selector nests brackets {depth} deep; at most \
             {MAX_SELECTOR_DEPTH} are accepted"
        );
    }
    if let Err(e) = scraper::Selector::parse(css) {
        bail!(
            "key `{key}`: {css:?} is not a valid CSS selector ({})",
            one_line(&format!("{e:?}"))
                .chars()
                .take(160)
                .collect::<String>()
        );
    }
    Ok(())
}

/// Deeper bracket nesting than this in a CSS selector is refused (real
/// shop selectors nest two or three levels).
const MAX_SELECTOR_DEPTH: usize = 32;

/// Deeper bracket nesting than this in a JSONPath is refused. Its parser
/// backtracks: each unclosed nested filter (`[?(@`, two levels) about
/// doubles the time to reject the path (4 ms at 8 filters in a debug
/// build, minutes at 24), and 100 overflow the stack.
const MAX_JSON_PATH_DEPTH: usize = 12;

/// Compiles a JSONPath, refusing deep nesting first.
fn parse_json_path(p: &str) -> Result<JsonPath, String> {
    let depth = bracket_depth(p);
    if depth > MAX_JSON_PATH_DEPTH {
        return Err(format!(
            "the JSONPath nests brackets {depth} deep; at most {MAX_JSON_PATH_DEPTH} are accepted"
        ));
    }
    JsonPath::parse(p).map_err(|e| format!("{p:?} is not a JSONPath: {e}"))
}

/// The deepest nesting of `(` and `[` in a CSS selector or a JSONPath,
/// outside quoted strings (`[alt='a(b']` nests one level, not two).
fn bracket_depth(text: &str) -> usize {
    let (mut depth, mut deepest, mut quote) = (0usize, 0usize, None);
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                chars.next();
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '(' | '[') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (None, ')' | ']') => depth = depth.saturating_sub(1),
            (None, _) => {}
        }
    }
    deepest
}

impl PageKind {
    /// Checks the kind's selectors; `at` prefixes its keys ("pages[1].").
    fn validate(&self, at: &str) -> anyhow::Result<()> {
        if self.name.trim().is_empty() {
            bail!("key `{at}name`: must not be empty");
        }
        if self.wait.timeout_ms == 0 {
            bail!("key `{at}wait.timeout_ms`: must be more than 0");
        }
        check_selector(&format!("{at}wait.ready"), &self.wait.ready)?;
        if let Some(empty) = &self.wait.empty {
            check_selector(&format!("{at}wait.empty"), empty)?;
        }
        let s = &self.selectors;
        let css_tiles = match &s.tile {
            TileSource::Css(css) => {
                check_selector(&format!("{at}selectors.tile"), css)?;
                true
            }
            _ => false,
        };
        for (name, field) in s.fields() {
            let many = field.0.len() > 1;
            for (i, source) in field.0.iter().enumerate() {
                let key = if many {
                    format!("{at}selectors.{name}[{i}]")
                } else {
                    format!("{at}selectors.{name}")
                };
                match &source.kind {
                    SourceKind::Css { css, attr, .. } => {
                        if !css_tiles {
                            bail!(
                                "key `{key}`: tiles read from JSON have no elements; read them with `json`"
                            );
                        }
                        if let Some(css) = css {
                            check_selector(&format!("{key}.css"), css)?;
                        }
                        if let Some(attr) = attr
                            && (attr.is_empty() || attr.contains(char::is_whitespace))
                        {
                            bail!("key `{key}.attr`: {attr:?} is not an attribute name");
                        }
                    }
                    SourceKind::Json { from: None, .. } if css_tiles => {
                        bail!(
                            "key `{key}.from`: required for tiles read with CSS (which JSON document?)"
                        );
                    }
                    SourceKind::Json {
                        from: Some(from), ..
                    } => check_document(&format!("{key}.from"), from)?,
                    _ => {}
                }
            }
        }
        if let TileSource::Json { from, .. } = &s.tile {
            check_document(&format!("{at}selectors.tile.from"), from)?;
        }
        Ok(())
    }
}

/// A JSON document in the page: `window.NAME` (a global the page's scripts
/// set, dotted paths allowed) or the CSS selector of a `<script>` holding
/// JSON (`script#mobify-data`, `script[type="application/json"]`), or
/// `body` for a JSON response.
fn check_document(key: &str, from: &str) -> anyhow::Result<()> {
    match from.strip_prefix("window.") {
        Some(name) => {
            if name.is_empty()
                || !name.split('.').all(|p| {
                    !p.is_empty()
                        && p.chars()
                            .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
                })
            {
                bail!(
                    "key `{key}`: {from:?} is not a global such as \"window.__PRELOADED_STATE__\""
                );
            }
            Ok(())
        }
        None => check_selector(key, from),
    }
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
        let kind = &c.pages[0];
        assert_eq!(kind.name, "default");
        match &kind.selectors.sku.0[..] {
            [
                Source {
                    kind:
                        SourceKind::Css {
                            css: None,
                            attr: Some(attr),
                            own_text: false,
                        },
                    ..
                },
            ] => assert_eq!(attr, "data-sku"),
            other => panic!("{other:?}"),
        }
        assert!(c.kind_for("http://127.0.0.1:8700/shop/x").is_some());
        assert_eq!(
            c.start_pages(Some("http://127.0.0.1:9999")).unwrap(),
            vec!["http://127.0.0.1:9999/shop/groceries".to_owned()]
        );
        assert_eq!(
            c.start_pages_with_categories(None).unwrap(),
            vec![("http://127.0.0.1:8700/shop/groceries".to_owned(), None)]
        );
    }

    #[test]
    fn a_start_url_may_carry_its_category() {
        let text = GOOD.replacen(
            "start_urls = [\"groceries\"]",
            "start_urls = [\"all\", { url = \"groceries?aisle=frozen\", category = \"Frozen\" }]",
            1,
        );
        let c = parse(&text).unwrap();
        assert_eq!(
            c.start_pages_with_categories(None).unwrap(),
            vec![
                ("http://127.0.0.1:8700/shop/all".to_owned(), None),
                (
                    "http://127.0.0.1:8700/shop/groceries?aisle=frozen".to_owned(),
                    Some("Frozen".to_owned())
                ),
            ]
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
                "start_urls = [\"groceries\"]",
                "start_urls = [{ url = \"groceries\", category = \" \" }]",
                "start_urls[0].category",
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
        for (from, to, want) in [
            // Compiled on load: named with the file, the key and the selector.
            (
                "price = \".price\"",
                "price = \"p:nth-child(\"",
                "selectors.price.css",
            ),
            ("price = \".price\"", "price = \"p::price\"", "\"p::price\""),
            (
                "price = \".price\"",
                "price = [\".price\", { css = \"a{\" }]",
                "selectors.price[1].css",
            ),
            (
                "price = \".price\"",
                "price = { css = \".p\", regex = \"(\" }",
                "regex",
            ),
            (
                "price = \".price\"",
                "price = { json = \"$.x\" }",
                "selectors.price.from",
            ),
            (
                "price = \".price\"",
                "price = { json = \"x[\", from = \"window.S\" }",
                "JSONPath",
            ),
            (
                "price = \".price\"",
                "price = { css = \".p\", jsonld = \"$.x\" }",
                "exactly one",
            ),
            ("accept = \"#accept\"", "accept = \"#\"", "consent.accept"),
        ] {
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
    fn deeply_nested_selectors_are_refused_not_a_stack_overflow() {
        // 5,000 nested `:is(` overflowed the selector parser's stack and
        // aborted the process (found by `fuzz_retailer_config`).
        let deep = format!("{}li", ":is(".repeat(5_000));
        let text = GOOD.replacen("tile = \"li.tile\"", &format!("tile = {deep:?}"), 1);
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(err.contains("retailers/shop.toml"), "{err}");
        assert!(err.contains("selectors.tile"), "{err}");
        assert!(err.contains("nests brackets 5000 deep"), "{err}");
        // Shallow nesting, and brackets inside quotes, are fine.
        let ok = ":is(li:not([data-x='(((']), li.tile)";
        assert_eq!(bracket_depth(ok), 3);
        let text = GOOD.replacen("tile = \"li.tile\"", &format!("tile = {ok:?}"), 1);
        assert!(parse(&text).is_ok());
        assert_eq!(bracket_depth(&":not(".repeat(33)), 33);
        assert_eq!(bracket_depth("a\\(b"), 0);
        // JSONPaths are checked the same way.
        let deep_path = format!("$.a{}", "[?(@".repeat(2_000));
        let text = GOOD.replacen(
            "price = \".price\"",
            &format!("price = {{ json = {deep_path:?}, from = \"window.S\" }}"),
            1,
        );
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(err.contains("retailers/shop.toml"), "{err}");
        assert!(err.contains("JSONPath nests brackets 4000 deep"), "{err}");
        assert!(parse_json_path("$.offers[?(@.price > 1)].price").is_ok());
        // Six unclosed filters are 12 levels: parsed (and rejected) at once.
        let six = format!("$.a{}", "[?(@".repeat(6));
        assert!(
            parse_json_path(&six)
                .unwrap_err()
                .contains("is not a JSONPath")
        );
        let seven = format!("$.a{}", "[?(@".repeat(7));
        assert!(parse_json_path(&seven).unwrap_err().contains("14 deep"));
    }

    #[test]
    fn page_kinds_are_chosen_by_url() {
        let text = r##"
slug = "shop"
name = "Shop"
base_url = "https://shop.example/"
start_urls = ["search?q=milk"]
[[pages]]
name = "product"
url = "/products/\\d+"
wait = { ready = "h1" }
[pages.selectors]
tile = "body"
sku = { page_url = true, regex = "/products/(\\d+)" }
title = "h1"
price = { css = ".price", own_text = true }
[[pages]]
name = "search"
wait = { ready = "li" }
[pages.selectors]
tile = { json = "$.products[*]", from = "script#state" }
sku = { json = "$.id" }
title = { json = "$.name" }
price = { json = "$.price", regex = "([0-9.]+)" }
"##;
        let c = parse(text).unwrap();
        assert_eq!(
            c.kind_for("https://shop.example/products/12").unwrap().name,
            "product"
        );
        assert_eq!(
            c.kind_for("https://shop.example/search?q=x").unwrap().name,
            "search"
        );
        let bad = text.replace("sku = { json = \"$.id\" }", "sku = \".sku\"");
        let err = format!("{:#}", parse(&bad).unwrap_err());
        assert!(err.contains("pages[1].selectors.sku"), "{err}");
        let twice = text.replace("name = \"search\"", "name = \"product\"");
        assert!(format!("{:#}", parse(&twice).unwrap_err()).contains("used twice"));
    }

    #[test]
    fn a_broken_file_is_reported_and_the_others_load() {
        let dir = std::env::temp_dir().join(format!("sw-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("shop.toml"), GOOD).unwrap();
        std::fs::write(dir.join("other.toml"), "slug = [").unwrap();
        let loaded = load_dir_lenient(&dir).unwrap();
        assert_eq!(loaded.configs.len(), 1);
        assert_eq!(loaded.broken.len(), 1);
        assert_eq!(loaded.broken[0].slug, "other");
        assert!(format!("{:#}", loaded.broken[0].error).contains("other.toml"));
        assert!(load_dir(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_shipped_retailer_configs_load() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../retailers");
        let slugs = |dir: &Path| -> Vec<String> {
            load_dir(dir)
                .unwrap()
                .iter()
                .map(|c| c.slug.as_str().to_owned())
                .collect()
        };
        // The default directory holds the real shops; the demo store's are
        // in their own directory, so neither run scrapes the other's.
        assert_eq!(
            slugs(&root),
            ["asda", "morrisons", "ocado", "tesco", "waitrose"]
        );
        assert_eq!(
            slugs(&root.join("demo")),
            ["aldwick", "icebox", "morrow", "sainsway"]
        );
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
