//! Developer tools, kept out of the service image: benchmarks that time a
//! baseline in the same run ([`bench`], [`import_bench`], [`scrape_bench`]), the soak test
//! ([`soak`]), the parser fuzzer ([`fuzz`]) and an open-loop HTTP load
//! generator ([`load`]).

pub mod bench;
pub mod forecast_scale;
pub mod fuzz;
pub mod import_bench;
pub mod load;
pub mod scrape_bench;
pub mod soak;

/// The workspace's root, where `benches/`, `fuzz/` and `retailers/` live
/// (this crate sits two folders below it).
pub(crate) fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The parts of the service's settings the tools use; the binary fills it
/// from its own layered configuration.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub database: shelfwatch_store::db::DatabaseSettings,
    pub ingest: shelfwatch_store::ingest::IngestSettings,
    pub scrape: shelfwatch_scrape::ScrapeSettings,
    pub api: shelfwatch_api::ApiSettings,
}
