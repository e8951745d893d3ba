//! Tests of the simulation and everything the tiles show.

use std::collections::HashMap;

use chrono::NaiveDate;

use super::catalog::{Aisle, Retailer};
use super::faults::Fault;
use super::shelf::shelf;
use super::sim::{Timeline, day_index};
use super::store::{DemoStore, history_columns};
use shelfwatch_domain::money::parse_pence;
use shelfwatch_domain::promo::{Promo, parse_promo};
use shelfwatch_domain::quantity::parse_pack;
use shelfwatch_domain::unit_price::parse_unit_price;
use shelfwatch_store::ingest::csv_import::Columns;

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("a valid date")
}

#[test]
fn same_seed_same_prices_other_seed_other_prices() {
    let day = date(2025, 8, 14);
    let a = DemoStore::new(42, day).truth(day);
    let b = DemoStore::new(42, day).truth(day);
    let c = DemoStore::new(7, day).truth(day);
    assert_eq!(a, b);
    let differ = a
        .iter()
        .zip(&c)
        .filter(|(x, y)| x.price_pence != y.price_pence)
        .count();
    assert!(differ > a.len() / 3, "only {differ} prices differ");
}

#[test]
fn a_day_does_not_depend_on_how_far_the_timeline_runs() {
    let store = DemoStore::new(42, date(2025, 1, 1));
    for l in store.listings().iter().step_by(7) {
        let short = Timeline::build(l, 42, 100);
        let long = Timeline::build(l, 42, 700);
        for day in 0..=100 {
            assert_eq!(short.state(day), long.state(day), "{} day {day}", l.sku);
        }
    }
}

#[test]
fn a_year_for_every_listing_is_quick() {
    let store = DemoStore::new(42, date(2026, 1, 1));
    let start = std::time::Instant::now();
    let mut sink = Vec::new();
    let rows = store
        .history_csv(date(2025, 1, 1), date(2025, 12, 31), &mut sink)
        .expect("history");
    assert_eq!(rows, 365 * store.listings().len() as u64);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn price_levels_are_plausible_and_retailers_differ() {
    let day = date(2025, 5, 1);
    let truth = DemoStore::new(42, day).truth(day);
    let mut by_product: HashMap<&str, HashMap<Retailer, i64>> = HashMap::new();
    for t in &truth {
        assert!((9..=2000).contains(&t.price_pence), "{t:?}");
        by_product
            .entry(t.product_key.as_str())
            .or_default()
            .insert(t.retailer, t.price_pence);
    }
    // Aldwick is cheaper than Sainsway on most products both sell.
    let store = DemoStore::new(42, day);
    let regular = |r: Retailer, key: &str| {
        store
            .listings()
            .iter()
            .find(|l| l.retailer == r && l.product.key == key)
            .map(|l| Timeline::build(l, 42, 120).regular(120))
    };
    let (mut cheaper, mut both) = (0, 0);
    for key in by_product.keys() {
        if let (Some(a), Some(s)) = (
            regular(Retailer::Aldwick, key),
            regular(Retailer::Sainsway, key),
        ) {
            both += 1;
            cheaper += usize::from(a < s);
        }
    }
    assert!(both > 20 && cheaper * 10 >= both * 8, "{cheaper} of {both}");
}

#[test]
fn promotions_stock_outs_and_price_changes_occur_at_plausible_rates() {
    let store = DemoStore::new(42, date(2026, 1, 1));
    let days = 365;
    let mut promo_days = 0usize;
    let mut oos_days = 0usize;
    let mut kinds: HashMap<(Retailer, &str), usize> = HashMap::new();
    let mut changed = 0usize;
    let mut total = 0usize;
    for l in store.listings() {
        let t = Timeline::build(l, 42, days);
        let changes: Vec<_> = t.price_changes().collect();
        if !changes.is_empty() {
            changed += 1;
        }
        let mut last = t.regular(0);
        for (_, p) in changes {
            let step = (p - last).abs() as f64 / last as f64;
            assert!(step > 0.0 && step < 0.35, "{} {last} -> {p}", l.sku);
            last = p;
        }
        for day in 0..days {
            let s = shelf(l, &t.state(day));
            total += 1;
            if let Some(k) = s.promo_kind {
                promo_days += 1;
                *kinds.entry((l.retailer, k)).or_default() += 1;
            }
            oos_days += usize::from(!s.in_stock);
        }
    }
    let promo_share = promo_days as f64 / total as f64;
    let oos_share = oos_days as f64 / total as f64;
    assert!((0.10..0.40).contains(&promo_share), "{promo_share}");
    assert!((0.005..0.08).contains(&oos_share), "{oos_share}");
    assert!(
        changed * 10 >= store.listings().len() * 9,
        "{changed} listings changed price in a year"
    );
    for (r, kind) in [
        (Retailer::Sainsway, "loyalty"),
        (Retailer::Sainsway, "multibuy"),
        (Retailer::Sainsway, "price_cut"),
        (Retailer::Aldwick, "price_cut"),
        (Retailer::Icebox, "multibuy"),
        (Retailer::Icebox, "price_cut"),
        (Retailer::Morrow, "loyalty"),
        (Retailer::Morrow, "multibuy"),
        (Retailer::Morrow, "price_cut"),
    ] {
        assert!(
            kinds.get(&(r, kind)).copied().unwrap_or(0) > 30,
            "{r} {kind}"
        );
    }
}

/// Every text on every tile of every listing for 120 days reads back with
/// the domain parsers, to the numbers the truth states.
#[test]
fn every_tile_text_parses_for_120_days() {
    let store = DemoStore::new(42, date(2025, 1, 1));
    let start = day_index(date(2025, 9, 1));
    let mut promo_texts = 0;
    for l in store.listings() {
        let t = Timeline::build(l, 42, start + 120);
        assert!(!l.title.trim().is_empty());
        let pack = parse_pack(&l.pack_text).expect("pack");
        for day in start..start + 120 {
            let s = shelf(l, &t.state(day));
            let ctx = || format!("{} {} day {day}: {s:?}", l.retailer, l.sku);
            assert_eq!(parse_pence(&s.price_text), Ok(s.price_pence), "{}", ctx());
            if let Some(was) = &s.was_text {
                assert_eq!(parse_pence(was).ok(), s.was_price_pence, "{}", ctx());
            }
            if let Some(was) = s.was_price_pence {
                assert!(was > s.price_pence, "{}", ctx());
            }
            let unit = parse_unit_price(&s.unit_price_text).expect("unit price");
            let derived = shelfwatch_domain::unit_price::unit_price_of(s.price_pence, &pack)
                .expect("a unit price from the pack");
            assert_eq!(unit.per, derived.per, "{}", ctx());
            let off = (unit.pence - derived.pence).abs() as f64 / derived.pence as f64;
            assert!(
                off < 0.06 || (unit.pence - derived.pence).abs() <= 6,
                "{}",
                ctx()
            );
            assert_eq!(parse_pack(&s.pack_text), Ok(pack), "{}", ctx());
            if let Some(text) = &s.promo_text {
                promo_texts += 1;
                let promo = parse_promo(text).unwrap_or_else(|e| panic!("{e}: {}", ctx()));
                match (&promo, s.promo_kind) {
                    (Promo::Loyalty { price_pence, .. }, Some("loyalty")) => {
                        assert_eq!(*price_pence, s.loyalty_price_pence, "{}", ctx());
                        assert!(price_pence.is_some_and(|p| p < s.price_pence));
                    }
                    (
                        Promo::WasNow {
                            was_pence,
                            now_pence,
                        },
                        Some("price_cut"),
                    ) => {
                        assert_eq!(Some(*was_pence), s.was_price_pence, "{}", ctx());
                        assert_eq!(*now_pence, Some(s.price_pence), "{}", ctx());
                    }
                    (Promo::MultiBuy { .. } | Promo::MultiBuyFree { .. }, Some("multibuy")) => {
                        assert!(promo.effective_price(s.price_pence) < s.price_pence);
                    }
                    _ => panic!("{promo:?} does not match {}", ctx()),
                }
            }
        }
    }
    assert!(promo_texts > 1000, "{promo_texts}");
}

#[test]
fn broken_tiles_do_not_parse_and_the_truth_says_which() {
    let day = date(2025, 6, 1);
    let store = DemoStore::new(42, day);
    store
        .set_fault(Retailer::Morrow, Fault::Broken { share: 0.5 })
        .expect("fault");
    let tiles = store.tiles(Retailer::Morrow, "http://x");
    let truth: HashMap<String, _> = store
        .truth(day)
        .into_iter()
        .filter(|t| t.retailer == Retailer::Morrow)
        .map(|t| (t.sku.clone(), t))
        .collect();
    let mut broken = 0;
    for tile in &tiles {
        let t = &truth[&tile.sku];
        let readable = tile.title.is_some()
            && tile
                .price
                .as_deref()
                .is_some_and(|p| parse_pence(p) == Ok(t.price_pence));
        assert_eq!(readable, !t.broken, "{tile:?} {t:?}");
        broken += usize::from(t.broken);
    }
    assert!(broken > 5 && broken < tiles.len(), "{broken}");
    // The other retailers are untouched.
    assert!(
        store
            .truth(day)
            .iter()
            .all(|t| t.retailer == Retailer::Morrow || !t.broken)
    );
}

#[test]
fn hide_drops_products_from_the_listing_and_the_truth_marks_them() {
    let day = date(2025, 6, 1);
    let store = DemoStore::new(42, day);
    let all = store.tiles(Retailer::Icebox, "http://x").len();
    store
        .set_fault(Retailer::Icebox, Fault::Hide { share: 0.4 })
        .expect("fault");
    let shown = store.tiles(Retailer::Icebox, "http://x").len();
    let hidden = store.truth(day).iter().filter(|t| t.hidden).count();
    assert_eq!(shown + hidden, all);
    assert!(hidden > 5 && hidden < all - 5, "{hidden} of {all}");
    store.clear_faults();
    assert_eq!(store.tiles(Retailer::Icebox, "http://x").len(), all);
}

#[test]
fn tiles_show_what_the_truth_says() {
    let day = date(2025, 7, 20);
    let store = DemoStore::new(3, day);
    let truth = store.truth_at(day, "http://shop");
    for r in Retailer::ALL {
        for tile in store.tiles(r, "http://shop") {
            let t = truth
                .iter()
                .find(|t| t.retailer == r && t.sku == tile.sku)
                .expect("a truth row per tile");
            assert_eq!(tile.url, t.url);
            assert_eq!(tile.title.as_deref(), Some(t.title.as_str()));
            let price = tile.price.as_deref().map(parse_pence);
            assert_eq!(price, Some(Ok(t.price_pence)));
            assert_eq!(tile.promo, t.promo_text);
            assert_eq!(tile.unit_price, t.unit_price_text);
            assert_eq!(tile.in_stock, t.in_stock);
        }
    }
}

#[test]
fn history_csv_has_the_import_columns_and_every_row_imports() {
    let store = DemoStore::new(42, date(2025, 6, 1));
    let mut buf = Vec::new();
    let rows = store
        .history_csv(date(2025, 3, 1), date(2025, 3, 10), &mut buf)
        .expect("history");
    assert_eq!(rows, 10 * store.listings().len() as u64);
    let mut reader = csv::Reader::from_reader(buf.as_slice());
    let header = reader.headers().expect("header").clone();
    assert_eq!(header.iter().collect::<Vec<_>>(), history_columns());
    let columns = Columns::from_header(&header).expect("the import reads the header");
    let now = chrono::Utc::now();
    let mut read = 0;
    let mut with_promo = 0;
    for record in reader.records() {
        let record = record.expect("a CSV row");
        let obs = columns
            .parse_row(&record, now)
            .unwrap_or_else(|e| panic!("{e}: {record:?}"));
        assert!(
            obs.url
                .as_deref()
                .is_some_and(|u| u.starts_with("http://127.0.0.1:8700/"))
        );
        with_promo += usize::from(obs.promo.is_some());
        read += 1;
    }
    assert_eq!(read, rows);
    assert!(with_promo > 0);
}

/// The keys the scraper's loader accepts, section by section.
const SCHEMA: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "slug",
            "name",
            "currency",
            "base_url",
            "start_urls",
            "consent",
            "navigation",
            "wait",
            "selectors",
            "politeness",
        ],
    ),
    ("consent", &["accept"]),
    (
        "navigation",
        &["mode", "next", "max_pages", "max_scrolls", "settle_ms"],
    ),
    ("wait", &["ready", "empty", "timeout_ms"]),
    (
        "selectors",
        &[
            "tile",
            "sku",
            "title",
            "price",
            "was_price",
            "unit_price",
            "pack",
            "promo",
            "out_of_stock",
            "url",
        ],
    ),
    ("politeness", &["requests_per_minute", "jitter"]),
];

fn retailer_config(r: Retailer) -> &'static str {
    match r {
        Retailer::Sainsway => include_str!("../../../retailers/demo/sainsway.toml"),
        Retailer::Aldwick => include_str!("../../../retailers/demo/aldwick.toml"),
        Retailer::Icebox => include_str!("../../../retailers/demo/icebox.toml"),
        Retailer::Morrow => include_str!("../../../retailers/demo/morrow.toml"),
    }
}

/// Class names, ids and attribute names a CSS selector refers to.
fn selector_names(css: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut chars = css.chars().peekable();
    while let Some(c) = chars.next() {
        if matches!(c, '.' | '#' | '[') {
            let name: String = std::iter::from_fn(|| {
                chars.next_if(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
            })
            .collect();
            names.push(name);
        }
    }
    names
}

/// `retailers/demo/*.toml` follow the loader's schema, and every class, id and
/// attribute their selectors name is in that retailer's markup.
#[test]
fn selector_contracts_match_the_markup() {
    use super::pages::listing_page;
    for r in Retailer::ALL {
        let config: toml::Table = toml::from_str(retailer_config(r)).expect("valid TOML");
        for (section, keys) in SCHEMA {
            let table = if section.is_empty() {
                &config
            } else {
                config[*section].as_table().expect("a section")
            };
            for key in table.keys() {
                assert!(
                    keys.contains(&key.as_str()),
                    "{r}: unknown key {section}.{key}"
                );
            }
        }
        assert_eq!(config["slug"].as_str(), Some(r.slug()));
        // One start URL an aisle, with the aisle's category, so every
        // listing is reached from one and gets a category.
        let start = config["start_urls"].as_array().expect("start_urls");
        assert_eq!(start.len(), Aisle::ALL.len(), "{r}");
        for (page, aisle) in start.iter().zip(Aisle::ALL) {
            let url = format!("{}?aisle={}", r.listing_path(), aisle.slug());
            assert_eq!(page["url"].as_str(), Some(url.as_str()), "{r}");
            assert_eq!(page["category"].as_str(), Some(aisle.name()), "{r}");
        }
        let mode = config["navigation"]["mode"].as_str();
        let want = match r {
            Retailer::Sainsway | Retailer::Morrow => "paginate",
            Retailer::Aldwick => "single",
            Retailer::Icebox => "scroll",
        };
        assert_eq!(mode, Some(want), "{r}");

        let markup = listing_page(r, false);
        let mut css: Vec<String> =
            vec![config["consent"]["accept"].as_str().expect("accept").into()];
        if let Some(next) = config["navigation"].get("next") {
            css.push(next.as_str().expect("next").into());
        }
        for key in ["ready", "empty"] {
            css.push(config["wait"][key].as_str().expect("wait").into());
        }
        for (key, value) in config["selectors"].as_table().expect("selectors") {
            match value {
                toml::Value::String(s) => css.push(s.clone()),
                toml::Value::Table(t) => {
                    if let Some(s) = t.get("css").and_then(|v| v.as_str()) {
                        css.push(s.into());
                    }
                    let attr = t.get("attr").and_then(|v| v.as_str()).expect("attr");
                    assert!(markup.contains(attr), "{r}: {key} reads {attr}");
                }
                other => panic!("{r}: {key} = {other:?}"),
            }
        }
        for selector in css {
            for name in selector_names(&selector) {
                assert!(
                    markup.contains(&name),
                    "{r}: {selector:?} names {name:?}, which the page lacks"
                );
            }
        }
    }
}

/// Every tile is in exactly one aisle: the aisles' tiles together are the
/// whole listing, and the truth names each listing's aisle.
#[test]
fn aisles_partition_each_shop() {
    let day = NaiveDate::from_ymd_opt(2025, 9, 1).unwrap();
    let store = DemoStore::new(42, day);
    let truth = store.truth_at(day, "http://shop");
    for r in Retailer::ALL {
        let all = store.tiles(r, "http://shop");
        let mut seen = 0;
        for aisle in Aisle::ALL {
            for tile in store.tiles_in(r, "http://shop", Some(aisle)) {
                let t = truth
                    .iter()
                    .find(|t| t.retailer == r && t.sku == tile.sku)
                    .expect("a truth row per tile");
                assert_eq!(t.category, aisle.name(), "{r} {}", tile.sku);
                seen += 1;
            }
        }
        assert_eq!(seen, all.len(), "{r}");
    }
}
