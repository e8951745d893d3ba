//! The binary as a newcomer runs it: `db start`, `migrate`, `import`,
//! `db status`, `db stop`, in a directory of its own.

use std::path::Path;
use std::process::{Command, Output};

/// The binary with only this test's settings: none from the environment
/// the tests run in.
fn command(args: &[&str]) -> Command {
    crate::support::shelfwatch_command(args)
}

/// The binary in `dir`, with no database configured.
fn shelfwatch(dir: &Path, args: &[&str]) -> Output {
    command(args)
        .current_dir(dir)
        .output()
        .expect("run shelfwatch")
}

pub(crate) fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn help_lists_every_role() {
    let dir = tempfile::tempdir().unwrap();
    let out = shelfwatch(dir.path(), &["--help"]);
    assert!(out.status.success(), "{}", text(&out));
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "up",
        "db",
        "migrate",
        "scrape",
        "import",
        "match",
        "forecast",
        "backtest",
        "serve",
        "demo-store",
        "bench",
    ] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(cmd)),
            "--help lacks {cmd}:\n{help}"
        );
    }
}

#[test]
fn unknown_config_key_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("shelfwatch.toml"),
        "[database]\nmax_conns = 2\n",
    )
    .unwrap();
    let out = shelfwatch(dir.path(), &["db", "status"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("max_conns") && err.contains("shelfwatch.toml"),
        "{err}"
    );
}

#[test]
fn commands_needing_a_database_say_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = shelfwatch(dir.path(), &["migrate"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("shelfwatch db start") && err.contains("DATABASE_URL"),
        "{err}"
    );
}

#[test]
fn readme_flow_db_start_migrate_import_stop() {
    let dir = tempfile::tempdir().unwrap();
    // The server may run as the postgres user, which must reach the directory.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let sample = crate::support::repo_path("samples/prices.csv");
    let sample = sample.to_str().unwrap();

    let start = shelfwatch(dir.path(), &["db", "start"]);
    assert!(start.status.success(), "{}", text(&start));
    let started = String::from_utf8_lossy(&start.stdout);
    assert!(
        started.contains("DATABASE_URL=postgres://shelfwatch:"),
        "{started}"
    );
    assert!(dir.path().join(".shelfwatch/pg/data/PG_VERSION").exists());

    let status = shelfwatch(dir.path(), &["db", "status"]);
    assert!(status.status.success(), "{}", text(&status));
    assert!(String::from_utf8_lossy(&status.stdout).starts_with("running"));

    let migrate = shelfwatch(dir.path(), &["migrate"]);
    assert!(migrate.status.success(), "{}", text(&migrate));
    assert!(String::from_utf8_lossy(&migrate.stdout).contains("native"));

    let import = shelfwatch(dir.path(), &["import", sample, "--no-progress"]);
    let outcome = text(&import);
    let stopped = shelfwatch(dir.path(), &["db", "stop"]);
    assert!(import.status.success(), "{outcome}");
    assert!(outcome.contains("0 rejected"), "{outcome}");
    assert!(stopped.status.success(), "{}", text(&stopped));

    let status = shelfwatch(dir.path(), &["db", "status"]);
    assert_eq!(status.status.code(), Some(3), "{}", text(&status));
    assert!(String::from_utf8_lossy(&status.stdout).starts_with("stopped"));
}

/// The binary against a test database of its own.
fn shelfwatch_on(db_url: &str, args: &[&str]) -> Command {
    let mut cmd = command(args);
    cmd.env("DATABASE_URL", db_url);
    cmd
}

#[tokio::test]
async fn backtest_json_is_one_object_with_the_documented_fields() {
    let db = crate::forecast::sample_db().await;
    let dir = tempfile::tempdir().unwrap();
    let claims = dir.path().join("claims.csv");
    let out = shelfwatch_on(
        &db.url,
        &["backtest", "--json", "--claims", claims.to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in crate::forecast::BACKTEST_JSON_FIELDS {
        assert!(report.get(key).is_some(), "{key} missing: {report}");
    }
    assert_eq!(report["series"], 36);

    // The claims file holds exactly the scored claims: its rows give the
    // report's count, mean confidence and Brier score.
    let mut rows = csv::Reader::from_path(&claims).unwrap();
    let header: Vec<String> = rows.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(
        header,
        [
            "listing_id",
            "day",
            "action",
            "price_pence",
            "amount_pence",
            "confidence",
            "came_true",
            "reference",
            "action_reference"
        ]
    );
    let (mut n, mut stated, mut brier, mut actions) = (0usize, 0.0, 0.0, Vec::new());
    for row in rows.records() {
        let row = row.unwrap();
        let p: f64 = row[5].parse().unwrap();
        let y = match &row[6] {
            "true" => 1.0,
            "false" => 0.0,
            other => panic!("came_true {other:?}"),
        };
        assert!(row[1].starts_with("20") && row[1].len() == 10, "{row:?}");
        actions.push(row[2].to_owned());
        n += 1;
        stated += p;
        brier += (p - y).powi(2);
    }
    assert!(n > 0);
    assert_eq!(report["claims"].as_u64(), Some(n as u64));
    let close = |a: f64, key: &str| (a - report[key].as_f64().unwrap()).abs() < 1e-9;
    assert!(close(stated / n as f64, "mean_stated"), "{report}");
    assert!(close(brier / n as f64, "brier"), "{report}");
    assert!(
        actions
            .iter()
            .all(|a| ["buy_now", "wait", "hold"].contains(&a.as_str()))
    );

    let unwritable = dir.path().join("no-such-dir").join("claims.csv");
    let out = shelfwatch_on(
        &db.url,
        &["backtest", "--claims", unwritable.to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("writing the scored claims"),
        "{}",
        text(&out)
    );
    let bad = shelfwatch_on(&db.url, &["backtest", "--from", "yesterday"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--from"));
}

#[tokio::test]
async fn backtest_features_hold_every_scored_claim_with_its_outcome() {
    use std::collections::HashMap;
    let db = crate::forecast::sample_db().await;
    let dir = tempfile::tempdir().unwrap();
    let (claims, features) = (dir.path().join("c.csv"), dir.path().join("f.csv"));
    let out = shelfwatch_on(
        &db.url,
        &[
            "backtest",
            "--json",
            "--claims",
            claims.to_str().unwrap(),
            "--features",
            features.to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    let mut rows = csv::Reader::from_path(&features).unwrap();
    let header: Vec<String> = rows.headers().unwrap().iter().map(str::to_owned).collect();
    let fixed = [
        "listing_id",
        "day",
        "action",
        "came_true",
        "hold_came_true",
        "wait_eligible",
        "wait_came_true",
    ];
    assert_eq!(header[..fixed.len()], fixed);
    assert_eq!(
        header[fixed.len()..],
        shelfwatch_forecast::recommend::FEATURE_NAMES
    );
    let mut days = HashMap::new();
    for row in rows.records() {
        let row = row.unwrap();
        assert_eq!(row.len(), header.len(), "{row:?}");
        for v in row.iter().skip(fixed.len()) {
            assert!(v.parse::<f64>().unwrap().is_finite(), "{row:?}");
        }
        let key = (row[0].to_owned(), row[1].to_owned());
        assert!(days.insert(key, row).is_none(), "a day written twice");
    }
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(&format!("wrote {} labelled days", days.len())),
        "{}",
        text(&out)
    );

    // Every scored claim is one of those days, and the file says what
    // came of the claim: the rules' own claim, a hold, or a wait.
    let (mut n, mut waits) = (0, 0);
    for claim in csv::Reader::from_path(&claims).unwrap().records() {
        let claim = claim.unwrap();
        let day = &days[&(claim[0].to_owned(), claim[1].to_owned())];
        let came_true = if &claim[6] == "true" { "1" } else { "0" };
        let said = match (&claim[2], &day[2]) {
            ("wait", _) => {
                waits += 1;
                assert_eq!(&day[5], "1", "a wait said where none can be: {day:?}");
                &day[6]
            }
            ("hold", _) => &day[4],
            (a, b) if a == b => &day[3],
            (a, b) => panic!("claim {a} on a day the rules call {b}"),
        };
        assert_eq!(said, came_true, "{claim:?} / {day:?}");
        n += 1;
    }
    assert!(n > 100, "{n} claims");
    assert!(days.len() > n, "the training days are written too");
    eprintln!("{n} claims, {waits} waits, {} days", days.len());

    let unwritable = dir.path().join("no-such-dir").join("f.csv");
    let out = shelfwatch_on(
        &db.url,
        &["backtest", "--features", unwritable.to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("f.csv"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn scheduled_forecast_stops_cleanly_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let db = crate::forecast::sample_db().await;
    let mut child = shelfwatch_on(&db.url, &["forecast", "--every", "1h"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let first = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    assert!(
        first.contains("listings forecast and recommended"),
        "{first}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let started = std::time::Instant::now();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// The README's scrape flow: `shelfwatch demo-store &` then
/// `shelfwatch scrape --once`, both as the binary.
#[tokio::test]
async fn demo_store_then_scrape_once_fills_the_database() {
    use std::io::{BufRead, BufReader};
    let db = crate::support::TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let mut store = command(&["demo-store", "--bind", "127.0.0.1:0"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(store.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let origin = line
        .trim()
        .strip_prefix("demo store at ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    let out = shelfwatch_on(
        &db.url,
        &[
            "scrape",
            "--once",
            "--origin",
            &origin,
            "--retailers-dir",
            "retailers/demo",
        ],
    )
    .current_dir(crate::support::repo_path("."))
    .env("SHELFWATCH_SCRAPE__SPOOL_DIR", dir.path().join("spool"))
    .output()
    .unwrap();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(store.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let stopped = store.wait().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stopped.success(),
        "the demo store did not stop cleanly on SIGTERM"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for retailer in ["aldwick", "icebox", "morrow", "sainsway"] {
        assert!(
            stdout.contains(&format!("{retailer}: succeeded")),
            "{retailer}: {stdout}"
        );
    }
    let (retailers, listings, matched): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM retailers), (SELECT count(*) FROM listings), \
         (SELECT count(*) FROM listings WHERE match_method = 'auto')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(retailers, 4);
    assert!(listings > 100, "{listings}");
    assert!(matched > 50, "{matched}");
}

/// `shelfwatch up` runs every step of the demo, then serves the API until
/// SIGTERM.
#[tokio::test]
async fn up_runs_the_whole_demo_and_serves_the_api() {
    let db = crate::support::TestDb::empty().await;
    let prometheus = format!(
        "127.0.0.1:{}",
        shelfwatch_store::db::embedded::free_port().unwrap()
    );
    let dir = tempfile::tempdir().unwrap();
    let mut child = shelfwatch_on(
        &db.url,
        &[
            "up",
            "--store-bind",
            "127.0.0.1:0",
            "--history-days",
            "60",
            "--prometheus-bind",
            &prometheus,
        ],
    )
    .current_dir(crate::support::repo_path("."))
    .env("SHELFWATCH_SCRAPE__SPOOL_DIR", dir.path().join("spool"))
    .env("SHELFWATCH_API__BIND", "127.0.0.1:0")
    .env("SHELFWATCH_API__METRICS_BIND", "127.0.0.1:0")
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let (lines, api) = crate::up::until_serving(&mut child, 120).await;
    let all = lines.join("\n");
    for step in ["1/6", "2/6", "3/6", "4/6", "5/6", "6/6"] {
        assert!(all.contains(step), "{step} missing:\n{all}");
    }
    let response = crate::scrape::http_get(&api, "/v1/recommendations?limit=5").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("confidence"), "{response}");
    let docs = crate::scrape::http_get(&api, "/docs/").await;
    assert!(docs.starts_with("HTTP/1.1 200"), "{docs}");
    // Prometheus, when installed (CI installs it), answers on its printed URL.
    if std::path::Path::new("/usr/bin/prometheus").exists() {
        assert!(
            all.contains(&format!("Prometheus   http://{prometheus}/graph")),
            "{all}"
        );
        let mut ready = String::new();
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(&prometheus).await.is_ok() {
                ready = crate::scrape::http_get(&prometheus, "/-/ready").await;
                if ready.starts_with("HTTP/1.1 200") {
                    break;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        assert!(ready.starts_with("HTTP/1.1 200"), "Prometheus: {ready}");
    }

    let (days, recommendations, products): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(DISTINCT day) FROM price_daily), \
         (SELECT count(*) FROM recommendations), \
         (SELECT count(DISTINCT product_id) FROM listings WHERE match_method = 'auto')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(days, 61, "60 days of history and today's scrape");
    assert!(recommendations >= 160, "{recommendations}");
    assert!(products > 20, "{products}");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "{exit}");
    // Nothing it started is left running.
    assert!(
        tokio::net::TcpStream::connect(&api).await.is_err(),
        "the API still answers"
    );
    assert!(
        tokio::net::TcpStream::connect(&prometheus).await.is_err(),
        "Prometheus still answers"
    );
}

/// Logs written to a file or a pipe carry no terminal colour codes.
#[test]
fn logs_are_plain_text_when_stderr_is_not_a_terminal() {
    let dir = crate::up::workdir();
    let start = command(&["db", "start"])
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stopped = shelfwatch(dir.path(), &["db", "stop"]);
    assert!(start.status.success(), "{}", text(&start));
    assert!(stopped.status.success(), "{}", text(&stopped));
    let log = String::from_utf8_lossy(&start.stderr);
    assert!(log.contains("embedded database running"), "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in {log:?}");
}
