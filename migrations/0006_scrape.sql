-- The scraper's bookkeeping and product matching.

-- What each run met on the way, so SREs can tell a quiet shop from a
-- broken scraper.
ALTER TABLE scrape_runs
    ADD COLUMN parse_errors      integer NOT NULL DEFAULT 0,
    ADD COLUMN retries           integer NOT NULL DEFAULT 0,
    ADD COLUMN browser_restarts  integer NOT NULL DEFAULT 0,
    -- Tiles written to the local spool because the database was away.
    ADD COLUMN spooled           integer NOT NULL DEFAULT 0,
    -- Products seen by the previous run, for the "suspect" comparison.
    ADD COLUMN previous_products integer;
CREATE INDEX scrape_runs_retailer_idx ON scrape_runs (retailer_id, started_at DESC);

-- How a listing got its product: matched automatically across retailers,
-- fixed by hand, or alone (no confident match elsewhere).
ALTER TABLE listings
    ADD COLUMN match_method text CHECK (match_method IN ('auto', 'override', 'single'));

-- Manual matching decisions; they win over the automatic matcher. A NULL
-- product_id keeps the listing on a product of its own.
CREATE TABLE product_overrides (
    retailer_id  bigint NOT NULL REFERENCES retailers (id),
    retailer_sku text NOT NULL,
    product_id   bigint REFERENCES products (id),
    note         text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (retailer_id, retailer_sku)
);
