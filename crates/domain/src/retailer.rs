//! Retailer identity.

use std::fmt;

use super::ParseError;

/// A retailer's short name as used in URLs, configs and CSV files:
/// 1 to 63 characters of `a-z`, `0-9` and `-`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RetailerSlug(String);

impl RetailerSlug {
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let fail = |reason: &str| ParseError {
            input: text.to_owned(),
            what: "a retailer slug",
            reason: reason.to_owned(),
        };
        let s = text.trim();
        if s.is_empty() {
            return Err(fail("it is empty"));
        }
        if s.len() > 63 {
            return Err(fail("it is longer than 63 characters"));
        }
        if s.starts_with('-') {
            return Err(fail("it starts with '-'"));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(fail(&format!(
                "{c:?} is not allowed (use lowercase letters, digits and '-')"
            )));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> serde::Deserialize<'de> for RetailerSlug {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for RetailerSlug {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl fmt::Display for RetailerSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects() {
        for good in ["tesco", "sainsburys", "co-op", "m-and-s", "aldi2"] {
            assert_eq!(RetailerSlug::parse(good).unwrap().as_str(), good);
        }
        for (bad, why) in [
            ("", "empty"),
            ("Tesco", "'T'"),
            ("-x", "starts with"),
            ("a b", "' '"),
            ("tësco", "'ë'"),
        ] {
            let err = RetailerSlug::parse(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
