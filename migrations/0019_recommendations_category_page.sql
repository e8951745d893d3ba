-- A recommendations page filtered by category alone (no retailer) wants
-- the category's rows best first. recommendations_category_best_idx has
-- the retailer between the category and the rank (for pages filtered by
-- both), so for these pages PostgreSQL walked the whole run best first
-- and dropped every row of another category (about 900 rows read for 21
-- kept with 20 categories). This index gives such a page as one range.
CREATE INDEX recommendations_category_rank_idx ON recommendations (
    run_id,
    category,
    (CASE action WHEN 'buy_now' THEN 0 WHEN 'wait' THEN 1 ELSE 2 END),
    confidence DESC,
    listing_id);
