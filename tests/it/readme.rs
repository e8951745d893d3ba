//! README.md's shopper walkthrough, run as written against a real `up`:
//! its shell blocks in order, with `API` set to where this `up` serves and
//! `shelfwatch` the binary under test. Every `curl` in them must answer
//! 2xx.

const SECTION: &str = "## A shopper's app, step by step";
/// How the walkthrough defines the API's address: `up`'s default.
const API_LINE: &str = "API=http://127.0.0.1:8080";

/// The fenced blocks of `lang` in the walkthrough section, in order.
fn blocks(readme: &str, lang: &str) -> Vec<String> {
    let start = readme
        .find(SECTION)
        .unwrap_or_else(|| panic!("README.md has no {SECTION:?}"));
    let rest = &readme[start + SECTION.len()..];
    let section = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in section.lines() {
        match (&mut current, line.trim_end()) {
            (None, l) if l == format!("```{lang}") => current = Some(String::new()),
            (Some(block), "```") => {
                out.push(std::mem::take(block));
                current = None;
            }
            (Some(block), l) => {
                block.push_str(l);
                block.push('\n');
            }
            (None, l) if l.starts_with("```") => current = None,
            _ => {}
        }
    }
    out
}

/// `curl` replaced by a function that records each call's status and
/// fails the script unless it is 2xx; the body goes on to pipes as usual.
const PRELUDE: &str = r#"set -euo pipefail
curl() {
    local out code
    out=$(command curl -sS -w '\n%{http_code}' "$@") || { echo "curl failed: $*" >&2; exit 1; }
    code=${out##*$'\n'}
    echo "$code $*" >> "$CURL_LOG"
    case $code in
        2??) printf '%s\n' "${out%$'\n'*}" ;;
        *) echo "HTTP $code from curl $*: ${out%$'\n'*}" >&2; exit 1 ;;
    esac
}
"#;

#[tokio::test]
async fn the_readme_walkthrough_runs_against_up() {
    let readme = std::fs::read_to_string(crate::support::repo_path("README.md")).unwrap();
    let shell = blocks(&readme, "sh");
    let toml = blocks(&readme, "toml");
    assert!(shell.len() >= 2 && toml.len() == 1, "{shell:?} {toml:?}");
    let script = shell.join("\n");
    assert!(
        script.lines().any(|l| l.starts_with(API_LINE)),
        "the walkthrough no longer sets {API_LINE}"
    );
    let curls = script
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| l.matches("curl ").count())
        .sum::<usize>();
    for call in [
        "/v1/products?q=",
        "/prices",
        "/forecast",
        "/v1/recommendations",
        "/v1/watches",
        "/v1/admin/scrape-runs",
        "apikey create",
    ] {
        assert!(script.contains(call), "the walkthrough lacks {call}");
    }

    let db = crate::support::TestDb::empty().await;
    let dir = tempfile::tempdir().unwrap();
    // The walkthrough's shelfwatch.toml, as the README says to write it.
    let config = dir.path().join("shelfwatch.toml");
    std::fs::write(&config, &toml[0]).unwrap();
    let config = config.to_str().unwrap();
    let (up, _, api) = crate::up::serve_on(
        &db.url,
        &dir.path().join("spool"),
        &["--config", config],
        "30",
    )
    .await;

    // `shelfwatch` in the script is the binary under test.
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_shelfwatch"), bin.join("shelfwatch")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = script.replace(API_LINE, &format!("API=http://{api}"));
    let log = dir.path().join("curl.log");
    let mut bash = tokio::process::Command::new("bash");
    for (name, _) in std::env::vars() {
        if name.starts_with("SHELFWATCH_") {
            bash.env_remove(name);
        }
    }
    let out = bash
        .arg("-c")
        .arg(format!("{PRELUDE}{script}"))
        .env("PATH", path)
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .env("CURL_LOG", &log)
        .current_dir(crate::support::repo_path("."))
        .output()
        .await
        .unwrap();

    let exit = up.stop().await;

    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        out.status.success(),
        "the walkthrough failed ({}):\n{}\ncalls:\n{calls}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let statuses: Vec<&str> = calls.lines().filter_map(|l| l.split(' ').next()).collect();
    assert_eq!(statuses.len(), curls, "calls made:\n{calls}");
    assert!(statuses.iter().all(|s| s.starts_with('2')), "{calls}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("drop_percent"), "no watch in:\n{said}");
    assert!(exit.success(), "{exit}");
}
