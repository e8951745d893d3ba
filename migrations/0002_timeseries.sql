-- Price observations and their daily aggregate, in one of two flavours
-- chosen here, once, per database:
--
--   timescaledb  the extension is available: `price_observations` is a
--                hypertable (7-day chunks, compressed after 90 days) and
--                `price_daily` a continuous aggregate refreshed by policy
--                and, after each ingest batch, for the days it touched.
--   native       plain PostgreSQL: `price_observations` is range-partitioned
--                by month (partitions created ahead of the data by
--                shelfwatch_ensure_partitions) and `price_daily` a table the
--                ingest path maintains incrementally in the same statement
--                that inserts the observations.
--
-- Both expose the same columns, the same `time_bucket(interval, timestamptz)`
-- and the same shelfwatch_ensure_partitions(from, to) (a no-op where chunks
-- are automatic), so code above the schema cannot tell them apart.

DO $migration$
BEGIN
IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
    CREATE EXTENSION IF NOT EXISTS timescaledb;

    CREATE TABLE price_observations (
        listing_id            bigint NOT NULL REFERENCES listings (id),
        observed_at           timestamptz NOT NULL,
        price_pence           bigint NOT NULL CHECK (price_pence > 0),
        was_price_pence       bigint CHECK (was_price_pence > 0),
        unit_price_pence      bigint CHECK (unit_price_pence > 0),
        unit_price_per        text CHECK (unit_price_per IN ('kg', 'l', 'each')),
        promo_kind            text NOT NULL DEFAULT 'none'
                              CHECK (promo_kind IN ('none', 'multibuy', 'loyalty', 'price_cut', 'clearance')),
        promo_text            text,
        effective_price_pence bigint NOT NULL CHECK (effective_price_pence > 0),
        in_stock              boolean NOT NULL DEFAULT true,
        scrape_run_id         bigint REFERENCES scrape_runs (id),
        PRIMARY KEY (listing_id, observed_at)
    );
    PERFORM create_hypertable('price_observations', by_range('observed_at', INTERVAL '7 days'));

    EXECUTE $cagg$
    CREATE MATERIALIZED VIEW price_daily
    WITH (timescaledb.continuous, timescaledb.materialized_only = true) AS
    SELECT listing_id,
           time_bucket(INTERVAL '1 day', observed_at)            AS day,
           first(price_pence, observed_at)                       AS open_pence,
           last(price_pence, observed_at)                        AS close_pence,
           min(price_pence)                                      AS min_pence,
           max(price_pence)                                      AS max_pence,
           avg(price_pence)::float8                              AS mean_pence,
           sum(price_pence)::bigint                              AS sum_pence,
           count(*)                                              AS observations,
           count(*) FILTER (WHERE promo_kind <> 'none')          AS promo_observations,
           bool_or(promo_kind <> 'none')                         AS any_promo,
           min(effective_price_pence)                            AS min_effective_pence,
           count(*) FILTER (WHERE in_stock)                      AS in_stock_observations,
           min(observed_at)                                      AS first_at,
           max(observed_at)                                      AS last_at
    FROM price_observations
    GROUP BY listing_id, time_bucket(INTERVAL '1 day', observed_at)
    WITH NO DATA
    $cagg$;

    PERFORM add_continuous_aggregate_policy('price_daily',
        start_offset => INTERVAL '30 days',
        end_offset => INTERVAL '1 hour',
        schedule_interval => INTERVAL '1 hour');

    ALTER TABLE price_observations SET (
        timescaledb.compress,
        timescaledb.compress_segmentby = 'listing_id',
        timescaledb.compress_orderby = 'observed_at');
    PERFORM add_compression_policy('price_observations', INTERVAL '90 days');

    CREATE FUNCTION shelfwatch_ensure_partitions(from_ts timestamptz, to_ts timestamptz)
    RETURNS integer LANGUAGE sql STABLE AS 'SELECT 0';

    INSERT INTO shelfwatch_meta (key, value) VALUES ('flavour', 'timescaledb');
ELSE
    CREATE TABLE price_observations (
        listing_id            bigint NOT NULL REFERENCES listings (id),
        observed_at           timestamptz NOT NULL,
        price_pence           bigint NOT NULL CHECK (price_pence > 0),
        was_price_pence       bigint CHECK (was_price_pence > 0),
        unit_price_pence      bigint CHECK (unit_price_pence > 0),
        unit_price_per        text CHECK (unit_price_per IN ('kg', 'l', 'each')),
        promo_kind            text NOT NULL DEFAULT 'none'
                              CHECK (promo_kind IN ('none', 'multibuy', 'loyalty', 'price_cut', 'clearance')),
        promo_text            text,
        effective_price_pence bigint NOT NULL CHECK (effective_price_pence > 0),
        in_stock              boolean NOT NULL DEFAULT true,
        scrape_run_id         bigint REFERENCES scrape_runs (id),
        PRIMARY KEY (listing_id, observed_at)
    ) PARTITION BY RANGE (observed_at);

    CREATE TABLE price_daily (
        listing_id            bigint NOT NULL,
        day                   timestamptz NOT NULL,
        open_pence            bigint NOT NULL,
        close_pence           bigint NOT NULL,
        min_pence             bigint NOT NULL,
        max_pence             bigint NOT NULL,
        mean_pence            float8 NOT NULL,
        sum_pence             bigint NOT NULL,
        observations          bigint NOT NULL,
        promo_observations    bigint NOT NULL,
        any_promo             boolean NOT NULL,
        min_effective_pence   bigint NOT NULL,
        in_stock_observations bigint NOT NULL,
        first_at              timestamptz NOT NULL,
        last_at               timestamptz NOT NULL,
        PRIMARY KEY (listing_id, day)
    );
    CREATE INDEX price_daily_day_idx ON price_daily (day);

    -- Same result as TimescaleDB's time_bucket for day and week buckets
    -- (weeks start on Monday, as there).
    CREATE FUNCTION time_bucket(bucket_width interval, ts timestamptz)
    RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $fn$ SELECT date_bin(bucket_width, ts, TIMESTAMPTZ '2000-01-03 00:00:00+00') $fn$;

    -- Creates the monthly partitions covering [from_ts, to_ts]; returns how
    -- many it created. Serialised by an advisory lock so concurrent ingests
    -- never race to create the same partition.
    CREATE FUNCTION shelfwatch_ensure_partitions(from_ts timestamptz, to_ts timestamptz)
    RETURNS integer LANGUAGE plpgsql AS $fn$
    DECLARE
        month_start timestamp := date_trunc('month', from_ts AT TIME ZONE 'UTC');
        last_month  timestamp := date_trunc('month', to_ts AT TIME ZONE 'UTC');
        part_name   text;
        created     integer := 0;
    BEGIN
        PERFORM pg_advisory_xact_lock(hashtext('shelfwatch_ensure_partitions'));
        WHILE month_start <= last_month LOOP
            part_name := 'price_observations_p' || to_char(month_start, 'YYYYMM');
            IF to_regclass(part_name) IS NULL THEN
                IF created = 0 THEN
                    -- A new partition's foreign keys lock the tables they
                    -- reference. Take those locks in the order ingest
                    -- transactions do (listings, then observations), so a
                    -- concurrent batch is waited for, never deadlocked with.
                    LOCK TABLE listings, scrape_runs IN SHARE ROW EXCLUSIVE MODE;
                    LOCK TABLE price_observations IN ACCESS EXCLUSIVE MODE;
                END IF;
                EXECUTE format(
                    'CREATE TABLE %I PARTITION OF price_observations FOR VALUES FROM (%L) TO (%L)',
                    part_name,
                    (month_start AT TIME ZONE 'UTC'),
                    ((month_start + INTERVAL '1 month') AT TIME ZONE 'UTC'));
                created := created + 1;
            END IF;
            month_start := month_start + INTERVAL '1 month';
        END LOOP;
        RETURN created;
    END
    $fn$;

    -- Retention twin of add_retention_policy: detaches and drops whole
    -- monthly partitions that end before `cutoff`. price_daily keeps its rows.
    CREATE FUNCTION shelfwatch_drop_partitions_before(cutoff timestamptz)
    RETURNS integer LANGUAGE plpgsql AS $fn$
    DECLARE
        part    record;
        dropped integer := 0;
    BEGIN
        FOR part IN
            SELECT c.oid::regclass AS rel,
                   to_date(substring(c.relname FROM 'p(\d{6})$'), 'YYYYMM')::timestamp AS month_start
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'price_observations'::regclass
        LOOP
            IF ((part.month_start + INTERVAL '1 month') AT TIME ZONE 'UTC') <= cutoff THEN
                EXECUTE format('ALTER TABLE price_observations DETACH PARTITION %s', part.rel);
                EXECUTE format('DROP TABLE %s', part.rel);
                dropped := dropped + 1;
            END IF;
        END LOOP;
        RETURN dropped;
    END
    $fn$;

    -- Partitions for the recent past and the months ahead, so live scrapes
    -- never wait on DDL.
    PERFORM shelfwatch_ensure_partitions(now() - INTERVAL '1 month', now() + INTERVAL '3 months');

    INSERT INTO shelfwatch_meta (key, value) VALUES ('flavour', 'native');
END IF;
END
$migration$;

CREATE INDEX price_observations_run_idx ON price_observations (scrape_run_id) WHERE scrape_run_id IS NOT NULL;
