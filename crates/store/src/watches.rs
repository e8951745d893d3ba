//! Price watches and their webhook deliveries.
