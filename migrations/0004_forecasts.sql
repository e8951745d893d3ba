-- Forecast results. A run (forecast_runs) covers one shard as of one day;
-- its forecasts and recommendations are written in the same transaction
-- that marks it succeeded. The latest succeeded run per listing is current.

ALTER TABLE forecast_runs
    ADD COLUMN as_of timestamptz,
    ADD COLUMN shard text NOT NULL DEFAULT '0/1',
    ADD COLUMN input_fingerprint text;
CREATE INDEX forecast_runs_fingerprint_idx ON forecast_runs (input_fingerprint)
    WHERE status = 'succeeded';

CREATE TABLE forecasts (
    run_id          bigint NOT NULL REFERENCES forecast_runs (id) ON DELETE CASCADE,
    listing_id      bigint NOT NULL REFERENCES listings (id),
    day             timestamptz NOT NULL,
    predicted_pence bigint NOT NULL,
    lower_pence     bigint NOT NULL,
    upper_pence     bigint NOT NULL,
    CHECK (lower_pence <= predicted_pence AND predicted_pence <= upper_pence),
    PRIMARY KEY (run_id, listing_id, day)
);
CREATE INDEX forecasts_listing_idx ON forecasts (listing_id, run_id);

CREATE TABLE recommendations (
    run_id                bigint NOT NULL REFERENCES forecast_runs (id) ON DELETE CASCADE,
    listing_id            bigint NOT NULL REFERENCES listings (id),
    as_of                 timestamptz NOT NULL,
    action                text NOT NULL CHECK (action IN ('buy_now', 'wait', 'hold')),
    -- The checkable event the confidence is the probability of.
    claim                 text NOT NULL,
    current_pence         bigint NOT NULL,
    regular_pence         bigint NOT NULL,
    expected_change_pence bigint NOT NULL,
    confidence            double precision NOT NULL CHECK (confidence >= 0 AND confidence <= 1),
    message               text NOT NULL,
    PRIMARY KEY (run_id, listing_id)
);
CREATE INDEX recommendations_listing_idx ON recommendations (listing_id, run_id);
