//! Test harness: one private PostgreSQL cluster per test run, a fresh,
//! migrated database per test.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use shelfwatch_store::db::embedded::{Cluster, PgBinaries, Status};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

pub struct TestCluster {
    /// URL of the `postgres` maintenance database.
    pub admin_url: String,
}

static CLUSTER: OnceLock<Result<TestCluster, String>> = OnceLock::new();
static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The run's cluster, started on first use. A watchdog process shuts it
/// down and removes its files when the test process exits, however it exits.
pub fn cluster() -> &'static TestCluster {
    match CLUSTER.get_or_init(|| start().map_err(|e| format!("{e:#}"))) {
        Ok(c) => c,
        Err(e) => panic!("could not start the test PostgreSQL cluster: {e}"),
    }
}

fn start() -> anyhow::Result<TestCluster> {
    let dir = tempfile::Builder::new()
        .prefix("shelfwatch-test-")
        .tempdir()?
        .keep();
    // The server may run as the postgres user, which must reach the directory.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    let cluster = Cluster::new(dir.join("pg"), PgBinaries::locate(None)?)?;
    cluster.start(
        0,
        &[
            ("fsync", "off"),
            ("synchronous_commit", "off"),
            ("full_page_writes", "off"),
            ("max_connections", "400"),
            ("shared_buffers", "256MB"),
        ],
    )?;
    let Status::Running { pid, .. } = cluster.status()? else {
        anyhow::bail!("the cluster did not stay up");
    };
    let script = format!(
        "while kill -0 {me} 2>/dev/null; do sleep 0.5; done; kill -QUIT {pid} 2>/dev/null; \
         sleep 1; rm -rf '{dir}'",
        me = std::process::id(),
        dir = dir.display()
    );
    Command::new("setsid")
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(TestCluster {
        admin_url: cluster.url("postgres")?,
    })
}

/// A fresh database of its own for one test.
pub struct TestDb {
    pub pool: PgPool,
    pub url: String,
}

impl TestDb {
    /// A new database with every migration applied.
    pub async fn new() -> TestDb {
        let db = Self::empty().await;
        shelfwatch_store::db::migrate(&db.pool)
            .await
            .expect("migrate");
        db
    }

    /// A new database with nothing in it.
    pub async fn empty() -> TestDb {
        let c = cluster();
        let name = format!(
            "t_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        shelfwatch_store::db::create_database_if_missing(&c.admin_url, &name)
            .await
            .expect("create test database");
        let (server, _) = c.admin_url.rsplit_once('/').expect("url has a database");
        let url = format!("{server}/{name}");
        let pool = pool(&url, 5).await;
        TestDb { pool, url }
    }
}

pub async fn pool(url: &str, max: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max)
        .connect_with(PgConnectOptions::from_str(url).expect("url"))
        .await
        .expect("connect")
}

/// Waits until `check` holds, trying every 50 ms; panics naming `what`
/// after `limit`.
pub async fn poll<F: AsyncFn() -> bool>(what: &str, limit: std::time::Duration, check: F) {
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Path of a file in the repository.
pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The `shelfwatch` binary with only the test's own settings: no
/// `SHELFWATCH_*` or `DATABASE_URL` from the environment the tests run in,
/// and warnings only in its logs.
pub fn shelfwatch_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shelfwatch"));
    for (name, _) in std::env::vars() {
        if name.starts_with("SHELFWATCH_") {
            cmd.env_remove(name);
        }
    }
    cmd.args(args)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn");
    cmd
}

/// A cluster of a test's own, for tests that stop or kill PostgreSQL on
/// purpose, with a migrated `shelfwatch` database. Stopped when dropped.
pub struct OwnCluster {
    dir: tempfile::TempDir,
    pub port: u16,
    pub url: String,
}

impl OwnCluster {
    pub async fn start() -> OwnCluster {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let cluster =
            Cluster::new(dir.path().join("pg"), PgBinaries::locate(None).unwrap()).unwrap();
        let port = cluster.start(0, &[]).unwrap();
        shelfwatch_store::db::create_database_if_missing(
            &cluster.url("postgres").unwrap(),
            "shelfwatch",
        )
        .await
        .unwrap();
        let url = cluster.url("shelfwatch").unwrap();
        let p = pool(&url, 2).await;
        shelfwatch_store::db::migrate(&p).await.unwrap();
        p.close().await;
        OwnCluster { dir, port, url }
    }

    /// A handle on the cluster, to move into another task.
    pub fn handle(&self) -> Cluster {
        Cluster::new(
            self.dir.path().join("pg"),
            PgBinaries::locate(None).unwrap(),
        )
        .unwrap()
    }

    /// SIGKILLs the postmaster (its backends follow).
    pub fn kill(&self) {
        let Status::Running { pid, .. } = self.handle().status().unwrap() else {
            panic!("the cluster is not running");
        };
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    }

    /// Starts it again on the same port, waiting out killed backends and
    /// crash recovery, until it takes connections.
    pub async fn restart(&self) {
        let cluster = self.handle();
        for _ in 0..200 {
            if cluster.start(self.port, &[]).is_ok()
                && sqlx::PgPool::connect(&self.url).await.is_ok()
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the cluster did not restart");
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = self.handle().stop();
    }
}
