//! Connections, migrations and the TimescaleDB-or-native schema flavour.
//!
//! The schema is created by the embedded sqlx migrations in `migrations/`.
//! The time-series part is written twice: with TimescaleDB (a hypertable
//! and a continuous aggregate) when the extension is available, and with
//! native PostgreSQL (range partitions and an incrementally maintained
//! table) when not. The migration records which one it built in
//! `shelfwatch_meta`; only this module and [`crate::ingest`]'s refresh step
//! look at it.

pub mod embedded;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use serde::Deserialize;
use shelfwatch_runtime::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// A server to instead of the embedded cluster (TimescaleDB in
    /// docker-compose, a managed server). `DATABASE_URL` sets it too.
    pub url: Option<Secret>,
    pub max_connections: u32,
    /// Seconds to wait for a pooled connection before giving up.
    pub acquire_timeout_secs: u64,
    /// Where `shelfwatch db start` keeps its private cluster.
    pub embedded_dir: PathBuf,
    /// Port for the embedded cluster; 0 picks a free one on first start and
    /// keeps it afterwards.
    pub embedded_port: u16,
    /// Directory holding `initdb`, `pg_ctl` and `postgres`; found
    /// automatically under /usr/lib/postgresql when unset.
    pub pg_bin: Option<PathBuf>,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 8,
            acquire_timeout_secs: 10,
            embedded_dir: PathBuf::from(".shelfwatch/pg"),
            embedded_port: 0,
            pg_bin: None,
        }
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Which implementation of the time-series schema a database has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// Hypertable + continuous aggregate.
    Timescale,
    /// Range partitions + `price_daily` maintained by the ingest path.
    Native,
}

impl Flavour {
    pub fn as_str(self) -> &'static str {
        match self {
            Flavour::Timescale => "timescaledb",
            Flavour::Native => "native",
        }
    }
}

impl FromStr for Flavour {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "timescaledb" => Ok(Flavour::Timescale),
            "native" => Ok(Flavour::Native),
            other => bail!("unknown schema flavour {other:?} in shelfwatch_meta"),
        }
    }
}

/// The URL to connect to: `database.url` / `DATABASE_URL` when set, else
/// the embedded cluster if it runs.
pub fn database_url(settings: &DatabaseSettings) -> anyhow::Result<Secret> {
    if let Some(url) = &settings.url {
        return Ok(url.clone());
    }
    let bins = embedded::PgBinaries::locate(settings.pg_bin.as_deref())?;
    let cluster = embedded::Cluster::new(&settings.embedded_dir, bins)?;
    let url = cluster.url(embedded::DB_NAME).context(
        "no database to connect to: set DATABASE_URL, or start the embedded one with \
         `shelfwatch db start`",
    )?;
    Ok(Secret::new(url))
}

/// Connection options for `url`. Batch statements (COPY of a whole batch,
/// the daily merge) routinely take seconds, so sqlx's slow-statement log,
/// which prints the whole statement, is kept at debug level.
pub fn connect_options(url: &str) -> anyhow::Result<PgConnectOptions> {
    use sqlx::ConnectOptions;
    Ok(PgConnectOptions::from_str(url)
        .context("DATABASE_URL is not a valid postgres:// URL")?
        .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1)))
}

/// A pool for `url`, checked with one round trip so a wrong URL fails here
/// with a clear message rather than at first use.
pub async fn connect(url: &Secret, settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    connect_with(connect_options(url.expose())?, pool_options(settings)).await
}

/// The pool the API serves requests from, tuned for many short reads
/// (BENCHMARKS.md, "API reads without the cache"):
///
/// - Every prepared statement runs on its generic plan
///   (`plan_cache_mode = force_generic_plan`). The API's statements are
///   shaped for one index each, so their best plan does not depend on the
///   values bound; left to choose, PostgreSQL re-planned some of them on
///   every call (a recommendations page with a confidence floor: about
///   0.5 ms of planning for 0.05 ms of work).
/// - A connection is not pinged when a request takes it from the pool
///   (sqlx pings it again when it is given back, and drops it if that
///   fails). The ping doubled PostgreSQL's work per request. The price: a
///   connection that died while idle (the database restarted) fails the
///   one request that draws it with a 503, and is then replaced.
pub async fn connect_for_requests(
    url: &Secret,
    settings: &DatabaseSettings,
) -> anyhow::Result<PgPool> {
    let options =
        connect_options(url.expose())?.options([("plan_cache_mode", "force_generic_plan")]);
    connect_with(options, pool_options(settings).test_before_acquire(false)).await
}

fn pool_options(settings: &DatabaseSettings) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_secs(settings.acquire_timeout_secs))
}

async fn connect_with(options: PgConnectOptions, pool: PgPoolOptions) -> anyhow::Result<PgPool> {
    pool.connect_with(options.clone()).await.with_context(|| {
        format!(
            "connecting to PostgreSQL at {}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("(default)")
        )
    })
}

/// A pool that connects on first use, for roles that must keep working
/// while the database is away (the scraper spools meanwhile).
pub fn connect_lazy(url: &Secret, settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    Ok(pool_options(settings).connect_lazy_with(connect_options(url.expose())?))
}

/// Creates `name` on the server behind `admin_url` unless it exists.
pub async fn create_database_if_missing(admin_url: &str, name: &str) -> anyhow::Result<bool> {
    let options = PgConnectOptions::from_str(admin_url).context("parsing the admin URL")?;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .context("connecting to the maintenance database")?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&pool)
            .await
            .context("checking whether the database exists")?;
    if !exists {
        let sql = format!("CREATE DATABASE {}", quote_ident(name));
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .with_context(|| format!("creating database {name}"))?;
    }
    pool.close().await;
    Ok(!exists)
}

/// Applies the embedded migrations. sqlx holds a PostgreSQL advisory lock
/// while it migrates, so two processes migrating at once take turns and the
/// second finds nothing left to do.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<Flavour> {
    MIGRATOR
        .run(pool)
        .await
        .context("applying database migrations")?;
    flavour(pool).await
}

/// A session-level advisory lock, held on a connection of its own for as
/// long as this value lives. Dropping it closes the connection, and the
/// server releases the lock with the session (also when the process dies).
pub struct SessionLock {
    _conn: sqlx::PgConnection,
}

/// Takes the advisory lock `key` in the database behind `url`, or returns
/// None when another session holds it. Advisory locks belong to one
/// database, so other databases on the same server are not affected.
pub async fn try_session_lock(url: &Secret, key: i64) -> anyhow::Result<Option<SessionLock>> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect_with(&connect_options(url.expose())?)
        .await
        .context("connecting to take an advisory lock")?;
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(key)
        .fetch_one(&mut conn)
        .await
        .context("taking an advisory lock")?;
    Ok(got.then_some(SessionLock { _conn: conn }))
}

/// Whether the database answers a trivial query.
pub async fn ping(pool: &PgPool) -> Result<(), crate::error::StoreError> {
    sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(pool)
        .await?;
    Ok(())
}

/// Whether every embedded migration has been applied (for readiness checks).
pub async fn migrations_current(pool: &PgPool) -> anyhow::Result<bool> {
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(pool)
            .await
            .unwrap_or_default();
    Ok(MIGRATOR
        .iter()
        .all(|m| applied.binary_search(&m.version).is_ok()))
}

/// The schema flavour the migrations built in this database.
pub async fn flavour(pool: &PgPool) -> anyhow::Result<Flavour> {
    let value: Option<String> =
        sqlx::query_scalar("SELECT value FROM shelfwatch_meta WHERE key = 'flavour'")
            .fetch_optional(pool)
            .await
            .context("reading the schema flavour (has `shelfwatch migrate` run?)")?;
    value
        .context("shelfwatch_meta has no flavour: run `shelfwatch migrate`")?
        .parse()
}

/// Quotes an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
