//! What a query can fail with, typed so callers can answer a constraint
//! violation with a 4xx instead of a 500.
