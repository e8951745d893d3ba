//! Retailers, products, listings and their prices, as the API reads them.
