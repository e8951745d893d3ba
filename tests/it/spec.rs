//! The server answers request bodies as openapi/openapi.json states them:
//! bodies are objects (never arrays), the admin POSTs' bodies may be left
//! out (no body, an empty body or `null` mean the defaults), and what is
//! well formed but names nothing that exists is a 404.

use reqwest::StatusCode;
use serde_json::{Value, json};
use shelfwatch_api::auth::{Scope, create_key};

use crate::api::{Api, seeded, serve};

async fn post(api: &Api, key: &str, path: &str, body: Option<&str>) -> (StatusCode, Value) {
    let mut request = api
        .http
        .post(format!("{}{path}", api.base))
        .header("x-api-key", key);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    let r = request.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn bodies_are_objects_and_optional_ones_may_be_left_out() {
    let db = seeded().await;
    let (_, admin) = create_key(&db.pool, "admin", &[Scope::Admin])
        .await
        .unwrap();
    let api = serve(db, |_| {}).await;

    // Arrays were read as structs from their fields in order.
    let hook = "http://127.0.0.1:9/hook";
    for (path, array) in [
        ("/v1/admin/forecast-runs", "[]".to_owned()),
        ("/v1/admin/scrape-runs", "[null]".to_owned()),
        ("/v1/admin/scrape-runs", "[\"tesco\"]".to_owned()),
        ("/v1/watches", format!("[1000, null, 10, \"{hook}\", null]")),
    ] {
        let (status, problem) = post(&api, &admin, path, Some(&array)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path} {array}");
        assert_eq!(
            problem["detail"], "request body: expected an object, not an array",
            "{path}"
        );
    }
    let nothing: i64 = sqlx::query_scalar("SELECT count(*) FROM watches")
        .fetch_one(&api.db.pool)
        .await
        .unwrap();
    assert_eq!(nothing, 0);

    // No body, an empty body, JSON null and an empty object all queue the
    // defaults (the same job, deduplicated while queued).
    for path in ["/v1/admin/forecast-runs", "/v1/admin/scrape-runs"] {
        for body in [None, Some(""), Some("null"), Some(" null "), Some("{}")] {
            let (status, accepted) = post(&api, &admin, path, body).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{path} {body:?}: {accepted}");
        }
    }
    // A body that is not an object or null is still refused.
    for body in ["1", "\"all\"", "true"] {
        let (status, _) = post(&api, &admin, "/v1/admin/scrape-runs", Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
    // A retailer of the right shape that does not exist is not found.
    let (status, problem) = post(
        &api,
        &admin,
        "/v1/admin/scrape-runs",
        Some(r#"{"retailer": "0"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(problem["detail"], "unknown retailer \"0\"");
    api.running
        .shutdown(std::time::Duration::from_secs(5))
        .await;
}

#[tokio::test]
async fn a_watch_is_on_a_price_or_on_a_drop_never_both() {
    let db = seeded().await;
    let (_, key) = create_key(&db.pool, "watcher", &[Scope::Watch])
        .await
        .unwrap();
    let api = serve(db, |_| {}).await;
    let hook = "http://127.0.0.1:9/hook";
    let watch = |extra: Value| {
        let mut body = json!({"product_id": 1000, "webhook_url": hook});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body.to_string()
    };
    for (extra, says) in [
        (
            json!({"target_price_pence": 100, "drop_percent": 10}),
            "exactly one of",
        ),
        (json!({}), "exactly one of"),
        (
            json!({"target_price_pence": null, "drop_percent": null}),
            "exactly one of",
        ),
        (json!({"target_price_pence": 0}), "positive price"),
        (json!({"drop_percent": 100}), "between 1 and 99"),
    ] {
        let (status, problem) = post(&api, &key, "/v1/watches", Some(&watch(extra.clone()))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{extra}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(says), "{extra}: {detail}");
    }
    // `null` for the kind not chosen is the same as leaving it out.
    for extra in [
        json!({"target_price_pence": 100, "drop_percent": null}),
        json!({"target_price_pence": null, "drop_percent": 10, "currency": null}),
    ] {
        let (status, _) = post(&api, &key, "/v1/watches", Some(&watch(extra.clone()))).await;
        assert_eq!(status, StatusCode::CREATED, "{extra}");
    }
    // A product id that no product has is not found.
    let body = json!({"product_id": 0, "drop_percent": 5, "webhook_url": hook}).to_string();
    let (status, problem) = post(&api, &key, "/v1/watches", Some(&body)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(problem["detail"], "no product 0");

    // The document states the two kinds, each refusing the other's field.
    let document: Value = serde_json::from_str(&shelfwatch_api::openapi::document()).unwrap();
    let schemas = &document["components"]["schemas"];
    assert_eq!(
        schemas["NewWatchBody"]["oneOf"],
        json!([{"$ref": "#/components/schemas/WatchAtPrice"},
               {"$ref": "#/components/schemas/WatchOnDrop"}])
    );
    for (kind, field) in [
        ("WatchAtPrice", "target_price_pence"),
        ("WatchOnDrop", "drop_percent"),
    ] {
        assert_eq!(schemas[kind]["additionalProperties"], false);
        assert!(
            schemas[kind]["required"]
                .as_array()
                .unwrap()
                .contains(&json!(field))
        );
    }
    api.running
        .shutdown(std::time::Duration::from_secs(5))
        .await;
}
