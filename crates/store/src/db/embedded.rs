//! A private PostgreSQL cluster run from the system's PostgreSQL binaries.
//!
//! Everything lives under one directory (default `.shelfwatch/pg`):
//! `data/` is the cluster, `port` and `password` remember how to reach it,
//! `postgres.log` is the server log. The server listens on 127.0.0.1 only
//! and has no Unix socket, so nothing global on the machine is touched.
//! PostgreSQL refuses to run as root; when the caller is root the binaries
//! run as the `postgres` user and the directory is handed to that user.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, bail};
use nix::unistd::{Gid, Uid, User};

/// The superuser and database the embedded cluster is created with.
pub const DB_USER: &str = "shelfwatch";
pub const DB_NAME: &str = "shelfwatch";

/// Where the PostgreSQL server programs are.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    dir: PathBuf,
}

impl PgBinaries {
    /// Uses `configured` when given, else the newest
    /// `/usr/lib/postgresql/<version>/bin`, else `initdb` on `PATH`.
    pub fn locate(configured: Option<&Path>) -> anyhow::Result<Self> {
        if let Some(dir) = configured {
            let found = Self {
                dir: dir.to_path_buf(),
            };
            found.check()?;
            return Ok(found);
        }
        let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let v: u32 = e.file_name().to_str()?.parse().ok()?;
                let bin = e.path().join("bin");
                bin.join("initdb").exists().then_some((v, bin))
            })
            .collect();
        versions.sort();
        if let Some((_, dir)) = versions.pop() {
            return Ok(Self { dir });
        }
        if let Some(path) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&path) {
                if dir.join("initdb").exists() && dir.join("pg_ctl").exists() {
                    return Ok(Self { dir });
                }
            }
        }
        bail!(
            "PostgreSQL server programs (initdb, pg_ctl, postgres) were not found in \
             /usr/lib/postgresql/*/bin or on PATH: install them with \
             `sudo apt-get install postgresql` (Debian/Ubuntu), or set database.pg_bin \
             (SHELFWATCH_DATABASE__PG_BIN) to the directory that holds them"
        )
    }

    fn check(&self) -> anyhow::Result<()> {
        for program in ["initdb", "pg_ctl", "postgres"] {
            if !self.dir.join(program).exists() {
                bail!(
                    "{} has no `{program}`: database.pg_bin must name the directory holding \
                     the PostgreSQL server programs (for example /usr/lib/postgresql/15/bin; \
                     `sudo apt-get install postgresql` installs them)",
                    self.dir.display()
                );
            }
        }
        Ok(())
    }

    pub fn program(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Whether the cluster exists and runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    NotInitialized,
    Stopped,
    Running { pid: i32, port: u16 },
}

/// One private cluster rooted at a directory.
#[derive(Debug, Clone)]
pub struct Cluster {
    root: PathBuf,
    bins: PgBinaries,
    /// The account the server programs run as, when it is not the caller.
    run_as: Option<(Uid, Gid)>,
}

impl Cluster {
    pub fn new(root: impl Into<PathBuf>, bins: PgBinaries) -> anyhow::Result<Self> {
        let root = root.into();
        let root = if root.is_absolute() {
            root
        } else {
            std::env::current_dir()
                .context("reading the working directory")?
                .join(root)
        };
        let run_as = if Uid::effective().is_root() {
            let user = User::from_name("postgres")
                .context("looking up the `postgres` user")?
                .context(
                    "running as root, and PostgreSQL refuses to run as root, but there is no \
                     `postgres` user to run it as: install the postgresql package \
                     (`apt-get install postgresql`) or run shelfwatch as an ordinary user",
                )?;
            Some((user.uid, user.gid))
        } else {
            None
        };
        Ok(Self { root, bins, run_as })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.root.join("postgres.log")
    }

    fn port_file(&self) -> PathBuf {
        self.root.join("port")
    }

    fn password_file(&self) -> PathBuf {
        self.root.join("password")
    }

    pub fn is_initialized(&self) -> bool {
        self.data_dir().join("PG_VERSION").exists()
    }

    /// Creates the cluster (initdb) if it does not exist yet.
    pub fn init(&self) -> anyhow::Result<()> {
        if self.is_initialized() {
            return Ok(());
        }
        fs::create_dir_all(&self.root)
            .with_context(|| format!("creating {}", self.root.display()))?;
        let password = random_hex(16)?;
        let pwfile = self.root.join(".initdb-pw");
        write_private(&pwfile, &password)?;
        self.hand_over(&self.root)?;
        self.hand_over(&pwfile)?;
        let result = self.run(
            Command::new(self.bins.program("initdb"))
                .arg("--pgdata")
                .arg(self.data_dir())
                .args(["--username", DB_USER, "--encoding", "UTF8", "--locale", "C"])
                .args(["--auth", "scram-sha-256"])
                .arg(format!("--pwfile={}", pwfile.display())),
            "initdb",
        );
        let _ = fs::remove_file(&pwfile);
        result?;
        write_private(&self.password_file(), &password)?;
        self.hand_over(&self.password_file())?;
        Ok(())
    }

    /// Starts the server (creating the cluster first if needed) and waits
    /// until it accepts connections. `port` 0 reuses the port of the last
    /// start, or picks a free one. `settings` are extra `-c name=value`s.
    pub fn start(&self, port: u16, settings: &[(&str, &str)]) -> anyhow::Result<u16> {
        self.init()?;
        if let Status::Running { port, .. } = self.status()? {
            return Ok(port);
        }
        let port = match port {
            0 => match self.saved_port() {
                Some(p) => p,
                None => free_port()?,
            },
            p => p,
        };
        let mut options = format!("-c listen_addresses=127.0.0.1 -p {port} -k ''");
        for (name, value) in settings {
            options.push_str(&format!(" -c {name}={value}"));
        }
        self.run(
            Command::new(self.bins.program("pg_ctl"))
                .arg("start")
                .arg("--pgdata")
                .arg(self.data_dir())
                .arg("--log")
                .arg(self.log_file())
                .args(["--wait", "--timeout", "60", "--silent"])
                .arg("-o")
                .arg(options),
            "pg_ctl start",
        )
        .with_context(|| {
            format!(
                "starting PostgreSQL on 127.0.0.1:{port}; its log is {}",
                self.log_file().display()
            )
        })?;
        fs::write(self.port_file(), port.to_string())
            .with_context(|| format!("writing {}", self.port_file().display()))?;
        Ok(port)
    }

    /// Stops the server if it runs. Returns whether it was running.
    pub fn stop(&self) -> anyhow::Result<bool> {
        if !matches!(self.status()?, Status::Running { .. }) {
            return Ok(false);
        }
        self.run(
            Command::new(self.bins.program("pg_ctl"))
                .arg("stop")
                .arg("--pgdata")
                .arg(self.data_dir())
                .args(["--mode", "fast", "--wait", "--timeout", "60", "--silent"]),
            "pg_ctl stop",
        )?;
        Ok(true)
    }

    /// Reads `postmaster.pid` and checks that the process is alive.
    pub fn status(&self) -> anyhow::Result<Status> {
        if !self.is_initialized() {
            return Ok(Status::NotInitialized);
        }
        let pid_file = self.data_dir().join("postmaster.pid");
        let text = match fs::read_to_string(&pid_file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Status::Stopped),
            Err(e) => return Err(e).with_context(|| format!("reading {}", pid_file.display())),
        };
        let mut lines = text.lines();
        let pid: i32 = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .with_context(|| format!("{}: no pid on line 1", pid_file.display()))?;
        let port: u16 = lines
            .nth(2)
            .and_then(|l| l.trim().parse().ok())
            .with_context(|| format!("{}: no port on line 4", pid_file.display()))?;
        // A killed postmaster nobody has reaped yet still answers kill(0):
        // count a zombie as stopped.
        let zombie = fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                let after_name = stat.rsplit_once(')')?.1;
                after_name
                    .split_whitespace()
                    .next()
                    .map(|state| state == "Z")
            })
            .unwrap_or(false);
        let alive =
            !zombie && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        Ok(if alive {
            Status::Running { pid, port }
        } else {
            Status::Stopped
        })
    }

    /// The connection URL for `database` on the running cluster.
    pub fn url(&self, database: &str) -> anyhow::Result<String> {
        let Status::Running { port, .. } = self.status()? else {
            bail!(
                "the embedded database in {} is not running: start it with `shelfwatch db start`",
                self.root.display()
            );
        };
        let password = fs::read_to_string(self.password_file())
            .with_context(|| format!("reading {}", self.password_file().display()))?;
        Ok(format!(
            "postgres://{DB_USER}:{}@127.0.0.1:{port}/{database}",
            password.trim()
        ))
    }

    fn saved_port(&self) -> Option<u16> {
        fs::read_to_string(self.port_file())
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// Gives `path` to the account the server runs as.
    fn hand_over(&self, path: &Path) -> anyhow::Result<()> {
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(path, Some(uid.as_raw()), Some(gid.as_raw()))
                .with_context(|| format!("handing {} to the postgres user", path.display()))?;
        }
        Ok(())
    }

    fn run(&self, command: &mut Command, what: &str) -> anyhow::Result<Output> {
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid.as_raw()).gid(gid.as_raw());
            // The postgres user cannot read root's working directory.
            command.current_dir("/");
        }
        let output = command
            .output()
            .with_context(|| format!("running {what}"))?;
        if !output.status.success() {
            let mut detail = String::from_utf8_lossy(&output.stderr).trim().to_owned();
            if detail.is_empty() {
                detail = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            }
            if self.run_as.is_some() && detail.contains("Permission denied") {
                detail.push_str(
                    "\n(the server runs as the `postgres` user, which needs to reach this \
                     directory: choose database.embedded_dir on a path every user can traverse)",
                );
            }
            bail!("{what} failed ({}): {detail}", output.status);
        }
        Ok(output)
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn random_hex(bytes: usize) -> anyhow::Result<String> {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("reading /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut file =
        fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_server_programs_name_the_package() {
        let empty = tempfile::tempdir().unwrap();
        let err = PgBinaries::locate(Some(empty.path()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("initdb"), "{err}");
        assert!(err.contains("apt-get install postgresql"), "{err}");
    }

    #[test]
    fn free_ports_are_bindable() {
        let port = free_port().unwrap();
        assert!(TcpListener::bind(("127.0.0.1", port)).is_ok());
    }
}
