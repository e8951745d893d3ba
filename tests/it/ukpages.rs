//! Saved real shop pages (`../shared/ukpages`) read through real Chromium
//! with the shipped configs: every value each page's expected.json lists,
//! exactly, and the traps the README beside the pages names. A priced tile
//! read with a wrong price fails the test; so does one not read.

use std::path::PathBuf;

use serde_json::Value;
use shelfwatch_scrape::browser::BrowserSettings;
use shelfwatch_scrape::check;

use crate::support::repo_path;

/// The saved pages, or None (with a note) where the folder is absent.
fn pages_dir() -> Option<PathBuf> {
    let dir = repo_path("../shared/ukpages");
    if dir.join("README.md").exists() {
        Some(dir)
    } else {
        eprintln!("skipped: {} is absent", dir.display());
        None
    }
}

/// (config, page without .html): every saved page and the config for it.
const PAGES: &[(&str, &str)] = &[
    ("tesco", "tesco/tesco-search-sushi-rendered-2026"),
    ("tesco", "tesco/tesco-pdp-excerpt"),
    ("asda", "asda/asda-search-milk-rendered-2026"),
    ("asda", "asda/asda-pdp-excerpt"),
    ("waitrose", "waitrose/waitrose-search-milk-rendered-2026"),
    ("waitrose", "waitrose/waitrose-pdp-excerpt"),
    ("morrisons", "osp/morrisons-search-excerpt"),
    ("ocado", "osp/ocado-search-excerpt"),
];

async fn read(config: &str, page: &std::path::Path) -> Vec<Value> {
    let file = repo_path(&format!("retailers/{config}.toml"));
    let report = check::run(
        &file,
        page.to_str().unwrap(),
        None,
        BrowserSettings::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("{}: {e:#}", page.display()));
    match report.json() {
        Value::Array(tiles) => tiles,
        other => panic!("{other}"),
    }
}

/// "(£1.25/lt)" and the like, as the unit price a tile should carry.
fn unit_pence(text: &str) -> (i64, &'static str) {
    let u = shelfwatch_domain::unit_price::parse_unit_price(text).unwrap();
    (u.pence, u.per_label())
}

fn check_against_expected(page: &str, tiles: &[Value], expected: &Value) {
    let want = expected["first_tiles"].as_array().unwrap();
    assert_eq!(
        tiles.len() as u64,
        expected["tile_count"].as_u64().unwrap(),
        "{page}: tile count"
    );
    for (i, w) in want.iter().enumerate() {
        let t = &tiles[i];
        let at = format!("{page} tile {i}");
        assert_eq!(t["title"], w["title"], "{at}: title");
        // Exact prices; a tile with no price must be out of stock and show none.
        assert_eq!(t["price_pence"], w["price_pence"], "{at}: price {t}");
        if w["price_pence"].is_null() {
            assert_eq!(t["in_stock"], false, "{at}: no price, so out of stock");
        } else {
            let required: Vec<&Value> = t["errors"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["required"] == true)
                .collect();
            assert!(required.is_empty(), "{at}: {required:?}");
        }
        assert_eq!(t["promo_text"], w["promo_text"], "{at}: promo");
        if let Some(u) = w["unit_price_text"].as_str() {
            let (pence, per) = unit_pence(u);
            assert_eq!(t["unit_price"]["pence"], pence, "{at}: unit price of {u}");
            assert_eq!(t["unit_price"]["per"], per, "{at}: unit price of {u}");
        }
        if let Some(p) = w["pack_size"].as_str() {
            let want = shelfwatch_domain::quantity::parse_pack(p)
                .unwrap()
                .to_string();
            assert_eq!(t["pack"], want.as_str(), "{at}: pack {p}");
        }
        let promo = w["promo_text"].as_str().unwrap_or("");
        if promo.contains(" for £4") {
            assert_eq!(t["multibuy"]["quantity"], 2, "{at}: {promo}");
            assert_eq!(t["multibuy"]["price_pence"], 400, "{at}: {promo}");
        }
        if let Some(was) = promo.split("Was £").nth(1) {
            let pence = shelfwatch_domain::money::parse_pence(&format!("£{was}")).unwrap();
            assert_eq!(t["was_price_pence"], pence, "{at}: {promo}");
        }
        if promo.contains("Meal Deal") {
            assert!(
                t["loyalty"].is_null() && t["multibuy"].is_null(),
                "{at}: {t}"
            );
        }
    }
}

#[tokio::test]
async fn saved_real_pages_are_read_exactly_with_the_shipped_configs() {
    let Some(dir) = pages_dir() else { return };
    let mut checked = 0;
    for (config, page) in PAGES {
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{page}.expected.json"))).unwrap(),
        )
        .unwrap();
        for variant in [".html", ".noscript.html"] {
            let path = dir.join(format!("{page}{variant}"));
            if !path.exists() {
                continue;
            }
            let tiles = read(config, &path).await;
            check_against_expected(&format!("{page}{variant}"), &tiles, &expected);
            checked += 1;
        }
    }
    assert_eq!(checked, 11, "every saved page was read");
}

#[tokio::test]
async fn the_traps_beside_the_pages_are_avoided() {
    let Some(dir) = pages_dir() else { return };
    for variant in [".html", ".noscript.html"] {
        // Tesco: the unavailable tile is an out-of-stock sighting with no
        // price; the meal deal bar is never a price; the mini-trolley's
        // price-value lines are not tiles.
        let tesco = read(
            "tesco",
            &dir.join(format!("tesco/tesco-search-sushi-rendered-2026{variant}")),
        )
        .await;
        assert_eq!(tesco.len(), 2);
        assert_eq!(tesco[0]["sku"], "320666828");
        assert_eq!(tesco[0]["in_stock"], false);
        assert!(tesco[0]["price_pence"].is_null());
        assert_eq!(tesco[1]["price_pence"], 330);
        for t in &tesco {
            assert!(t["loyalty"].is_null(), "{t}");
            assert_ne!(t["price_pence"], 385);
            assert_ne!(t["price_pence"], 425);
        }
        // Asda: "Any 2 for £4", "(£1.25/lt)".
        let asda = read(
            "asda",
            &dir.join(format!("asda/asda-search-milk-rendered-2026{variant}")),
        )
        .await;
        for t in &asda {
            assert_eq!(t["multibuy"]["quantity"], 2);
            assert_eq!(t["multibuy"]["price_pence"], 400);
            assert_eq!(t["unit_price"]["pence"], 125);
            assert_eq!(t["unit_price"]["per"], "l");
        }
        // Waitrose: 48 pods, "95p", "Add 2 for £4", "Save 70p. Was £2.10".
        let waitrose = read(
            "waitrose",
            &dir.join(format!(
                "waitrose/waitrose-search-milk-rendered-2026{variant}"
            )),
        )
        .await;
        assert_eq!(waitrose.len(), 48);
        assert_eq!(waitrose[8]["price_pence"], 95);
        assert_eq!(waitrose[3]["multibuy"]["price_pence"], 400);
        assert_eq!(waitrose[19]["was_price_pence"], 210);
        assert_eq!(waitrose[19]["price_pence"], 140);
        assert!(
            waitrose
                .iter()
                .all(|t| t["errors"] == serde_json::json!([]))
        );
    }
    // Asda product page: "actual price £1.65", "(72.6p/lt)" kept to the
    // tenth of a penny, "4 pint".
    let pdp = read("asda", &dir.join("asda/asda-pdp-excerpt.html")).await;
    assert_eq!(pdp[0]["price_pence"], 165);
    assert_eq!(pdp[0]["unit_price"]["tenths_of_pence"], 726);
    assert_eq!(pdp[0]["pack"], "2272ml");
    // Waitrose product page: "77p/litre".
    let pdp = read("waitrose", &dir.join("waitrose/waitrose-pdp-excerpt.html")).await;
    assert_eq!(pdp[0]["unit_price"]["pence"], 77);
    // Ocado Smart Platform: "(£24.35 per kilo)", "Buy any 2 for £4".
    let m = read("morrisons", &dir.join("osp/morrisons-search-excerpt.html")).await;
    assert_eq!(m[0]["unit_price"]["pence"], 2435);
    assert_eq!(m[0]["unit_price"]["per"], "kg");
    let o = read("ocado", &dir.join("osp/ocado-search-excerpt.html")).await;
    assert_eq!(o[0]["multibuy"]["price_pence"], 400);
    assert!(o[1]["multibuy"].is_null());
}

/// A listing's category comes from the aisle page it was reached from. A
/// search mixes aisles ("milk" finds milk chocolate too), so the real
/// shops' search start URLs carry none (no saved page is an aisle page to
/// check one against), while every demo shop starts from one page an
/// aisle, each with its category (docs/scraper.md).
#[test]
fn categories_come_from_aisle_pages_never_from_searches() {
    let real = shelfwatch_scrape::config::load_dir(&repo_path("retailers")).unwrap();
    assert!(real.len() >= 5, "{} real shop configs", real.len());
    for c in &real {
        for (url, category) in c.start_pages_with_categories(None).unwrap() {
            if url.contains("search") {
                assert_eq!(category, None, "{}: {url} is a search", c.slug.as_str());
            }
        }
    }
    let demo = shelfwatch_scrape::config::load_dir(&repo_path("retailers/demo")).unwrap();
    assert!(!demo.is_empty());
    for c in &demo {
        for (url, category) in c.start_pages_with_categories(None).unwrap() {
            assert!(
                category.is_some_and(|c| !c.trim().is_empty()),
                "{}: {url} has no category",
                c.slug.as_str()
            );
        }
    }
}
