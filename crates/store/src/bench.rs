//! Scratch databases and tables for the benchmarks and the soak test.
