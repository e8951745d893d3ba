//! From a rendered page to observations. One script reads every tile's raw
//! text in a single WebDriver round trip (a call per field per tile would
//! cost a round trip each); Rust then parses the text with the domain
//! parsers, so the browser never decides what a price is.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::config::{Field, Selectors};
use shelfwatch_domain::money::parse_pence;
use shelfwatch_domain::promo::parse_promo;
use shelfwatch_domain::quantity::parse_pack;
use shelfwatch_domain::retailer::RetailerSlug;
use shelfwatch_domain::unit_price::parse_unit_price;
use shelfwatch_store::ingest::Observation;

/// Reads every tile on the page, and the next-page link when a selector
/// for it is given. Arguments: the selectors (as JSON), the next-link
/// selector (or null), the most tiles to read. Returns `{ tiles: [RawTile],
/// count, next }`; over the limit, no tiles and the count.
pub const EXTRACT_JS: &str = r#"
const sel = arguments[0];
const maxTiles = arguments[2];
const found = document.querySelectorAll(sel.tile).length;
if (maxTiles && found > maxTiles) return { tiles: [], count: found, next: null };
const clean = (s) => s == null ? null : String(s).replace(/\s+/g, ' ').trim();
const read = (tile, f) => {
  if (!f) return null;
  const el = f.css ? tile.querySelector(f.css) : tile;
  if (!el) return null;
  if (f.attr) {
    const v = el.getAttribute(f.attr);
    if (v == null) return null;
    if (f.attr === 'href' || f.attr === 'src') {
      try { return new URL(v, document.baseURI).href; } catch (e) { return v; }
    }
    return clean(v);
  }
  return clean(el.textContent);
};
const present = (tile, f) => {
  if (!f) return false;
  const el = f.css ? tile.querySelector(f.css) : tile;
  if (!el) return false;
  return f.attr ? el.hasAttribute(f.attr) : true;
};
const tiles = Array.from(document.querySelectorAll(sel.tile)).map((t, i) => ({
  index: i,
  sku: read(t, sel.sku),
  title: read(t, sel.title),
  price: read(t, sel.price),
  was_price: read(t, sel.was_price),
  unit_price: read(t, sel.unit_price),
  pack: read(t, sel.pack),
  promo: read(t, sel.promo),
  out_of_stock: present(t, sel.out_of_stock),
  url: read(t, sel.url),
}));
let next = null;
if (arguments[1]) {
  const a = document.querySelector(arguments[1]);
  const href = a && a.getAttribute('href');
  if (a && href && href !== '#' && a.getAttribute('aria-disabled') !== 'true'
      && !a.classList.contains('disabled')) {
    try { next = new URL(href, document.baseURI).href; } catch (e) { next = null; }
  }
}
return { tiles: tiles, count: tiles.length, next: next };
"#;

/// The navigation's HTTP status (0 when the browser does not say).
pub const STATUS_JS: &str = r#"
const e = performance.getEntriesByType('navigation')[0];
return e && typeof e.responseStatus === 'number' ? e.responseStatus : 0;
"#;

/// Asks the server again, from the page, for the `Retry-After` header of a
/// 429 or 503 answer (the navigation API does not expose headers).
pub const RETRY_AFTER_JS: &str = r#"
const done = arguments[arguments.length - 1];
fetch(location.href, { method: 'HEAD', cache: 'no-store', credentials: 'same-origin' })
  .then(r => done(r.headers.get('retry-after')))
  .catch(() => done(null));
"#;

/// One round trip after navigation: the HTTP status (a 4xx or 5xx answers
/// at once), then waits until `ready` or `empty` matches (up to `timeout`
/// ms), then clicks the consent button when it is there. Arguments: ready,
/// empty (or null), timeout_ms, accept (or null). Returns `{status, state,
/// clicked}` with state "ready", "empty", "timeout" or "error".
pub const READY_JS: &str = r#"
const [ready, empty, timeout, accept] = arguments;
const done = arguments[arguments.length - 1];
const nav = performance.getEntriesByType('navigation')[0];
const status = nav && typeof nav.responseStatus === 'number' ? nav.responseStatus : 0;
const bytes = nav && typeof nav.decodedBodySize === 'number' ? nav.decodedBodySize : 0;
if (status >= 400) return done({ status: status, state: 'error', clicked: false, bytes: bytes });
const start = Date.now();
(function poll() {
  let state = null;
  if (document.querySelector(ready)) state = 'ready';
  else if (empty && document.querySelector(empty)) state = 'empty';
  else if (Date.now() - start > timeout) state = 'timeout';
  if (state === null) return setTimeout(poll, 25);
  let clicked = false;
  if (accept) {
    const b = document.querySelector(accept);
    if (b) { b.click(); clicked = true; }
  }
  done({ status: status, state: state, clicked: clicked, bytes: bytes });
})();
"#;

/// What [`READY_JS`] found.
#[derive(Debug, Clone, Deserialize)]
pub struct Ready {
    pub status: u16,
    pub state: String,
    pub clicked: bool,
    /// The document's decoded size (0 when the browser does not say).
    #[serde(default)]
    pub bytes: u64,
}

/// Scrolls to the bottom until no more tiles arrive. Arguments: tile
/// selector, max scrolls, settle ms. Returns the number of scrolls made.
pub const SCROLL_JS: &str = r#"
const [tileSel, maxScrolls, settle] = arguments;
const done = arguments[arguments.length - 1];
let scrolls = 0;
const count = () => document.querySelectorAll(tileSel).length;
(function step() {
  if (scrolls >= maxScrolls) return done(scrolls);
  const before = count();
  window.scrollTo(0, document.documentElement.scrollHeight);
  scrolls += 1;
  const start = Date.now();
  (function wait() {
    if (count() > before) return step();
    if (Date.now() - start > settle) return done(scrolls);
    setTimeout(wait, 25);
  })();
})();
"#;

/// One tile's text as the page shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawTile {
    pub index: usize,
    pub sku: Option<String>,
    pub title: Option<String>,
    pub price: Option<String>,
    pub was_price: Option<String>,
    pub unit_price: Option<String>,
    pub pack: Option<String>,
    pub promo: Option<String>,
    pub out_of_stock: bool,
    pub url: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Extracted {
    pub tiles: Vec<RawTile>,
    pub count: u64,
    pub next: Option<String>,
}

/// The selectors as the extraction script takes them.
pub fn selectors_json(s: &Selectors) -> serde_json::Value {
    fn f(field: &Option<Field>) -> serde_json::Value {
        field
            .as_ref()
            .map_or(serde_json::Value::Null, |f| serde_json::json!(f))
    }
    serde_json::json!({
        "tile": s.tile,
        "sku": s.sku,
        "title": s.title,
        "price": s.price,
        "was_price": f(&s.was_price),
        "unit_price": f(&s.unit_price),
        "pack": f(&s.pack),
        "promo": f(&s.promo),
        "out_of_stock": f(&s.out_of_stock),
        "url": f(&s.url),
    })
}

/// A tile that could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileError {
    pub index: usize,
    pub sku: Option<String>,
    pub reason: String,
}

/// Reads one tile into an observation. Missing or unreadable SKU, title or
/// price rejects the tile; an unreadable optional field rejects it too,
/// because it means the markup is not what the config expects and the
/// price beside it cannot be trusted either.
pub fn parse_tile(
    retailer: &RetailerSlug,
    tile: &RawTile,
    observed_at: DateTime<Utc>,
) -> Result<Observation, TileError> {
    let fail = |reason: String| TileError {
        index: tile.index,
        sku: tile.sku.clone(),
        reason,
    };
    let required = |v: &Option<String>, name: &str| -> Result<String, TileError> {
        match v.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() => Ok(s.to_owned()),
            _ => Err(fail(format!("no {name}"))),
        }
    };
    let sku = required(&tile.sku, "SKU")?;
    let title = required(&tile.title, "title")?;
    let price_text = required(&tile.price, "price")?;
    let price = parse_pence(&price_text).map_err(|e| fail(e.to_string()))?;
    let mut obs = Observation::new(retailer.clone(), sku, title, observed_at, price);
    if let Some(text) = optional(&tile.was_price) {
        obs.was_price_pence = Some(parse_pence(text).map_err(|e| fail(e.to_string()))?);
    }
    if let Some(text) = optional(&tile.unit_price) {
        obs.unit_price = Some(parse_unit_price(text).map_err(|e| fail(e.to_string()))?);
    }
    if let Some(text) = optional(&tile.promo) {
        obs.promo = Some(parse_promo(text).map_err(|e| fail(e.to_string()))?);
        obs.promo_text = Some(text.to_owned());
    }
    obs.pack = match optional(&tile.pack) {
        Some(text) => Some(parse_pack(text).map_err(|e| fail(e.to_string()))?),
        None => pack_from_title(&obs.title),
    };
    obs.in_stock = !tile.out_of_stock;
    obs.url = optional(&tile.url).map(str::to_owned);
    obs.check().map_err(fail)?;
    Ok(obs)
}

fn optional(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A pack size written at the end of a title ("Heinz Beanz 4 x 415g"),
/// tried on the last one to four words.
pub fn pack_from_title(title: &str) -> Option<shelfwatch_domain::quantity::Pack> {
    let words: Vec<&str> = title.split_whitespace().collect();
    (1..=4.min(words.len()))
        .rev()
        .find_map(|n| parse_pack(&words[words.len() - n..].join(" ")).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shelfwatch_domain::quantity::BaseUnit;

    fn tile() -> RawTile {
        RawTile {
            index: 3,
            sku: Some("123".into()),
            title: Some("Heinz Beanz 4 x 415g".into()),
            price: Some("£3.50".into()),
            was_price: Some("£4.00".into()),
            unit_price: Some("£0.21 per 100g".into()),
            pack: None,
            promo: Some("Nectar Price £3.00".into()),
            out_of_stock: false,
            url: Some("http://127.0.0.1/p/123".into()),
        }
    }

    fn slug() -> RetailerSlug {
        RetailerSlug::parse("shop").unwrap()
    }

    #[test]
    fn a_full_tile_reads_every_field() {
        let obs = parse_tile(&slug(), &tile(), Utc::now()).unwrap();
        assert_eq!(obs.price_pence, 350);
        assert_eq!(obs.was_price_pence, Some(400));
        assert_eq!(obs.unit_price.unwrap().pence, 210);
        let pack = obs.pack.unwrap();
        assert_eq!((pack.count, pack.each, pack.unit), (4, 415, BaseUnit::Gram));
        assert!(obs.promo.is_some());
        assert!(obs.in_stock);
    }

    #[test]
    fn bad_tiles_are_rejected_with_the_reason() {
        type Spoil = fn(&mut RawTile);
        let cases: Vec<(Spoil, &str)> = vec![
            (|t| t.price = None, "no price"),
            (|t| t.price = Some("£-1".into()), "£-1"),
            (|t| t.price = Some("£1e9".into()), "£1e9"),
            (|t| t.price = Some("NaN".into()), "NaN"),
            (|t| t.title = Some("  ".into()), "no title"),
            (|t| t.sku = None, "no SKU"),
            (|t| t.unit_price = Some("cheap".into()), "cheap"),
            (|t| t.promo = Some("Buy some".into()), "Buy some"),
        ];
        for (spoil, want) in cases {
            let mut t = tile();
            spoil(&mut t);
            let err = parse_tile(&slug(), &t, Utc::now()).unwrap_err();
            assert_eq!(err.index, 3);
            assert!(err.reason.contains(want), "{want}: {}", err.reason);
        }
    }

    #[test]
    fn out_of_stock_and_title_packs() {
        let mut t = tile();
        t.out_of_stock = true;
        t.title = Some("Whole Milk 2.272L".into());
        let obs = parse_tile(&slug(), &t, Utc::now()).unwrap();
        assert!(!obs.in_stock);
        assert_eq!(obs.pack.unwrap().unit, BaseUnit::Millilitre);
        assert!(pack_from_title("Bananas Loose").is_none());
    }
}
