-- What the REST API needs: product search, API keys, an audit trail,
-- watches with their webhook deliveries, and the job queue with worker
-- heartbeats that lets the API ask for a scrape or a forecast without
-- waiting on it. Plain PostgreSQL only, so it applies on TimescaleDB too.

-- Product search on name and brand: built-in full-text search (no
-- extension), prefix-matched by the API.
ALTER TABLE products
    ADD COLUMN search tsvector GENERATED ALWAYS AS (
        to_tsvector('simple', coalesce(name, '') || ' ' || coalesce(brand, ''))
    ) STORED;
CREATE INDEX products_search_idx ON products USING gin (search);
CREATE INDEX products_name_idx ON products (name, id);
CREATE INDEX products_category_idx ON products (category);

-- "Best first" order of the recommendations list, served from an index.
CREATE INDEX recommendations_best_idx ON recommendations (
    run_id,
    (CASE action WHEN 'buy_now' THEN 0 WHEN 'wait' THEN 1 ELSE 2 END),
    confidence DESC,
    listing_id);

-- API keys: only the SHA-256 of the key is kept; the key is shown once.
CREATE TABLE api_keys (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL CHECK (name <> ''),
    -- The first characters of the key, to recognise it in lists and logs.
    prefix       text NOT NULL,
    key_sha256   bytea NOT NULL UNIQUE CHECK (length(key_sha256) = 32),
    scopes       text[] NOT NULL
                 CHECK (scopes <@ ARRAY['read', 'watch', 'admin']::text[]),
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);

-- Who did what, when: every admin action and watch change.
CREATE TABLE audit_log (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    -- `key:<id>` or `jwt:<issuer>:<subject>`, or `cli` for the command line.
    actor   text NOT NULL,
    action  text NOT NULL,
    target  text,
    detail  jsonb NOT NULL DEFAULT '{}'::jsonb,
    request_id text
);
CREATE INDEX audit_log_at_idx ON audit_log (at);

-- A caller's alert on a product: a target price or a drop from the price
-- when the watch was made. Owned by the principal that made it.
CREATE TABLE watches (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner              text NOT NULL,
    product_id         bigint NOT NULL REFERENCES products (id),
    target_price_pence bigint CHECK (target_price_pence > 0),
    drop_percent       integer CHECK (drop_percent BETWEEN 1 AND 99),
    -- The cheapest price when the watch was made (what a drop is measured from).
    baseline_pence     bigint,
    currency           text NOT NULL DEFAULT 'GBP',
    webhook_url        text NOT NULL,
    -- HMAC-SHA256 key for the webhook signature, given to the owner once.
    secret             text NOT NULL,
    -- The price last notified while the condition held; cleared when the
    -- price rises above the threshold again, so the next crossing notifies.
    notified_pence     bigint,
    created_at         timestamptz NOT NULL DEFAULT now(),
    deleted_at         timestamptz,
    CHECK ((target_price_pence IS NULL) <> (drop_percent IS NULL))
);
CREATE INDEX watches_owner_idx ON watches (owner, id) WHERE deleted_at IS NULL;
CREATE INDEX watches_product_idx ON watches (product_id) WHERE deleted_at IS NULL;

-- One notification to send, with its retry state. The delivery worker
-- leases due rows with FOR UPDATE SKIP LOCKED.
CREATE TABLE webhook_deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    watch_id        bigint NOT NULL REFERENCES watches (id),
    -- What caused it (`price:<listing>:<observed_at>`, `rec:<run>:<listing>`):
    -- the same event is never queued twice for a watch.
    event_key       text NOT NULL,
    body            text NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    UNIQUE (watch_id, event_key)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';

-- Every attempt at a delivery: when, the answer, how long it took.
CREATE TABLE webhook_attempts (
    delivery_id bigint NOT NULL REFERENCES webhook_deliveries (id),
    attempt     integer NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    status_code integer,
    error       text,
    duration_ms integer NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);

-- Work asked for through the API and done by the worker of its kind.
CREATE TABLE jobs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('scrape', 'forecast')),
    params       jsonb NOT NULL DEFAULT '{}'::jsonb,
    status       text NOT NULL DEFAULT 'queued'
                 CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    requested_by text NOT NULL,
    enqueued_at  timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz,
    message      text
);
-- One queued job per kind and parameters: asking twice is asking once.
CREATE UNIQUE INDEX jobs_queued_once_idx ON jobs (kind, params) WHERE status = 'queued';
CREATE INDEX jobs_claim_idx ON jobs (kind, id) WHERE status = 'queued';

-- Heartbeats of long-running workers, so the API can say whether anyone
-- will pick a job up.
CREATE TABLE workers (
    role      text NOT NULL,
    instance  text NOT NULL,
    last_seen timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (role, instance)
);
