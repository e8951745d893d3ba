//! The security properties SECURITY.md claims, each shown against the real
//! API and a real database: objects stay with their owner, webhooks never
//! reach inside the network, the router serves exactly what the OpenAPI
//! document lists, secrets stay out of the logs, errors say nothing
//! internal, and a stopped database gives quick 503s and recovers.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use shelfwatch::config::{DatabaseSettings, Secret};
use shelfwatch_api::ApiSettings;
use shelfwatch_api::auth::{JwtSettings, Scope, create_key};

use crate::api::{Api, seeded, serve};
use crate::support::{TestDb, poll, repo_path};

const JWT_SECRET: &str = "jwt-secret-for-the-security-tests-0123456789";

fn jwt_settings() -> JwtSettings {
    JwtSettings {
        issuer: "https://idp.example".into(),
        audience: "shelfwatch".into(),
        hs256_secret: Some(Secret::new(JWT_SECRET)),
        rs256_public_key_pem: None,
        scope_claim: "scope".into(),
        leeway_secs: 0,
    }
}

fn jwt_with(alg: jsonwebtoken::Algorithm, secret: &[u8], sub: &str, scope: &str) -> String {
    let claims = json!({
        "iss": "https://idp.example", "aud": "shelfwatch", "sub": sub,
        "exp": chrono::Utc::now().timestamp() + 300, "scope": scope,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(alg),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn jwt(sub: &str, scope: &str) -> String {
    jwt_with(
        jsonwebtoken::Algorithm::HS256,
        JWT_SECRET.as_bytes(),
        sub,
        scope,
    )
}

/// A credential as a request header: an API key or a JWT.
#[derive(Clone)]
enum Cred {
    Key(String),
    Bearer(String),
}

fn send(api: &Api, method: reqwest::Method, path: &str, cred: &Cred) -> reqwest::RequestBuilder {
    let r = api.http.request(method, format!("{}{path}", api.base));
    match cred {
        Cred::Key(k) => r.header("x-api-key", k),
        Cred::Bearer(t) => r.bearer_auth(t),
    }
}

async fn problem(r: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(r.status(), status, "{:?}", r.headers());
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16(), "{body}");
    body
}

async fn create_watch(api: &Api, cred: &Cred, url: &str) -> reqwest::Response {
    send(api, reqwest::Method::POST, "/v1/watches", cred)
        .json(&json!({"product_id": 1000, "drop_percent": 10, "webhook_url": url}))
        .send()
        .await
        .unwrap()
}

// ---- API1: object-level authorisation ---------------------------------------

#[tokio::test]
async fn watches_are_invisible_to_every_other_principal() {
    let db = seeded().await;
    let (_, alice) = create_key(&db.pool, "alice", &[Scope::Watch])
        .await
        .unwrap();
    let (_, bob) = create_key(&db.pool, "bob", &[Scope::Watch]).await.unwrap();
    let (_, ops) = create_key(&db.pool, "ops", &[Scope::Admin]).await.unwrap();
    let api = serve(db, |s| s.jwt = Some(jwt_settings())).await;
    let callers = [
        Cred::Key(alice),
        Cred::Key(bob),
        // Admin scope is about jobs, not other people's watches.
        Cred::Key(ops),
        Cred::Bearer(jwt("user-7", "watch")),
        // Another subject at the same identity provider.
        Cred::Bearer(jwt("user-8", "watch")),
    ];
    // Two watches each.
    let mut owned: Vec<Vec<i64>> = Vec::new();
    for c in &callers {
        let mut ids = Vec::new();
        for _ in 0..2 {
            let r = create_watch(&api, c, "http://127.0.0.1:9/hook").await;
            assert_eq!(r.status(), StatusCode::CREATED);
            ids.push(r.json::<Value>().await.unwrap()["id"].as_i64().unwrap());
        }
        owned.push(ids);
    }
    let all: Vec<i64> = owned.iter().flatten().copied().collect();
    let missing = all.iter().max().unwrap() + 1000;
    for (i, c) in callers.iter().enumerate() {
        // The list, walked one item a page, holds exactly the caller's own.
        let mut seen = Vec::new();
        let mut path = "/v1/watches?limit=1".to_owned();
        loop {
            let page: Value = send(&api, reqwest::Method::GET, &path, c)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            for w in page["data"].as_array().unwrap() {
                assert!(w.get("secret").is_none(), "{w}");
                seen.push(w["id"].as_i64().unwrap());
            }
            match page["next_cursor"].as_str() {
                Some(cursor) => path = format!("/v1/watches?limit=1&cursor={cursor}"),
                None => break,
            }
        }
        assert_eq!(seen, owned[i], "caller {i}");
        for &id in &all {
            let path = format!("/v1/watches/{id}");
            let get = send(&api, reqwest::Method::GET, &path, c)
                .send()
                .await
                .unwrap();
            if owned[i].contains(&id) {
                assert_eq!(get.status(), StatusCode::OK);
                assert!(get.json::<Value>().await.unwrap().get("secret").is_none());
                continue;
            }
            // Another's watch looks exactly like one that does not exist.
            let body = problem(get, StatusCode::NOT_FOUND).await;
            assert_eq!(body["detail"], format!("no watch {id}"));
            let del = send(&api, reqwest::Method::DELETE, &path, c)
                .send()
                .await
                .unwrap();
            let body = problem(del, StatusCode::NOT_FOUND).await;
            assert_eq!(body["detail"], format!("no watch {id}"));
        }
        let nothing = send(
            &api,
            reqwest::Method::GET,
            &format!("/v1/watches/{missing}"),
            c,
        )
        .send()
        .await
        .unwrap();
        let body = problem(nothing, StatusCode::NOT_FOUND).await;
        assert_eq!(body["detail"], format!("no watch {missing}"));
    }
    // Nobody's attempts deleted anything.
    let live: i64 = sqlx::query_scalar("SELECT count(*) FROM watches WHERE deleted_at IS NULL")
        .fetch_one(&api.db.pool)
        .await
        .unwrap();
    assert_eq!(live, all.len() as i64);
    // The owner is whoever called; a body cannot choose it (API3).
    for extra in [
        json!({"owner": "key:1"}),
        json!({"id": 1}),
        json!({"secret": "x"}),
    ] {
        let mut body = json!({"product_id": 1000, "drop_percent": 10,
                              "webhook_url": "http://127.0.0.1:9/hook"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let r = send(&api, reqwest::Method::POST, "/v1/watches", &callers[0])
            .json(&body)
            .send()
            .await
            .unwrap();
        problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
}

// ---- API2: authentication ---------------------------------------------------

#[tokio::test]
async fn no_default_keys_and_forged_or_revoked_credentials_fail() {
    let db = TestDb::new().await;
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(keys, 0, "a fresh database has no keys");
    drop(db);
    let db = seeded().await;
    let (id, revoked) = create_key(&db.pool, "gone", &[Scope::Admin]).await.unwrap();
    sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE id = $1")
        .bind(id)
        .execute(&db.pool)
        .await
        .unwrap();
    let api = serve(db, |s| s.jwt = Some(jwt_settings())).await;
    let b64 = |v: Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let claims = json!({"iss": "https://idp.example", "aud": "shelfwatch", "sub": "x",
                        "exp": chrono::Utc::now().timestamp() + 300, "scope": "admin"});
    let unsigned = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(claims)
    );
    let guesses = [
        Cred::Key("admin".into()),
        Cred::Key("sw_admin".into()),
        Cred::Key("changeme".into()),
        Cred::Key(String::new()),
        Cred::Key(revoked),
        Cred::Bearer(unsigned),
        // Right secret, algorithm not the configured one.
        Cred::Bearer(jwt_with(
            jsonwebtoken::Algorithm::HS384,
            JWT_SECRET.as_bytes(),
            "x",
            "admin",
        )),
        Cred::Bearer(jwt_with(
            jsonwebtoken::Algorithm::HS256,
            b"guessed",
            "x",
            "admin",
        )),
    ];
    for (i, c) in guesses.iter().enumerate() {
        let r = send(&api, reqwest::Method::GET, "/v1/admin/runs", c)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "guess {i}");
    }
    // The right token works, so the refusals above are about the token.
    let ok = send(
        &api,
        reqwest::Method::GET,
        "/v1/admin/runs",
        &Cred::Bearer(jwt("x", "admin")),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_revoked_key_stops_working_at_once() {
    let db = seeded().await;
    let (id, key) = create_key(&db.pool, "soon-gone", &[Scope::Watch])
        .await
        .unwrap();
    let api = serve(db, |_| ()).await;
    // The API hears revocations once its subscription is up; keys are
    // cached from then on.
    poll(
        "the API to listen for key revocations",
        Duration::from_secs(10),
        async || {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND query LIKE 'LISTEN %'",
            )
            .fetch_one(&api.db.pool)
            .await
            .unwrap()
                > 0
        },
    )
    .await;
    let cred = Cred::Key(key);
    for _ in 0..3 {
        let r = send(&api, reqwest::Method::GET, "/v1/watches", &cred)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    // Revoked by another process: the command line, on its own pool.
    let out = shelfwatch(&api.db.url, &["apikey", "revoke", "--id", &id.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let revoked_at = Instant::now();
    poll(
        "the revoked key to be refused",
        Duration::from_secs(1),
        async || {
            send(&api, reqwest::Method::GET, "/v1/watches", &cred)
                .send()
                .await
                .unwrap()
                .status()
                == StatusCode::UNAUTHORIZED
        },
    )
    .await;
    assert!(revoked_at.elapsed() < Duration::from_secs(1));
    // And it stays refused.
    let r = send(&api, reqwest::Method::GET, "/v1/watches", &cred)
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNAUTHORIZED).await;
}

// ---- API4: unlimited endpoints ---------------------------------------------------

#[tokio::test]
async fn readiness_floods_reach_the_database_once_and_the_document_is_limited() {
    let api = serve(seeded().await, |s| {
        s.rate_limit.per_ip_per_sec = 0.5;
        s.rate_limit.per_ip_burst = 3;
        // 500 connections from one address: past the default cap.
        s.connections.max_connections_per_client = 0;
    })
    .await;
    // Hold the readiness check inside the database, to count the checks
    // 500 concurrent probes start.
    let mut lock = api.db.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE _sqlx_migrations IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let probes: Vec<_> = (0..500)
        .map(|_| {
            let (http, url) = (api.http.clone(), format!("{}/readyz", api.base));
            tokio::spawn(async move { http.get(url).send().await.unwrap().status() })
        })
        .collect();
    // Counted on a connection of its own: the API's pool may be exhausted.
    let counter = tokio::sync::Mutex::new(
        <sqlx::PgConnection as sqlx::Connection>::connect(&api.db.url)
            .await
            .unwrap(),
    );
    let checks = async || -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock' AND query LIKE '%_sqlx_migrations%'",
        )
        .fetch_one(&mut *counter.lock().await)
        .await
        .unwrap()
    };
    poll("a readiness check", Duration::from_secs(5), async || {
        checks().await > 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        checks().await,
        1,
        "concurrent probes each asked the database"
    );
    lock.commit().await.unwrap();
    for p in probes {
        // Probes are never refused by a rate limit.
        assert_eq!(p.await.unwrap(), StatusCode::OK);
    }
    // The OpenAPI document is limited per address like anonymous calls.
    for _ in 0..3 {
        assert_eq!(api.get("/openapi.json").await.status(), StatusCode::OK);
    }
    let r = api.get("/openapi.json").await;
    assert!(r.headers().contains_key("retry-after"), "{:?}", r.headers());
    problem(r, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(api.get("/readyz").await.status(), StatusCode::OK);
}

// ---- API4: time limits -------------------------------------------------------

#[tokio::test]
async fn the_api_refuses_to_start_with_a_guessable_jwt_secret() {
    let db = TestDb::new().await;
    for secret in ["", "short-secret", &JWT_SECRET[..31]] {
        let mut settings = crate::api::test_settings();
        settings.jwt = Some(JwtSettings {
            hs256_secret: Some(Secret::new(secret)),
            ..jwt_settings()
        });
        let e = match shelfwatch_api::start(db.pool.clone(), settings).await {
            Ok(_) => panic!("started with a {}-byte HS256 secret", secret.len()),
            Err(e) => format!("{e:#}"),
        };
        assert!(e.contains("api.jwt.hs256_secret"), "{e}");
    }
}

#[tokio::test]
async fn a_request_stuck_in_the_database_ends_at_the_time_limit() {
    let api = serve(seeded().await, |s| s.request_timeout_secs = 1).await;
    // Another session holds the table, so the read waits on its lock.
    let mut tx = api.db.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE retailers IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .unwrap();
    let started = Instant::now();
    let r = api
        .http
        .get(format!("{}/v1/retailers", api.base))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    let body = problem(r, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(body["detail"].as_str().unwrap().contains("too long"));
    tx.rollback().await.unwrap();
    let r = api
        .http
        .get(format!("{}/v1/retailers", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

// ---- API7: webhooks never reach inside the network ---------------------------

/// The API over seeded data, set up by `tweak`, and a key with `scope`.
async fn keyed_api(scope: Scope, tweak: impl FnOnce(&mut ApiSettings)) -> (Api, Cred) {
    let db = seeded().await;
    let (_, key) = create_key(&db.pool, "caller", &[scope]).await.unwrap();
    (serve(db, tweak).await, Cred::Key(key))
}

/// The API with these webhook hosts allowed, and a key that may make watches.
async fn hooks_api(allowed: &[&str]) -> (Api, Cred) {
    let allowed: Vec<String> = allowed.iter().map(|h| h.to_string()).collect();
    keyed_api(Scope::Watch, |s| s.webhooks.allowed_hosts = allowed).await
}

#[tokio::test]
async fn webhook_targets_inside_the_network_are_refused() {
    let (api, key) = hooks_api(&[]).await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://127.1.2.3/hook",
        "http://10.0.0.1/hook",
        "http://10.200.3.4:8080/hook",
        "http://172.16.0.1/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/hook",
        "http://0.0.0.0:9/hook",
        "http://[::1]:9/hook",
        "http://[::]:9/hook",
        "http://[fe80::1]/hook",
        "http://[fd00::1]/hook",
        "http://[::ffff:127.0.0.1]:9/hook",
        "http://[::ffff:169.254.169.254]/hook",
        // IPv4 inside IPv6: NAT64, IPv4-compatible, 6to4, Teredo.
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[64:ff9b::7f00:1]/",
        "http://[64:ff9b:1::a9fe:a9fe]/",
        "http://[::127.0.0.1]/",
        "http://[::a9fe:a9fe]/",
        "http://[2002:a9fe:a9fe::1]/",
        "http://[2002:7f00:1::1]/",
        "http://[2001:0:a9fe:a9fe::1]/",
        // Site-local, documentation, benchmarking, reserved, IETF.
        "http://[fec0::1]/",
        "http://[2001:db8::1]/",
        "http://198.18.0.1/",
        "http://240.0.0.1/",
        "http://192.0.0.170/",
        // Other spellings of 127.0.0.1.
        "http://2130706433/hook",
        "http://0x7f.1/hook",
        "http://0177.0.0.1/hook",
        // A name that resolves to loopback.
        "http://localhost:9/hook",
        "http://LOCALHOST:9/hook",
        // https is checked the same way.
        "https://127.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[64:ff9b::a9fe:a9fe]/",
        "https://localhost:8443/hook",
    ] {
        let body = problem(
            create_watch(&api, &key, url).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("allowed_hosts"), "{url}: {detail}");
    }
    for url in [
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_INFO",
        "ftp://8.8.8.8/x",
        "http://user:pass@8.8.8.8/x",
        "http:///x",
        "not a url",
        // Refused whether or not the resolver knows the trailing dot.
        "http://localhost./hook",
    ] {
        problem(
            create_watch(&api, &key, url).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM watches")
        .fetch_one(&api.db.pool)
        .await
        .unwrap();
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn webhook_urls_are_stored_as_checked() {
    let (api, key) = hooks_api(&["127.0.0.1"]).await;
    for (raw, stored) in [
        ("http://0x7f000001:18610/", "http://127.0.0.1:18610/"),
        (
            "http://127.0.0.1:18610/hook\n\t",
            "http://127.0.0.1:18610/hook",
        ),
    ] {
        let r = create_watch(&api, &key, raw).await;
        assert_eq!(r.status(), StatusCode::CREATED, "{raw:?}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["webhook_url"], stored, "{body}");
        let id = body["id"].as_i64().unwrap();
        let url: String = sqlx::query_scalar("SELECT webhook_url FROM watches WHERE id = $1")
            .bind(id)
            .fetch_one(&api.db.pool)
            .await
            .unwrap();
        assert_eq!(url, stored);
    }
}

type Hits = Arc<Mutex<Vec<String>>>;

/// A listener on `ip` that answers every request with `status` (and a
/// `Location` when given), recording the paths it was asked for.
async fn listener(ip: &str, status: u16, location: Option<String>) -> (SocketAddr, Hits) {
    use axum::response::IntoResponse;
    let hits: Hits = Arc::default();
    let seen = hits.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let seen = seen.clone();
        let location = location.clone();
        async move {
            seen.lock().unwrap().push(uri.path().to_owned());
            let status = axum::http::StatusCode::from_u16(status).unwrap();
            match location {
                Some(l) => (status, [(axum::http::header::LOCATION, l)]).into_response(),
                None => status.into_response(),
            }
        }
    });
    let l = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (addr, hits)
}

async fn deliveries(pool: &sqlx::PgPool) -> Vec<(String, Option<i32>, Option<String>)> {
    sqlx::query_as("SELECT status, last_status, last_error FROM webhook_deliveries ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// A watch met at once: a target above today's cheapest price.
async fn met_watch(api: &Api, key: &Cred, url: &str) {
    let product: Value = api
        .http
        .get(format!("{}/v1/products/1000", api.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cheapest = product["cheapest"][0]["effective_price"]["amount_minor"]
        .as_i64()
        .unwrap();
    let r = send(api, reqwest::Method::POST, "/v1/watches", key)
        .json(&json!({"product_id": 1000, "target_price_pence": cheapest + 1, "webhook_url": url}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn webhook_redirects_are_not_followed() {
    // 127.0.0.2 stands for an internal service: loopback, not allow-listed.
    let (inside, inside_hits) = listener("127.0.0.2", 204, None).await;
    let (redirector, redirector_hits) =
        listener("127.0.0.1", 307, Some(format!("http://{inside}/steal"))).await;
    let db = seeded().await;
    let (_, key) = create_key(&db.pool, "hooks", &[Scope::Watch])
        .await
        .unwrap();
    let key = Cred::Key(key);
    let api = serve(db, |s| {
        s.webhooks.allowed_hosts = vec!["127.0.0.1".into()];
        s.webhooks.max_attempts = 2;
    })
    .await;
    // The internal address itself is refused...
    problem(
        create_watch(&api, &key, &format!("http://{inside}/steal")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    // ...and so is a detour through an allowed receiver that redirects there.
    met_watch(&api, &key, &format!("http://{redirector}/hook")).await;
    assert_eq!(
        shelfwatch_alerts::evaluate_watches(&api.db.pool)
            .await
            .unwrap(),
        1
    );
    let pool = api.db.pool.clone();
    poll(
        "the delivery to be given up",
        Duration::from_secs(20),
        async || deliveries(&pool).await[0].0 == "failed",
    )
    .await;
    let (_, status, error) = deliveries(&api.db.pool).await.remove(0);
    assert_eq!(status, Some(307));
    assert!(error.unwrap().contains("307"));
    assert_eq!(redirector_hits.lock().unwrap().len(), 2);
    assert!(inside_hits.lock().unwrap().is_empty(), "redirect followed");
}

#[tokio::test]
async fn webhook_targets_are_checked_again_when_delivered() {
    let (receiver, hits) = listener("127.0.0.1", 204, None).await;
    let db = seeded().await;
    let (_, key) = create_key(&db.pool, "hooks", &[Scope::Watch])
        .await
        .unwrap();
    let key = Cred::Key(key);
    // Allowed when the watch was made...
    let api = serve(db, |s| {
        s.webhooks.allowed_hosts = vec!["127.0.0.1".into()];
        s.webhooks.worker = false;
    })
    .await;
    met_watch(&api, &key, &format!("http://{receiver}/hook")).await;
    assert_eq!(
        shelfwatch_alerts::evaluate_watches(&api.db.pool)
            .await
            .unwrap(),
        1
    );
    api.running.shutdown(Duration::from_secs(5)).await;
    // ...but no longer when it is delivered.
    let api = serve(api.db, |s| {
        s.webhooks.allowed_hosts = Vec::new();
        s.webhooks.max_attempts = 1;
    })
    .await;
    let pool = api.db.pool.clone();
    poll(
        "the delivery to be given up",
        Duration::from_secs(20),
        async || deliveries(&pool).await[0].0 == "failed",
    )
    .await;
    let (_, status, error) = deliveries(&api.db.pool).await.remove(0);
    assert_eq!(status, None, "nothing was sent");
    assert!(error.unwrap().contains("allowed_hosts"));
    assert!(hits.lock().unwrap().is_empty());
}

#[tokio::test]
async fn nul_characters_are_400_problems_not_database_errors() {
    use base64::Engine;
    let (api, key) = hooks_api(&["127.0.0.1"]).await;
    let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"["\u0000",1]"#);
    for path in [
        "/v1/products?category=%00".to_owned(),
        "/v1/products?q=milk%00".to_owned(),
        "/v1/recommendations?category=%00".to_owned(),
        format!("/v1/products?cursor={cursor}"),
    ] {
        let r = send(&api, reqwest::Method::GET, &path, &key)
            .send()
            .await
            .unwrap();
        problem(r, StatusCode::BAD_REQUEST).await;
    }
    for body in [
        json!({"product_id": 1000, "drop_percent": 10, "webhook_url": "http://127.0.0.1:9/\u{0}"}),
        json!({"product_id": 1000, "drop_percent": 10, "webhook_url": "http://127.0.0.1:9/", "currency": "GB\u{0}"}),
    ] {
        let r = send(&api, reqwest::Method::POST, "/v1/watches", &key)
            .json(&body)
            .send()
            .await
            .unwrap();
        problem(r, StatusCode::BAD_REQUEST).await;
    }
}

#[tokio::test]
async fn times_outside_what_the_database_holds_are_400_problems() {
    let api = serve(seeded().await, |_| {}).await;
    // Not RFC 3339: a year of other than four digits.
    for query in [
        "from=-5000-01-01&to=-4999-12-01",
        "from=-5000-01-01",
        "to=%2B262000-01-01",
        "from=%2B262000-01-01&to=%2B262000-02-01",
        "from=",
    ] {
        let r = api.get(&format!("/v1/products/1000/prices?{query}")).await;
        let body = problem(r, StatusCode::BAD_REQUEST).await;
        assert!(
            body["detail"].as_str().unwrap().contains("four-digit year"),
            "{query}: {body}"
        );
    }
    // The edges are in range, and echoed in RFC 3339; RFC 3339 times
    // beyond them (a 1969 date, a 9999 time whose UTC is in 10000) are
    // moved to them, so the database and the answer can hold every one.
    for (query, from, to) in [
        (
            "from=1970-01-01&to=1971-01-01",
            "1970-01-01T00:00:00Z",
            "1971-01-01T00:00:00Z",
        ),
        (
            "from=9999-01-01&to=9999-12-31T23:59:59Z",
            "9999-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
        ),
        (
            "from=1969-12-01&to=1970-01-02",
            "1970-01-01T00:00:00Z",
            "1970-01-02T00:00:00Z",
        ),
        (
            "from=9999-12-01&to=9999-12-31T23:00:00-05:00",
            "9999-12-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
        ),
        (
            "from=0001-01-01T00:00:00%2B01:00&to=0001-01-02T00:00:00Z",
            "1970-01-01T00:00:00Z",
            "1970-01-01T00:00:00Z",
        ),
    ] {
        let body = api.json(&format!("/v1/products/1000/prices?{query}")).await;
        assert_eq!(
            (body["from"].as_str(), body["to"].as_str()),
            (Some(from), Some(to)),
            "{query}"
        );
    }
}

#[tokio::test]
async fn refusals_are_in_the_apis_own_words() {
    let (api, admin) = keyed_api(Scope::Admin, |s| s.jwt = Some(jwt_settings())).await;
    let leaks = [
        "variant",
        "HS256",
        "InvalidToken",
        "struct",
        "ScrapeRequest",
        "CreateWatch",
        "i64",
        "line 1",
        "Failed to",
    ];
    let mut details = Vec::new();
    // Tokens: unsigned, malformed, signed with another secret.
    for token in [
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4In0.".to_owned(),
        "not-a-jwt".to_owned(),
        "a.b.c".to_owned(),
        jwt_with(jsonwebtoken::Algorithm::HS256, &[7; 32], "x", "admin"),
    ] {
        let r = send(
            &api,
            reqwest::Method::GET,
            "/v1/admin/runs",
            &Cred::Bearer(token),
        )
        .send();
        details.push(problem(r.await.unwrap(), StatusCode::UNAUTHORIZED).await);
    }
    // Bodies of the wrong shape and queries of the wrong type.
    for (path, body) in [
        ("/v1/admin/scrape-runs", "[]"),
        ("/v1/admin/scrape-runs", "\"x\""),
        ("/v1/admin/scrape-runs", "{\"retailer\": 5}"),
        ("/v1/watches", "{\"product_id\": \"x\"}"),
        ("/v1/watches", "{"),
    ] {
        let r = send(&api, reqwest::Method::POST, path, &admin)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        assert!(status.is_client_error(), "{path} {body}: {status}");
        details.push(problem(r, status).await);
    }
    for path in ["/v1/products?limit=abc", "/v1/products/abc"] {
        let r = send(&api, reqwest::Method::GET, path, &admin).send();
        details.push(problem(r.await.unwrap(), StatusCode::BAD_REQUEST).await);
    }
    for body in details {
        let detail = body["detail"].as_str().unwrap();
        for leak in leaks {
            assert!(!detail.contains(leak), "{leak} in {detail:?}");
        }
    }
}

// ---- API8: misconfiguration ----------------------------------------------------

#[tokio::test]
async fn server_errors_say_nothing_internal() {
    let api = serve(seeded().await, |_| {}).await;
    sqlx::query("ALTER TABLE retailers RENAME TO retailers_moved_away")
        .execute(&api.db.pool)
        .await
        .unwrap();
    let r = api
        .http
        .get(format!("{}/v1/retailers", api.base))
        .send()
        .await
        .unwrap();
    let request_id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body = problem(r, StatusCode::INTERNAL_SERVER_ERROR).await;
    assert_eq!(body["request_id"], request_id.as_str());
    assert_eq!(
        body["detail"],
        "an internal error occurred; quote the request id when reporting it"
    );
    let text = body.to_string().to_lowercase();
    for internal in [
        "retailers",
        "relation",
        "select",
        "sqlx",
        "postgres",
        "database",
        ".rs",
    ] {
        assert!(!text.contains(internal), "{internal} in {text}");
    }
}

// ---- API9: inventory ---------------------------------------------------------

/// Routes served outside the API proper: the OpenAPI document and its UI.
const NOT_API: [&str; 2] = ["/docs", "/openapi.json"];

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// (method, path) of every operation in the committed OpenAPI document.
fn documented() -> BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(repo_path("openapi/openapi.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let m = method.to_uppercase();
            if METHODS.contains(&m.as_str()) {
                out.insert((m, path.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn router_serves_exactly_the_documented_operations() {
    // The router and the document come from one list of routes
    // (`shelfwatch_api::operations`); the running server is asked whether
    // it serves exactly what the committed document lists.
    let documented = documented();
    assert!(documented.len() >= 16, "{documented:?}");
    let api = serve(seeded().await, |_| {}).await;
    let paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    for path in paths {
        let concrete = path.replace("{id}", "1");
        for m in METHODS {
            let method = reqwest::Method::from_bytes(m.as_bytes()).unwrap();
            let r = api
                .http
                .request(method, format!("{}{concrete}", api.base))
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = r.status();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            if documented.contains(&(m.to_owned(), path.clone())) {
                assert!(
                    status != StatusCode::METHOD_NOT_ALLOWED
                        && body["detail"] != "no such resource",
                    "{m} {path} is documented but not served: {status} {body}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{m} {path} is served but not documented"
                );
            }
        }
    }
    // Nothing else answers, on any method.
    for path in [
        "/",
        "/v1",
        "/v2/products",
        "/v1/keys",
        "/v1/admin",
        "/v1/admin/keys",
        "/v1/admin/jobs",
        "/v1/watches/1/deliveries",
        "/metrics",
        "/debug",
        "/admin",
        "/.env",
    ] {
        for m in METHODS {
            let method = reqwest::Method::from_bytes(m.as_bytes()).unwrap();
            let r = api
                .http
                .request(method, format!("{}{path}", api.base))
                .send()
                .await
                .unwrap();
            let body = problem(r, StatusCode::NOT_FOUND).await;
            assert_eq!(body["detail"], "no such resource", "{m} {path}");
        }
    }
    // The non-API routes are the document and its UI, read-only.
    for path in NOT_API {
        let r = api
            .http
            .get(format!("{}{path}", api.base))
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success() || r.status().is_redirection(),
            "{path}"
        );
    }
}

// ---- secrets never reach the logs ----------------------------------------------

/// The binary with only this test's settings and debug logs as JSON.
fn shelfwatch(db_url: &str, args: &[&str]) -> std::process::Command {
    let mut cmd = crate::support::shelfwatch_command(&["--log-format", "json"]);
    cmd.args(args)
        .env("DATABASE_URL", db_url)
        .env("RUST_LOG", "debug");
    cmd
}

type Received = Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>>;

async fn receiver() -> (SocketAddr, Received) {
    let received: Received = Arc::default();
    let store = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: String| async move {
                store.lock().unwrap().push((headers, body));
                axum::http::StatusCode::NO_CONTENT
            },
        ),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (addr, received)
}

#[tokio::test]
async fn secrets_never_reach_the_logs() {
    use std::io::{BufRead, BufReader};
    let db = seeded().await;
    let password = reqwest::Url::parse(&db.url)
        .unwrap()
        .password()
        .unwrap()
        .to_owned();
    assert!(password.len() >= 8, "the test cluster has a real password");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

    // A key, printed once on stdout.
    let out = shelfwatch(
        &db.url,
        &["apikey", "create", "--name", "logs", "--scopes", "watch"],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("sw_"));
    let mut logs = String::from_utf8(out.stderr).unwrap();

    // A wrong password must not be printed either.
    let wrong_password = "Wr0ng-pa55word-for-the-log-test";
    let mut wrong = reqwest::Url::parse(&db.url).unwrap();
    wrong.set_password(Some(wrong_password)).unwrap();
    let out = shelfwatch(wrong.as_str(), &["serve", "--bind", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let refused = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!refused.contains(wrong_password), "{refused}");
    logs.push_str(&refused);

    let config = dir.path().join("shelfwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nrequire_key_for_reads = true\n\
             [api.jwt]\nissuer = \"https://idp.example\"\naudience = \"shelfwatch\"\n\
             hs256_secret = \"{JWT_SECRET}\"\n\
             [api.webhooks]\nallowed_hosts = [\"127.0.0.1\"]\nevaluate_every_secs = 1\n\
             poll_interval_ms = 100\n"
        ),
    )
    .unwrap();
    let log_path = dir.path().join("serve.log");
    let mut child = shelfwatch(
        &db.url,
        &[
            "--config",
            config.to_str().unwrap(),
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--metrics-bind",
            "127.0.0.1:0",
        ],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::fs::File::create(&log_path).unwrap())
    .spawn()
    .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = tokio::task::spawn_blocking(move || rx.recv().unwrap())
        .await
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("API listening on ")
        .unwrap()
        .to_owned();
    let http = reqwest::Client::new();
    let token = jwt("log-user", "watch");
    let wrong_key = "sw_ThisIsNotAKeyButMustNotBeLoggedEither0123456";
    // Credentials in both headers, good and bad.
    for (name, value, want) in [
        ("x-api-key", key.clone(), StatusCode::OK),
        ("authorization", format!("Bearer {key}"), StatusCode::OK),
        ("authorization", format!("Bearer {token}"), StatusCode::OK),
        ("x-api-key", wrong_key.to_owned(), StatusCode::UNAUTHORIZED),
        (
            "authorization",
            format!("Bearer {token}x"),
            StatusCode::UNAUTHORIZED,
        ),
    ] {
        let r = http
            .get(format!("{base}/v1/watches"))
            .header(name, &value)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), want, "{name}");
    }
    // A watch whose webhook is signed with its secret, and delivered.
    let (hook, received) = receiver().await;
    let product: Value = http
        .get(format!("{base}/v1/products/1000"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cheapest = product["cheapest"][0]["effective_price"]["amount_minor"]
        .as_i64()
        .unwrap();
    let created: Value = http
        .post(format!("{base}/v1/watches"))
        .bearer_auth(&key)
        .json(
            &json!({"product_id": 1000, "target_price_pence": cheapest + 1,
                      "webhook_url": format!("http://{hook}/hook")}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    poll("the webhook", Duration::from_secs(20), async || {
        !received.lock().unwrap().is_empty()
    })
    .await;
    let (headers, body) = received.lock().unwrap()[0].clone();
    crate::webhooks::assert_signed(&secret, &headers, &body);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status}");
    logs.push_str(&std::fs::read_to_string(&log_path).unwrap());

    // The logs were on and detailed: JSON lines at debug, requests included.
    let lines: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(lines.len() > 20, "{logs}");
    assert!(lines.iter().any(|l| l["level"] == "DEBUG"), "{logs}");
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "request" && l["route"] == "/v1/watches"),
        "{logs}"
    );
    for (what, secret) in [
        ("database password", password.as_str()),
        ("API key", key.as_str()),
        ("API key body", &key[3..]),
        ("wrong API key", wrong_key),
        ("JWT", token.as_str()),
        ("JWT signature", token.rsplit('.').next().unwrap()),
        ("JWT signing secret", JWT_SECRET),
        ("webhook secret", secret.as_str()),
        ("webhook secret body", &secret["whsec_".len()..]),
    ] {
        assert!(!logs.contains(secret), "the {what} is in the logs");
    }
}

// ---- dependencies failing: the database stops and comes back -------------------

#[tokio::test]
async fn stopped_database_gives_quick_503s_and_recovers_by_itself() {
    let pg = crate::support::OwnCluster::start().await;
    let settings = DatabaseSettings {
        max_connections: 4,
        ..DatabaseSettings::default()
    };
    // The pool `serve` builds: default settings, waits capped.
    let pool = shelfwatch_api::connect(&Secret::new(pg.url.clone()), &settings)
        .await
        .unwrap();
    let (_, key) = create_key(&pool, "outage", &[Scope::Watch]).await.unwrap();
    let running = shelfwatch_api::start(pool, crate::api::test_settings())
        .await
        .unwrap();
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let get = |path: &str, key: Option<&str>| {
        let mut r = http.get(format!("{base}{path}"));
        if let Some(k) = key {
            r = r.header("x-api-key", k);
        }
        r.send()
    };
    for path in ["/readyz", "/v1/retailers"] {
        assert_eq!(get(path, None).await.unwrap().status(), StatusCode::OK);
    }

    let cluster = pg.handle();
    tokio::task::spawn_blocking(move || cluster.stop().unwrap())
        .await
        .unwrap();
    // `/readyz` reuses its answer for up to a second.
    tokio::time::sleep(shelfwatch_api::health::READINESS_TTL).await;
    // Twice each: the first finds the pool's dead connections, the second
    // an empty pool that cannot connect.
    for _ in 0..2 {
        for (path, key) in [
            ("/readyz", None),
            ("/v1/retailers", None),
            ("/v1/products/1", None),
            // A key not yet seen must be looked up, and cannot be.
            ("/v1/watches", Some(key.as_str())),
        ] {
            let started = Instant::now();
            let r = get(path, key).await.unwrap();
            let took = started.elapsed();
            let body = problem(r, StatusCode::SERVICE_UNAVAILABLE).await;
            assert!(took < Duration::from_secs(3), "{path} took {took:?}");
            assert!(
                body["detail"].as_str().unwrap().contains("database"),
                "{path}: {body}"
            );
        }
    }
    // The process itself is alive.
    assert_eq!(
        get("/healthz", None).await.unwrap().status(),
        StatusCode::OK
    );

    // The database returns on the same port; the API was never restarted.
    pg.restart().await;
    poll(
        "the API to be ready again",
        Duration::from_secs(15),
        async || {
            get("/readyz", None)
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK)
        },
    )
    .await;
    assert_eq!(
        get("/v1/retailers", None).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        get("/v1/watches", Some(&key)).await.unwrap().status(),
        StatusCode::OK
    );
    running.shutdown(Duration::from_secs(5)).await;
}

/// The API's pool runs statements on their generic plans and takes
/// connections without a ping (BENCHMARKS.md, "API reads without the
/// cache"); what that costs is one failed request per connection that died
/// while idle, after which the pool connects afresh.
#[tokio::test]
async fn api_pool_plans_generically_and_replaces_a_dead_connection_after_one_failure() {
    let db = TestDb::new().await;
    let settings = DatabaseSettings {
        max_connections: 1,
        ..DatabaseSettings::default()
    };
    let url = Secret::new(db.url.clone());
    let api_pool = shelfwatch_api::connect(&url, &settings).await.unwrap();
    let mode = |pool: sqlx::PgPool| async move {
        sqlx::query_scalar::<_, String>("SELECT current_setting('plan_cache_mode')")
            .fetch_one(&pool)
            .await
    };
    assert_eq!(mode(api_pool.clone()).await.unwrap(), "force_generic_plan");
    // Other roles keep PostgreSQL's own choice.
    let other = shelfwatch_store::db::connect(&url, &settings)
        .await
        .unwrap();
    assert_eq!(mode(other.clone()).await.unwrap(), "auto");

    // The pool's one connection dies while idle. sqlx gives a connection
    // back to the pool after a ping of its own, in the background: wait
    // until it is idle again, or the kill could land before that ping,
    // which would catch it.
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&api_pool)
        .await
        .unwrap();
    poll(
        "the connection to be idle in the pool",
        Duration::from_secs(5),
        async || api_pool.num_idle() == 1,
    )
    .await;
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
        .bind(pid)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(killed);
    let first = mode(api_pool.clone()).await;
    let err = first.expect_err("the dead connection is not pinged first");
    assert!(
        shelfwatch_store::error::StoreError::from(err).is_unavailable(),
        "a dead connection reads as the database being away"
    );
    // The failed connection was dropped: the next request gets a new one.
    assert_eq!(mode(api_pool.clone()).await.unwrap(), "force_generic_plan");
    let new_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&api_pool)
        .await
        .unwrap();
    assert_ne!(new_pid, pid);
}

#[test]
fn rate_limit_holds_under_concurrent_callers() {
    // The limiter counts one caller's requests exactly even when they
    // arrive on many threads at once (API4; it needs no database).
    let limiter = Arc::new(shelfwatch_api::ratelimit::Limiter::new(1.0, 10));
    let granted = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let limiter = limiter.clone();
            let granted = granted.clone();
            std::thread::spawn(move || {
                for _ in 0..10 {
                    if limiter.check("one-caller").is_ok() {
                        granted.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // A burst of 10, plus at most one refilled while the threads ran.
    let n = granted.load(Ordering::SeqCst);
    assert!((10..=11).contains(&n), "{n}");
}
