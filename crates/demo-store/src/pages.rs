//! HTML documents. The listing pages are shells with no prices in them: an
//! inline script fetches the tiles from the retailer's JSON API and renders
//! them, as the real shops do. Each retailer has its own markup, its own
//! cookie-consent overlay and its own consent cookie.

use super::catalog::{Listing, Retailer};

const SAINSWAY: &str = include_str!("assets/sainsway.html");
const ALDWICK: &str = include_str!("assets/aldwick.html");
const ICEBOX: &str = include_str!("assets/icebox.html");
const MORROW: &str = include_str!("assets/morrow.html");
const PRODUCT: &str = include_str!("assets/product.html");

const CONSENT_START: &str = "<!--consent-->";
const CONSENT_END: &str = "<!--/consent-->";

/// The cookie a retailer's consent button sets; when the browser sends it,
/// the page is served without the overlay.
pub fn consent_cookie(r: Retailer) -> &'static str {
    match r {
        Retailer::Sainsway => "OptanonAlertBoxClosed",
        Retailer::Aldwick => "aldwick_cookie_consent",
        Retailer::Icebox => "icebox_cc",
        Retailer::Morrow => "morrow-consent",
    }
}

/// How each page locks scrolling while the overlay is up (substituted for
/// `{{LOCK}}`).
fn scroll_lock(r: Retailer) -> &'static str {
    match r {
        Retailer::Sainsway => "consent-open",
        Retailer::Aldwick => "no-scroll",
        Retailer::Icebox => "style=\"overflow:hidden;position:fixed;width:100%\"",
        Retailer::Morrow => "modal-open",
    }
}

/// Whether a `Cookie` header carries the retailer's consent cookie.
pub fn has_consented(r: Retailer, cookie_header: Option<&str>) -> bool {
    let name = consent_cookie(r);
    cookie_header.is_some_and(|h| {
        h.split(';')
            .filter_map(|kv| kv.split_once('='))
            .any(|(k, v)| k.trim() == name && !v.trim().is_empty())
    })
}

/// The listing page shell, with the consent overlay unless consent was given.
pub fn listing_page(r: Retailer, consented: bool) -> String {
    let template = match r {
        Retailer::Sainsway => SAINSWAY,
        Retailer::Aldwick => ALDWICK,
        Retailer::Icebox => ICEBOX,
        Retailer::Morrow => MORROW,
    };
    if consented {
        without_consent(template).replace("{{LOCK}}", "")
    } else {
        template
            .replace(CONSENT_START, "")
            .replace(CONSENT_END, "")
            .replace("{{LOCK}}", scroll_lock(r))
    }
}

fn without_consent(template: &str) -> String {
    match (template.find(CONSENT_START), template.find(CONSENT_END)) {
        (Some(start), Some(end)) if start < end => {
            format!(
                "{}{}",
                &template[..start],
                &template[end + CONSENT_END.len()..]
            )
        }
        _ => template.to_owned(),
    }
}

/// `page` made hostile: padded to ~24 MB, wrapped in 50,000 nested
/// elements, or stuck in a script that never returns before anything
/// renders.
pub fn hostile(page: &str, kind: super::faults::HostilePage) -> String {
    use super::faults::HostilePage;
    let body_at = page.find("<body").unwrap_or(0);
    let (head, body) = page.split_at(body_at);
    match kind {
        HostilePage::Huge => {
            let pad = format!("<p hidden>{}</p>", "lorem ipsum ".repeat(2_000_000));
            format!("{head}{body}{pad}")
        }
        HostilePage::Deep => {
            let depth = 50_000;
            format!(
                "{head}{}{body}{}",
                "<div>".repeat(depth),
                "</div>".repeat(depth)
            )
        }
        HostilePage::Spin => format!("{head}<script>for (;;) {{}}</script>{body}"),
    }
}

/// A product page: the title server-side, the price fetched by script.
pub fn product_page(listing: &Listing) -> String {
    PRODUCT
        .replace("{{TITLE}}", &escape(&listing.title))
        .replace("{{NAME}}", listing.retailer.name())
        .replace("{{SLUG}}", listing.retailer.slug())
        .replace("{{SKU}}", &listing.sku)
}

/// A checkout page, which robots.txt forbids crawlers to fetch.
pub fn checkout_page(r: Retailer) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Checkout | {name}</title></head>\
         <body><h1>Checkout</h1><p>Sign in to {name} to check out.</p><p><a href=\"/{slug}/\">Back to the shop</a></p></body></html>",
        name = r.name(),
        slug = r.slug()
    )
}

/// The store's front page, linking the four shops.
pub fn index_page() -> String {
    let links: String = Retailer::ALL
        .iter()
        .map(|r| format!("<li><a href=\"/{}/\">{}</a></li>", r.slug(), r.name()))
        .collect();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>shelfwatch demo store</title></head>\
         <body><h1>shelfwatch demo store</h1><p>Four simulated supermarkets with simulated prices.</p><ul>{links}</ul></body></html>"
    )
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shells_carry_no_prices_and_consent_is_cut_when_given() {
        for r in Retailer::ALL {
            for consented in [false, true] {
                let page = listing_page(r, consented);
                assert!(!page.contains('£'), "{r}");
                assert!(!page.contains("{{"), "{r}");
                assert!(!page.contains("<!--consent"), "{r}");
            }
            let with = listing_page(r, false);
            let without = listing_page(r, true);
            assert!(with.len() > without.len() + 200, "{r}");
            let locks = |page: &str| page.matches(scroll_lock(r)).count();
            assert_eq!(locks(&with), locks(&without) + 1, "{r}");
        }
    }

    #[test]
    fn consent_cookie_is_recognised() {
        let r = Retailer::Morrow;
        assert!(has_consented(r, Some("a=1; morrow-consent=1")));
        assert!(!has_consented(r, Some("morrow-consent=")));
        assert!(!has_consented(r, Some("icebox_cc=accepted")));
        assert!(!has_consented(r, None));
        assert_eq!(
            escape("Ben & Jerry's <x>"),
            "Ben &amp; Jerry&#39;s &lt;x&gt;"
        );
    }
}
