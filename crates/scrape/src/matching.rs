//! Product matching without barcodes: listings at different retailers are
//! the same product when they share the brand and the normalised pack size
//! and their titles are close, and when each is the other's clear best
//! match. Anything ambiguous stays on a product of its own: a wrong match
//! would put two products' prices on one line, a missed one only hides a
//! comparison. A manual override (`product_overrides`) always wins.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::Context;
use shelfwatch_domain::quantity::{BaseUnit, Pack, split_title_pack};
use shelfwatch_store::PgPool;
use shelfwatch_store::listings::{MatchingPass, ProductFacts};

/// Below this title similarity two listings are never the same product.
pub const MIN_SIMILARITY: f64 = 0.55;
/// A best match must beat the runner-up by this much to count.
pub const MIN_MARGIN: f64 = 0.08;
/// Title similarity enough for two listings that are each the only one
/// of their brand and pack left unmatched between their two shops.
pub const MIN_SIMILARITY_SOLE: f64 = 0.3;

/// What the matcher knows of one listing.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: i64,
    /// The retailer, as an id or slug: listings of one retailer never match
    /// each other.
    pub retailer: String,
    /// The retailer's name, lowercased words; a title starting with it is
    /// the retailer's own brand, which no other shop sells.
    pub retailer_name: String,
    pub title: String,
    pub pack: Option<Pack>,
}

/// A group of listings judged to be one product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub listings: Vec<i64>,
}

/// Title words with pack sizes, punctuation and filler removed, and simple
/// plural and spelling variants folded ("Beanz" and "Beans" both "bean").
pub fn normalise(title: &str) -> Vec<String> {
    const FILLER: &[&str] = &[
        "the",
        "in",
        "with",
        "and",
        "of",
        "a",
        "for",
        "pack",
        "x",
        "each",
        "multipack",
        "pk",
        "value",
        "approx",
    ];
    let lower = title.to_lowercase().replace('&', " and ");
    let mut out = Vec::new();
    for raw in lower.split(|c: char| !(c.is_alphanumeric() || c == '.')) {
        let w = raw.trim_matches('.');
        if w.is_empty() || FILLER.contains(&w) {
            continue;
        }
        if is_quantity(w) {
            continue;
        }
        out.push(fold(w));
    }
    out
}

/// "415g", "1.5l", "6", "12pk", "2x": numbers with or without a unit.
fn is_quantity(w: &str) -> bool {
    let digits = w.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
    if digits.len() == w.len() {
        return false;
    }
    matches!(
        digits,
        "" | "g"
            | "kg"
            | "ml"
            | "l"
            | "cl"
            | "ltr"
            | "litre"
            | "litres"
            | "pk"
            | "x"
            | "pack"
            | "s"
    )
}

/// Shop spellings of one word, folded to the dictionary one.
const VARIANTS: &[(&str, &str)] = &[
    ("beanz", "beans"),
    ("choc", "chocolate"),
    ("veg", "vegetable"),
    ("toms", "tomatoes"),
    ("org", "organic"),
];

fn fold(w: &str) -> String {
    let mut s = VARIANTS
        .iter()
        .find(|(from, _)| *from == w)
        .map_or(w, |(_, to)| to)
        .to_owned();
    if s.len() > 3 && s.ends_with("ies") {
        s.truncate(s.len() - 3);
        s.push('y');
    } else if s.len() > 3 && s.ends_with('s') && !s.ends_with("ss") {
        s.pop();
    }
    s
}

/// Character trigrams of the words joined, for spelling-level closeness.
fn trigrams(words: &[String]) -> BTreeSet<[char; 3]> {
    let text: Vec<char> = format!("  {} ", words.join(" ")).chars().collect();
    text.windows(3).map(|w| [w[0], w[1], w[2]]).collect()
}

fn dice<T: Ord>(a: &BTreeSet<T>, b: &BTreeSet<T>) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let common = a.intersection(b).count() as f64;
    2.0 * common / (a.len() + b.len()) as f64
}

struct Prepared {
    brand: String,
    words: BTreeSet<String>,
    grams: BTreeSet<[char; 3]>,
    own_brand: bool,
    key: Option<(BaseUnit, u32, u64)>,
}

fn prepare(c: &Candidate) -> Prepared {
    let words = normalise(&c.title);
    let brand = words.first().cloned().unwrap_or_default();
    let name_words = normalise(&c.retailer_name);
    let own_brand = !name_words.is_empty() && words.starts_with(&name_words);
    Prepared {
        grams: trigrams(&words),
        words: words.iter().skip(1).cloned().collect(),
        brand,
        own_brand,
        key: c.pack.map(|p| (p.unit, p.count, p.each)),
    }
}

/// What a title whose words all appear in the other's scores at least: a
/// short title ("Heinz Beanz 415G") names the same product as a long one
/// ("Heinz Baked Beans in Tomato Sauce 415g") when brand and pack agree,
/// unless a closer candidate at the same shop makes it a close call.
const CONTAINED: f64 = 0.6;

fn score(a: &Prepared, b: &Prepared) -> f64 {
    let blend = 0.5 * dice(&a.words, &b.words) + 0.5 * dice(&a.grams, &b.grams);
    let contained = !a.words.is_empty()
        && !b.words.is_empty()
        && (a.words.is_subset(&b.words) || b.words.is_subset(&a.words));
    if contained {
        blend.max(CONTAINED)
    } else {
        blend
    }
}

/// The root of `i`'s group in a union-find forest.
fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// Groups `candidates` into products. Two listings join when they are at
/// different retailers, neither is an own-brand line, brand and pack agree,
/// their similarity is at least [`MIN_SIMILARITY`], and each is the other's
/// best at its retailer by at least [`MIN_MARGIN`]; then the sole ones of
/// a brand and pack at two shops join (see `match_the_sole_ones`). A group that ends up
/// with two listings of one retailer is ambiguous and split up again.
pub fn match_listings(candidates: &[Candidate]) -> Vec<Group> {
    let prepared: Vec<Prepared> = candidates.iter().map(prepare).collect();
    // Buckets of comparable listings: same pack and brand.
    let mut buckets: HashMap<(BaseUnit, u32, u64, &str), Vec<usize>> = HashMap::new();
    for (i, p) in prepared.iter().enumerate() {
        if let Some((u, n, e)) = p.key
            && !p.own_brand
            && !p.brand.is_empty()
        {
            buckets
                .entry((u, n, e, p.brand.as_str()))
                .or_default()
                .push(i);
        }
    }
    let mut parent: Vec<usize> = (0..candidates.len()).collect();
    for members in buckets.values() {
        // best[(i, retailer)] = (score, j, runner-up score)
        let mut best: HashMap<(usize, &str), (f64, usize, f64)> = HashMap::new();
        for &i in members {
            for &j in members {
                if i == j || candidates[i].retailer == candidates[j].retailer {
                    continue;
                }
                let s = score(&prepared[i], &prepared[j]);
                let e = best.entry((i, candidates[j].retailer.as_str())).or_insert((
                    f64::MIN,
                    usize::MAX,
                    f64::MIN,
                ));
                if s > e.0 {
                    *e = (s, j, e.0);
                } else if s > e.2 {
                    e.2 = s;
                }
            }
        }
        for (&(i, _), &(s, j, runner_up)) in &best {
            if i > j || s < MIN_SIMILARITY || s - runner_up < MIN_MARGIN {
                continue;
            }
            let Some(&(s_back, back, runner_back)) =
                best.get(&(j, candidates[i].retailer.as_str()))
            else {
                continue;
            };
            if back == i && s_back - runner_back >= MIN_MARGIN {
                let (ri, rj) = (find(&mut parent, i), find(&mut parent, j));
                parent[ri] = rj;
            }
        }
    }
    for members in buckets.values() {
        match_the_sole_ones(candidates, &prepared, members, &mut parent);
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..candidates.len() {
        let root = find(&mut parent, i);
        groups.entry(root).or_default().push(i);
    }
    let mut out = Vec::new();
    for members in groups.into_values() {
        let retailers: BTreeSet<&str> = members
            .iter()
            .map(|&i| candidates[i].retailer.as_str())
            .collect();
        if retailers.len() == members.len() {
            out.push(Group {
                listings: members.iter().map(|&i| candidates[i].id).collect(),
            });
        } else {
            // Two listings of one shop in one group: not sure which is
            // which, so none are matched.
            out.extend(members.iter().map(|&i| Group {
                listings: vec![candidates[i].id],
            }));
        }
    }
    out
}

/// The pack as evidence: within one bucket (brand and normalised pack),
/// when two shops each have exactly one listing not yet matched to the
/// other shop, those two are one product unless the closest titles of
/// their groups have nothing in common ("Lurpak Block Butter 250g" and
/// "Lurpak Slightly Salted Block 250g"; the one Coca-Cola 1.5l left at
/// each shop once the Zero Sugar ones are matched). Repeated until
/// nothing changes.
fn match_the_sole_ones(
    candidates: &[Candidate],
    prepared: &[Prepared],
    members: &[usize],
    parent: &mut [usize],
) {
    let shops: BTreeSet<&str> = members
        .iter()
        .map(|&i| candidates[i].retailer.as_str())
        .collect();
    loop {
        let mut merged = false;
        for &a in &shops {
            for &b in
                shops.range::<&str, _>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded))
            {
                // Each member's group's shops, as the groups stand now.
                let mut group_shops: HashMap<usize, BTreeSet<&str>> = HashMap::new();
                for &i in members {
                    let root = find(parent, i);
                    group_shops
                        .entry(root)
                        .or_default()
                        .insert(candidates[i].retailer.as_str());
                }
                let unpaired = |shop: &str, other: &str, parent: &mut [usize]| -> Vec<usize> {
                    members
                        .iter()
                        .copied()
                        .filter(|&i| candidates[i].retailer == shop)
                        .filter(|&i| !group_shops[&find(parent, i)].contains(other))
                        .collect()
                };
                let (left, right) = (unpaired(a, b, parent), unpaired(b, a, parent));
                let ([i], [j]) = (left.as_slice(), right.as_slice()) else {
                    continue;
                };
                let (ri, rj) = (find(parent, *i), find(parent, *j));
                if !group_shops[&ri].is_disjoint(&group_shops[&rj]) {
                    continue;
                }
                // The closest titles of the two groups.
                let of = |root: usize, parent: &mut [usize]| -> Vec<usize> {
                    members
                        .iter()
                        .copied()
                        .filter(|&m| find(parent, m) == root)
                        .collect()
                };
                let (gi, gj) = (of(ri, parent), of(rj, parent));
                let closest = gi
                    .iter()
                    .flat_map(|&x| gj.iter().map(move |&y| (x, y)))
                    .map(|(x, y)| score(&prepared[x], &prepared[y]))
                    .fold(0.0, f64::max);
                if closest >= MIN_SIMILARITY_SOLE {
                    parent[ri] = rj;
                    merged = true;
                }
            }
        }
        if !merged {
            return;
        }
    }
}

/// What a matching pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MatchReport {
    /// Listings on a product shared with another retailer.
    pub matched_listings: u64,
    /// Products with listings at two or more retailers.
    pub matched_products: u64,
    /// Listings on a product of their own.
    pub single: u64,
    pub overridden: u64,
    /// Listings whose product changed in this pass.
    pub changed: u64,
    /// Products whose name, brand, category or pack changed in this pass.
    pub renamed: u64,
}

impl MatchReport {
    /// One line for the command line.
    pub fn summary(&self) -> String {
        format!(
            "products: {} listings matched across retailers into {} products; {} on their own, \
             {} by override; {} listings moved, {} products renamed",
            self.matched_listings,
            self.matched_products,
            self.single,
            self.overridden,
            self.changed,
            self.renamed
        )
    }
}

/// Matches every listing in the database and writes `listings.product_id`
/// and `match_method`, creating products as needed. Idempotent: a second
/// pass over the same listings changes nothing.
pub async fn run(pool: &PgPool) -> anyhow::Result<MatchReport> {
    let mut pass = MatchingPass::begin(pool).await?;
    let rows = pass.listings().await?;

    struct Current {
        product: Option<i64>,
        method: Option<String>,
    }
    let mut current: HashMap<i64, Current> = HashMap::new();
    let mut candidates = Vec::new();
    let mut details: HashMap<i64, Details> = HashMap::new();
    // (listing, product or None for "own product", method)
    let mut wanted: Vec<(i64, Option<i64>, &'static str)> = Vec::new();
    let mut report = MatchReport::default();
    for row in rows {
        // A listing stored without a pack may still say it in its title.
        let pack = row.pack().or_else(|| split_title_pack(&row.title).1);
        current.insert(
            row.id,
            Current {
                product: row.product_id,
                method: row.match_method,
            },
        );
        details.insert(
            row.id,
            Details {
                title: row.title.clone(),
                pack,
                category: row.category.clone(),
            },
        );
        if row.overridden {
            report.overridden += 1;
            wanted.push((row.id, row.override_product, "override"));
            continue;
        }
        candidates.push(Candidate {
            id: row.id,
            retailer: row.retailer_id.to_string(),
            retailer_name: row.retailer_name,
            title: row.title,
            pack,
        });
    }
    // Pairwise scoring is CPU work: off the async runtime.
    let groups = tokio::task::spawn_blocking(move || match_listings(&candidates))
        .await
        .context("the matcher thread failed")?;
    // Products already in use by automatic matching, reused where a group
    // keeps (some of) its listings, so ids are stable across passes.
    let mut taken: BTreeSet<i64> = BTreeSet::new();
    let mut to_create: Vec<(Vec<i64>, &'static str)> = Vec::new();
    // What each reused product should say of itself, from its listings.
    let mut described: Vec<(i64, ProductFacts)> = Vec::new();
    for g in &groups {
        let method = if g.listings.len() > 1 {
            "auto"
        } else {
            "single"
        };
        if g.listings.len() > 1 {
            report.matched_products += 1;
            report.matched_listings += g.listings.len() as u64;
        } else {
            report.single += 1;
        }
        let reuse = g
            .listings
            .iter()
            .filter_map(|id| {
                let c = current.get(id)?;
                match c.method.as_deref() {
                    Some("auto" | "single") => c.product,
                    _ => None,
                }
            })
            .filter(|p| !taken.contains(p))
            .min();
        match reuse {
            Some(p) => {
                taken.insert(p);
                described.push((p, describe(&g.listings, &details)));
                wanted.extend(g.listings.iter().map(|&id| (id, Some(p), method)));
            }
            None => to_create.push((g.listings.clone(), method)),
        }
    }
    for (listings, method) in to_create {
        let product = pass.create_product(&describe(&listings, &details)).await?;
        wanted.extend(listings.iter().map(|&id| (id, Some(product), method)));
    }
    report.renamed = pass.update_products(&described).await?;
    // Overrides with no product get one of their own.
    let mut resolved: Vec<(i64, i64, &'static str)> = Vec::new();
    for (id, product, method) in wanted {
        let product = match product {
            Some(p) => p,
            None => match current.get(&id) {
                Some(Current {
                    product: Some(p),
                    method: Some(m),
                }) if m == "override" => *p,
                _ => pass.create_product(&describe(&[id], &details)).await?,
            },
        };
        resolved.push((id, product, method));
    }
    let changed: Vec<&(i64, i64, &str)> = resolved
        .iter()
        .filter(|(id, p, m)| {
            current
                .get(id)
                .is_none_or(|c| c.product != Some(*p) || c.method.as_deref() != Some(*m))
        })
        .collect();
    report.changed = changed.len() as u64;
    if !changed.is_empty() {
        let ids: Vec<i64> = changed.iter().map(|c| c.0).collect();
        let products: Vec<i64> = changed.iter().map(|c| c.1).collect();
        let methods: Vec<&str> = changed.iter().map(|c| c.2).collect();
        pass.set_products(&ids, &products, &methods).await?;
    }
    pass.commit().await?;
    Ok(report)
}

/// A listing's title, pack and category, as matching reads them.
#[derive(Debug, Clone)]
struct Details {
    title: String,
    pack: Option<Pack>,
    category: Option<String>,
}

/// What a product of `listings` says of itself. Its name is the shortest
/// of their titles without the pack wording, followed by the pack as
/// [`Pack::label`] writes it ("Heinz Beanz 415g"), so one name at two
/// pack sizes reads as two products. Its brand is that title's first
/// word; its category the one most of its listings have (ties: the first
/// alphabetically).
fn describe(listings: &[i64], details: &HashMap<i64, Details>) -> ProductFacts {
    let mut best: Option<(&str, Option<Pack>)> = None;
    let mut categories: BTreeMap<&str, usize> = BTreeMap::new();
    for d in listings.iter().filter_map(|id| details.get(id)) {
        let (bare, in_title) = split_title_pack(&d.title);
        let bare = if bare.is_empty() {
            d.title.trim()
        } else {
            bare
        };
        let pack = d.pack.or(in_title);
        let words = |t: &str| t.split_whitespace().count();
        if best.is_none_or(|(b, _)| words(bare) < words(b)) {
            best = Some((bare, pack));
        }
        if let Some(c) = &d.category {
            *categories.entry(c.as_str()).or_default() += 1;
        }
    }
    let (bare, pack) = best.unwrap_or(("", None));
    let name = match pack {
        Some(p) => format!("{bare} {}", p.label()),
        None => bare.to_owned(),
    };
    let most = categories.values().copied().max().unwrap_or(0);
    ProductFacts {
        brand: bare.split_whitespace().next().map(str::to_owned),
        name,
        category: categories
            .into_iter()
            .find(|(_, n)| *n == most)
            .map(|(c, _)| c.to_owned()),
        pack,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::pack_from_title;

    fn c(id: i64, retailer: &str, title: &str) -> Candidate {
        Candidate {
            id,
            retailer: retailer.into(),
            retailer_name: retailer.into(),
            title: title.into(),
            pack: pack_from_title(title),
        }
    }

    fn together(groups: &[Group], a: i64, b: i64) -> bool {
        groups
            .iter()
            .any(|g| g.listings.contains(&a) && g.listings.contains(&b))
    }

    #[test]
    fn normalising_folds_spellings_and_drops_sizes() {
        assert_eq!(normalise("Heinz Beanz 415G"), vec!["heinz", "bean"]);
        assert_eq!(
            normalise("Heinz Baked Beans in Tomato Sauce 4 x 415g"),
            vec!["heinz", "baked", "bean", "tomato", "sauce"]
        );
        let (a, b) = (c(1, "a", "Heinz Beanz 415G"), c(2, "b", "HEINZ BEANS 415g"));
        assert!(score(&prepare(&a), &prepare(&b)) > 0.9);
    }

    #[test]
    fn the_same_product_matches_and_look_alikes_do_not() {
        let listings = vec![
            c(1, "a", "Heinz Baked Beans in Tomato Sauce 415g"),
            c(2, "b", "Heinz Baked Beanz 415G"),
            c(3, "c", "Heinz Beanz Baked Beans 415g"),
            // Same brand, other size: another product.
            c(4, "b", "Heinz Baked Beanz 4 x 415g"),
            // Same size, other brand.
            c(5, "c", "Branston Baked Beans 410g"),
            c(6, "a", "Branston Baked Beans in Tomato Sauce 410g"),
            // An own-brand line.
            c(7, "a", "a Baked Beans 410g"),
        ];
        let g = match_listings(&listings);
        assert!(together(&g, 1, 2));
        assert!(together(&g, 1, 3));
        assert!(together(&g, 5, 6));
        assert!(!together(&g, 1, 4));
        assert!(!together(&g, 5, 7));
        assert!(!together(&g, 6, 7));
    }

    #[test]
    fn the_sole_ones_of_a_brand_and_pack_match_by_elimination() {
        let listings = vec![
            // Worded apart, but each shop's only Lurpak 250g.
            c(1, "a", "Lurpak Block Butter 250g"),
            c(2, "b", "Lurpak Slightly Salted Block 250g"),
            // Zero Sugar matches on its words; what is left is the other cola.
            c(3, "a", "Coca-Cola Original Taste 1.5L"),
            c(4, "a", "Coca-Cola Zero Sugar 1.5L"),
            c(5, "b", "Coca-Cola Classic 1.5 litre"),
            c(6, "b", "Coca-Cola Zero Sugar Cola 1.5 litre"),
            // Alone at their shops, but with nothing in common.
            c(7, "a", "Acme Dog Biscuits 400g"),
            c(8, "b", "Acme Tomato Soup 400g"),
        ];
        let g = match_listings(&listings);
        assert!(together(&g, 1, 2));
        assert!(together(&g, 4, 6));
        assert!(together(&g, 3, 5));
        assert!(!together(&g, 7, 8));
    }

    #[test]
    fn products_are_named_with_their_pack_and_most_common_category() {
        let d = |title: &str, pack: Option<&str>, category: Option<&str>| Details {
            title: title.into(),
            pack: pack.map(|p| shelfwatch_domain::quantity::parse_pack(p).unwrap()),
            category: category.map(str::to_owned),
        };
        let details: HashMap<i64, Details> = [
            (
                1,
                d("Heinz Baked Beans in Tomato Sauce 415g", None, Some("Tins")),
            ),
            (2, d("Heinz Beanz", Some("415 g"), Some("Food Cupboard"))),
            (3, d("HEINZ BEANZ 415G", None, Some("Food Cupboard"))),
            (4, d("Heinz Baked Beanz 4x415g", None, None)),
        ]
        .into_iter()
        .collect();
        let one = describe(&[1, 2, 3], &details);
        assert_eq!(one.name, "Heinz Beanz 415g");
        assert_eq!(one.brand.as_deref(), Some("Heinz"));
        assert_eq!(one.category.as_deref(), Some("Food Cupboard"));
        let multi = describe(&[4], &details);
        assert_eq!(multi.name, "Heinz Baked Beanz 4 x 415g");
        assert_eq!(multi.category, None);
        assert_ne!(one.name, multi.name);
    }

    #[test]
    fn a_close_call_is_left_unmatched() {
        // Two variants at one shop, equally close to the other shop's title.
        let listings = vec![
            c(1, "a", "Acme Cola 330ml"),
            c(2, "b", "Acme Cola Zero 330ml"),
            c(3, "b", "Acme Cola Diet 330ml"),
        ];
        let g = match_listings(&listings);
        assert!(!together(&g, 1, 2) && !together(&g, 1, 3));
    }
}
