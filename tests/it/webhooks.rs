//! Webhooks from the receiver's side (the verification example in
//! docs/webhooks.md, run as written) and the limit on how many watches
//! one caller may keep.

use std::io::Write;
use std::process::{Command, Stdio};

use axum::http::HeaderMap;
use reqwest::StatusCode;
use serde_json::{Value, json};
use shelfwatch_api::auth::{Scope, create_key};

use crate::api::{Api, seeded, serve};
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

/// POSTs a watch on product 1000 as `key`; returns the status and body.
async fn make_watch(api: &Api, key: &str) -> (StatusCode, Value) {
    let r = api
        .http
        .post(format!("{}/v1/watches", api.base))
        .header("x-api-key", key)
        .json(&json!({"product_id": 1000, "drop_percent": 10,
                      "webhook_url": "http://127.0.0.1:9/hook"}))
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

#[tokio::test]
async fn a_caller_cannot_make_watches_past_its_quota() {
    let db = seeded().await;
    let (_, first) = create_key(&db.pool, "first", &[Scope::Watch])
        .await
        .unwrap();
    let (_, second) = create_key(&db.pool, "second", &[Scope::Watch])
        .await
        .unwrap();
    let (_, racer) = create_key(&db.pool, "racer", &[Scope::Watch])
        .await
        .unwrap();
    let api = serve(db, |s| s.max_watches_per_principal = 3).await;

    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, watch) = make_watch(&api, &first).await;
        assert_eq!(status, StatusCode::CREATED);
        ids.push(watch["id"].as_i64().unwrap());
    }
    let (status, problem) = make_watch(&api, &first).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem["status"], 409);
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("already have 3 watches"), "{detail}");
    // The quota is per caller: another key is not affected.
    assert_eq!(make_watch(&api, &second).await.0, StatusCode::CREATED);
    // A deleted watch gives its place back.
    let deleted = api
        .http
        .delete(format!("{}/v1/watches/{}", api.base, ids[0]))
        .header("x-api-key", &first)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(make_watch(&api, &first).await.0, StatusCode::CREATED);

    // Ten at once cannot pass the quota together.
    let statuses = futures_util::future::join_all((0..10).map(|_| make_watch(&api, &racer))).await;
    let created = statuses
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    let refused = statuses
        .iter()
        .filter(|(s, _)| *s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, refused), (3, 7), "{statuses:?}");
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM watches WHERE owner LIKE 'key:%' AND deleted_at IS NULL",
    )
    .fetch_one(&api.db.pool)
    .await
    .unwrap();
    assert_eq!(live, 3 + 1 + 3);
    api.running
        .shutdown(std::time::Duration::from_secs(5))
        .await;
}
