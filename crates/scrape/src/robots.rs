//! robots.txt as RFC 9309 reads it: the group for our product token (else
//! `*`), the longest matching rule wins, `allow` wins a tie, `*` and `$`
//! wildcards. How the file was fetched decides too: 4xx means no rules,
//! 5xx or unreachable means everything is disallowed until it can be read.

/// The product token the scraper matches groups by (and sends in its
/// user agent).
pub const USER_AGENT_TOKEN: &str = "shelfwatch";

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    allow: bool,
    pattern: String,
}

/// The rules that apply to the scraper on one origin.
#[derive(Debug, Clone, PartialEq)]
pub struct Robots {
    rules: Vec<Rule>,
    disallow_all: bool,
    /// `Crawl-delay` in seconds, when the group gives one.
    pub crawl_delay: Option<f64>,
}

impl Robots {
    /// No rules: everything may be fetched (the file is absent, 4xx).
    pub fn allow_all() -> Self {
        Self {
            rules: Vec::new(),
            disallow_all: false,
            crawl_delay: None,
        }
    }

    /// Nothing may be fetched (the file answered 5xx or not at all).
    pub fn disallow_all() -> Self {
        Self {
            rules: Vec::new(),
            disallow_all: true,
            crawl_delay: None,
        }
    }

    /// The rules for a robots.txt fetched with HTTP `status`.
    pub fn from_response(status: u16, body: &str) -> Self {
        match status {
            200..=299 => Self::parse(body, USER_AGENT_TOKEN),
            400..=499 => Self::allow_all(),
            _ => Self::disallow_all(),
        }
    }

    /// Parses a robots.txt body for `agent`.
    pub fn parse(body: &str, agent: &str) -> Self {
        let agent = agent.to_ascii_lowercase();
        // Groups: (user agents, rules, crawl delay).
        let mut groups: Vec<(Vec<String>, Vec<Rule>, Option<f64>)> = Vec::new();
        let mut in_agents = false;
        for raw in body.lines() {
            let line = raw.split('#').next().unwrap_or("").trim();
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let key = key.trim().to_ascii_lowercase();
            let value = value.trim();
            match key.as_str() {
                "user-agent" => {
                    if !in_agents {
                        groups.push((Vec::new(), Vec::new(), None));
                        in_agents = true;
                    }
                    if let Some(g) = groups.last_mut() {
                        g.0.push(value.to_ascii_lowercase());
                    }
                }
                "allow" | "disallow" => {
                    in_agents = false;
                    if let Some(g) = groups.last_mut()
                        && !value.is_empty()
                    {
                        g.1.push(Rule {
                            allow: key == "allow",
                            pattern: value.to_owned(),
                        });
                    }
                }
                "crawl-delay" => {
                    in_agents = false;
                    if let Some(g) = groups.last_mut() {
                        g.2 = value
                            .parse::<f64>()
                            .ok()
                            .filter(|d| d.is_finite() && *d >= 0.0);
                    }
                }
                _ => {}
            }
        }
        let matches_agent = |agents: &Vec<String>| agents.contains(&agent);
        let mut rules = Vec::new();
        let mut crawl_delay = None;
        let specific: Vec<_> = groups.iter().filter(|g| matches_agent(&g.0)).collect();
        let chosen = if specific.is_empty() {
            groups
                .iter()
                .filter(|g| g.0.iter().any(|a| a == "*"))
                .collect()
        } else {
            specific
        };
        // Groups naming the same agent are merged (RFC 9309 2.2.1).
        for g in chosen {
            rules.extend(g.1.iter().cloned());
            crawl_delay = crawl_delay.or(g.2);
        }
        Self {
            rules,
            disallow_all: false,
            crawl_delay,
        }
    }

    /// Whether `path` (from the first `/`, query included) may be fetched.
    pub fn allowed(&self, path: &str) -> bool {
        if self.disallow_all {
            return false;
        }
        if path == "/robots.txt" {
            return true;
        }
        let mut best: Option<(usize, bool)> = None;
        for rule in &self.rules {
            if pattern_matches(&rule.pattern, path) {
                let len = rule.pattern.len();
                best = match best {
                    Some((l, a)) if l > len || (l == len && a) => Some((l, a)),
                    _ => Some((len, rule.allow)),
                };
            }
        }
        best.is_none_or(|(_, allow)| allow)
    }
}

/// Matches a robots pattern (`*` any run of characters, a final `$` the end
/// of the path) against the start of `path`.
fn pattern_matches(pattern: &str, path: &str) -> bool {
    let (pattern, anchored) = match pattern.strip_suffix('$') {
        Some(p) => (p, true),
        None => (pattern, false),
    };
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut pos = 0;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            if !path.starts_with(part) {
                return false;
            }
            pos = part.len();
            continue;
        }
        let last = i == parts.len() - 1;
        if last && anchored {
            // The final literal must end the path, after `pos`.
            return path.len() >= pos + part.len() && path.ends_with(part);
        }
        match path[pos..].find(part) {
            Some(at) => pos += at + part.len(),
            None => return false,
        }
    }
    !anchored || pos == path.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_match_wins_and_allow_wins_ties() {
        let r = Robots::parse(
            "User-agent: *\nDisallow: /shop/\nAllow: /shop/groceries\nDisallow: /*/checkout\n",
            "shelfwatch",
        );
        assert!(r.allowed("/shop/groceries?page=2"));
        assert!(!r.allowed("/shop/account"));
        assert!(!r.allowed("/x/checkout/pay"));
        assert!(r.allowed("/other"));
        let tie = Robots::parse("User-agent: *\nDisallow: /a\nAllow: /a\n", "shelfwatch");
        assert!(tie.allowed("/a"));
    }

    #[test]
    fn our_group_beats_the_star_group_and_groups_merge() {
        let body = "User-agent: *\nDisallow: /\n\nUser-agent: ShelfWatch\nUser-agent: other\nDisallow: /private\n\nuser-agent: shelfwatch\nCrawl-delay: 2\n";
        let r = Robots::parse(body, "shelfwatch");
        assert!(r.allowed("/shop"));
        assert!(!r.allowed("/private/x"));
        assert_eq!(r.crawl_delay, Some(2.0));
        let star = Robots::parse(body, "somebot");
        assert!(!star.allowed("/shop"));
    }

    #[test]
    fn wildcards_and_end_anchors() {
        assert!(pattern_matches("/*.json$", "/a/b.json"));
        assert!(!pattern_matches("/*.json$", "/a/b.json?x=1"));
        assert!(pattern_matches("/a*c", "/abbbc/d"));
        assert!(pattern_matches("/", "/anything"));
        assert!(!pattern_matches("/a$", "/ab"));
        assert!(pattern_matches("/a$", "/a"));
    }

    #[test]
    fn status_decides_before_the_body() {
        assert!(Robots::from_response(404, "").allowed("/x"));
        assert!(!Robots::from_response(503, "").allowed("/x"));
        assert!(!Robots::from_response(500, "User-agent: *\nAllow: /\n").allowed("/x"));
        assert!(Robots::from_response(200, "").allowed("/x"));
        // robots.txt itself is always fetchable.
        assert!(Robots::from_response(200, "User-agent: *\nDisallow: /\n").allowed("/robots.txt"));
    }
}
