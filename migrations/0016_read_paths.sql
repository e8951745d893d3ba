-- Reads that answer without the response cache: an index for every
-- filter the API offers.

-- `?category=` on /v1/products compares case-insensitively and pages by
-- name; the plain index on category served neither.
DROP INDEX products_category_idx;
CREATE INDEX products_category_lower_idx ON products (lower(category), name, id);

-- The recommendations page, shaped for its filters. Each row carries the
-- listing's retailer and its product's category (lower case), so a
-- filtered page is one index range in "best first" order instead of a
-- walk over the whole run joining every row to its listing and product.
-- The forecast files them when it stores a run; the triggers below keep
-- the category current when matching moves a listing to another product
-- or a product's category changes.
ALTER TABLE recommendations
    ADD COLUMN retailer_id bigint,
    ADD COLUMN category text;

UPDATE recommendations rc
SET retailer_id = l.retailer_id, category = lower(p.category)
FROM listings l
LEFT JOIN products p ON p.id = l.product_id
WHERE l.id = rc.listing_id;

CREATE INDEX recommendations_retailer_best_idx ON recommendations (
    run_id,
    retailer_id,
    (CASE action WHEN 'buy_now' THEN 0 WHEN 'wait' THEN 1 ELSE 2 END),
    confidence DESC,
    listing_id);
CREATE INDEX recommendations_category_best_idx ON recommendations (
    run_id,
    category,
    retailer_id,
    (CASE action WHEN 'buy_now' THEN 0 WHEN 'wait' THEN 1 ELSE 2 END),
    confidence DESC,
    listing_id);

CREATE FUNCTION shelfwatch_refile_listing_recommendations() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE recommendations
    SET category = (SELECT lower(p.category) FROM products p WHERE p.id = NEW.product_id)
    WHERE listing_id = NEW.id;
    RETURN NULL;
END $$;

CREATE TRIGGER listings_refile_recommendations
    AFTER UPDATE OF product_id ON listings
    FOR EACH ROW WHEN (OLD.product_id IS DISTINCT FROM NEW.product_id)
    EXECUTE FUNCTION shelfwatch_refile_listing_recommendations();

CREATE FUNCTION shelfwatch_refile_product_recommendations() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE recommendations rc
    SET category = lower(NEW.category)
    FROM listings l
    WHERE l.product_id = NEW.id AND rc.listing_id = l.id;
    RETURN NULL;
END $$;

CREATE TRIGGER products_refile_recommendations
    AFTER UPDATE OF category ON products
    FOR EACH ROW WHEN (OLD.category IS DISTINCT FROM NEW.category)
    EXECUTE FUNCTION shelfwatch_refile_product_recommendations();
