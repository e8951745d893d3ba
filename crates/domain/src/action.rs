//! What a recommendation tells a shopper to do.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ParseError;

// Buy now, wait for a drop, or hold (nothing to act on). A plain comment,
// not a doc comment: utoipa would make a doc comment the schema's
// description, which the committed OpenAPI document (openapi/openapi.json)
// does not have; the API served none before Action moved here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Action {
    BuyNow,
    Wait,
    Hold,
}

impl Action {
    /// Every action, best first.
    pub const ALL: [Action; 3] = [Action::BuyNow, Action::Wait, Action::Hold];

    /// "buy_now", "wait" or "hold": the stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::BuyNow => "buy_now",
            Action::Wait => "wait",
            Action::Hold => "hold",
        }
    }

    /// Position in best-first order (buy_now 0, wait 1, hold 2).
    pub fn index(self) -> usize {
        match self {
            Action::BuyNow => 0,
            Action::Wait => 1,
            Action::Hold => 2,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| ParseError::new(s, "an action", "expected buy_now, wait or hold"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>(), Ok(a));
            assert_eq!(Action::ALL[a.index()], a);
        }
        let err = "buy".parse::<Action>().unwrap_err();
        assert!(err.to_string().contains("buy_now, wait or hold"), "{err}");
    }
}
