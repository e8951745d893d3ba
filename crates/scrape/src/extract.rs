//! From a rendered page to observations. One script reads every tile's raw
//! text in a single WebDriver round trip (a call per field per tile would
//! cost a round trip each); Rust then parses the text with the domain
//! parsers, so the browser never decides what a price is.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::config::{Field, Selectors, SourceKind, TileSource};
use shelfwatch_domain::money::parse_price_in_text;
use shelfwatch_domain::offer::{
    LoyaltyPrice, MultiBuy, Offer, parse_loyalty_price, parse_multibuy, parse_offer,
    parse_was_pence,
};
use shelfwatch_domain::promo::{Promo, parse_promo};
use shelfwatch_domain::quantity::{Pack, parse_pack};
use shelfwatch_domain::retailer::RetailerSlug;
use shelfwatch_domain::unit_price::{PreciseUnitPrice, parse_precise_unit_price};
use shelfwatch_store::ingest::Observation;

/// Reads every tile on the page, the JSON documents the config names, the
/// page's ld+json and the next-page link, in one round trip. Arguments: the
/// extraction spec ([`spec_json`]), the next-link selector (or null), the
/// most tiles to read. Returns [`Extracted`]; over the limit, no tiles and
/// the count.
pub const EXTRACT_JS: &str = r#"
const spec = arguments[0];
const maxTiles = arguments[2];
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
  if (f.own_text) {
    return clean(Array.from(el.childNodes).filter(n => n.nodeType === 3)
      .map(n => n.textContent).join(' '));
  }
  return clean(el.textContent);
};
const docs = {};
for (const from of spec.docs) {
  try {
    if (from.startsWith('window.')) {
      let v = window;
      for (const k of from.slice(7).split('.')) v = v == null ? undefined : v[k];
      docs[from] = v === undefined ? null : JSON.parse(JSON.stringify(v));
    } else {
      const el = document.querySelector(from);
      docs[from] = el ? JSON.parse(el.textContent) : null;
    }
  } catch (e) { docs[from] = null; }
}
const jsonld = [];
if (spec.jsonld) {
  for (const el of document.querySelectorAll('script[type="application/ld+json"]')) {
    try { jsonld.push(JSON.parse(el.textContent)); } catch (e) {}
  }
}
let tiles = [];
let found = 0;
if (spec.tile) {
  const els = document.querySelectorAll(spec.tile);
  found = els.length;
  if (maxTiles && found > maxTiles) {
    return { tiles: [], count: found, next: null, docs: {}, jsonld: [], url: location.href };
  }
  tiles = Array.from(els).map((t, i) => {
    const v = {};
    for (const [name, sources] of Object.entries(spec.fields)) {
      v[name] = sources.map(f => read(t, f));
    }
    return { index: i, v: v };
  });
}
let next = null;
if (arguments[1]) {
  const a = document.querySelector(arguments[1]);
  const href = a && a.getAttribute('href');
  if (a && href && href !== '#' && a.getAttribute('aria-disabled') !== 'true'
      && !a.classList.contains('disabled')) {
    try { next = new URL(href, document.baseURI).href; } catch (e) { next = null; }
  }
}
return { tiles: tiles, count: found, next: next, docs: docs, jsonld: jsonld, url: location.href };
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
const complete = () => document.readyState === 'complete';
const bytes = nav && typeof nav.decodedBodySize === 'number' ? nav.decodedBodySize : 0;
if (status >= 400) return done({ status: status, state: 'error', clicked: false, bytes: bytes, complete: complete() });
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
  done({ status: status, state: state, clicked: clicked, bytes: bytes, complete: complete() });
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
    /// Whether the document had finished loading (a wait that timed out on
    /// a loaded page means the layout changed, not a slow page).
    #[serde(default)]
    pub complete: bool,
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

/// One tile's text as the page shows it, after each field's sources were
/// tried. This is what the spool keeps, so a replay parses it again with
/// exactly the code of a live run.
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
    #[serde(default)]
    pub multibuy: Option<String>,
    #[serde(default)]
    pub loyalty: Option<String>,
    pub out_of_stock: bool,
    pub url: Option<String>,
}

/// One tile as the extraction script read it: per field, one value per
/// source (null for sources read in Rust, or where nothing was found).
#[derive(Debug, Clone, Deserialize)]
pub struct JsTile {
    pub index: usize,
    pub v: BTreeMap<String, Vec<Option<String>>>,
}

/// What [`EXTRACT_JS`] returns.
#[derive(Debug, Deserialize)]
pub struct Extracted {
    pub tiles: Vec<JsTile>,
    pub count: u64,
    pub next: Option<String>,
    #[serde(default)]
    pub docs: serde_json::Map<String, Value>,
    #[serde(default)]
    pub jsonld: Vec<Value>,
    #[serde(default)]
    pub url: String,
}

/// The extraction spec the script takes: the tile selector, each field's
/// CSS sources (null where a source is read in Rust), the JSON documents
/// to fetch and whether to read ld+json.
pub fn spec_json(s: &Selectors) -> Value {
    let mut fields = serde_json::Map::new();
    let mut docs = BTreeSet::new();
    let mut jsonld = matches!(s.tile, TileSource::JsonLd);
    if let TileSource::Json { from, .. } = &s.tile {
        docs.insert(from.clone());
    }
    for (name, field) in s.fields() {
        let sources: Vec<Value> = field
            .0
            .iter()
            .map(|src| match &src.kind {
                SourceKind::Css {
                    css,
                    attr,
                    own_text,
                } => json!({ "css": css, "attr": attr, "own_text": own_text }),
                SourceKind::Json {
                    from: Some(from), ..
                } => {
                    docs.insert(from.clone());
                    Value::Null
                }
                SourceKind::JsonLd { .. } => {
                    jsonld = true;
                    Value::Null
                }
                _ => Value::Null,
            })
            .collect();
        fields.insert(name.to_owned(), Value::Array(sources));
    }
    json!({
        "tile": s.tile.css(),
        "fields": fields,
        "docs": docs,
        "jsonld": jsonld,
    })
}

/// Every schema.org Product in the page's ld+json blocks, in page order:
/// top-level ones, those in an `@graph`, and an ItemList's items.
pub fn jsonld_products(blocks: &[Value]) -> Vec<&Value> {
    fn is_type(v: &Value, t: &str) -> bool {
        match v.get("@type") {
            Some(Value::String(s)) => s == t,
            Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(t)),
            _ => false,
        }
    }
    fn walk<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
        match v {
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            Value::Object(o) => {
                if is_type(v, "Product") {
                    out.push(v);
                } else if let Some(g) = o.get("@graph") {
                    walk(g, out);
                } else if is_type(v, "ItemList") {
                    if let Some(items) = o.get("itemListElement") {
                        walk(items, out);
                    }
                } else if let Some(item) = o.get("item") {
                    walk(item, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    blocks.iter().for_each(|b| walk(b, &mut out));
    out
}

/// A JSON value as shelf text: strings as they are, numbers and booleans
/// written out; null, arrays and objects give none.
fn json_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The `i`-th of `n` tiles' value among `matches`: the i-th when there is
/// one per tile, the only one when there is one.
fn nth<'a>(matches: &[&'a Value], i: usize, n: usize) -> Option<&'a Value> {
    if matches.len() == n {
        matches.get(i).copied()
    } else if matches.len() == 1 {
        matches.first().copied()
    } else {
        None
    }
}

/// How long each kind of source took to resolve over a page (the CSS time
/// is the script's, measured by the caller).
#[derive(Debug, Clone, Copy, Default)]
pub struct SourceTimes {
    pub json: std::time::Duration,
    pub jsonld: std::time::Duration,
}

/// Turns what the script read into tiles: the tile list (from CSS, JSON or
/// ld+json), and each field's first source that gives a value.
pub fn resolve(s: &Selectors, page: &Extracted) -> (Vec<RawTile>, SourceTimes) {
    let mut times = SourceTimes::default();
    let started = std::time::Instant::now();
    let products = jsonld_products(&page.jsonld);
    let doc = |from: &str| page.docs.get(from).filter(|v| !v.is_null());
    let json_tiles: Vec<&Value> = match &s.tile {
        TileSource::Css(_) => Vec::new(),
        TileSource::JsonLd => products.clone(),
        TileSource::Json { path, from } => doc(from).map_or_else(Vec::new, |d| path.query(d).all()),
    };
    times.jsonld += started.elapsed();
    let n = match &s.tile {
        TileSource::Css(_) => page.tiles.len(),
        _ => json_tiles.len(),
    };
    // Each JSON document's matches for each path, computed once per page.
    let mut doc_matches: HashMap<(String, String), Vec<&Value>> = HashMap::new();
    let mut tiles = Vec::with_capacity(n);
    for i in 0..n {
        let js = page.tiles.get(i);
        let tile_json = json_tiles.get(i).copied();
        let product = match &s.tile {
            TileSource::JsonLd => tile_json,
            _ => nth(&products, i, n),
        };
        let mut read = |name: &str, field: &Field| -> Option<String> {
            for (j, src) in field.0.iter().enumerate() {
                let raw = match &src.kind {
                    SourceKind::Css { .. } => js
                        .and_then(|t| t.v.get(name))
                        .and_then(|v| v.get(j).cloned().flatten()),
                    SourceKind::JsonLd { path } => {
                        let t = std::time::Instant::now();
                        let v = product.and_then(|p| path.query(p).first().and_then(json_text));
                        times.jsonld += t.elapsed();
                        v
                    }
                    SourceKind::Json { path, from } => {
                        let t = std::time::Instant::now();
                        let v = match from {
                            None => {
                                tile_json.and_then(|tj| path.query(tj).first().and_then(json_text))
                            }
                            Some(from) => {
                                let key = (from.clone(), path.to_string());
                                let matches = doc_matches.entry(key).or_insert_with(|| {
                                    doc(from).map_or_else(Vec::new, |d| path.query(d).all())
                                });
                                nth(matches, i, n).and_then(json_text)
                            }
                        };
                        times.json += t.elapsed();
                        v
                    }
                    SourceKind::PageUrl => Some(page.url.clone()),
                };
                if let Some(v) = raw.and_then(|r| src.refine(&r))
                    && (!v.is_empty() || name == "out_of_stock")
                {
                    return Some(v);
                }
            }
            None
        };
        let mut values: HashMap<&str, String> = HashMap::new();
        for (name, field) in s.fields() {
            if let Some(v) = read(name, field) {
                values.insert(name, v);
            }
        }
        let mut take = |name: &str| values.remove(name);
        let tile = RawTile {
            index: js.map_or(i, |t| t.index),
            sku: take("sku"),
            title: take("title"),
            price: take("price"),
            was_price: take("was_price"),
            unit_price: take("unit_price"),
            pack: take("pack"),
            promo: take("promo"),
            multibuy: take("multibuy"),
            loyalty: take("loyalty"),
            out_of_stock: take("out_of_stock").is_some(),
            url: take("url"),
        };
        tiles.push(tile);
    }
    (tiles, times)
}

/// A field that could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub reason: String,
    /// The text as the page showed it, when there was any.
    pub text: Option<String>,
}

impl FieldError {
    /// A short label for metrics: "missing" or "unreadable".
    pub fn kind(&self) -> &'static str {
        if self.text.is_none() {
            "missing"
        } else {
            "unreadable"
        }
    }
}

/// Every field of a tile as read, each a value or an entry in `errors`.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    pub index: usize,
    pub sku: Option<String>,
    pub title: Option<String>,
    pub price_pence: Option<i64>,
    pub was_price_pence: Option<i64>,
    pub unit_price: Option<PreciseUnitPrice>,
    pub pack: Option<Pack>,
    pub promo: Option<Promo>,
    pub promo_text: Option<String>,
    pub multibuy: Option<MultiBuy>,
    pub loyalty: Option<LoyaltyPrice>,
    pub in_stock: bool,
    pub url: Option<String>,
    /// Required fields (SKU, title, price) that failed.
    pub rejected: Vec<FieldError>,
    /// Optional fields that failed and were dropped.
    pub dropped: Vec<FieldError>,
}

/// Reads every field of `tile` with the domain parsers. Never fails: what
/// cannot be read is listed in `rejected` (SKU, title, price) or `dropped`.
pub fn read_tile(tile: &RawTile) -> Reading {
    let mut r = Reading {
        index: tile.index,
        in_stock: !tile.out_of_stock,
        url: optional(&tile.url).map(str::to_owned),
        ..Reading::default()
    };
    let fail = |field: &'static str, text: Option<&str>, reason: String| FieldError {
        field,
        reason,
        text: text.map(str::to_owned),
    };
    for (field, v, slot) in [
        ("sku", &tile.sku, &mut r.sku),
        ("title", &tile.title, &mut r.title),
    ] {
        match optional(v) {
            Some(s) => *slot = Some(s.to_owned()),
            None => r.rejected.push(fail(field, None, format!("no {field}"))),
        }
    }
    match optional(&tile.price) {
        Some(text) => match parse_price_in_text(text) {
            Ok(p) => r.price_pence = Some(p),
            Err(e) => r.rejected.push(fail("price", Some(text), e.to_string())),
        },
        None => r.rejected.push(fail("price", None, "no price".into())),
    }
    if let Some(text) = optional(&tile.was_price) {
        match parse_was_pence(text) {
            Ok(p) => r.was_price_pence = Some(p),
            Err(e) => r.dropped.push(fail("was_price", Some(text), e.to_string())),
        }
    }
    if let Some(text) = optional(&tile.unit_price) {
        match parse_precise_unit_price(text) {
            Ok(u) if u.rounded().is_some() => r.unit_price = Some(u),
            Ok(_) => r.dropped.push(fail(
                "unit_price",
                Some(text),
                "it comes to less than half a penny".into(),
            )),
            Err(e) => r
                .dropped
                .push(fail("unit_price", Some(text), e.to_string())),
        }
    }
    if let Some(text) = optional(&tile.multibuy) {
        match parse_multibuy(text) {
            Ok(m) => r.multibuy = Some(m),
            Err(e) => r.dropped.push(fail("multibuy", Some(text), e.to_string())),
        }
    }
    if let Some(text) = optional(&tile.loyalty) {
        match parse_loyalty_price(text) {
            Ok(l) => r.loyalty = Some(l),
            Err(e) => r.dropped.push(fail("loyalty", Some(text), e.to_string())),
        }
    }
    if let Some(text) = optional(&tile.promo) {
        read_promo(&mut r, text);
    }
    if r.promo.is_none()
        && let Some(l) = &r.loyalty
    {
        r.promo = Some(Promo::Loyalty {
            scheme: l.scheme.clone(),
            price_pence: l.price_pence,
        });
    }
    r.pack = match optional(&tile.pack) {
        Some(text) => match parse_pack(text) {
            Ok(p) => Some(p),
            Err(e) => {
                r.dropped.push(fail("pack", Some(text), e.to_string()));
                r.title.as_deref().and_then(pack_from_title)
            }
        },
        None => r.title.as_deref().and_then(pack_from_title),
    };
    r
}

/// A promotion element: a structured offer goes to its own field (a
/// multibuy, a loyalty price, a was-price), a meal deal is kept as text and
/// never as a price, anything else a [`Promo`] reads is kept as one.
fn read_promo(r: &mut Reading, text: &str) {
    match parse_offer(text) {
        Ok(Offer::MealDeal(_)) => r.promo_text = Some(text.to_owned()),
        Ok(offer) => {
            r.promo = parse_promo(text).ok();
            r.promo_text = Some(text.to_owned());
            match offer {
                Offer::MultiBuy(m) => {
                    r.multibuy.get_or_insert(m);
                }
                Offer::Loyalty(l) => {
                    r.loyalty.get_or_insert(l);
                }
                Offer::WasPrice(w) => {
                    r.was_price_pence.get_or_insert(w.was_pence);
                }
                Offer::MealDeal(_) => {}
            }
        }
        Err(offer_error) => match parse_promo(text) {
            Ok(p) => {
                r.promo = Some(p);
                r.promo_text = Some(text.to_owned());
            }
            Err(_) => r.dropped.push(FieldError {
                field: "promo",
                reason: offer_error.to_string(),
                text: Some(text.to_owned()),
            }),
        },
    }
}

/// A tile seen out of stock with no price: the product's availability is
/// recorded, with no price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    pub retailer: RetailerSlug,
    pub sku: String,
    pub title: String,
    pub url: Option<String>,
    pub observed_at: DateTime<Utc>,
}

/// What a tile gives: a priced observation, or an out-of-stock sighting.
#[derive(Debug, Clone)]
pub enum Item {
    Observation(Box<Observation>),
    OutOfStock(Sighting),
}

/// A tile read, with the optional fields it dropped.
#[derive(Debug, Clone)]
pub struct Tile {
    pub item: Item,
    pub dropped: Vec<FieldError>,
}

/// A tile that could not be read, and why, with its text for review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileError {
    pub index: usize,
    pub sku: Option<String>,
    pub reason: String,
}

/// Reads one tile. Missing or unreadable SKU, title or price rejects the
/// tile, except that a tile shown out of stock with no price at all is an
/// out-of-stock sighting. An optional field that cannot be read is dropped
/// and listed; the tile is kept.
pub fn parse_tile(
    retailer: &RetailerSlug,
    tile: &RawTile,
    observed_at: DateTime<Utc>,
) -> Result<Tile, TileError> {
    let r = read_tile(tile);
    let fail = |reason: String| TileError {
        index: tile.index,
        sku: tile.sku.clone(),
        reason,
    };
    let no_price_at_all = tile.price.as_deref().is_none_or(|p| p.trim().is_empty());
    let only_price_missing = r.rejected.iter().all(|e| e.field == "price");
    let (Some(sku), Some(title)) = (r.sku.clone(), r.title.clone()) else {
        return Err(fail(reasons(&r.rejected)));
    };
    let Some(price) = r.price_pence else {
        if !r.in_stock && no_price_at_all && only_price_missing {
            let sighting = Sighting {
                retailer: retailer.clone(),
                sku,
                title,
                url: r.url.clone(),
                observed_at,
            };
            return Ok(Tile {
                item: Item::OutOfStock(sighting),
                dropped: r.dropped,
            });
        }
        return Err(fail(reasons(&r.rejected)));
    };
    let mut obs = Observation::new(retailer.clone(), sku, title, observed_at, price);
    obs.was_price_pence = r.was_price_pence;
    obs.unit_price = r.unit_price.as_ref().and_then(PreciseUnitPrice::rounded);
    obs.promo = r.promo.clone();
    obs.promo_text = r.promo_text.clone();
    obs.pack = r.pack;
    obs.in_stock = r.in_stock;
    obs.url = r.url.clone();
    obs.check().map_err(fail)?;
    Ok(Tile {
        item: Item::Observation(Box::new(obs)),
        dropped: r.dropped,
    })
}

fn reasons(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| match &e.text {
            Some(t) => format!("{}: {} (text {t:?})", e.field, e.reason),
            None => format!("{}: {}", e.field, e.reason),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn optional(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A pack size written at the end of a title ("Heinz Beanz 4 x 415g"),
/// tried on the last one to four words.
pub fn pack_from_title(title: &str) -> Option<Pack> {
    shelfwatch_domain::quantity::split_title_pack(title).1
}

/// A tile as `retailer check --json` prints it.
pub fn reading_json(r: &Reading) -> Value {
    let errors: Vec<Value> = r
        .rejected
        .iter()
        .map(|e| (e, true))
        .chain(r.dropped.iter().map(|e| (e, false)))
        .map(|(e, required)| {
            json!({ "field": e.field, "reason": e.reason, "text": e.text, "required": required })
        })
        .collect();
    let unit = r.unit_price.as_ref().and_then(|u| {
        let rounded = u.rounded()?;
        Some(json!({
            "pence": rounded.pence,
            "per": rounded.per_label(),
            "tenths_of_pence": u.tenths_per_norm(),
        }))
    });
    let shelf = r.price_pence;
    json!({
        "index": r.index,
        "sku": r.sku,
        "title": r.title,
        "price_pence": r.price_pence,
        "was_price_pence": r.was_price_pence,
        "unit_price": unit,
        "pack": r.pack.map(|p| p.to_string()),
        "promo_text": r.promo_text,
        "multibuy": r.multibuy.as_ref().map(|m| json!({
            "quantity": m.quantity,
            "price_pence": m.total_pence(shelf),
            "each_pence": m.effective_unit_price(shelf),
            "scheme": m.scheme,
        })),
        "loyalty": r.loyalty.as_ref().map(|l| json!({
            "scheme": l.scheme,
            "price_pence": l.price_pence,
        })),
        "in_stock": r.in_stock,
        "url": r.url,
        "errors": errors,
    })
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
            ..RawTile::default()
        }
    }

    fn slug() -> RetailerSlug {
        RetailerSlug::parse("shop").unwrap()
    }

    fn observation(t: &RawTile) -> (Observation, Vec<FieldError>) {
        let tile = parse_tile(&slug(), t, Utc::now()).unwrap();
        match tile.item {
            Item::Observation(o) => (*o, tile.dropped),
            Item::OutOfStock(s) => panic!("a sighting: {s:?}"),
        }
    }

    #[test]
    fn a_full_tile_reads_every_field() {
        let (obs, dropped) = observation(&tile());
        assert!(dropped.is_empty(), "{dropped:?}");
        assert_eq!(obs.price_pence, 350);
        assert_eq!(obs.was_price_pence, Some(400));
        assert_eq!(obs.unit_price.unwrap().pence, 210);
        let pack = obs.pack.unwrap();
        assert_eq!((pack.count, pack.each, pack.unit), (4, 415, BaseUnit::Gram));
        assert!(obs.promo.is_some());
        assert!(obs.in_stock);
    }

    #[test]
    fn bad_required_fields_reject_the_tile_with_the_reason() {
        type Spoil = fn(&mut RawTile);
        let cases: Vec<(Spoil, &str)> = vec![
            (|t| t.price = None, "no price"),
            (|t| t.price = Some("£-1".into()), "£-1"),
            (|t| t.price = Some("£1e9".into()), "£1e9"),
            (|t| t.price = Some("NaN".into()), "NaN"),
            (|t| t.title = Some("  ".into()), "no title"),
            (|t| t.sku = None, "no sku"),
            (
                |t| t.price = Some("£3.85 Meal Deal Main Clubcard Price".into()),
                "Meal Deal",
            ),
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
    fn bad_optional_fields_are_dropped_and_the_tile_kept() {
        type Spoil = fn(&mut RawTile);
        let cases: Vec<(Spoil, &str)> = vec![
            (|t| t.unit_price = Some("cheap".into()), "unit_price"),
            (|t| t.promo = Some("Buy some".into()), "promo"),
            (|t| t.was_price = Some("soon".into()), "was_price"),
            (|t| t.pack = Some("a lot".into()), "pack"),
            (|t| t.multibuy = Some("Half price".into()), "multibuy"),
            (|t| t.loyalty = Some("Any 2 for £4".into()), "loyalty"),
        ];
        for (spoil, field) in cases {
            let mut t = tile();
            spoil(&mut t);
            let (obs, dropped) = observation(&t);
            assert_eq!(obs.price_pence, 350);
            assert_eq!(dropped.len(), 1, "{field}: {dropped:?}");
            assert_eq!(dropped[0].field, field);
            assert_eq!(dropped[0].kind(), "unreadable");
        }
    }

    #[test]
    fn real_wordings_go_to_their_own_fields() {
        let mut t = tile();
        t.price = Some("actual price£1.65".into());
        t.was_price = None;
        t.unit_price = Some("(72.6p/lt)".into());
        t.promo = Some("Any 2 for £4".into());
        let r = read_tile(&t);
        assert_eq!(r.price_pence, Some(165));
        assert_eq!(r.unit_price.unwrap().tenths_per_norm(), Some(726));
        let m = r.multibuy.unwrap();
        assert_eq!((m.quantity, m.total_pence(Some(165))), (2, Some(400)));
        t.promo = Some("Save 70p. Was £2.10".into());
        assert_eq!(read_tile(&t).was_price_pence, Some(210));
        t.promo = Some(
            "£3.85 Meal Deal Main Clubcard Price £4.25 Meal Deal Main Regular Price - Selected \
             Drink + Snack"
                .into(),
        );
        let r = read_tile(&t);
        assert!(r.promo.is_none() && r.loyalty.is_none() && r.multibuy.is_none());
        assert_eq!(r.price_pence, Some(165));
        assert!(r.promo_text.is_some());
        t.promo = None;
        t.loyalty = Some("Clubcard Price £1.50".into());
        let r = read_tile(&t);
        assert_eq!(r.loyalty.unwrap().price_pence, Some(150));
    }

    #[test]
    fn an_out_of_stock_tile_without_a_price_is_a_sighting() {
        let mut t = tile();
        t.price = None;
        t.out_of_stock = true;
        match parse_tile(&slug(), &t, Utc::now()).unwrap().item {
            Item::OutOfStock(s) => assert_eq!(s.sku, "123"),
            Item::Observation(o) => panic!("{o:?}"),
        }
        // A price that is there but unreadable still rejects it.
        t.price = Some("NaN".into());
        assert!(parse_tile(&slug(), &t, Utc::now()).is_err());
    }

    #[test]
    fn out_of_stock_and_title_packs() {
        let mut t = tile();
        t.out_of_stock = true;
        t.title = Some("Whole Milk 2.272L".into());
        let (obs, _) = observation(&t);
        assert!(!obs.in_stock);
        assert_eq!(obs.pack.unwrap().unit, BaseUnit::Millilitre);
        assert!(pack_from_title("Bananas Loose").is_none());
    }

    #[test]
    fn sources_are_tried_in_order_with_json_and_jsonld() {
        let config = r##"
slug = "shop"
name = "Shop"
base_url = "http://127.0.0.1/"
start_urls = ["x"]
[wait]
ready = "li"
[selectors]
tile = "li"
sku = [{ css = "a", attr = "href", regex = "/p/(\\d+)" }, { jsonld = "$.sku" }]
title = [{ css = "h3" }, { json = "$.items[*].name", from = "window.STATE" }]
price = [{ css = ".price", strip = ["Item price"] }, { jsonld = "$.offers.price" }]
out_of_stock = { css = ".avail", attr = "data-available", matches = "^false$" }
"##;
        let c = crate::config::RetailerConfig::parse(config, std::path::Path::new("shop.toml"))
            .unwrap();
        let s = &c.pages[0].selectors;
        let spec = spec_json(s);
        assert_eq!(spec["docs"], json!(["window.STATE"]));
        assert_eq!(spec["jsonld"], json!(true));
        let page: Extracted = serde_json::from_value(json!({
            "tiles": [
                { "index": 0, "v": {
                    "sku": ["http://127.0.0.1/p/42", null], "title": [null, null],
                    "price": ["Item price £1.75", null], "out_of_stock": ["true"] } },
                { "index": 1, "v": {
                    "sku": [null, null], "title": ["Milk", null],
                    "price": [null, null], "out_of_stock": ["false"] } },
            ],
            "count": 2,
            "next": null,
            "docs": { "window.STATE": { "items": [{ "name": "Beans" }, { "name": "Milk" }] } },
            "jsonld": [{ "@graph": [{ "@type": "ItemList", "itemListElement": [
                { "@type": "ListItem", "item": { "@type": "Product", "sku": "1" } },
                { "@type": "ListItem", "item": { "@type": "Product", "sku": "2",
                  "offers": { "@type": "Offer", "price": "£0.95" } } }
            ] }] }],
            "url": "http://127.0.0.1/x",
        }))
        .unwrap();
        let (tiles, _) = resolve(s, &page);
        assert_eq!(tiles[0].sku.as_deref(), Some("42"));
        assert_eq!(tiles[0].title.as_deref(), Some("Beans"));
        assert_eq!(tiles[0].price.as_deref(), Some("£1.75"));
        assert!(!tiles[0].out_of_stock);
        assert_eq!(tiles[1].sku.as_deref(), Some("2"));
        assert_eq!(tiles[1].price.as_deref(), Some("£0.95"));
        assert!(tiles[1].out_of_stock);
    }
}
