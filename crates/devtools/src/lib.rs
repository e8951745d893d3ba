//! Developer tools, kept out of the service image: benchmarks that time a
//! baseline in the same run ([`bench`], [`scrape_bench`]), the soak test
//! ([`soak`]) and the parser fuzzer ([`fuzz`]).

pub mod bench;
pub mod fuzz;
pub mod scrape_bench;
pub mod soak;

/// The parts of the service's settings the tools use; the binary fills it
/// from its own layered configuration.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub database: shelfwatch_store::db::DatabaseSettings,
    pub ingest: shelfwatch_store::ingest::IngestSettings,
    pub scrape: shelfwatch_scrape::ScrapeSettings,
    pub api: shelfwatch_api::ApiSettings,
}
