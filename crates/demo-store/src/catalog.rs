//! The shared catalogue: canonical products, the four retailers, and each
//! retailer's listings (its SKU, title, pack wording and product URL).
//!
//! The same product is titled differently at each retailer; multipacks,
//! other sizes, other brands and own-brand items are separate products, so
//! a matcher that goes by brand and words alone gets them wrong.

use serde::{Deserialize, Serialize};

/// One of the demo store's retailers. Each has its own markup, wording,
/// price level and promotion habits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Retailer {
    /// Sainsbury's-like: paginated, Nectar loyalty prices.
    Sainsway,
    /// Aldi-like: one plain grid, prices in pence, pack in its own element.
    Aldwick,
    /// Iceland-like: loads more tiles on scroll, multibuys, stock outs.
    Icebox,
    /// Morrisons-like: More Card prices, "3 for 2", "per kg" unit prices.
    Morrow,
}

impl Retailer {
    pub const ALL: [Retailer; 4] = [
        Retailer::Sainsway,
        Retailer::Aldwick,
        Retailer::Icebox,
        Retailer::Morrow,
    ];

    /// The path prefix and the `retailer` column: `sainsway`, ...
    pub fn slug(self) -> &'static str {
        match self {
            Retailer::Sainsway => "sainsway",
            Retailer::Aldwick => "aldwick",
            Retailer::Icebox => "icebox",
            Retailer::Morrow => "morrow",
        }
    }

    /// The shop's display name.
    pub fn name(self) -> &'static str {
        match self {
            Retailer::Sainsway => "Sainsway",
            Retailer::Aldwick => "Aldwick",
            Retailer::Icebox => "Icebox",
            Retailer::Morrow => "Morrow",
        }
    }

    /// The retailer whose slug this is.
    pub fn from_slug(slug: &str) -> Option<Retailer> {
        Retailer::ALL.into_iter().find(|r| r.slug() == slug)
    }

    /// The brand on the retailer's own-label products.
    pub fn own_brand(self) -> &'static str {
        match self {
            Retailer::Sainsway => "Sainsway",
            Retailer::Aldwick => "Aldwick Essentials",
            Retailer::Icebox => "Icebox",
            Retailer::Morrow => "Morrow's",
        }
    }

    /// The listing page's path under the retailer's prefix (the prefix
    /// itself serves the same page).
    pub fn listing_path(self) -> &'static str {
        match self {
            Retailer::Sainsway => "groceries",
            Retailer::Aldwick => "products",
            Retailer::Icebox => "food",
            Retailer::Morrow => "shop",
        }
    }

    fn letter(self) -> char {
        match self {
            Retailer::Sainsway => 'S',
            Retailer::Aldwick => 'A',
            Retailer::Icebox => 'I',
            Retailer::Morrow => 'M',
        }
    }
}

impl std::fmt::Display for Retailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.slug())
    }
}

/// What a pack is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    Grams,
    Millilitres,
    Items,
}

/// A canonical pack: `count` units of `each` grams/millilitres, or `count`
/// items when measured in items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackSpec {
    pub count: u32,
    pub each: u32,
    pub measure: Measure,
}

impl PackSpec {
    /// Total grams, millilitres or items.
    pub fn total(self) -> u32 {
        match self.measure {
            Measure::Items => self.count,
            _ => self.count * self.each,
        }
    }
}

const fn g(each: u32) -> PackSpec {
    PackSpec {
        count: 1,
        each,
        measure: Measure::Grams,
    }
}
const fn ml(each: u32) -> PackSpec {
    PackSpec {
        count: 1,
        each,
        measure: Measure::Millilitres,
    }
}
const fn multi_g(count: u32, each: u32) -> PackSpec {
    PackSpec {
        count,
        each,
        measure: Measure::Grams,
    }
}
const fn multi_ml(count: u32, each: u32) -> PackSpec {
    PackSpec {
        count,
        each,
        measure: Measure::Millilitres,
    }
}
const fn items(count: u32) -> PackSpec {
    PackSpec {
        count,
        each: 1,
        measure: Measure::Items,
    }
}

/// A shop aisle: each retailer's listing page can show one aisle
/// (`?aisle=frozen`), which the retailer configs scrape as a start URL with
/// its category. The food cupboard is big enough that the paginated shops
/// need two pages and the scrolling one more than one batch for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Aisle {
    FoodCupboard,
    Drinks,
    FreshAndChilled,
    Frozen,
    Household,
}

impl Aisle {
    pub const ALL: [Aisle; 5] = [
        Aisle::FoodCupboard,
        Aisle::Drinks,
        Aisle::FreshAndChilled,
        Aisle::Frozen,
        Aisle::Household,
    ];

    /// The `?aisle=` value.
    pub fn slug(self) -> &'static str {
        match self {
            Aisle::FoodCupboard => "food-cupboard",
            Aisle::Drinks => "drinks",
            Aisle::FreshAndChilled => "fresh-chilled",
            Aisle::Frozen => "frozen",
            Aisle::Household => "household",
        }
    }

    /// The category name the retailer configs give it.
    pub fn name(self) -> &'static str {
        match self {
            Aisle::FoodCupboard => "Food Cupboard",
            Aisle::Drinks => "Drinks",
            Aisle::FreshAndChilled => "Fresh & Chilled",
            Aisle::Frozen => "Frozen",
            Aisle::Household => "Household",
        }
    }

    pub fn from_slug(slug: &str) -> Option<Aisle> {
        Aisle::ALL.into_iter().find(|a| a.slug() == slug)
    }

    /// The aisle of the product with `key`, by the words in its key.
    fn of(key: &str) -> Aisle {
        const BY_KEY: &[(&str, Aisle)] = &[
            ("beans", Aisle::FoodCupboard),
            ("beanz", Aisle::FoodCupboard),
            ("ketchup", Aisle::FoodCupboard),
            ("tuna", Aisle::FoodCupboard),
            ("dolmio", Aisle::FoodCupboard),
            ("corn-flakes", Aisle::FoodCupboard),
            ("weetabix", Aisle::FoodCupboard),
            ("tips", Aisle::FoodCupboard),
            ("tea", Aisle::FoodCupboard),
            ("nescafe", Aisle::FoodCupboard),
            ("digestives", Aisle::FoodCupboard),
            ("dairy-milk", Aisle::FoodCupboard),
            ("salted", Aisle::FoodCupboard),
            ("cheese-onion", Aisle::FoodCupboard),
            ("cola", Aisle::Drinks),
            ("pepsi", Aisle::Drinks),
            ("orange", Aisle::Drinks),
            ("red-bull", Aisle::Drinks),
            ("volvic", Aisle::Drinks),
            ("fish-fingers", Aisle::Frozen),
            ("chips", Aisle::Frozen),
            ("yorkshires", Aisle::Frozen),
            ("cookie-dough", Aisle::Frozen),
            ("magnum", Aisle::Frozen),
            ("andrex", Aisle::Household),
        ];
        BY_KEY
            .iter()
            .find(|(word, _)| key.contains(word))
            .map_or(Aisle::FreshAndChilled, |(_, aisle)| *aisle)
    }
}

/// A canonical product, as the ground truth names it.
#[derive(Debug, Clone, Copy)]
pub struct Product {
    /// Stable identifier of the product across retailers.
    pub key: &'static str,
    /// The brand, or `None` for a retailer's own label (the retailer's
    /// [`Retailer::own_brand`] is printed).
    pub brand: Option<&'static str>,
    /// Three wordings of the name: long (Sainsway), short (Aldwick,
    /// Icebox), alternative (Morrow).
    pub names: [&'static str; 3],
    pub pack: PackSpec,
    /// Regular price at a mid-priced shop, in pence.
    pub base_pence: i64,
    /// Which retailers carry it: letters of S, A, I, M.
    carried: &'static str,
}

impl Product {
    /// The aisle every shop shelves it in.
    pub fn aisle(&self) -> Aisle {
        Aisle::of(self.key)
    }

    pub fn carried_by(&self, r: Retailer) -> bool {
        self.carried.contains(r.letter())
    }
}

const fn p(
    key: &'static str,
    brand: &'static str,
    names: [&'static str; 3],
    pack: PackSpec,
    base_pence: i64,
    carried: &'static str,
) -> Product {
    Product {
        key,
        brand: Some(brand),
        names,
        pack,
        base_pence,
        carried,
    }
}

const fn own(
    key: &'static str,
    names: [&'static str; 3],
    pack: PackSpec,
    base_pence: i64,
    carried: &'static str,
) -> Product {
    Product {
        key,
        brand: None,
        names,
        pack,
        base_pence,
        carried,
    }
}

const BEANS: [&str; 3] = ["Baked Beans in Tomato Sauce", "Beanz", "Baked Beanz"];

/// The catalogue. Order matters: SKUs are derived from the position.
pub const PRODUCTS: &[Product] = &[
    p("heinz-beanz-415g", "Heinz", BEANS, g(415), 140, "SAIM"),
    p(
        "heinz-beanz-4x415g",
        "Heinz",
        BEANS,
        multi_g(4, 415),
        500,
        "SIM",
    ),
    p("heinz-beanz-200g", "Heinz", BEANS, g(200), 85, "SAM"),
    p(
        "branston-beans-410g",
        "Branston",
        [
            "Baked Beans in a Rich Tomato Sauce",
            "Baked Beans",
            "Beans in Tomato Sauce",
        ],
        g(410),
        110,
        "SAIM",
    ),
    p(
        "heinz-ketchup-460g",
        "Heinz",
        [
            "Tomato Ketchup Squeezy",
            "Tomato Ketchup",
            "Tomato Ketchup Top Down",
        ],
        g(460),
        270,
        "SAIM",
    ),
    p(
        "coca-cola-1.5l",
        "Coca-Cola",
        ["Original Taste", "Regular", "Classic"],
        ml(1500),
        215,
        "SAIM",
    ),
    p(
        "coca-cola-zero-1.5l",
        "Coca-Cola",
        ["Zero Sugar", "Zero", "Zero Sugar Cola"],
        ml(1500),
        215,
        "SAIM",
    ),
    p(
        "pepsi-max-2l",
        "Pepsi",
        ["Max No Sugar Cola", "Max", "Max Cola"],
        ml(2000),
        225,
        "SIM",
    ),
    p(
        "hovis-soft-white-800g",
        "Hovis",
        [
            "Soft White Medium Bread",
            "Soft White Medium",
            "Soft White Medium Sliced",
        ],
        g(800),
        150,
        "SAIM",
    ),
    p(
        "warburtons-toastie-800g",
        "Warburtons",
        [
            "Toastie Thick Sliced White Bread",
            "Toastie White",
            "Toastie Sliced White",
        ],
        g(800),
        160,
        "SAM",
    ),
    p(
        "warburtons-crumpets-6",
        "Warburtons",
        ["Crumpets", "Crumpets", "Original Crumpets"],
        items(6),
        100,
        "SIM",
    ),
    p(
        "cathedral-city-mature-350g",
        "Cathedral City",
        ["Mature Cheddar Cheese", "Mature", "Mature Cheddar"],
        g(350),
        375,
        "SAIM",
    ),
    p(
        "cathedral-city-mature-550g",
        "Cathedral City",
        ["Mature Cheddar Cheese", "Mature", "Mature Cheddar"],
        g(550),
        550,
        "SIM",
    ),
    p(
        "lurpak-spreadable-500g",
        "Lurpak",
        [
            "Slightly Salted Spreadable Blend of Butter and Rapeseed Oil",
            "Spreadable Slightly Salted",
            "Spreadable",
        ],
        g(500),
        500,
        "SAIM",
    ),
    p(
        "lurpak-butter-250g",
        "Lurpak",
        [
            "Slightly Salted Butter",
            "Block Butter",
            "Slightly Salted Block",
        ],
        g(250),
        290,
        "SAM",
    ),
    p(
        "anchor-butter-250g",
        "Anchor",
        ["Salted Block Butter", "Butter", "Original Butter"],
        g(250),
        240,
        "SAIM",
    ),
    p(
        "pg-tips-80",
        "PG Tips",
        ["Original Pyramid Tea Bags", "Tea Bags", "Original Teabags"],
        items(80),
        300,
        "SAIM",
    ),
    p(
        "yorkshire-tea-80",
        "Yorkshire Tea",
        ["Tea Bags", "Teabags", "Original Tea Bags"],
        items(80),
        320,
        "SIM",
    ),
    p(
        "nescafe-original-200g",
        "Nescafe",
        ["Original Instant Coffee", "Original", "Original Coffee"],
        g(200),
        650,
        "SAIM",
    ),
    p(
        "nescafe-original-100g",
        "Nescafe",
        ["Original Instant Coffee", "Original", "Original Coffee"],
        g(100),
        380,
        "SAM",
    ),
    p(
        "kelloggs-corn-flakes-500g",
        "Kellogg's",
        ["Corn Flakes Cereal", "Corn Flakes", "Cornflakes"],
        g(500),
        240,
        "SAIM",
    ),
    p(
        "weetabix-24",
        "Weetabix",
        [
            "Original Wholegrain Cereal",
            "Original",
            "Wholegrain Biscuits",
        ],
        items(24),
        330,
        "SAIM",
    ),
    p(
        "mcvities-digestives-400g",
        "McVitie's",
        [
            "Digestives Original Biscuits",
            "Digestive",
            "The Original Digestives",
        ],
        g(400),
        150,
        "SAIM",
    ),
    p(
        "mcvities-choc-digestives-266g",
        "McVitie's",
        [
            "Milk Chocolate Digestives Biscuits",
            "Milk Chocolate Digestive",
            "Milk Chocolate Digestives",
        ],
        g(266),
        175,
        "SIM",
    ),
    p(
        "cadbury-dairy-milk-110g",
        "Cadbury",
        ["Dairy Milk Chocolate Bar", "Dairy Milk", "Dairy Milk Bar"],
        g(110),
        160,
        "SAIM",
    ),
    p(
        "walkers-ready-salted-6x25g",
        "Walkers",
        [
            "Ready Salted Multipack Crisps",
            "Ready Salted",
            "Ready Salted Crisps",
        ],
        multi_g(6, 25),
        215,
        "SAIM",
    ),
    p(
        "walkers-cheese-onion-6x25g",
        "Walkers",
        [
            "Cheese & Onion Multipack Crisps",
            "Cheese & Onion",
            "Cheese and Onion Crisps",
        ],
        multi_g(6, 25),
        215,
        "SAI",
    ),
    p(
        "birds-eye-fish-fingers-280g",
        "Birds Eye",
        [
            "10 Cod Fish Fingers",
            "Cod Fish Fingers",
            "Omega 3 Cod Fish Fingers",
        ],
        g(280),
        325,
        "SAIM",
    ),
    p(
        "birds-eye-fish-fingers-560g",
        "Birds Eye",
        [
            "20 Cod Fish Fingers",
            "Cod Fish Fingers",
            "Omega 3 Cod Fish Fingers",
        ],
        g(560),
        600,
        "SIM",
    ),
    p(
        "mccain-home-chips-1.5kg",
        "McCain",
        [
            "Home Chips Straight Cut Oven Chips",
            "Home Chips",
            "Home Chips Straight Cut",
        ],
        g(1500),
        325,
        "SAIM",
    ),
    p(
        "aunt-bessies-yorkshires-12",
        "Aunt Bessie's",
        [
            "12 Golden Yorkshire Puddings",
            "Yorkshire Puddings",
            "Golden Yorkshire Puddings",
        ],
        items(12),
        150,
        "SIM",
    ),
    p(
        "ben-jerrys-cookie-dough-465ml",
        "Ben & Jerry's",
        [
            "Cookie Dough Ice Cream Tub",
            "Cookie Dough",
            "Cookie Dough Ice Cream",
        ],
        ml(465),
        550,
        "SIM",
    ),
    p(
        "magnum-classic-4x100ml",
        "Magnum",
        ["Classic Ice Cream Sticks", "Classic", "Classic Ice Creams"],
        multi_ml(4, 100),
        400,
        "SAIM",
    ),
    p(
        "tropicana-orange-950ml",
        "Tropicana",
        [
            "Smooth Orange Juice",
            "Orange Smooth",
            "Original Orange Juice",
        ],
        ml(950),
        325,
        "SAIM",
    ),
    p(
        "robinsons-orange-1l",
        "Robinsons",
        [
            "Orange Double Concentrate Squash",
            "Orange Squash",
            "Double Strength Orange",
        ],
        ml(1000),
        200,
        "SAIM",
    ),
    p(
        "john-west-tuna-4x145g",
        "John West",
        [
            "Tuna Chunks in Brine",
            "Tuna Chunks Brine",
            "Tuna Chunks in Brine Multipack",
        ],
        multi_g(4, 145),
        575,
        "SAIM",
    ),
    p(
        "princes-tuna-4x145g",
        "Princes",
        [
            "Tuna Chunks in Brine",
            "Tuna Chunks Brine",
            "Tuna Chunks in Brine Multipack",
        ],
        multi_g(4, 145),
        475,
        "SAM",
    ),
    p(
        "dolmio-bolognese-500g",
        "Dolmio",
        [
            "Bolognese Original Pasta Sauce",
            "Bolognese Sauce",
            "Original Bolognese",
        ],
        g(500),
        250,
        "SAIM",
    ),
    p(
        "andrex-classic-9",
        "Andrex",
        [
            "Classic Clean Toilet Tissue",
            "Classic Clean Toilet Roll",
            "Classic Clean Toilet Rolls",
        ],
        items(9),
        600,
        "SAIM",
    ),
    p(
        "red-bull-250ml",
        "Red Bull",
        ["Energy Drink", "Energy", "Energy Drink Can"],
        ml(250),
        145,
        "SAIM",
    ),
    p(
        "red-bull-4x250ml",
        "Red Bull",
        ["Energy Drink", "Energy", "Energy Drink Can"],
        multi_ml(4, 250),
        495,
        "SIM",
    ),
    p(
        "volvic-1.5l",
        "Volvic",
        [
            "Natural Mineral Water",
            "Still Water",
            "Natural Mineral Water Still",
        ],
        ml(1500),
        100,
        "SAIM",
    ),
    // Own labels: one product per retailer, never to be matched with the
    // branded products beside them (same size, same words, other brand).
    own(
        "sainsway-baked-beans-400g",
        ["Baked Beans in Tomato Sauce", "Baked Beans", "Baked Beans"],
        g(400),
        55,
        "S",
    ),
    own(
        "sainsway-semi-skimmed-milk-2.27l",
        [
            "British Semi Skimmed Milk",
            "Semi Skimmed Milk",
            "Semi Skimmed Milk",
        ],
        ml(2270),
        145,
        "S",
    ),
    own(
        "sainsway-mature-cheddar-350g",
        ["Mature Cheddar Cheese", "Mature Cheddar", "Mature Cheddar"],
        g(350),
        290,
        "S",
    ),
    own(
        "aldwick-baked-beans-420g",
        ["Baked Beans", "Baked Beans in Tomato Sauce", "Baked Beans"],
        g(420),
        39,
        "A",
    ),
    own(
        "aldwick-semi-skimmed-milk-2.27l",
        [
            "Semi Skimmed Milk",
            "British Semi Skimmed Milk",
            "Semi Skimmed Milk",
        ],
        ml(2270),
        135,
        "A",
    ),
    own(
        "aldwick-ready-salted-6x25g",
        [
            "Ready Salted Crisps",
            "Ready Salted Crisps Multipack",
            "Ready Salted Crisps",
        ],
        multi_g(6, 25),
        89,
        "A",
    ),
    own(
        "icebox-fish-fingers-560g",
        ["20 Fish Fingers", "20 Cod Fish Fingers", "Fish Fingers"],
        g(560),
        350,
        "I",
    ),
    own(
        "icebox-oven-chips-1.5kg",
        [
            "Straight Cut Oven Chips",
            "Straight Cut Chips",
            "Oven Chips",
        ],
        g(1500),
        200,
        "I",
    ),
    own(
        "icebox-cola-2l",
        ["Cola", "Classic Cola", "Cola"],
        ml(2000),
        75,
        "I",
    ),
    own(
        "morrow-baked-beans-410g",
        ["Baked Beans", "Baked Beans", "Baked Beans in Tomato Sauce"],
        g(410),
        45,
        "M",
    ),
    own(
        "morrow-butter-250g",
        ["Salted Butter", "Butter", "British Salted Butter"],
        g(250),
        199,
        "M",
    ),
    own(
        "morrow-semi-skimmed-milk-2.27l",
        [
            "Semi Skimmed Milk",
            "Semi Skimmed Milk",
            "British Semi Skimmed Milk",
        ],
        ml(2270),
        140,
        "M",
    ),
];

/// One product as one retailer sells it.
#[derive(Debug, Clone)]
pub struct Listing {
    pub retailer: Retailer,
    pub product: &'static Product,
    /// Position in [`PRODUCTS`]: seeds the simulation of this listing.
    pub product_index: usize,
    pub sku: String,
    pub title: String,
    /// The pack as this retailer writes it (at the end of the title, except
    /// at Aldwick, which prints it in its own element).
    pub pack_text: String,
    /// Path of the product page, e.g. `/sainsway/product/heinz-beanz-415g-7812345`.
    pub path: String,
}

/// Every listing, grouped by retailer in [`Retailer::ALL`] order, each
/// retailer's listings in catalogue order.
pub fn listings() -> Vec<Listing> {
    let mut out = Vec::new();
    for retailer in Retailer::ALL {
        for (index, product) in PRODUCTS.iter().enumerate() {
            if product.carried_by(retailer) {
                out.push(listing(retailer, product, index));
            }
        }
    }
    out
}

fn listing(retailer: Retailer, product: &'static Product, index: usize) -> Listing {
    let brand = product.brand.unwrap_or(retailer.own_brand());
    let pack_text = pack_text(retailer, product.pack);
    let n = index as u64;
    let (sku, title) = match retailer {
        Retailer::Sainsway => (
            format!("{}", 7_812_003 + n * 1_373),
            format!("{brand} {} {pack_text}", product.names[0]),
        ),
        Retailer::Aldwick => (
            format!("40886{:08}", (n * 104_729 + 5_321) % 100_000_000),
            format!("{brand} {}", product.names[1]),
        ),
        Retailer::Icebox => (
            format!("{}", 52_011 + n * 61),
            format!("{brand} {} {pack_text}", product.names[1]),
        ),
        Retailer::Morrow => (
            format!("{}", 110_004_507 + n * 4_567),
            format!("{brand} {} {pack_text}", product.names[2]),
        ),
    };
    let slug = slugify(&title);
    let r = retailer.slug();
    let path = match retailer {
        Retailer::Sainsway => format!("/{r}/product/{slug}-{sku}"),
        Retailer::Aldwick => format!("/{r}/product/{slug}/{sku}"),
        Retailer::Icebox => format!("/{r}/p/{slug}/{sku}.html"),
        Retailer::Morrow => format!("/{r}/products/{slug}/{sku}"),
    };
    Listing {
        retailer,
        product,
        product_index: index,
        sku,
        title,
        pack_text,
        path,
    }
}

/// The pack as the retailer prints it.
pub fn pack_text(retailer: Retailer, pack: PackSpec) -> String {
    let PackSpec {
        count,
        each,
        measure,
    } = pack;
    match retailer {
        Retailer::Sainsway => match measure {
            Measure::Items => format!("{count}pk"),
            _ => with_count(count, " x ", &metric(each, measure, "kg", "L", "")),
        },
        Retailer::Aldwick => match measure {
            Measure::Items => format!("pack of {count}"),
            _ => with_count(count, " x ", &metric(each, measure, "kg", "l", " ")),
        },
        Retailer::Icebox => match measure {
            Measure::Items => format!("{count} PACK"),
            _ => with_count(count, " X ", &metric(each, measure, "KG", "L", "")).to_uppercase(),
        },
        Retailer::Morrow => match measure {
            Measure::Items => format!("{count} pack"),
            _ => with_count(count, "x", &metric(each, measure, "kg", " litre", "")),
        },
    }
}

fn with_count(count: u32, sep: &str, size: &str) -> String {
    if count > 1 {
        format!("{count}{sep}{size}")
    } else {
        size.to_owned()
    }
}

/// "415g", "1.5kg", "500ml", "1.5L" (with the given big-unit words and the
/// gap between number and small unit).
fn metric(each: u32, measure: Measure, kg: &str, litre: &str, gap: &str) -> String {
    let (small, big) = match measure {
        Measure::Grams => ("g", kg),
        _ => ("ml", litre),
    };
    if each >= 1000 && each.is_multiple_of(10) {
        let whole = each / 1000;
        let frac = (each % 1000) / 10;
        let num = match frac {
            0 => format!("{whole}"),
            f if f % 10 == 0 => format!("{whole}.{}", f / 10),
            f => format!("{whole}.{f:02}"),
        };
        format!("{num}{big}")
    } else {
        format!("{each}{gap}{small}")
    }
}

/// Lowercase words joined by dashes: "Heinz Beanz 415G" -> "heinz-beanz-415g".
pub fn slugify(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use shelfwatch_domain::quantity::parse_pack;
    use std::collections::{HashMap, HashSet};

    #[test]
    fn each_retailer_carries_a_realistic_range() {
        let all = listings();
        for r in Retailer::ALL {
            let n = all.iter().filter(|l| l.retailer == r).count();
            assert!((35..=45).contains(&n), "{r} carries {n} products");
        }
        let mut at: HashMap<&str, usize> = HashMap::new();
        for l in &all {
            *at.entry(l.product.key).or_default() += 1;
        }
        let branded: Vec<_> = PRODUCTS.iter().filter(|p| p.brand.is_some()).collect();
        let wide = branded.iter().filter(|p| at[p.key] >= 3).count();
        assert_eq!(wide, branded.len(), "every branded product is at 3-4 shops");
        assert!((45..=60).contains(&PRODUCTS.len()));
    }

    #[test]
    fn identifiers_are_unique_and_formats_differ() {
        let all = listings();
        let keys: HashSet<_> = PRODUCTS.iter().map(|p| p.key).collect();
        assert_eq!(keys.len(), PRODUCTS.len());
        let skus: HashSet<_> = all.iter().map(|l| (l.retailer, &l.sku)).collect();
        assert_eq!(skus.len(), all.len());
        let paths: HashSet<_> = all.iter().map(|l| &l.path).collect();
        assert_eq!(paths.len(), all.len());
        for l in &all {
            let len = l.sku.len();
            let want = match l.retailer {
                Retailer::Sainsway => 7,
                Retailer::Aldwick => 13,
                Retailer::Icebox => 5,
                Retailer::Morrow => 9,
            };
            assert_eq!(len, want, "{l:?}");
            assert!(l.sku.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn same_product_is_titled_differently_and_packs_parse() {
        let all = listings();
        for product in PRODUCTS.iter().filter(|p| p.brand.is_some()) {
            let titles: HashSet<_> = all
                .iter()
                .filter(|l| l.product.key == product.key)
                .map(|l| l.title.as_str())
                .collect();
            let n = all.iter().filter(|l| l.product.key == product.key).count();
            assert_eq!(titles.len(), n, "{}: {titles:?}", product.key);
        }
        for l in &all {
            let pack = parse_pack(&l.pack_text).expect("pack text parses");
            let total = match pack.unit {
                shelfwatch_domain::quantity::BaseUnit::Each => pack.count as u64,
                _ => pack.total(),
            };
            assert_eq!(total, u64::from(l.product.pack.total()), "{l:?}");
            if l.retailer != Retailer::Aldwick {
                assert!(l.title.ends_with(&l.pack_text), "{l:?}");
            }
        }
    }

    #[test]
    fn every_aisle_has_products_and_keys_choose_theirs() {
        let of = |key: &str| {
            PRODUCTS
                .iter()
                .find(|p| p.key == key)
                .map(|p| p.aisle())
                .unwrap()
        };
        assert_eq!(of("heinz-beanz-415g"), Aisle::FoodCupboard);
        assert_eq!(of("walkers-ready-salted-6x25g"), Aisle::FoodCupboard);
        assert_eq!(of("lurpak-butter-250g"), Aisle::FreshAndChilled);
        assert_eq!(
            of("sainsway-semi-skimmed-milk-2.27l"),
            Aisle::FreshAndChilled
        );
        assert_eq!(of("yorkshire-tea-80"), Aisle::FoodCupboard);
        assert_eq!(of("aunt-bessies-yorkshires-12"), Aisle::Frozen);
        assert_eq!(of("tropicana-orange-950ml"), Aisle::Drinks);
        assert_eq!(of("icebox-oven-chips-1.5kg"), Aisle::Frozen);
        for aisle in Aisle::ALL {
            assert!(PRODUCTS.iter().any(|p| p.aisle() == aisle), "{aisle:?}");
            assert_eq!(Aisle::from_slug(aisle.slug()), Some(aisle));
        }
    }

    #[test]
    fn pack_wordings() {
        let beans4 = multi_g(4, 415);
        assert_eq!(pack_text(Retailer::Sainsway, beans4), "4 x 415g");
        assert_eq!(pack_text(Retailer::Icebox, beans4), "4 X 415G");
        assert_eq!(pack_text(Retailer::Morrow, beans4), "4x415g");
        assert_eq!(pack_text(Retailer::Aldwick, beans4), "4 x 415 g");
        assert_eq!(pack_text(Retailer::Sainsway, ml(1500)), "1.5L");
        assert_eq!(pack_text(Retailer::Morrow, ml(2270)), "2.27 litre");
        assert_eq!(pack_text(Retailer::Aldwick, g(1500)), "1.5kg");
        assert_eq!(pack_text(Retailer::Icebox, items(6)), "6 PACK");
        assert_eq!(
            slugify("Ben & Jerry's Cookie Dough 465ML"),
            "ben-jerry-s-cookie-dough-465ml"
        );
    }
}
