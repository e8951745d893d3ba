//! The receiver's side of webhooks: the verification example in
//! docs/webhooks.md, run as written.

use std::io::Write;
use std::process::{Command, Stdio};

use axum::http::HeaderMap;
use serde_json::json;

use crate::support::repo_path;

/// The Python block of docs/webhooks.md.
fn documented_example() -> String {
    let doc = std::fs::read_to_string(repo_path("docs/webhooks.md")).unwrap();
    let (_, rest) = doc.split_once("```python\n").expect("a Python example");
    let (code, _) = rest.split_once("```").unwrap();
    code.to_owned()
}

/// Whether the documented `verify` accepts this delivery at `now`.
pub fn python_verifies(
    secret: &str,
    headers: &HeaderMap,
    body: &str,
    now: f64,
) -> Result<(), String> {
    let header = |name: &str| headers[name].to_str().unwrap().to_owned();
    let input = json!({
        "secret": secret,
        "headers": {
            "webhook-id": header("webhook-id"),
            "webhook-timestamp": header("webhook-timestamp"),
            "webhook-signature": header("webhook-signature"),
        },
        "body": body,
        "now": now,
    });
    let program = format!(
        "{}\nimport json, sys\nargs = json.load(sys.stdin)\n\
         verify(args['secret'], args['headers'], args['body'].encode(), args['now'])\n\
         print('verified')\n",
        documented_example()
    );
    let mut child = Command::new("python3")
        .args(["-c", &program])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.success() && stdout.trim() == "verified" {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}
