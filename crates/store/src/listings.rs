//! Listings and canonical products: what the scraper records and product matching links.
