-- Search that tolerates spelling variants: `q=beans` finds "Heinz Beanz
-- 415g". Each search word is compared by trigram word similarity with
-- `search_text` (name and brand, lowercased), beside the full-text match on
-- `search` (0007).
--
-- pg_trgm ships with PostgreSQL's contrib (Debian's postgresql-15, the
-- TimescaleDB images) and is a trusted extension, so the database owner
-- may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

ALTER TABLE products
    ADD COLUMN search_text text GENERATED ALWAYS AS (
        lower(coalesce(name, '') || ' ' || coalesce(brand, ''))
    ) STORED;
CREATE INDEX products_search_trgm_idx ON products USING gin (search_text gin_trgm_ops);
