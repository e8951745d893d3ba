-- Categories. The aisle a retailer shelves a listing in comes from the
-- retailer config's start URL it was scraped from, or from the import's
-- `category` column; product matching gives a product the category most of
-- its listings have.
ALTER TABLE listings
    ADD COLUMN category text
    CHECK (category IS NULL OR (category <> '' AND length(category) <= 200));
