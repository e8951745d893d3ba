-- How well each forecast run's confidence is calibrated, measured when the
-- run is made (`crates/forecast/src/reliability.rs`): models trained only
-- on days whose outcome was known before a cut-off state their claims on
-- the days after it, and those claims are scored against what happened.
-- One row per confidence bin (tenths) with at least one claim, overall
-- ('all') and per action; a bin with no claims has no row. A run whose
-- history is too short to score anything stores none.
-- A plain table: the same on TimescaleDB and native PostgreSQL.

CREATE TABLE forecast_calibration (
    run_id        bigint NOT NULL REFERENCES forecast_runs (id) ON DELETE CASCADE,
    action        text NOT NULL CHECK (action IN ('all', 'buy_now', 'wait', 'hold')),
    bin_low       double precision NOT NULL,
    bin_high      double precision NOT NULL,
    -- The mean confidence stated for the bin's claims, and the share of
    -- them that came true.
    stated_mean   double precision NOT NULL,
    observed_rate double precision NOT NULL CHECK (observed_rate >= 0 AND observed_rate <= 1),
    n             integer NOT NULL CHECK (n > 0),
    -- The days the scored claims were made on (their outcomes are known
    -- by the run's as_of).
    claims_from   date NOT NULL,
    claims_until  date NOT NULL,
    CHECK (0 <= bin_low AND bin_low < bin_high AND bin_high <= 1),
    CHECK (stated_mean >= bin_low AND stated_mean <= bin_high),
    CHECK (claims_from <= claims_until),
    PRIMARY KEY (run_id, action, bin_low)
);
