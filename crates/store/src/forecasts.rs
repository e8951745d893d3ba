//! Forecast runs, forecasts and recommendations: what the batch job reads and writes.
