-- The multi-retailer view: for every product matched across retailers,
-- each retailer's current offer (latest observation), its latest
-- recommendation, and which retailer is cheapest now and per unit.
-- Listings not yet matched to a product are left out.
CREATE VIEW product_offers AS
WITH offers AS (
    SELECT l.product_id,
           l.id AS listing_id,
           r.slug AS retailer,
           r.currency,
           l.title,
           o.observed_at,
           o.price_pence,
           o.effective_price_pence,
           o.unit_price_pence,
           o.unit_price_per,
           o.promo_kind,
           o.in_stock,
           rec.action,
           rec.confidence,
           rec.expected_change_pence,
           rec.message
    FROM listings l
    JOIN retailers r ON r.id = l.retailer_id
    CROSS JOIN LATERAL (
        SELECT * FROM price_observations o
        WHERE o.listing_id = l.id
        ORDER BY o.observed_at DESC
        LIMIT 1
    ) o
    LEFT JOIN LATERAL (
        SELECT * FROM recommendations rc
        WHERE rc.listing_id = l.id
        ORDER BY rc.run_id DESC
        LIMIT 1
    ) rec ON true
    WHERE l.product_id IS NOT NULL
)
SELECT offers.*,
       -- Cheapest in stock, after promotions, in the same currency.
       in_stock AND rank() OVER (PARTITION BY product_id, currency, in_stock
                                 ORDER BY effective_price_pence) = 1 AS cheapest_now,
       in_stock AND unit_price_pence IS NOT NULL
                AND rank() OVER (PARTITION BY product_id, currency, in_stock, unit_price_per,
                                              unit_price_pence IS NULL
                                 ORDER BY unit_price_pence) = 1 AS cheapest_per_unit,
       -- Another retailer of this product is expected to cut its price.
       bool_or(action = 'wait') OVER (PARTITION BY product_id)
           AND action IS DISTINCT FROM 'wait' AS promotion_expected_elsewhere
FROM offers;
