//! Observability, checked by what can run here: the alert rules through
//! promtool; every dashboard query against a real Prometheus scraping the
//! running stack and against the real database; the dashboards' JSON; and
//! docker-compose.yml against the configuration the binary accepts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Parser;
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;
use shelfwatch::cli::Cli;
use shelfwatch::config::Settings;
use sqlx::{Column, Row};

use crate::support::{TestDb, repo_path};

// ---------------------------------------------------------------------------
// Tools

/// `name` on PATH (or in /usr/bin), if installed.
fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

fn yaml_file(rel: &str) -> Yaml {
    let text = std::fs::read_to_string(repo_path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let mut value: Yaml = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"));
    value.apply_merge().unwrap();
    value
}

fn str_of(v: &Yaml) -> String {
    match v {
        Yaml::String(s) => s.clone(),
        Yaml::Number(n) => n.to_string(),
        Yaml::Bool(b) => b.to_string(),
        other => panic!("expected a scalar, got {other:?}"),
    }
}

fn seq_of(v: Option<&Yaml>) -> Vec<Yaml> {
    v.and_then(Yaml::as_sequence).cloned().unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Alert rules

#[test]
fn alert_rules_pass_promtool_and_every_alert_is_tested_both_ways() {
    let Some(promtool) = tool("promtool") else {
        eprintln!(
            "SKIPPED: promtool is not installed (apt-get install prometheus, or scripts/test.sh)"
        );
        return;
    };
    let root = repo_path("");
    run_ok(
        Command::new(&promtool)
            .args(["check", "config", "prometheus.yml"])
            .current_dir(&root),
    );
    let rule_files: Vec<String> = seq_of(yaml_file("prometheus.yml").get("rule_files"))
        .iter()
        .map(str_of)
        .collect();
    assert!(!rule_files.is_empty(), "prometheus.yml loads no rules");
    let mut check = Command::new(&promtool);
    check
        .args(["check", "rules"])
        .args(&rule_files)
        .current_dir(&root);
    run_ok(&mut check);

    let mut tests: Vec<String> = std::fs::read_dir(repo_path("prometheus/tests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .map(|p| p.strip_prefix(&root).unwrap().display().to_string())
        .collect();
    tests.sort();
    assert!(!tests.is_empty());
    let mut test = Command::new(&promtool);
    test.args(["test", "rules"]).args(&tests).current_dir(&root);
    let out = run_ok(&mut test);
    assert!(out.contains("SUCCESS"), "{out}");

    // Every alert has a test where it fires and one where it stays quiet.
    let mut alerts = BTreeSet::new();
    for file in &rule_files {
        for group in seq_of(yaml_file(file).get("groups")) {
            for rule in seq_of(group.get("rules")) {
                if let Some(name) = rule.get("alert") {
                    alerts.insert(str_of(name));
                }
            }
        }
    }
    assert!(alerts.len() >= 8, "{alerts:?}");
    let (mut fires, mut quiet) = (BTreeSet::new(), BTreeSet::new());
    for file in &tests {
        for t in seq_of(yaml_file(file).get("tests")) {
            for case in seq_of(t.get("alert_rule_test")) {
                let name = str_of(case.get("alertname").unwrap());
                if seq_of(case.get("exp_alerts")).is_empty() {
                    quiet.insert(name);
                } else {
                    fires.insert(name);
                }
            }
        }
    }
    let untested_firing: Vec<_> = alerts.difference(&fires).collect();
    let untested_quiet: Vec<_> = alerts.difference(&quiet).collect();
    assert!(
        untested_firing.is_empty(),
        "no test makes these fire: {untested_firing:?}"
    );
    assert!(
        untested_quiet.is_empty(),
        "no test keeps these quiet: {untested_quiet:?}"
    );
}

// ---------------------------------------------------------------------------
// Dashboards

const GRID_WIDTH: i64 = 24;
const PANEL_TYPES: [&str; 7] = [
    "timeseries",
    "stat",
    "table",
    "row",
    "gauge",
    "bargauge",
    "xychart",
];

fn dashboards() -> Vec<(String, Json)> {
    let mut out: Vec<(String, Json)> = std::fs::read_dir(repo_path("dashboards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let json: Json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().into_owned(), json)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn dashboard(uid: &str) -> Json {
    dashboards()
        .into_iter()
        .map(|(_, d)| d)
        .find(|d| d["uid"] == uid)
        .unwrap_or_else(|| panic!("no dashboard {uid}"))
}

/// Data source uid -> type, from the provisioning files.
fn provisioned_datasources() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(repo_path("dashboards/provisioning/datasources")).unwrap() {
        let path = entry.unwrap().path();
        let rel = path
            .strip_prefix(repo_path(""))
            .unwrap()
            .display()
            .to_string();
        let doc = yaml_file(&rel);
        for ds in seq_of(doc.get("datasources")) {
            out.insert(str_of(&ds["uid"]), str_of(&ds["type"]));
        }
    }
    out
}

/// Every (panel title, target) of a dashboard, rows' nested panels included.
fn targets(d: &Json) -> Vec<(String, Json)> {
    let mut out = Vec::new();
    let mut panels: Vec<&Json> = d["panels"].as_array().unwrap().iter().collect();
    while let Some(p) = panels.pop() {
        if let Some(nested) = p.get("panels").and_then(Json::as_array) {
            panels.extend(nested);
        }
        for t in p
            .get("targets")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            out.push((p["title"].as_str().unwrap_or("").to_owned(), t.clone()));
        }
    }
    out
}

#[test]
fn dashboards_are_valid_grafana_json_on_provisioned_datasources() {
    let sources = provisioned_datasources();
    assert_eq!(
        sources.values().collect::<BTreeSet<_>>(),
        BTreeSet::from([
            &"prometheus".to_owned(),
            &"grafana-postgresql-datasource".to_owned()
        ]),
        "a Prometheus and a PostgreSQL data source"
    );
    let boards = dashboards();
    let titles: BTreeSet<&str> = boards
        .iter()
        .map(|(_, d)| d["title"].as_str().unwrap_or(""))
        .collect();
    for want in ["Prices", "Scraping", "Service"] {
        assert!(
            titles.iter().any(|t| t.ends_with(want)),
            "no {want} dashboard in {titles:?}"
        );
    }
    let mut uids = BTreeSet::new();
    for (file, d) in &boards {
        let uid = d["uid"].as_str().unwrap_or("");
        assert!(
            !uid.is_empty() && uid.len() <= 40,
            "{file}: uid {uid:?} (1-40 characters)"
        );
        assert!(
            uids.insert(uid.to_owned()),
            "{file}: uid {uid} is not unique"
        );
        assert!(
            d["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{file}: title"
        );
        assert!(
            d["schemaVersion"].as_i64().is_some(),
            "{file}: schemaVersion"
        );
        assert!(
            d["time"]["from"].is_string() && d["time"]["to"].is_string(),
            "{file}: time"
        );
        let check_ds = |what: &str, ds: &Json| {
            let uid = ds["uid"].as_str().unwrap_or("");
            let ty = ds["type"].as_str().unwrap_or("");
            assert_eq!(
                sources.get(uid).map(String::as_str),
                Some(ty),
                "{file}: {what}: data source {ds} is not provisioned"
            );
        };
        let panels = d["panels"].as_array().expect("panels");
        assert!(!panels.is_empty(), "{file}: no panels");
        let mut ids = BTreeSet::new();
        let mut cells = BTreeSet::new();
        for p in panels {
            let title = p["title"].as_str().unwrap_or("");
            let what = format!("panel {title:?}");
            assert!(!title.is_empty(), "{file}: a panel without a title: {p}");
            let id = p["id"]
                .as_i64()
                .unwrap_or_else(|| panic!("{file}: {what}: id"));
            assert!(ids.insert(id), "{file}: {what}: id {id} repeated");
            let ty = p["type"].as_str().unwrap_or("");
            assert!(PANEL_TYPES.contains(&ty), "{file}: {what}: type {ty:?}");
            let g = &p["gridPos"];
            let (h, w, x, y) = (
                g["h"].as_i64().unwrap_or(0),
                g["w"].as_i64().unwrap_or(0),
                g["x"].as_i64().unwrap_or(-1),
                g["y"].as_i64().unwrap_or(-1),
            );
            assert!(
                h > 0 && w > 0 && x >= 0 && y >= 0 && x + w <= GRID_WIDTH,
                "{file}: {what}: gridPos {g}"
            );
            // No two panels cover the same grid cell.
            for cx in x..x + w {
                for cy in y..y + h {
                    assert!(
                        cells.insert((cx, cy)),
                        "{file}: {what} overlaps another panel"
                    );
                }
            }
            if ty == "row" {
                continue;
            }
            check_ds(&what, &p["datasource"]);
            let targets = p["targets"].as_array().cloned().unwrap_or_default();
            assert!(!targets.is_empty(), "{file}: {what}: no targets");
            let mut refs = BTreeSet::new();
            for t in &targets {
                let r = t["refId"].as_str().unwrap_or("");
                assert!(
                    !r.is_empty() && refs.insert(r.to_owned()),
                    "{file}: {what}: refId"
                );
                let ds = if t["datasource"].is_object() {
                    &t["datasource"]
                } else {
                    &p["datasource"]
                };
                check_ds(&what, ds);
                match ds["type"].as_str() {
                    Some("prometheus") => assert!(
                        t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()),
                        "{file}: {what}: {r} has no expr"
                    ),
                    _ => {
                        assert!(
                            t["rawSql"].as_str().is_some_and(|e| !e.trim().is_empty()),
                            "{file}: {what}: {r} has no rawSql"
                        );
                        let fmt = t["format"].as_str().unwrap_or("");
                        assert!(
                            fmt == "table" || fmt == "time_series",
                            "{file}: {what}: {r} format {fmt:?}"
                        );
                    }
                }
            }
        }
        for v in d["templating"]["list"].as_array().into_iter().flatten() {
            let name = v["name"].as_str().unwrap_or("");
            assert!(!name.is_empty(), "{file}: a variable without a name");
            if v["type"] == "query" {
                check_ds(&format!("variable {name}"), &v["datasource"]);
            }
        }
        for a in d["annotations"]["list"].as_array().into_iter().flatten() {
            check_ds("annotation", &a["datasource"]);
        }
    }
}

// ---------------------------------------------------------------------------
// Grafana's macros and variables, expanded as Grafana does.

/// Replaces `$__name(args)` with what `expand` returns for (name, args).
fn expand_macros(sql: &str, expand: &dyn Fn(&str, &[String]) -> String) -> String {
    let mut out = String::new();
    let mut rest = sql;
    while let Some(start) = rest.find("$__") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 3..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let name = &after[..name_len];
        let tail = &after[name_len..];
        if !tail.starts_with('(') {
            // A variable such as $__interval, not a macro.
            out.push_str(&rest[start..start + 3 + name_len]);
            rest = tail;
            continue;
        }
        let mut depth = 0;
        let mut args = vec![String::new()];
        let mut end = None;
        for (i, c) in tail.char_indices() {
            match c {
                '(' => {
                    depth += 1;
                    if depth == 1 {
                        continue;
                    }
                }
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i);
                        break;
                    }
                }
                ',' if depth == 1 => {
                    args.push(String::new());
                    continue;
                }
                _ => {}
            }
            if let Some(a) = args.last_mut() {
                a.push(c);
            }
        }
        let end = end.unwrap_or_else(|| panic!("unbalanced macro in {sql}"));
        let args: Vec<String> = args
            .iter()
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty())
            .collect();
        out.push_str(&expand(name, &args));
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Grafana's PostgreSQL macros over [from, to].
fn expand_sql(sql: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let ts = |t: DateTime<Utc>| format!("'{}'", t.format("%Y-%m-%dT%H:%M:%SZ"));
    expand_macros(sql, &|name, args| {
        let seconds = |arg: Option<&String>| -> i64 {
            let a = arg.map(|s| s.trim_matches('\'')).unwrap_or("1d");
            let (n, unit) = a.split_at(a.find(|c: char| !c.is_ascii_digit()).unwrap());
            let n: i64 = n.parse().unwrap();
            n * match unit {
                "s" => 1,
                "m" => 60,
                "h" => 3600,
                "d" => 86_400,
                other => panic!("interval unit {other}"),
            }
        };
        match name {
            "timeFilter" => format!("{} BETWEEN {} AND {}", args[0], ts(from), ts(to)),
            "timeFrom" => ts(from),
            "timeTo" => ts(to),
            "timeGroup" => format!(
                "floor(extract(epoch from {})/{s})*{s}",
                args[0],
                s = seconds(args.get(1))
            ),
            "timeGroupAlias" => format!(
                "floor(extract(epoch from {})/{s})*{s} AS \"time\"",
                args[0],
                s = seconds(args.get(1))
            ),
            other => panic!("macro $__{other} is not expanded by this test"),
        }
    })
}

/// Replaces `$name` and `${name}` (longest names first).
fn substitute(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut out = text.to_owned();
    for name in names {
        out = out
            .replace(&format!("${{{name}}}"), &vars[name])
            .replace(&format!("${name}"), &vars[name]);
    }
    out
}

/// `now`, `now-90d`, `now+7d`, `now-6h`.
fn relative_time(text: &str, now: DateTime<Utc>) -> DateTime<Utc> {
    let Some(rest) = text.strip_prefix("now") else {
        panic!("time {text}")
    };
    if rest.is_empty() {
        return now;
    }
    let (sign, amount) = rest.split_at(1);
    let (n, unit) = amount.split_at(amount.len() - 1);
    let n: i64 = n.parse().unwrap();
    let d = match unit {
        "d" => chrono::Duration::days(n),
        "h" => chrono::Duration::hours(n),
        "m" => chrono::Duration::minutes(n),
        other => panic!("unit {other}"),
    };
    if sign == "-" { now - d } else { now + d }
}

#[test]
fn grafana_macros_expand_like_grafana() {
    let from = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let to = from + chrono::Duration::days(1);
    assert_eq!(
        expand_sql(
            "SELECT $__timeGroupAlias(d.day, '1d'), x FROM t WHERE $__timeFilter(d.day) AND a > $__timeFrom()",
            from,
            to
        ),
        "SELECT floor(extract(epoch from d.day)/86400)*86400 AS \"time\", x FROM t \
         WHERE d.day BETWEEN '2026-01-01T00:00:00Z' AND '2026-01-02T00:00:00Z' \
         AND a > '2026-01-01T00:00:00Z'"
    );
    let vars = BTreeMap::from([
        ("retailer".to_owned(), "'a','b'".to_owned()),
        ("__rate_interval".to_owned(), "5m".to_owned()),
    ]);
    assert_eq!(
        substitute("x IN ($retailer) [$__rate_interval] ${retailer}", &vars),
        "x IN ('a','b') [5m] 'a','b'"
    );
}

// ---------------------------------------------------------------------------
// Real Prometheus scraping the running stack

/// A Prometheus server, stopped when dropped.
struct Prometheus {
    child: Child,
    url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts `binary` scraping `targets` (job name -> host:port) every
    /// second, with the repository's alert rules loaded.
    async fn start(binary: &Path, targets: &[(&str, String)]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n",
        );
        config.push_str(&format!(
            "  - {}\n",
            repo_path("prometheus/alerts.yml").display()
        ));
        config.push_str("scrape_configs:\n");
        for (job, target) in targets {
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ));
        }
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let port = shelfwatch_store::db::embedded::free_port().unwrap();
        let log = dir.path().join("prometheus.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap();
        let p = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        let http = reqwest::Client::new();
        for _ in 0..300 {
            if let Ok(r) = http.get(format!("{}/-/ready", p.url)).send().await
                && r.status().is_success()
            {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("Prometheus did not become ready:\n{}", p.log_text());
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// An instant query's result vector.
    async fn query(&self, expr: &str) -> Result<Vec<Json>, String> {
        let r = reqwest::Client::new()
            .get(format!(
                "{}/api/v1/query?query={}",
                self.url,
                url_encode(expr)
            ))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: Json = r.json().await.map_err(|e| e.to_string())?;
        if body["status"] != "success" {
            return Err(format!("{body}"));
        }
        match body["data"]["resultType"].as_str() {
            Some("vector") => Ok(body["data"]["result"]
                .as_array()
                .cloned()
                .unwrap_or_default()),
            Some("scalar") => Ok(vec![serde_json::json!({"value": body["data"]["result"]})]),
            other => Err(format!("result type {other:?}")),
        }
    }

    async fn get(&self, path: &str) -> Json {
        json(reqwest::Client::new().get(format!("{}{path}", self.url))).await
    }

    /// Waits until `expr` returns a sample for which `ok` holds.
    async fn wait_for(&self, expr: &str, ok: impl Fn(f64) -> bool, what: &str) {
        for _ in 0..120 {
            if let Ok(result) = self.query(expr).await
                && result.iter().any(|s| sample_value(s).is_some_and(&ok))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("{what}: `{expr}` never held\n{}", self.log_text());
    }
}

/// Percent-encodes a query parameter.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn sample_value(sample: &Json) -> Option<f64> {
    sample["value"][1].as_str().and_then(|v| v.parse().ok())
}

/// What `$__range` stands for in the test: the dashboard's range, longer
/// than the whole test, so it covers the scrape and the forecast.
const TEST_RANGE: &str = "15m";

/// What Grafana makes `$__rate_interval` at the test Prometheus's 1 s
/// scrape interval: four scrapes. It is as short against this test's quiet
/// end as Grafana's 1 minute is against scrapes 6 hours apart.
const TEST_RATE_INTERVAL: &str = "4s";

/// Grafana's values for a Prometheus dashboard's variables: "All" of each
/// query variable is its `allValue` (a regex), after checking the variable's
/// `label_values` query finds values.
async fn prometheus_variables(prom: &Prometheus, d: &Json) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::from([
        ("__rate_interval".to_owned(), TEST_RATE_INTERVAL.to_owned()),
        ("__range".to_owned(), TEST_RANGE.to_owned()),
        ("__interval".to_owned(), "15s".to_owned()),
    ]);
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        let name = v["name"].as_str().unwrap().to_owned();
        let query = v["query"]["query"]
            .as_str()
            .or(v["query"].as_str())
            .unwrap_or("");
        let inner = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable {name}: only label_values(metric, label) is used"));
        let (metric, label) = inner.rsplit_once(',').unwrap();
        let values = prom
            .get(&format!(
                "/api/v1/label/{}/values?match[]={}",
                label.trim(),
                url_encode(metric.trim())
            ))
            .await;
        let values = values["data"].as_array().cloned().unwrap_or_default();
        assert!(
            !values.is_empty(),
            "variable {name}: {query} found no values"
        );
        let all = v["allValue"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| {
                let vals: Vec<&str> = values.iter().filter_map(Json::as_str).collect();
                format!("({})", vals.join("|"))
            });
        vars.insert(name, all);
    }
    vars
}

/// Grafana's values for a SQL dashboard's variables: each variable's query
/// run (after the variables before it), "All" as the quoted list of its
/// values.
async fn sql_variables(
    pool: &sqlx::PgPool,
    d: &Json,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        let name = v["name"].as_str().unwrap().to_owned();
        let query = v["query"].as_str().unwrap();
        let sql = expand_sql(&substitute(query, &vars), from, to);
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .fetch_all(pool)
            .await
            .unwrap_or_else(|e| panic!("variable {name}: {e}\n{sql}"));
        assert!(!rows.is_empty(), "variable {name} has no values:\n{sql}");
        let values: Vec<String> = rows
            .iter()
            .map(|r| {
                let col = r
                    .columns()
                    .iter()
                    .position(|c| c.name() == "__value")
                    .unwrap_or(0);
                r.try_get::<String, _>(col)
                    .or_else(|_| r.try_get::<i64, _>(col).map(|i| i.to_string()))
                    .unwrap_or_else(|e| panic!("variable {name}: {e}"))
            })
            .collect();
        let quoted: Vec<String> = values
            .iter()
            .map(|v| format!("'{}'", v.replace('\'', "''")))
            .collect();
        vars.insert(name, quoted.join(","));
    }
    vars
}

/// The JSON answer to `request`.
async fn json(request: reqwest::RequestBuilder) -> Json {
    request.send().await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_returns_data_from_the_running_stack() {
    let Some(prometheus_bin) = tool("prometheus") else {
        eprintln!(
            "SKIPPED: prometheus is not installed (apt-get install prometheus, or scripts/test.sh)"
        );
        return;
    };
    // `shelfwatch up` as a newcomer runs it (its own Prometheus left out:
    // the test's scrapes every second), over a database of the test's own.
    let db = TestDb::empty().await;
    let dir = tempfile::tempdir().unwrap();
    let (up, lines, api) =
        crate::up::serve_on(&db.url, &dir.path().join("spool"), &[], "120").await;
    let metrics = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("metrics      http://"))
        .and_then(|l| l.split('/').next())
        .unwrap_or_else(|| panic!("no metrics address:\n{}", lines.join("\n")))
        .to_owned();
    let prom = Prometheus::start(&prometheus_bin, &[("shelfwatch-api", metrics)]).await;
    prom.wait_for(
        "count(up == 1)",
        |v| v >= 1.0,
        "up's metrics listener scraped",
    )
    .await;

    // While Prometheus watches: a scrape and a forecast asked for through
    // the admin API, as an operator would, then some API traffic.
    let key = crate::support::shelfwatch_command(&[
        "apikey", "create", "--name", "ops", "--scopes", "admin",
    ])
    .env("DATABASE_URL", &db.url)
    .output()
    .unwrap();
    assert!(key.status.success(), "{}", crate::cli::text(&key));
    let key = String::from_utf8(key.stdout).unwrap().trim().to_owned();
    let http = reqwest::Client::new();
    let base = format!("http://{api}");
    for kind in ["scrape-runs", "forecast-runs"] {
        let queued = json(
            http.post(format!("{base}/v1/admin/{kind}"))
                .header("X-Api-Key", &key),
        )
        .await;
        let id = queued["job"]["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("{queued}"));
        let mut job = Json::Null;
        for _ in 0..240 {
            job = json(
                http.get(format!("{base}/v1/admin/jobs/{id}"))
                    .header("X-Api-Key", &key),
            )
            .await;
            if !matches!(job["status"].as_str(), Some("queued" | "running")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert_eq!(job["status"], "succeeded", "{kind}: {job}");
    }
    // In rounds a few scrapes apart: a route's series appears with its
    // first request, and only later requests are an increase.
    for round in 0..4 {
        if round > 0 {
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        for path in [
            "/healthz",
            "/readyz",
            "/v1/retailers",
            "/v1/products",
            "/v1/recommendations",
            "/v1/products/999999999",
        ] {
            http.get(format!("{base}{path}")).send().await.unwrap();
        }
    }
    prom.wait_for(
        "max(shelfwatch_forecast_series)",
        |v| v > 0.0,
        "forecast figures from the database",
    )
    .await;
    prom.wait_for(
        "count(shelfwatch_scrape_last_run_products > 0)",
        |v| v >= 4.0,
        "scrape figures for all four retailers",
    )
    .await;
    prom.wait_for(
        "sum(shelfwatch_http_requests_total)",
        |v| v >= 24.0,
        "API traffic",
    )
    .await;
    // Then quiet, as between two scrapes: every $__rate_interval window
    // now holds no page load, no forecast and no request.
    tokio::time::sleep(Duration::from_secs(8)).await;

    // The alert rules loaded and evaluate.
    let rules = prom.get("/api/v1/rules").await;
    let loaded: Vec<&Json> = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert!(loaded.len() >= 8, "{rules}");
    for r in &loaded {
        assert_eq!(r["health"], "ok", "{r}");
    }

    // Every PromQL query of every panel returns data.
    let mut failures = Vec::new();
    let mut checked = 0;
    for (_, d) in dashboards() {
        let title = d["title"].as_str().unwrap().to_owned();
        let prometheus_panels: Vec<(String, Json)> = targets(&d)
            .into_iter()
            .filter(|(_, t)| t["expr"].is_string())
            .collect();
        if prometheus_panels.is_empty() {
            continue;
        }
        let vars = prometheus_variables(&prom, &d).await;
        for (panel, t) in prometheus_panels {
            let expr = substitute(t["expr"].as_str().unwrap(), &vars);
            assert!(!expr.contains('$'), "{title} / {panel}: unexpanded {expr}");
            checked += 1;
            // Other tests in this binary serve /metrics over databases of
            // their own, and the database figures live in the one process
            // registry: a scrape that lands just after theirs sees their
            // figures for a second. A query is retried before it counts.
            let mut failure = None;
            for attempt in 0..4 {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                }
                failure = match prom.query(&expr).await {
                    Err(e) => Some(format!("{title} / {panel}: {expr}: {e}")),
                    Ok(result) if result.is_empty() => {
                        Some(format!("{title} / {panel}: no data: {expr}"))
                    }
                    Ok(result)
                        if !result
                            .iter()
                            .all(|s| sample_value(s).is_some_and(f64::is_finite)) =>
                    {
                        Some(format!(
                            "{title} / {panel}: NaN or infinite: {expr}: {result:?}"
                        ))
                    }
                    Ok(_) => None,
                };
                if failure.is_none() {
                    break;
                }
            }
            failures.extend(failure);
        }
    }
    assert!(checked >= 30, "only {checked} PromQL queries");
    assert!(
        failures.is_empty(),
        "{} of {checked} PromQL queries failed:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Every SQL query of the Prices dashboard (panels, variables,
    // annotations) returns rows from the database the stack filled.
    let prices = dashboard("shelfwatch-prices");
    let now = Utc::now();
    let from = relative_time(prices["time"]["from"].as_str().unwrap(), now);
    let to = relative_time(prices["time"]["to"].as_str().unwrap(), now);
    let vars = sql_variables(&db.pool, &prices, from, to).await;
    let mut queries: Vec<(String, String, String)> = targets(&prices)
        .into_iter()
        .map(|(panel, t)| {
            (
                panel,
                t["rawSql"].as_str().unwrap_or("").to_owned(),
                t["format"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    for a in prices["annotations"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        queries.push((
            format!("annotation {}", a["name"]),
            a["rawQuery"].as_str().unwrap().to_owned(),
            "annotation".to_owned(),
        ));
    }
    let mut failures = Vec::new();
    for (panel, raw, format) in &queries {
        let sql = expand_sql(&substitute(raw, &vars), from, to);
        assert!(!sql.contains('$'), "{panel}: unexpanded {sql}");
        match sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .fetch_all(&db.pool)
            .await
        {
            Err(e) => failures.push(format!("{panel}: {e}\n{sql}")),
            Ok(rows) if rows.is_empty() => failures.push(format!("{panel}: no rows\n{sql}")),
            Ok(rows) => {
                let columns: Vec<&str> = rows[0].columns().iter().map(|c| c.name()).collect();
                if (format == "time_series" || format == "annotation") && !columns.contains(&"time")
                {
                    failures.push(format!("{panel}: no time column in {columns:?}"));
                }
            }
        }
    }
    assert!(queries.len() >= 10, "only {} SQL queries", queries.len());
    assert!(
        failures.is_empty(),
        "{} of {} SQL queries failed:\n{}",
        failures.len(),
        queries.len(),
        failures.join("\n\n")
    );

    // Today's best buys are offers in stock now: the best buy whose shelf
    // has since emptied leaves the list.
    let best = queries
        .iter()
        .find(|(panel, _, _)| panel.contains("best buys"))
        .map(|(_, raw, _)| expand_sql(&substitute(raw, &vars), from, to))
        .expect("a best buys panel");
    let best_buys = || async {
        sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(format!(
            "SELECT product, retailer FROM ({best}) b"
        )))
        .fetch_all(&db.pool)
        .await
        .unwrap()
    };
    let (product, retailer) = best_buys().await.remove(0);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TEMP TABLE emptied AS
             SELECT DISTINCT ON (o.listing_id) o.* FROM price_observations o
             JOIN listings l ON l.id = o.listing_id
             JOIN products p ON p.id = l.product_id
             JOIN retailers r ON r.id = l.retailer_id
             WHERE p.name = '{p}' AND r.slug = '{r}'
             ORDER BY o.listing_id, o.observed_at DESC;
         UPDATE emptied SET observed_at = observed_at + interval '1 second', in_stock = false;
         INSERT INTO price_observations SELECT * FROM emptied;",
        p = product.replace('\'', "''"),
        r = retailer.replace('\'', "''"),
    )))
    .execute(&db.pool)
    .await
    .unwrap();
    let after = best_buys().await;
    assert!(
        !after.contains(&(product.clone(), retailer.clone())),
        "{product} at {retailer} is out of stock but still a best buy"
    );

    drop(prom);
    let exit = up.stop().await;
    assert!(exit.success(), "{exit}");
}

/// The two tests here that refresh the database figures of the process
/// registry from databases of their own take turns.
static REGISTRY_FIGURES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn the_api_metrics_listener_reads_the_database_and_answers_without_it() {
    let _turn = REGISTRY_FIGURES.lock().await;
    let db = TestDb::new().await;
    sqlx::query(
        "INSERT INTO forecast_runs (model_version, params, status, series, started_at, finished_at)
         VALUES ('test', '{}', 'succeeded', 12, now() - interval '90 seconds', now() - interval '30 seconds')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/metrics", listener.local_addr().unwrap());
    tokio::spawn(shelfwatch_store::gauges::serve(
        listener,
        db.pool.clone(),
        std::future::pending(),
    ));
    let get = || async {
        let r = reqwest::get(&url).await.unwrap();
        assert!(r.status().is_success());
        r.text().await.unwrap()
    };
    let text = get().await;
    for want in [
        "shelfwatch_metrics_db_up 1",
        "shelfwatch_forecast_series 12",
        "shelfwatch_forecast_last_run_duration_seconds 60",
        "shelfwatch_forecast_last_run_failed 0",
        "shelfwatch_recommendations{action=\"buy_now\"} 0",
    ] {
        assert!(text.contains(want), "missing {want}:\n{text}");
    }
    // The database goes away: /metrics still answers, promptly, and says so.
    db.pool.close().await;
    let started = std::time::Instant::now();
    let text = get().await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(text.contains("shelfwatch_metrics_db_up 0"), "{text}");
    assert!(text.contains("shelfwatch_build_info"), "{text}");
}

// ---------------------------------------------------------------------------
// docker-compose.yml and the Dockerfile

/// `${VAR:-default}` and `${VAR}` as compose reads them with nothing set.
fn compose_value(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closing brace") + start;
        let inner = &rest[start + 2..end];
        out.push_str(inner.split_once(":-").map_or("", |(_, d)| d));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// (host, port) of `host:port` or a URL's authority.
fn host_port(text: &str) -> (String, u16) {
    let authority = text
        .split_once("://")
        .map_or(text, |(_, rest)| rest)
        .split(['/', '?'])
        .next()
        .unwrap();
    let authority = authority.rsplit('@').next().unwrap();
    let (host, port) = authority
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("{text} has no port"));
    (host.to_owned(), port.parse().unwrap())
}

/// Container ports a service offers to the others (`expose` and the
/// container side of `ports`).
fn container_ports(service: &Yaml) -> BTreeSet<u16> {
    let mut out = BTreeSet::new();
    for p in seq_of(service.get("expose")) {
        out.insert(str_of(&p).parse().unwrap());
    }
    for p in seq_of(service.get("ports")) {
        let p = str_of(&p);
        let container = p.rsplit(':').next().unwrap();
        out.insert(container.split('/').next().unwrap().parse().unwrap());
    }
    out
}

fn compose_services() -> serde_yaml::Mapping {
    yaml_file("docker-compose.yml")["services"]
        .as_mapping()
        .cloned()
        .expect("services")
}

/// The shelfwatch command lines a service runs (without the program name).
fn shelfwatch_commands(name: &str, service: &Yaml) -> Vec<Vec<String>> {
    let entrypoint: Vec<String> = seq_of(service.get("entrypoint"))
        .iter()
        .map(str_of)
        .collect();
    let command: Vec<String> = match service.get("command") {
        Some(Yaml::Sequence(s)) => s.iter().map(str_of).collect(),
        Some(other) => str_of(other)
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        None => Vec::new(),
    };
    if entrypoint.is_empty() {
        assert!(!command.is_empty(), "{name}: no command");
        return vec![command];
    }
    assert_eq!(
        entrypoint,
        ["/bin/sh", "-c"],
        "{name}: an entrypoint other than the image's must be a shell"
    );
    assert_eq!(command.len(), 1, "{name}: one shell command line");
    command[0]
        .split("&&")
        .map(|part| {
            let words: Vec<String> = part.split_whitespace().map(str::to_owned).collect();
            assert_eq!(
                words.first().map(String::as_str),
                Some("shelfwatch"),
                "{name}: {part}"
            );
            words[1..].to_vec()
        })
        .collect()
}

#[test]
fn compose_file_agrees_with_the_binary_prometheus_and_grafana() {
    let services = compose_services();
    let compose = yaml_file("docker-compose.yml");
    let declared_volumes: BTreeSet<String> = compose["volumes"]
        .as_mapping()
        .map(|m| m.keys().map(str_of).collect())
        .unwrap_or_default();
    let names: BTreeSet<String> = services.keys().map(str_of).collect();
    for want in [
        "timescaledb",
        "migrate",
        "api",
        "scraper",
        "forecaster",
        "demo-store",
        "chromium",
        "prometheus",
        "grafana",
    ] {
        assert!(names.contains(want), "no {want} service in {names:?}");
    }
    let image =
        |name: &str| -> String { services[name].get("image").map(str_of).unwrap_or_default() };
    assert!(image("timescaledb").starts_with("timescale/timescaledb:"));

    // What each service listens on inside the network: port -> service.
    let mut listening: BTreeMap<String, BTreeSet<u16>> = BTreeMap::new();
    let empty = tempfile::NamedTempFile::new().unwrap();
    let mut roles = BTreeSet::new();
    for (key, service) in &services {
        let name = str_of(key);
        assert!(
            service.get("image").is_some() || service.get("build").is_some(),
            "{name}: neither image nor build"
        );
        if let Some(build) = service.get("build") {
            let context = build
                .get("context")
                .map(str_of)
                .unwrap_or_else(|| str_of(build));
            let dockerfile = build
                .get("dockerfile")
                .map(str_of)
                .unwrap_or_else(|| "Dockerfile".to_owned());
            assert!(
                repo_path(&context).join(&dockerfile).is_file(),
                "{name}: no {context}/{dockerfile}"
            );
            if let Some(target) = build.get("target").map(str_of) {
                let text = std::fs::read_to_string(repo_path(&context).join(&dockerfile)).unwrap();
                assert!(
                    text.lines().any(|l| l.starts_with("FROM ")
                        && l.trim_end().ends_with(&format!(" AS {target}"))),
                    "{name}: the Dockerfile has no stage {target}"
                );
            }
        }
        for dep in service
            .get("depends_on")
            .map(|d| match d {
                Yaml::Mapping(m) => m.keys().map(str_of).collect::<Vec<_>>(),
                other => seq_of(Some(other)).iter().map(str_of).collect(),
            })
            .unwrap_or_default()
        {
            assert!(names.contains(&dep), "{name}: depends on unknown {dep}");
        }
        for v in seq_of(service.get("volumes")) {
            let v = str_of(&v);
            let source = v.split(':').next().unwrap();
            if source.starts_with("./") {
                assert!(
                    repo_path(source).exists(),
                    "{name}: {source} does not exist"
                );
            } else {
                assert!(
                    declared_volumes.contains(source),
                    "{name}: volume {source} is not declared"
                );
            }
        }
        let ports = container_ports(service);
        listening.insert(name.clone(), ports.clone());

        if !image(&name).starts_with("shelfwatch") {
            continue;
        }
        // A shelfwatch role: its environment is configuration the binary
        // accepts, its command lines are real subcommands.
        let env: Vec<(String, String)> = service
            .get("environment")
            .and_then(Yaml::as_mapping)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (str_of(k), compose_value(&str_of(v))))
                    .collect()
            })
            .unwrap_or_default();
        for (k, _) in &env {
            assert!(
                k.starts_with("SHELFWATCH_") || k == "DATABASE_URL" || k == "RUST_LOG",
                "{name}: {k} is not shelfwatch configuration"
            );
        }
        let settings = Settings::load_from(Some(empty.path()), &env)
            .unwrap_or_else(|e| panic!("{name}: environment rejected: {e:#}"));
        if let Some(url) = &settings.database.url {
            let (host, port) = host_port(url.expose());
            assert_eq!((host.as_str(), port), ("timescaledb", 5432), "{name}");
        }
        for args in shelfwatch_commands(&name, service) {
            // The service image is built without the `demo` feature.
            if image(&name) == "shelfwatch:latest" {
                let demo_only = ["demo-store", "up", "bench", "soak"];
                assert!(
                    !args.iter().any(|a| demo_only.contains(&a.as_str())),
                    "{name}: `{}` needs the demo image",
                    args.join(" ")
                );
            }
            let mut argv = vec!["shelfwatch".to_owned()];
            argv.extend(args.iter().cloned());
            let cli = Cli::try_parse_from(&argv)
                .unwrap_or_else(|e| panic!("{name}: `{}` is not a command: {e}", argv.join(" ")));
            use shelfwatch::cli::Command as C;
            let must_listen = |what: &str, bind: &str| {
                let (host, port) = host_port(bind);
                assert_eq!(
                    host, "0.0.0.0",
                    "{name}: {what} {bind} is unreachable from other containers"
                );
                assert!(
                    ports.contains(&port),
                    "{name}: {what} port {port} not exposed ({ports:?})"
                );
            };
            match &cli.command {
                C::Serve(_) => {
                    roles.insert("api");
                    must_listen("api.bind", &settings.api.bind);
                    must_listen("api.metrics_bind", &settings.api.metrics_bind);
                }
                C::Scrape(a) => {
                    roles.insert("scraper");
                    assert!(
                        a.every.is_some(),
                        "{name}: the scraper role runs on a schedule"
                    );
                    let bind = settings
                        .scrape
                        .metrics_bind
                        .clone()
                        .expect("scrape.metrics_bind");
                    must_listen("scrape.metrics_bind", &bind);
                    let webdriver = settings
                        .scrape
                        .browser
                        .webdriver_url
                        .clone()
                        .expect("a scraper in compose uses the chromium service");
                    let (host, port) = host_port(&webdriver);
                    assert!(
                        container_ports(&services[host.as_str()]).contains(&port),
                        "{name}: {webdriver} is not a service port"
                    );
                    let origin = settings.scrape.origin_override.clone().expect("origin");
                    let (host, port) = host_port(&origin);
                    assert!(
                        container_ports(&services[host.as_str()]).contains(&port),
                        "{name}: {origin} is not a service port"
                    );
                    // The demo store serves the demo shops, not the real
                    // ones in the image's default retailers/.
                    let dir = a
                        .retailers_dir
                        .as_ref()
                        .unwrap_or(&settings.scrape.retailers_dir);
                    let in_repo = dir.strip_prefix("/app").unwrap_or(dir);
                    assert_eq!(
                        in_repo,
                        std::path::Path::new(shelfwatch_scrape::DEMO_RETAILERS_DIR),
                        "{name}: scrapes {} against the demo store",
                        dir.display()
                    );
                }
                C::Forecast(a) => {
                    roles.insert("forecaster");
                    assert!(
                        a.every.is_some(),
                        "{name}: the forecaster runs on a schedule"
                    );
                    let bind = settings
                        .forecast
                        .metrics_bind
                        .clone()
                        .expect("forecast.metrics_bind");
                    must_listen("forecast.metrics_bind", &bind);
                }
                C::DemoStore(a) => {
                    if a.export_history.is_none() {
                        roles.insert("demo-store");
                        must_listen("--bind", &a.bind);
                    }
                }
                C::Migrate => {
                    roles.insert("migrate");
                }
                C::Import(_) => {}
                other => panic!("{name}: unexpected role {other:?}"),
            }
        }
    }
    assert_eq!(
        roles,
        BTreeSet::from(["api", "scraper", "forecaster", "demo-store", "migrate"])
    );

    // Every Prometheus target is a service listening on that port.
    let prometheus = yaml_file("prometheus.yml");
    let mut jobs = BTreeSet::new();
    for job in seq_of(prometheus.get("scrape_configs")) {
        let job_name = str_of(&job["job_name"]);
        for sc in seq_of(job.get("static_configs")) {
            for target in seq_of(sc.get("targets")) {
                let (host, port) = host_port(&str_of(&target));
                let host = if host == "localhost" {
                    "prometheus".to_owned()
                } else {
                    host
                };
                let ports = listening
                    .get(&host)
                    .unwrap_or_else(|| panic!("{job_name}: no service {host}"));
                assert!(
                    ports.contains(&port),
                    "{job_name}: {host} does not listen on {port}"
                );
                jobs.insert(host);
            }
        }
    }
    for role in ["api", "scraper", "forecaster"] {
        assert!(jobs.contains(role), "prometheus.yml does not scrape {role}");
    }

    // Prometheus finds its config and rules where compose mounts them.
    let mounts = |service: &str| -> Vec<(String, String)> {
        seq_of(services[service].get("volumes"))
            .iter()
            .map(|v| {
                let v = str_of(v);
                let mut parts = v.split(':');
                (
                    parts.next().unwrap().to_owned(),
                    parts.next().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let resolve = |service: &str, container_path: &str| -> Option<PathBuf> {
        mounts(service).into_iter().find_map(|(src, dst)| {
            let rest = container_path.strip_prefix(&dst)?;
            src.starts_with("./")
                .then(|| repo_path(src.trim_start_matches("./")).join(rest.trim_start_matches('/')))
        })
    };
    let prom_cmd: Vec<String> = seq_of(services["prometheus"].get("command"))
        .iter()
        .map(str_of)
        .collect();
    let config_path = prom_cmd
        .iter()
        .find_map(|a| a.strip_prefix("--config.file="))
        .expect("--config.file");
    assert_eq!(
        resolve("prometheus", config_path),
        Some(repo_path("prometheus.yml"))
    );
    let config_dir = Path::new(config_path).parent().unwrap();
    for rule in seq_of(prometheus.get("rule_files")) {
        let in_container = config_dir.join(str_of(&rule));
        let on_host = resolve("prometheus", &in_container.display().to_string())
            .unwrap_or_else(|| panic!("{} is not mounted", in_container.display()));
        assert!(on_host.is_file(), "{} is missing", on_host.display());
    }

    // Grafana: provisioning mounted, the dashboards folder where the
    // provider looks, data sources at service ports.
    assert_eq!(
        resolve("grafana", "/etc/grafana/provisioning/datasources"),
        Some(repo_path("dashboards/provisioning/datasources"))
    );
    let provider = yaml_file("dashboards/provisioning/dashboards/shelfwatch.yml");
    for p in seq_of(provider.get("providers")) {
        let path = str_of(&p["options"]["path"]);
        let on_host = resolve("grafana", &path).expect("dashboards folder mounted");
        assert!(
            on_host.join("prices.json").is_file(),
            "{}",
            on_host.display()
        );
    }
    let sources = yaml_file("dashboards/provisioning/datasources/shelfwatch.yml");
    for ds in seq_of(sources.get("datasources")) {
        let (host, port) = host_port(&str_of(&ds["url"]));
        assert!(
            listening.get(&host).is_some_and(|p| p.contains(&port)),
            "data source {} at {host}:{port} is not a service port",
            str_of(&ds["name"])
        );
    }
}

/// Whether a compose service runs once and exits (`restart: "no"`, or no
/// restart policy at all).
fn one_shot(service: &Yaml) -> bool {
    service.get("restart").is_none_or(|r| str_of(r) == "no")
}

/// The compose stack as it would run: published ports on loopback only,
/// a healthcheck on every long-running service (`shelfwatch healthcheck`
/// for shelfwatch's own, on a port the service listens on), one-shot
/// services waited for until they succeed, the spool volume writable by
/// the image's user, Grafana's password from an uncommitted `.env`, and
/// the TimescaleDB release the tests run.
#[test]
fn compose_stack_is_safe_and_starts_in_order() {
    let services = compose_services();
    let shelfwatch_image = |s: &Yaml| {
        s.get("image")
            .map(str_of)
            .is_some_and(|i| i.starts_with("shelfwatch"))
    };
    for (key, service) in &services {
        let name = str_of(key);
        for p in seq_of(service.get("ports")) {
            let p = str_of(&p);
            assert!(
                p.starts_with("127.0.0.1:"),
                "{name}: port {p} is published on every interface"
            );
        }
        if !one_shot(service) {
            let test: Vec<String> = seq_of(service.get("healthcheck").and_then(|h| h.get("test")))
                .iter()
                .map(str_of)
                .collect();
            assert!(
                test.first().is_some_and(|t| t.starts_with("CMD")),
                "{name}: no healthcheck"
            );
            if shelfwatch_image(service) {
                assert_eq!(
                    &test[..3],
                    ["CMD", "shelfwatch", "healthcheck"],
                    "{name}: {test:?}"
                );
                let mut argv = vec!["shelfwatch".to_owned()];
                argv.extend(test[1..].iter().skip(1).cloned());
                Cli::try_parse_from(&argv)
                    .unwrap_or_else(|e| panic!("{name}: `{}`: {e}", argv.join(" ")));
                let (host, port) = host_port(&test[3]);
                assert_eq!(host, "127.0.0.1", "{name}: {test:?}");
                assert!(
                    container_ports(service).contains(&port),
                    "{name}: the healthcheck asks port {port}, where nothing listens"
                );
            }
        }
        // A one-shot service is waited for until it has succeeded.
        if let Some(Yaml::Mapping(deps)) = service.get("depends_on") {
            for (dep, how) in deps {
                let dep = str_of(dep);
                let condition = how.get("condition").map(str_of).unwrap_or_default();
                let wanted = if one_shot(&services[dep.as_str()]) {
                    "service_completed_successfully"
                } else if condition == "service_healthy" {
                    "service_healthy"
                } else {
                    "service_started"
                };
                assert_eq!(condition, wanted, "{name} on {dep}");
            }
        } else {
            assert!(
                service.get("depends_on").is_none(),
                "{name}: depends_on without conditions"
            );
        }
        // Every role that uses the database waits for the migrations.
        let uses_db = service
            .get("environment")
            .is_some_and(|e| e.get("DATABASE_URL").is_some());
        if shelfwatch_image(service) && uses_db && name != "migrate" {
            assert_eq!(
                service["depends_on"]["migrate"]["condition"],
                Yaml::from("service_completed_successfully"),
                "{name}"
            );
        }
    }
    // The forecaster's first run learns from the seeded history; the
    // scraper reads a demo store that answers.
    assert_eq!(
        services["forecaster"]["depends_on"]["seed-history"]["condition"],
        Yaml::from("service_completed_successfully")
    );
    assert_eq!(
        services["scraper"]["depends_on"]["demo-store"]["condition"],
        Yaml::from("service_healthy")
    );

    // The scraper's spool volume: the directory exists in the image, owned
    // by the user the image runs as, so the volume starts out writable.
    let dockerfile = std::fs::read_to_string(repo_path("Dockerfile")).unwrap();
    assert!(dockerfile.contains("--uid 10001"), "the shelfwatch user");
    assert!(dockerfile.contains("USER shelfwatch"));
    let settings = Settings::load_from(
        Some(tempfile::NamedTempFile::new().unwrap().path()),
        &[(
            "SHELFWATCH_SCRAPE__SPOOL_DIR".to_owned(),
            str_of(&services["scraper"]["environment"]["SHELFWATCH_SCRAPE__SPOOL_DIR"]),
        )],
    )
    .unwrap();
    let spool = settings.scrape.spool_dir.display().to_string();
    assert!(
        seq_of(services["scraper"].get("volumes"))
            .iter()
            .any(|v| str_of(v) == format!("spool:{spool}")),
        "the spool volume is not mounted at scrape.spool_dir {spool}"
    );
    let made = dockerfile
        .lines()
        .find(|l| l.contains("mkdir -p") && l.contains(&spool))
        .unwrap_or_else(|| panic!("the image does not create {spool}"));
    let owned = dockerfile
        .lines()
        .position(|l| l.contains("chown -R shelfwatch /app"))
        .expect("/app is handed to the shelfwatch user");
    assert!(spool.starts_with("/app/"), "{spool}");
    assert!(
        dockerfile.lines().position(|l| l == made).unwrap() < owned,
        "{spool} is created after /app is handed over"
    );

    // Grafana's admin password comes from .env, which is not committed.
    let password = str_of(&services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]);
    assert!(
        password.starts_with("${GRAFANA_ADMIN_PASSWORD:?"),
        "a required variable without a default: {password}"
    );
    let example = std::fs::read_to_string(repo_path(".env.example")).unwrap();
    assert!(
        example
            .lines()
            .any(|l| l.starts_with("GRAFANA_ADMIN_PASSWORD="))
    );
    let ignored = std::fs::read_to_string(repo_path(".gitignore")).unwrap();
    assert!(
        ignored.lines().any(|l| l == ".env" || l == "/.env"),
        ".env is not ignored"
    );
    let tracked = Command::new("git")
        .args(["ls-files", "--error-unmatch", ".env"])
        .current_dir(repo_path("."))
        .output()
        .unwrap();
    assert!(!tracked.status.success(), ".env is committed");

    // The TimescaleDB the tests run (tests/it/timescale.rs checks the
    // server's own version against this tag).
    let tag = str_of(&services["timescaledb"]["image"]);
    assert!(
        tag.starts_with(&format!("timescale/timescaledb:{TIMESCALEDB_TESTED}.")),
        "{tag}"
    );
}

/// `shelfwatch healthcheck URL`, the compose healthchecks' command: 0 on
/// a 2xx answer, 1 on any other answer or none, 2 on a URL it cannot use.
#[tokio::test]
async fn healthcheck_exits_by_the_answer() {
    let store = shelfwatch_demo_store::local::LocalStore::start(
        42,
        chrono::Utc::now().date_naive(),
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let closed = format!(
        "http://127.0.0.1:{}/",
        shelfwatch_store::db::embedded::free_port().unwrap()
    );
    let page = format!("{}/", store.origin);
    let missing = format!("{}/no-such-page", store.origin);
    for (url, code, says) in [
        (page.as_str(), 0, "200"),
        (missing.as_str(), 1, "404"),
        (closed.as_str(), 1, "unhealthy"),
        ("ftp://127.0.0.1/", 2, "http://"),
    ] {
        let out = tokio::process::Command::from(crate::support::shelfwatch_command(&[
            "healthcheck",
            url,
        ]))
        .output()
        .await
        .unwrap();
        let text = crate::cli::text(&out);
        assert_eq!(out.status.code(), Some(code), "{url}: {text}");
        assert!(text.contains(says), "{url}: {text}");
    }
    store.stop().await;
}

/// The TimescaleDB release (major.minor) the tests run and compose uses.
pub const TIMESCALEDB_TESTED: &str = "2.23";

#[test]
fn dockerfile_builds_in_stages_and_runs_the_binary() {
    let text = std::fs::read_to_string(repo_path("Dockerfile")).unwrap();
    let froms: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("FROM "))
        .collect();
    assert!(froms.len() >= 2, "a multi-stage build: {froms:?}");
    // The builder's Rust is at least the crate's rust-version.
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(repo_path("Cargo.toml")).unwrap()).unwrap();
    let wanted = manifest["package"]["rust-version"]
        .as_str()
        .or_else(|| manifest["workspace"]["package"]["rust-version"].as_str())
        .unwrap();
    let builder = froms[0]
        .split_whitespace()
        .nth(1)
        .and_then(|image| image.strip_prefix("rust:"))
        .expect("the first stage builds with the rust image");
    let version = builder.split('-').next().unwrap();
    let parse = |v: &str| -> Vec<u32> { v.split('.').map(|x| x.parse().unwrap()).collect() };
    assert!(parse(version) >= parse(wanted), "rust:{version} < {wanted}");
    assert!(
        text.contains("COPY --from=build"),
        "the binary comes from the build stage"
    );
    assert!(
        text.contains("COPY retailers"),
        "scrape.retailers_dir is in the image"
    );
    let entrypoint = text
        .lines()
        .find(|l| l.starts_with("ENTRYPOINT"))
        .expect("ENTRYPOINT");
    assert!(entrypoint.contains("\"shelfwatch\""), "{entrypoint}");
    // Every path the build copies exists.
    for line in text
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        for src in &words[1..words.len() - 1] {
            assert!(repo_path(src).exists(), "COPY {src}: no such path");
        }
    }
}
