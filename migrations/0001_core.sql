-- Reference data: retailers, canonical products, and the listings that
-- retailers show for them. Time-series tables follow in 0002.

CREATE TABLE shelfwatch_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE retailers (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug       text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name       text NOT NULL,
    currency   text NOT NULL DEFAULT 'GBP' CHECK (currency ~ '^[A-Z]{3}$'),
    base_url   text,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The product a shopper means, whichever retailer sells it.
CREATE TABLE products (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL,
    brand      text,
    category   text,
    pack_count integer CHECK (pack_count > 0),
    pack_each  bigint CHECK (pack_each > 0),
    base_unit  text CHECK (base_unit IN ('g', 'ml', 'each')),
    gtin       text UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One retailer's shelf entry. `product_id` is filled by product matching.
CREATE TABLE listings (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    retailer_id   bigint NOT NULL REFERENCES retailers (id),
    retailer_sku  text NOT NULL CHECK (retailer_sku <> ''),
    product_id    bigint REFERENCES products (id),
    title         text NOT NULL,
    url           text,
    pack_count    integer CHECK (pack_count > 0),
    pack_each     bigint CHECK (pack_each > 0),
    base_unit     text CHECK (base_unit IN ('g', 'ml', 'each')),
    first_seen    timestamptz NOT NULL,
    last_seen     timestamptz NOT NULL,
    UNIQUE (retailer_id, retailer_sku)
);
CREATE INDEX listings_product_idx ON listings (product_id);

CREATE TABLE scrape_runs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    retailer_id bigint REFERENCES retailers (id),
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    status      text NOT NULL DEFAULT 'running'
                CHECK (status IN ('running', 'succeeded', 'partial', 'suspect', 'failed')),
    pages       integer NOT NULL DEFAULT 0,
    products    integer NOT NULL DEFAULT 0,
    errors      integer NOT NULL DEFAULT 0,
    message     text
);

CREATE TABLE forecast_runs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model_version text NOT NULL,
    params        jsonb NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    status        text NOT NULL DEFAULT 'running'
                  CHECK (status IN ('running', 'succeeded', 'failed')),
    series        integer NOT NULL DEFAULT 0,
    message       text
);
