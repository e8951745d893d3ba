-- Out-of-stock sightings: a tile shown sold out with no price. Such a tile
-- cannot be a price observation (price_pence is NOT NULL and feeds the
-- aggregates), but its availability is history worth keeping.
CREATE TABLE stock_sightings (
    listing_id     bigint NOT NULL REFERENCES listings (id),
    observed_at    timestamptz NOT NULL,
    in_stock       boolean NOT NULL,
    PRIMARY KEY (listing_id, observed_at)
);
