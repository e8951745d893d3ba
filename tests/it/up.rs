//! `shelfwatch up` when something is in its way: it checks before it
//! starts anything, and when a step fails half way it stops everything it
//! started. Each run is marked through its environment, which every
//! process it starts inherits (PostgreSQL, chromedriver, Chromium,
//! Prometheus), so the tests can look for leftovers in /proc.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

const MARK_VAR: &str = "SW_TEST_UP_RUN";

/// Processes whose environment carries this run's mark: "pid command".
fn marked_processes(mark: &str) -> Vec<String> {
    let needle = format!("{MARK_VAR}={mark}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ.split(|b| *b == 0).any(|v| v == needle.as_bytes()) {
            let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            found.push(format!(
                "{pid} {}",
                String::from_utf8_lossy(&cmd).replace('\0', " ")
            ));
        }
    }
    found
}

/// Waits up to 10 s for the run's processes to be gone; returns those left.
async fn leftovers(mark: &str) -> Vec<String> {
    for _ in 0..50 {
        let left = marked_processes(mark);
        if left.is_empty() {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    marked_processes(mark)
}

/// A working directory of its own that the postgres user can reach.
pub(crate) fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    dir
}

/// Runs `shelfwatch up ARGS` in `dir` with the run's mark; fails the test
/// when it has not ended within `limit`.
async fn up(dir: &Path, mark: &str, args: &[String], env: &[(&str, &str)], limit: u64) -> Output {
    let mut all = vec!["up"];
    all.extend(args.iter().map(String::as_str));
    let mut cmd = crate::support::shelfwatch_command(&all);
    cmd.current_dir(dir)
        .env(MARK_VAR, mark)
        .env("SHELFWATCH_SCRAPE__SPOOL_DIR", dir.join("spool"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = tokio::process::Command::from(cmd)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(limit), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("up did not end within {limit} s"))
        .unwrap()
}

use crate::cli::text;

/// A running `up` that a failing test does not leave behind: dropped, it
/// gets SIGTERM (and SIGKILL if it has not stopped within 30 s).
pub(crate) struct Running(Option<std::process::Child>);

impl Running {
    pub(crate) fn new(child: std::process::Child) -> Running {
        Running(Some(child))
    }

    pub(crate) fn child(&mut self) -> &mut std::process::Child {
        self.0.as_mut().expect("up is running")
    }

    /// SIGTERM, then its exit status.
    pub(crate) async fn stop(mut self) -> std::process::ExitStatus {
        let mut child = self.0.take().expect("up is running");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
            nix::sys::signal::Signal::SIGTERM,
        );
        tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let Some(mut child) = self.0.take() else {
            return;
        };
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(0)),
            nix::sys::signal::Signal::SIGTERM,
        );
        for _ in 0..300 {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// `shelfwatch [GLOBAL...] up` in the checkout over `db_url`, on free
/// ports and without Prometheus, with `history_days` of history; returns
/// it once serving, with the lines it printed and the API's address.
pub(crate) async fn serve_on(
    db_url: &str,
    spool: &Path,
    global: &[&str],
    history_days: &str,
) -> (Running, Vec<String>, String) {
    let mut args = global.to_vec();
    args.push("up");
    let free = up_args(&[("--retailers-dir", None)], &["--no-prometheus"]);
    args.extend(free.iter().map(String::as_str));
    args.extend(["--history-days", history_days]);
    let child = crate::support::shelfwatch_command(&args)
        .current_dir(crate::support::repo_path("."))
        .env("DATABASE_URL", db_url)
        .env("SHELFWATCH_SCRAPE__SPOOL_DIR", spool)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut up = Running::new(child);
    let (lines, api) = until_serving(up.child(), 300).await;
    (up, lines, api)
}

/// Reads `up`'s stdout until it says it is serving (fails the test after
/// `limit` seconds); returns the lines read and the API's address.
pub(crate) async fn until_serving(
    child: &mut std::process::Child,
    limit: u64,
) -> (Vec<String>, String) {
    use std::io::{BufRead, BufReader};
    let stdout = child.stdout.take().expect("up's stdout is piped");
    let lines = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let done = line.starts_with("Ctrl-C");
            seen.push(line);
            if done {
                break;
            }
        }
        seen
    });
    let lines = tokio::time::timeout(Duration::from_secs(limit), lines)
        .await
        .expect("up did not get to serving")
        .unwrap();
    let api = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("API          http://"))
        .and_then(|l| l.split('/').next())
        .unwrap_or_else(|| panic!("no API address:\n{}", lines.join("\n")))
        .to_owned();
    (lines, api)
}

fn mark() -> String {
    format!("{}-{}", std::process::id(), rand::random::<u64>())
}

/// `up`'s arguments: free ports for the API, /metrics and the demo store
/// and the checkout's demo retailers, each unless `set` gives it another
/// value (None: leave it out); then `flags`.
fn up_args(set: &[(&str, Option<&str>)], flags: &[&str]) -> Vec<String> {
    let retailers = crate::support::repo_path("retailers/demo");
    let defaults = [
        ("--api-bind", "127.0.0.1:0"),
        ("--metrics-bind", "127.0.0.1:0"),
        ("--store-bind", "127.0.0.1:0"),
        ("--retailers-dir", retailers.to_str().unwrap()),
    ];
    let mut args = Vec::new();
    for (flag, default) in defaults {
        let value = match set.iter().find(|(f, _)| *f == flag) {
            Some((_, v)) => *v,
            None => Some(default),
        };
        if let Some(v) = value {
            args.extend([flag.to_owned(), v.to_owned()]);
        }
    }
    for (flag, value) in set {
        if let (false, Some(v)) = (defaults.iter().any(|(f, _)| f == flag), value) {
            args.extend([(*flag).to_owned(), (*v).to_owned()]);
        }
    }
    args.extend(flags.iter().map(|f| (*f).to_owned()));
    args
}

/// Runs `up ARGS` in a fresh directory and checks it was refused before
/// starting anything: it failed, said each of `says`, created no files
/// and left no process. Returns how long it took.
async fn assert_refused_before_starting(args: &[String], says: &[&str]) -> Duration {
    let dir = workdir();
    let mark = mark();
    let started = std::time::Instant::now();
    let out = up(dir.path(), &mark, args, &[], 60).await;
    let took = started.elapsed();
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    let err = String::from_utf8_lossy(&out.stderr);
    for s in says {
        assert!(err.contains(s), "stderr lacks {s:?}:\n{all}");
    }
    assert!(err.contains("nothing was started"), "{all}");
    assert!(
        !dir.path().join(".shelfwatch").exists(),
        "up created files before failing:\n{all}"
    );
    let left = leftovers(&mark).await;
    assert!(left.is_empty(), "left running: {left:?}\n{all}");
    took
}

#[tokio::test]
async fn up_with_the_api_port_taken_starts_nothing() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let args = up_args(&[("--api-bind", Some(&addr))], &["--no-prometheus"]);
    let took = assert_refused_before_starting(&args, &[&addr, "in use", "--api-bind"]).await;
    assert!(took < Duration::from_secs(10), "the check took {took:?}");
}

#[tokio::test]
async fn up_outside_the_checkout_names_the_retailers_directory() {
    let args = up_args(&[("--retailers-dir", None)], &["--no-prometheus"]);
    assert_refused_before_starting(&args, &["retailers/demo", "--retailers-dir", "checkout"]).await;
}

#[tokio::test]
async fn up_with_the_prometheus_port_taken_starts_nothing() {
    if !Path::new("/usr/bin/prometheus").exists() {
        eprintln!("skipped: Prometheus is not installed (scripts/lib.sh installs it)");
        return;
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let args = up_args(&[("--prometheus-bind", Some(&addr))], &[]);
    assert_refused_before_starting(
        &args,
        &["Prometheus", &addr, "--prometheus-bind", "--no-prometheus"],
    )
    .await;
}

/// A second `up` on a database another `up` holds is refused before it
/// writes anything, unless told to share it.
#[tokio::test]
async fn up_does_not_share_a_database_unless_told_to() {
    let db = crate::support::TestDb::empty().await;
    // What a running `up` holds, taken here in its place.
    let mut holder = db.pool.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(shelfwatch::up::UP_LOCK_KEY)
        .execute(&mut *holder)
        .await
        .unwrap();
    let dir = workdir();
    let mark = mark();
    let out = up(
        dir.path(),
        &mark,
        &up_args(&[], &["--no-prometheus"]),
        &[("DATABASE_URL", &db.url)],
        60,
    )
    .await;
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--share-database"),
        "{all}"
    );
    assert!(!all.contains("2/6"), "the demo store started:\n{all}");
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        tables, 0,
        "up wrote into the database it was refused:\n{all}"
    );
    let left = leftovers(&mark).await;
    assert!(left.is_empty(), "left running: {left:?}\n{all}");

    // Told to share, it goes ahead.
    let shared = up(
        dir.path(),
        &mark,
        &up_args(
            &[("--history-days", Some("1"))],
            &["--share-database", "--no-serve"],
        ),
        &[("DATABASE_URL", &db.url)],
        300,
    )
    .await;
    let all = text(&shared);
    assert!(shared.status.success(), "{all}");
    assert!(all.contains("sharing the database"), "{all}");
    assert!(all.contains("5/6"), "{all}");
}

/// Prometheus refuses to start (the alert rules it is given do not
/// parse) after the database, demo store, scrape, forecast and API are up:
/// `up` reports why and stops every one of them, the database it started
/// included.
#[tokio::test]
async fn up_stops_everything_it_started_when_prometheus_fails() {
    if !Path::new("/usr/bin/prometheus").exists() {
        eprintln!("skipped: Prometheus is not installed (scripts/lib.sh installs it)");
        return;
    }
    let dir = workdir();
    // `up` hands Prometheus the prometheus/alerts.yml of its directory.
    std::fs::create_dir_all(dir.path().join("prometheus")).unwrap();
    std::fs::write(
        dir.path().join("prometheus/alerts.yml"),
        "groups:\n  - name: broken\n    rules:\n      - alert: Broken\n        expr: rate(x[5m]\n",
    )
    .unwrap();
    let prometheus = format!(
        "127.0.0.1:{}",
        shelfwatch_store::db::embedded::free_port().unwrap()
    );
    let mark = mark();
    let out = up(
        dir.path(),
        &mark,
        &up_args(
            &[
                ("--history-days", Some("3")),
                ("--prometheus-bind", Some(&prometheus)),
            ],
            &[],
        ),
        &[],
        300,
    )
    .await;
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("5/6"), "up failed before the forecast:\n{all}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Prometheus exited at start"), "{all}");
    assert!(err.contains("alerts.yml"), "the cause is not named:\n{all}");
    assert!(err.contains("--no-prometheus"), "{all}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stopped = stdout
        .lines()
        .find(|l| l.starts_with("stopped everything this command started"))
        .unwrap_or_else(|| panic!("no line saying what was stopped:\n{all}"));
    for what in ["the API", "the demo store", "the database"] {
        assert!(stopped.contains(what), "{what} not stopped: {stopped}");
    }
    let left = leftovers(&mark).await;
    assert!(left.is_empty(), "left running: {left:?}\n{all}");
    let status = crate::support::shelfwatch_command(&["db", "status"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(status.status.code(), Some(3), "{}", text(&status));
}
