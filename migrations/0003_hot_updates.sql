-- Rows that ingest updates in place (a listing's last sighting, a day's
-- running aggregate) leave room on their page, so updates that touch no
-- indexed column stay heap-only (HOT) and skip index maintenance.
ALTER TABLE listings SET (fillfactor = 80);

DO $$
BEGIN
    IF (SELECT value FROM shelfwatch_meta WHERE key = 'flavour') = 'native' THEN
        ALTER TABLE price_daily SET (fillfactor = 80);
    END IF;
END
$$;
