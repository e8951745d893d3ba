//! The REST API over HTTP, against a real database filled through the real
//! ingest path and the real forecast job, with products matched by SQL.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use shelfwatch_api::auth::{Scope, create_key};
use shelfwatch_api::{self as api, ApiSettings, Running};
use shelfwatch_forecast::{self as forecast, Params, load::Shard};

use crate::support::{TestDb, cluster, pool};

const PRODUCTS: [(i64, &str, Option<&str>, &str); 12] = [
    (
        1000,
        "Baked Beans in Tomato Sauce 415g",
        Some("Heinz"),
        "Tins",
    ),
    (1001, "Semi Skimmed Milk 4 Pints", None, "Dairy"),
    (
        1002,
        "Soft White Medium Bread 800g",
        Some("Hovis"),
        "Bakery",
    ),
    (
        1003,
        "Gold Blend Instant Coffee 200g",
        Some("Nescafe"),
        "Drinks",
    ),
    (1004, "Original Tea Bags x240", Some("PG Tips"), "Drinks"),
    (
        1005,
        "Original Taste 6 x 330ml",
        Some("Coca-Cola"),
        "Drinks",
    ),
    (1006, "Slightly Salted Butter 250g", Some("Lurpak"), "Dairy"),
    (1007, "Fusilli 500g", Some("Napolina"), "Pasta"),
    (1008, "Bananas Loose Each", None, "Fruit"),
    (1009, "Mature Cheddar 400g", Some("Cathedral City"), "Dairy"),
    (1010, "Smooth Orange Juice 1L", Some("Tropicana"), "Drinks"),
    (1011, "Free Range Eggs Large x12", None, "Eggs"),
];

/// Matches the sample listings to products the way product matching
/// would: the three retailers' listings of one item share a product.
pub async fn match_products(db: &sqlx::PgPool) {
    for (id, name, brand, category) in PRODUCTS {
        sqlx::query(
            "INSERT INTO products (id, name, brand, category) OVERRIDING SYSTEM VALUE
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(name)
        .bind(brand)
        .bind(category)
        .execute(db)
        .await
        .unwrap();
    }
    sqlx::query("UPDATE listings SET product_id = substring(retailer_sku FROM 3)::bigint")
        .execute(db)
        .await
        .unwrap();
}

static TEMPLATE: OnceLock<String> = OnceLock::new();

/// A database with the sample history, one forecast run and matched
/// products, built once per test run and copied per test.
fn template() -> &'static str {
    TEMPLATE.get_or_init(|| {
        std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let db = crate::forecast::sample_db().await;
                forecast::run_once(&db.pool, &Params::default(), Shard::ALL)
                    .await
                    .unwrap();
                match_products(&db.pool).await;
                db.pool.close().await;
                db.url.rsplit_once('/').unwrap().1.to_owned()
            })
        })
        .join()
        .unwrap()
    })
}

static COPIES: AtomicUsize = AtomicUsize::new(0);

pub async fn seeded() -> TestDb {
    let template = template();
    let admin = pool(&cluster().admin_url, 1).await;
    let name = format!(
        "api_{}_{}",
        std::process::id(),
        COPIES.fetch_add(1, Ordering::SeqCst)
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""
    )))
    .execute(&admin)
    .await
    .unwrap();
    admin.close().await;
    let (server, _) = cluster().admin_url.rsplit_once('/').unwrap();
    let url = format!("{server}/{name}");
    TestDb {
        pool: pool(&url, 5).await,
        url,
    }
}

pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
    pub db: TestDb,
    pub running: Running,
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }
    async fn get_as(&self, path: &str, key: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap()
    }
    pub async fn json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        r.json().await.unwrap()
    }
}

pub fn test_settings() -> ApiSettings {
    let mut s = ApiSettings {
        bind: "127.0.0.1:0".into(),
        metrics_bind: "127.0.0.1:0".into(),
        ..ApiSettings::default()
    };
    s.rate_limit.per_ip_per_sec = 0.0;
    s.rate_limit.per_key_per_sec = 0.0;
    s.webhooks.allowed_hosts = vec!["127.0.0.1".into()];
    s.webhooks.poll_interval_ms = 50;
    s.webhooks.evaluate_every_secs = 0;
    s.webhooks.backoff_base_secs = 0.05;
    s
}

pub async fn serve(db: TestDb, tweak: impl FnOnce(&mut ApiSettings)) -> Api {
    let mut settings = test_settings();
    tweak(&mut settings);
    let running = api::start(db.pool.clone(), settings).await.unwrap();
    Api {
        base: format!("http://{}", running.addr),
        http: reqwest::Client::new(),
        db,
        running,
    }
}

async fn assert_problem(r: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(r.status(), status, "{:?}", r.headers());
    assert_eq!(
        r.headers()["content-type"],
        "application/problem+json",
        "{status}"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16());
    assert_eq!(body["type"], "about:blank");
    assert!(body["title"].is_string());
    assert!(body["request_id"].is_string(), "{body}");
    body
}

fn check_money(v: &Value) {
    let minor = v["amount_minor"].as_i64().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(v["currency"], "GBP");
    assert_eq!(
        v["formatted"],
        shelfwatch_domain::money::format_pence(minor),
        "{v}"
    );
}

#[tokio::test]
async fn catalogue_reads_answer_typed_json() {
    let api = serve(seeded().await, |_| {}).await;

    let retailers = api.json("/v1/retailers").await;
    let slugs: Vec<&str> = retailers["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["aldi", "sainsburys", "tesco"]);
    assert_eq!(retailers["data"][0]["listings"], 12);
    assert_eq!(retailers["data"][0]["currency"], "GBP");

    // Pages of 5 through 12 products: every product once, in name order.
    let mut seen = Vec::new();
    let mut path = "/v1/products?limit=5".to_owned();
    loop {
        let page = api.json(&path).await;
        for p in page["data"].as_array().unwrap() {
            seen.push(p["name"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/products?limit=5&cursor={c}"),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen.len(), 12);
    assert_eq!(seen, sorted);

    // Search on name and brand, word prefixes, any case.
    let beans = api.json("/v1/products?q=heinz%20bean").await;
    assert_eq!(beans["data"].as_array().unwrap().len(), 1);
    assert_eq!(beans["data"][0]["id"], 1000);
    assert_eq!(beans["data"][0]["brand"], "Heinz");
    let original = api.json("/v1/products?q=original").await;
    assert_eq!(original["data"].as_array().unwrap().len(), 2);
    let dairy = api.json("/v1/products?category=dairy&retailer=tesco").await;
    assert_eq!(dairy["data"].as_array().unwrap().len(), 3);
    let none = api.json("/v1/products?q=caviar").await;
    assert_eq!(none["data"].as_array().unwrap().len(), 0);
    assert!(none["next_cursor"].is_null());

    // One product across retailers.
    let p = api.json("/v1/products/1000").await;
    // JSON Schema counts 1000.0 as the integer 1000; generated clients may
    // send it so.
    assert_eq!(
        api.json("/v1/products/1000.0").await["product"],
        p["product"]
    );
    assert_eq!(
        api.get("/v1/products/1000.5").await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(p["name"], "Baked Beans in Tomato Sauce 415g");
    let offers = p["offers"].as_array().unwrap();
    assert_eq!(offers.len(), 3);
    let mut cheapest_flags = 0;
    let mut last = 0;
    for o in offers {
        check_money(&o["price"]);
        check_money(&o["effective_price"]);
        let eff = o["effective_price"]["amount_minor"].as_i64().unwrap();
        assert!(eff >= last, "cheapest first");
        last = eff;
        if o["cheapest_now"] == true {
            cheapest_flags += 1;
        }
        assert!(o["observed_at"].as_str().unwrap().ends_with('Z'));
        let rec = &o["recommendation"];
        assert!(["buy_now", "wait", "hold"].contains(&rec["action"].as_str().unwrap()));
        assert!(rec["confidence"].as_f64().unwrap() > 0.0);
        let unit = &o["unit_price"];
        assert_eq!(unit["per"], "kg", "{o}");
        check_money(&unit["price"]);
    }
    assert_eq!(cheapest_flags, 1);
    assert_eq!(p["cheapest"].as_array().unwrap().len(), 1);
    assert_eq!(p["cheapest"][0]["listing_id"], offers[0]["listing_id"]);

    // History by day and by week.
    let days = api
        .json("/v1/products/1000/prices?from=2026-09-01&to=2026-10-01")
        .await;
    assert_eq!(days["interval"], "day");
    let series = days["series"].as_array().unwrap();
    assert_eq!(series.len(), 3);
    assert_eq!(series[0]["points"].as_array().unwrap().len(), 30);
    let point = &series[0]["points"][0];
    assert_eq!(point["start"], "2026-09-01T00:00:00Z");
    for k in ["open", "close", "min", "max", "mean", "min_effective"] {
        check_money(&point[k]);
    }
    assert_eq!(point["observations"], 2);
    let weeks = api
        .json("/v1/products/1000/prices?from=2026-09-01&to=2026-10-01&interval=week&retailer=tesco")
        .await;
    let series = weeks["series"].as_array().unwrap();
    assert_eq!(series.len(), 1);
    assert_eq!(series[0]["retailer"], "tesco");
    let points = series[0]["points"].as_array().unwrap();
    assert_eq!(points.len(), 5, "{weeks}");
    // Weeks start on Monday: 2026-08-31 is one.
    assert_eq!(points[0]["start"], "2026-08-31T00:00:00Z");

    // Forecast per listing with bands and the run.
    let f = api.json("/v1/products/1000/forecast").await;
    let forecasts = f["forecasts"].as_array().unwrap();
    assert_eq!(forecasts.len(), 3);
    assert_eq!(forecasts[0]["model_version"], forecast::MODEL_VERSION);
    assert!(forecasts[0]["run_at"].as_str().unwrap().ends_with('Z'));
    let points = forecasts[0]["points"].as_array().unwrap();
    assert_eq!(points.len(), 7);
    for pt in points {
        let lo = pt["lower"]["amount_minor"].as_i64().unwrap();
        let mid = pt["predicted"]["amount_minor"].as_i64().unwrap();
        let hi = pt["upper"]["amount_minor"].as_i64().unwrap();
        assert!(lo <= mid && mid <= hi);
    }
}

#[tokio::test]
async fn recommendations_come_best_first_in_pages() {
    let api = serve(seeded().await, |_| {}).await;
    let mut all = Vec::new();
    let mut path = "/v1/recommendations?limit=7".to_owned();
    loop {
        let page = api.json(&path).await;
        all.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/recommendations?limit=7&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(all.len(), 36);
    let rank = |a: &str| {
        ["buy_now", "wait", "hold"]
            .iter()
            .position(|x| *x == a)
            .unwrap()
    };
    for pair in all.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let key = |r: &Value| {
            (
                rank(r["action"].as_str().unwrap()),
                -r["confidence"].as_f64().unwrap(),
                r["listing_id"].as_i64().unwrap(),
            )
        };
        assert!(key(a) < key(b), "{a} then {b}");
    }
    let first = &all[0];
    check_money(&first["current_price"]);
    check_money(&first["expected_change"]);
    assert!(first["product_id"].is_i64());
    assert!(first["message"].is_string());

    let holds = api.json("/v1/recommendations?action=hold&limit=100").await;
    let holds = holds["data"].as_array().unwrap();
    assert!(holds.iter().all(|r| r["action"] == "hold"));
    let sure = api
        .json("/v1/recommendations?min_confidence=0.6&retailer=aldi&limit=100")
        .await;
    for r in sure["data"].as_array().unwrap() {
        assert!(r["confidence"].as_f64().unwrap() >= 0.6);
        assert_eq!(r["retailer"], "aldi");
    }
    let dairy = api
        .json("/v1/recommendations?category=Dairy&limit=100")
        .await;
    assert_eq!(dairy["data"].as_array().unwrap().len(), 9);
}

#[tokio::test]
async fn a_forecast_run_that_lands_is_served_at_once() {
    // No response cache: what is measured is the API's own memory of the
    // current runs, which a landed run must replace at once.
    let api = serve(seeded().await, |s| s.read_cache_ms = 0).await;
    for _ in 0..200 {
        if api.running.hears_landed_runs() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(api.running.hears_landed_runs());
    let run_of = |page: Value| page["data"][0]["run_id"].as_i64().unwrap();
    let before = run_of(api.json("/v1/recommendations?limit=1").await);
    // Served twice from the same kept runs.
    assert_eq!(
        run_of(api.json("/v1/recommendations?limit=1").await),
        before
    );

    // A new reading changes the inputs, so the forecast makes a new run.
    let mut ingestor = shelfwatch_store::ingest::Ingestor::new(api.db.pool.clone())
        .await
        .unwrap();
    let at = chrono::Utc::now() - chrono::Duration::hours(1);
    ingestor
        .ingest(&[crate::ingest::obs("tesco", "TE1000", at, 99)])
        .await
        .unwrap();
    let outcome = forecast::run_once(&api.db.pool, &Params::default(), Shard::ALL)
        .await
        .unwrap();
    let forecast::RunOutcome::Completed { run_id, .. } = outcome else {
        panic!("expected a new run, got {outcome:?}");
    };
    assert!(run_id > before);
    // The note reaches the API's own connection a moment after the commit;
    // without it the kept runs would be served for ever.
    let mut served = before;
    for _ in 0..100 {
        served = run_of(api.json("/v1/recommendations?limit=1").await);
        if served == run_id {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(served, run_id, "the landed run is served within 2 s");
}

#[tokio::test]
async fn mistakes_are_4xx_problems() {
    let api = serve(seeded().await, |_| {}).await;
    assert_problem(api.get("/v1/products/999999").await, StatusCode::NOT_FOUND).await;
    assert_problem(
        api.get("/v1/products/999999/prices").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_problem(
        api.get("/v1/products/999999/forecast").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_problem(api.get("/v1/nothing-here").await, StatusCode::NOT_FOUND).await;
    for path in [
        "/v1/products/abc",
        "/v1/products/99999999999999999999999",
        "/v1/products?limit=0",
        "/v1/products?limit=101",
        "/v1/products?limit=ten",
        "/v1/products?cursor=not%20a%20cursor",
        "/v1/products?cursor=",
        "/v1/products?retailer=NOT%20A%20SLUG",
        "/v1/products?q=%21%21",
        "/v1/products?colour=red",
        "/v1/products/1000/prices?interval=month",
        "/v1/products/1000/prices?from=yesterday",
        "/v1/products/1000/prices?from=",
        "/v1/recommendations?action=panic",
        "/v1/recommendations?min_confidence=2",
        "/v1/recommendations?min_confidence=high",
        "/v1/recommendations?cursor=%2F%2F%2F",
    ] {
        let body = assert_problem(api.get(path).await, StatusCode::BAD_REQUEST).await;
        assert!(body["detail"].is_string(), "{path}: {body}");
    }
    // Well formed, but naming nothing that exists: 404, as an unknown id.
    for (path, says) in [
        ("/v1/products?retailer=nosuch", "unknown retailer"),
        ("/v1/products?retailer=0", "unknown retailer"),
        (
            "/v1/products/1000/prices?retailer=nosuch",
            "unknown retailer",
        ),
        ("/v1/recommendations?retailer=nosuch", "unknown retailer"),
        (
            "/v1/products?cursor=not-a-cursor",
            "not one this API gave out",
        ),
        ("/v1/products?cursor=0", "not one this API gave out"),
        ("/v1/products?cursor=bnVsbA", "not one this API gave out"),
        ("/v1/recommendations?cursor=0", "not one this API gave out"),
    ] {
        let body = assert_problem(api.get(path).await, StatusCode::NOT_FOUND).await;
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(says), "{path}: {detail}");
    }
    // A range that ends before it starts holds no prices; one longer than
    // ten years is cut to the ten before `to`, and the answer says so.
    let inverted = api
        .json("/v1/products/1000/prices?from=2026-10-01&to=2026-09-01")
        .await;
    assert_eq!(inverted["series"], serde_json::json!([]));
    assert_eq!(inverted["from"], "2026-10-01T00:00:00Z");
    let long = api
        .json("/v1/products/1000/prices?from=2000-01-01&to=2026-09-01")
        .await;
    assert_eq!(long["from"], "2016-08-24T00:00:00Z");
    assert_eq!(long["to"], "2026-09-01T00:00:00Z");
    let wrong_method = api.http.put(api.url("/v1/retailers")).send().await.unwrap();
    assert_problem(wrong_method, StatusCode::METHOD_NOT_ALLOWED).await;
}

#[tokio::test]
async fn health_readiness_request_ids_etags_and_docs() {
    let api = serve(seeded().await, |_| {}).await;
    assert_eq!(api.json("/healthz").await["status"], "ok");
    assert_eq!(api.json("/readyz").await["status"], "ready");

    // Request ids: echoed when given, made when not.
    let r = api
        .http
        .get(api.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    let r = api.get("/v1/products/999999").await;
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["request_id"], id);

    // ETag and 304.
    let r = api.get("/v1/products/1000").await;
    assert_eq!(r.status(), StatusCode::OK);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(r.headers()["cache-control"], "public, max-age=60");
    let r = api
        .http
        .get(api.url("/v1/products/1000"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(r.headers()["etag"], etag.as_str());
    assert!(r.bytes().await.unwrap().is_empty());
    let r = api
        .http
        .get(api.url("/v1/products/1000"))
        .header("if-none-match", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // HEAD answers the headers of GET, without the body.
    let head = api
        .http
        .head(api.url("/v1/products/1000"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["etag"], etag.as_str());
    assert!(head.bytes().await.unwrap().is_empty());

    // The document and the UI, from the binary.
    let doc = api.json("/openapi.json").await;
    assert!(doc["paths"]["/v1/products/{id}"]["get"].is_object());
    let docs = api.get("/docs/").await;
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("swagger-ui"));

    // Not ready when a migration is missing.
    sqlx::query(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)",
    )
    .execute(&api.db.pool)
    .await
    .unwrap();
    // `/readyz` reuses its answer for up to a second.
    tokio::time::sleep(shelfwatch_api::health::READINESS_TTL).await;
    let r = api.get("/readyz").await;
    let body = assert_problem(r, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(body["detail"].as_str().unwrap().contains("migrat"));
}

#[tokio::test]
async fn cors_allows_configured_origins_only() {
    let api = serve(seeded().await, |s| {
        s.cors_allowed_origins = vec!["https://app.example".into()];
    })
    .await;
    let preflight = |origin: &'static str| {
        api.http
            .request(reqwest::Method::OPTIONS, api.url("/v1/watches"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "x-api-key, content-type")
            .send()
    };
    let ok = preflight("https://app.example").await.unwrap();
    assert!(ok.status().is_success(), "{}", ok.status());
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let methods = ok.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap();
    assert!(methods.contains("POST"), "{methods}");
    let headers = ok.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(headers.contains("x-api-key"), "{headers}");
    let denied = preflight("https://evil.example").await.unwrap();
    assert!(
        denied
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let r = api
        .http
        .get(api.url("/v1/retailers"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(exposed.contains("etag"), "{exposed}");
}

const JWT_SECRET: &str = "test-secret-of-reasonable-length-0123456789";

fn jwt(claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn credentials_and_scopes() {
    let db = seeded().await;
    let (_, read) = create_key(&db.pool, "reader", &[Scope::Read])
        .await
        .unwrap();
    let (_, watch) = create_key(&db.pool, "watcher", &[Scope::Watch])
        .await
        .unwrap();
    let (admin_id, admin) = create_key(&db.pool, "admin", &[Scope::Admin])
        .await
        .unwrap();
    let api = serve(db, |s| {
        s.require_key_for_reads = true;
        s.jwt = Some(shelfwatch_api::auth::JwtSettings {
            issuer: "https://idp.example".into(),
            audience: "shelfwatch".into(),
            hs256_secret: Some(shelfwatch::config::Secret::new(JWT_SECRET)),
            rs256_public_key_pem: None,
            scope_claim: "scope".into(),
            leeway_secs: 0,
        });
    })
    .await;
    // Stored hashed, never in clear.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT key_sha256 FROM api_keys WHERE id = $1")
        .bind(admin_id)
        .fetch_one(&api.db.pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 32);
    assert!(!String::from_utf8_lossy(&stored).contains(&admin[3..]));

    let r = api.get("/v1/retailers").await;
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    assert_problem(r, StatusCode::UNAUTHORIZED).await;
    assert_problem(
        api.get_as("/v1/retailers", "sw_wrong").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(
        api.get_as("/v1/retailers", &read).await.status(),
        StatusCode::OK
    );
    let r = api
        .http
        .get(api.url("/v1/retailers"))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "private, max-age=60");
    let basic = api
        .http
        .get(api.url("/v1/retailers"))
        .header("authorization", "Basic dTpw")
        .send()
        .await
        .unwrap();
    assert_problem(basic, StatusCode::UNAUTHORIZED).await;

    // Scopes: read < watch < admin.
    assert_problem(
        api.get_as("/v1/watches", &read).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(
        api.get_as("/v1/watches", &watch).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        api.get_as("/v1/retailers", &watch).await.status(),
        StatusCode::OK
    );
    assert_problem(
        api.get_as("/v1/admin/runs", &watch).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_problem(api.get("/v1/admin/runs").await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(
        api.get_as("/v1/admin/runs", &admin).await.status(),
        StatusCode::OK
    );
    let post = api
        .http
        .post(api.url("/v1/admin/forecast-runs"))
        .header("x-api-key", &watch)
        .send()
        .await
        .unwrap();
    assert_problem(post, StatusCode::FORBIDDEN).await;

    // JWTs: scopes from the claim; exp, nbf, iss and aud checked.
    let base = serde_json::json!({
        "iss": "https://idp.example", "aud": "shelfwatch", "sub": "user-7",
        "exp": now() + 300, "scope": "read watch",
    });
    let bearer = |token: String| {
        api.http
            .get(api.url("/v1/watches"))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(
        bearer(jwt(base.clone())).await.unwrap().status(),
        StatusCode::OK
    );
    let mut as_array = base.clone();
    as_array["scope"] = serde_json::json!(["watch"]);
    assert_eq!(
        bearer(jwt(as_array)).await.unwrap().status(),
        StatusCode::OK
    );
    let mut read_only = base.clone();
    read_only["scope"] = "read".into();
    assert_problem(bearer(jwt(read_only)).await.unwrap(), StatusCode::FORBIDDEN).await;
    for (field, value) in [
        ("exp", serde_json::json!(now() - 60)),
        ("nbf", serde_json::json!(now() + 600)),
        ("aud", serde_json::json!("someone-else")),
        ("iss", serde_json::json!("https://evil.example")),
    ] {
        let mut claims = base.clone();
        claims[field] = value;
        let body =
            assert_problem(bearer(jwt(claims)).await.unwrap(), StatusCode::UNAUTHORIZED).await;
        assert!(
            body["detail"].as_str().unwrap().contains("refused"),
            "{field}: {body}"
        );
    }
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &base,
        &jsonwebtoken::EncodingKey::from_secret(b"not the secret"),
    )
    .unwrap();
    assert_problem(bearer(forged).await.unwrap(), StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let db = seeded().await;
    let (_, key) = create_key(&db.pool, "busy", &[Scope::Read]).await.unwrap();
    let api = serve(db, |s| {
        s.rate_limit.per_ip_per_sec = 0.5;
        s.rate_limit.per_ip_burst = 3;
    })
    .await;
    for _ in 0..3 {
        assert_eq!(api.get("/v1/retailers").await.status(), StatusCode::OK);
    }
    let r = api.get("/v1/retailers").await;
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert_problem(r, StatusCode::TOO_MANY_REQUESTS).await;
    // Health checks are not limited.
    assert_eq!(api.get("/healthz").await.status(), StatusCode::OK);
    // A valid key is limited per key, not by its address...
    assert_eq!(
        api.get_as("/v1/retailers", &key).await.status(),
        StatusCode::OK
    );
    // ...while guessing keys is limited per address, then refused unread.
    for _ in 0..3 {
        assert_problem(
            api.get_as("/v1/retailers", "sw_guess").await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
    }
    assert_problem(
        api.get_as("/v1/retailers", "sw_guess").await,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;

    let api = serve(api.db, |s| {
        s.rate_limit.per_key_per_sec = 1.0;
        s.rate_limit.per_key_burst = 2;
    })
    .await;
    for _ in 0..2 {
        assert_eq!(
            api.get_as("/v1/retailers", &key).await.status(),
            StatusCode::OK
        );
    }
    let r = api.get_as("/v1/retailers", &key).await;
    assert!(r.headers().contains_key("retry-after"));
    assert_problem(r, StatusCode::TOO_MANY_REQUESTS).await;
    // Without the key, the caller is someone else.
    assert_eq!(api.get("/v1/retailers").await.status(), StatusCode::OK);
}

async fn post_json(api: &Api, path: &str, key: &str, body: Value) -> reqwest::Response {
    api.http
        .post(api.url(path))
        .header("x-api-key", key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn watches_belong_to_their_owner() {
    let db = seeded().await;
    let (a_id, a) = create_key(&db.pool, "alice", &[Scope::Watch])
        .await
        .unwrap();
    let (_, b) = create_key(&db.pool, "bob", &[Scope::Watch]).await.unwrap();
    let api = serve(db, |_| {}).await;
    let r = post_json(
        &api,
        "/v1/watches",
        &a,
        serde_json::json!({"product_id": 1000, "drop_percent": 10, "webhook_url": "http://127.0.0.1:9/hook"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = r.json().await.unwrap();
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(created["drop_percent"], 10);
    check_money(&created["baseline_price"]);
    let id = created["id"].as_i64().unwrap();
    assert_eq!(location, format!("/v1/watches/{id}"));

    let mine = api.get_as(&location, &a).await;
    assert_eq!(mine.status(), StatusCode::OK);
    assert!(mine.json::<Value>().await.unwrap().get("secret").is_none());
    assert_problem(api.get_as(&location, &b).await, StatusCode::NOT_FOUND).await;
    let theirs: Value = api.get_as("/v1/watches", &b).await.json().await.unwrap();
    assert_eq!(theirs["data"].as_array().unwrap().len(), 0);
    let del = |key: &str| {
        api.http
            .delete(api.url(&location))
            .header("x-api-key", key)
            .send()
    };
    assert_problem(del(&b).await.unwrap(), StatusCode::NOT_FOUND).await;
    let list: Value = api.get_as("/v1/watches", &a).await.json().await.unwrap();
    assert_eq!(list["data"][0]["id"], id);
    assert_eq!(del(&a).await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_problem(api.get_as(&location, &a).await, StatusCode::NOT_FOUND).await;
    assert_problem(del(&a).await.unwrap(), StatusCode::NOT_FOUND).await;

    // Refused bodies.
    for (body, status) in [
        (
            serde_json::json!({"product_id": 1000, "target_price_pence": 100, "webhook_url": "http://10.0.0.1/x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            serde_json::json!({"product_id": 1000, "target_price_pence": 100, "webhook_url": "http://169.254.169.254/x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            serde_json::json!({"product_id": 1000, "target_price_pence": 100, "drop_percent": 5, "webhook_url": "http://127.0.0.1/x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            serde_json::json!({"product_id": 1000, "webhook_url": "http://127.0.0.1/x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            serde_json::json!({"product_id": 1000, "drop_percent": 100, "webhook_url": "http://127.0.0.1/x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            serde_json::json!({"product_id": 424242, "target_price_pence": 100, "webhook_url": "http://127.0.0.1/x"}),
            StatusCode::NOT_FOUND,
        ),
        (
            serde_json::json!({"product_id": "beans", "target_price_pence": 100, "webhook_url": "http://127.0.0.1/x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        assert_problem(
            post_json(&api, "/v1/watches", &a, body.clone()).await,
            status,
        )
        .await;
    }
    let syntax = api
        .http
        .post(api.url("/v1/watches"))
        .header("x-api-key", &a)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_problem(syntax, StatusCode::BAD_REQUEST).await;
    let not_json = api
        .http
        .post(api.url("/v1/watches"))
        .header("x-api-key", &a)
        .body("product_id=1")
        .send()
        .await
        .unwrap();
    assert_problem(not_json, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    let huge = api
        .http
        .post(api.url("/v1/watches"))
        .header("x-api-key", &a)
        .header("content-type", "application/json")
        .body(format!("{{\"webhook_url\": \"{}\"}}", "x".repeat(100_000)))
        .send()
        .await
        .unwrap();
    assert_problem(huge, StatusCode::PAYLOAD_TOO_LARGE).await;

    // Every change is audited with its actor.
    let audit: Vec<(String, String)> =
        sqlx::query_as("SELECT actor, action FROM audit_log ORDER BY id")
            .fetch_all(&api.db.pool)
            .await
            .unwrap();
    let actor = format!("key:{a_id}");
    assert_eq!(
        audit,
        [
            (actor.clone(), "watch.create".to_owned()),
            (actor, "watch.delete".to_owned())
        ]
    );
}

pub type Received = Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>>;

/// A webhook receiver that fails the first `fail_first` requests with 500.
async fn receiver(fail_first: usize) -> (SocketAddr, Received) {
    let (app, received) = receiver_app(fail_first);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, received)
}

/// The app of a webhook receiver at `/hook` that records each request and
/// fails the first `fail_first` with 500.
pub fn receiver_app(fail_first: usize) -> (axum::Router, Received) {
    use axum::extract::State;
    let received: Received = Arc::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                move |State((received, calls)): State<(Received, Arc<AtomicUsize>)>,
                      headers: axum::http::HeaderMap,
                      body: String| async move {
                    received.lock().unwrap().push((headers, body));
                    if calls.fetch_add(1, Ordering::SeqCst) < fail_first {
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        axum::http::StatusCode::NO_CONTENT
                    }
                },
            ),
        )
        .with_state((received.clone(), calls));
    (app, received)
}

pub async fn wait_for<F: AsyncFn() -> bool>(what: &str, check: F) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn met_watches_get_signed_webhooks_with_retries() {
    let db = seeded().await;
    let (_, key) = create_key(&db.pool, "alerts", &[Scope::Watch])
        .await
        .unwrap();
    let (hook, received) = receiver(2).await;
    let api = serve(db, |_| {}).await;
    // A target above today's cheapest price is met at once.
    let cheapest: i64 =
        api.json("/v1/products/1000").await["cheapest"][0]["effective_price"]["amount_minor"]
            .as_i64()
            .unwrap();
    let r = post_json(
        &api,
        "/v1/watches",
        &key,
        serde_json::json!({"product_id": 1000, "target_price_pence": cheapest + 1,
                           "webhook_url": format!("http://{hook}/hook")}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let watch: Value = r.json().await.unwrap();
    let secret = watch["secret"].as_str().unwrap().to_owned();

    assert_eq!(
        shelfwatch_alerts::evaluate_watches(&api.db.pool)
            .await
            .unwrap(),
        1
    );
    // Nothing new: nothing queued.
    assert_eq!(
        shelfwatch_alerts::evaluate_watches(&api.db.pool)
            .await
            .unwrap(),
        0
    );

    let pool = api.db.pool.clone();
    wait_for("the delivery to succeed", async || {
        let status: String = sqlx::query_scalar("SELECT status FROM webhook_deliveries")
            .fetch_one(&pool)
            .await
            .unwrap();
        status == "delivered"
    })
    .await;
    let attempts: Vec<(i32, Option<i32>)> =
        sqlx::query_as("SELECT attempt, status_code FROM webhook_attempts ORDER BY attempt")
            .fetch_all(&api.db.pool)
            .await
            .unwrap();
    assert_eq!(attempts, [(1, Some(500)), (2, Some(500)), (3, Some(204))]);
    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 3);
    let id = received[0].0["webhook-id"].to_str().unwrap().to_owned();
    for (headers, body) in &received {
        // Standard Webhooks: one message id on every attempt, the time of
        // the attempt, and both signed with the body.
        assert_eq!(headers["webhook-id"].to_str().unwrap(), id);
        let sent_at = crate::webhooks::assert_signed(&secret, headers, body);
        // The receiver's check in docs/webhooks.md accepts it as sent,
        // and refuses it replayed late or altered.
        let now = sent_at as f64;
        use crate::webhooks::python_verifies;
        python_verifies(&secret, headers, body, now).unwrap();
        let late = python_verifies(&secret, headers, body, now + 301.0).unwrap_err();
        assert!(late.contains("ValueError: timestamp outside"), "{late}");
        let altered = body.replacen("price", "prize", 1);
        let altered = python_verifies(&secret, headers, &altered, now).unwrap_err();
        assert!(
            altered.contains("ValueError: no valid signature"),
            "{altered}"
        );
        let event: Value = serde_json::from_str(body).unwrap();
        assert_eq!(event["event"], "price_at_target");
        assert_eq!(event["product"]["id"], 1000);
        assert_eq!(event["price"]["amount_minor"], cheapest);
    }
    assert_eq!(received[2].0["x-shelfwatch-attempt"], "3");

    // A price that rises above the target and comes back notifies again.
    sqlx::query("UPDATE watches SET target_price_pence = 1")
        .execute(&api.db.pool)
        .await
        .unwrap();
    assert_eq!(
        shelfwatch_alerts::evaluate_watches(&api.db.pool)
            .await
            .unwrap(),
        0
    );
    let notified: Option<i64> = sqlx::query_scalar("SELECT notified_pence FROM watches")
        .fetch_one(&api.db.pool)
        .await
        .unwrap();
    assert_eq!(notified, None, "cleared once the price is above the target");
}

#[tokio::test]
async fn failing_webhooks_give_up_after_max_attempts() {
    let db = seeded().await;
    let (_, key) = create_key(&db.pool, "alerts", &[Scope::Watch])
        .await
        .unwrap();
    let (hook, received) = receiver(usize::MAX).await;
    let api = serve(db, |s| s.webhooks.max_attempts = 3).await;
    let r = post_json(
        &api,
        "/v1/watches",
        &key,
        serde_json::json!({"product_id": 1001, "target_price_pence": 100000,
                           "webhook_url": format!("http://{hook}/hook")}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        shelfwatch_alerts::evaluate_watches(&api.db.pool)
            .await
            .unwrap(),
        1
    );
    let pool = api.db.pool.clone();
    wait_for("the delivery to be given up", async || {
        let status: String = sqlx::query_scalar("SELECT status FROM webhook_deliveries")
            .fetch_one(&pool)
            .await
            .unwrap();
        status == "failed"
    })
    .await;
    assert_eq!(received.lock().unwrap().len(), 3);
    let (attempts, error): (i32, Option<String>) =
        sqlx::query_as("SELECT attempts, last_error FROM webhook_deliveries")
            .fetch_one(&api.db.pool)
            .await
            .unwrap();
    assert_eq!(attempts, 3);
    assert!(error.unwrap().contains("500"));
}

#[tokio::test]
async fn admin_jobs_are_queued_and_never_waited_on() {
    let db = seeded().await;
    let (admin_id, admin) = create_key(&db.pool, "ops", &[Scope::Admin]).await.unwrap();
    let api = serve(db, |_| {}).await;
    let r = post_json(
        &api,
        "/v1/admin/forecast-runs",
        &admin,
        serde_json::json!({}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["created"], true);
    assert_eq!(first["job"]["status"], "queued");
    assert_eq!(first["worker"]["alive"], false);
    assert_eq!(
        first["message"],
        "queued; no forecaster seen in the last 10 minutes, the job waits"
    );
    // Asking again while queued is asking once.
    shelfwatch_store::jobs::heartbeat(&api.db.pool, "forecaster")
        .await
        .unwrap();
    let again: Value = api
        .http
        .post(api.url("/v1/admin/forecast-runs"))
        .header("x-api-key", &admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["created"], false);
    assert_eq!(again["job"]["id"], first["job"]["id"]);
    assert_eq!(again["worker"]["alive"], true);
    assert!(
        again["message"]
            .as_str()
            .unwrap()
            .contains("a forecaster is running")
    );

    // A worker takes it; the API reports how it went.
    let job =
        shelfwatch_store::jobs::claim(&api.db.pool, shelfwatch_store::jobs::JobKind::Forecast)
            .await
            .unwrap()
            .unwrap();
    assert!(
        shelfwatch_store::jobs::claim(&api.db.pool, shelfwatch_store::jobs::JobKind::Forecast)
            .await
            .unwrap()
            .is_none()
    );
    shelfwatch_store::jobs::finish(&api.db.pool, job.id, Ok("done".into()))
        .await
        .unwrap();
    let view: Value = api.get_as(&location, &admin).await.json().await.unwrap();
    assert_eq!(view["status"], "succeeded");
    assert_eq!(view["message"], "done");
    assert_problem(
        api.get_as("/v1/admin/jobs/999", &admin).await,
        StatusCode::NOT_FOUND,
    )
    .await;

    let scrape = post_json(
        &api,
        "/v1/admin/scrape-runs",
        &admin,
        serde_json::json!({"retailer": "tesco"}),
    )
    .await;
    assert_eq!(scrape.status(), StatusCode::ACCEPTED);
    let scrape: Value = scrape.json().await.unwrap();
    assert_eq!(scrape["job"]["params"]["retailer"], "tesco");
    assert_eq!(scrape["worker"]["role"], "scraper");
    let unknown = post_json(
        &api,
        "/v1/admin/scrape-runs",
        &admin,
        serde_json::json!({"retailer": "nosuch"}),
    )
    .await;
    assert_problem(unknown, StatusCode::NOT_FOUND).await;
    let extra = post_json(
        &api,
        "/v1/admin/scrape-runs",
        &admin,
        serde_json::json!({"retailer": "tesco", "now": true}),
    )
    .await;
    assert_problem(extra, StatusCode::UNPROCESSABLE_ENTITY).await;

    let runs: Value = api
        .get_as("/v1/admin/runs?limit=5", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(runs["forecast_runs"].as_array().unwrap().len(), 1);
    assert_eq!(runs["forecast_runs"][0]["status"], "succeeded");
    assert!(runs["scrape_runs"].as_array().unwrap().is_empty());
    assert_problem(
        api.get_as("/v1/admin/runs?limit=0", &admin).await,
        StatusCode::BAD_REQUEST,
    )
    .await;

    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE actor = $1 AND action LIKE 'job.enqueue.%'",
    )
    .bind(format!("key:{admin_id}"))
    .fetch_one(&api.db.pool)
    .await
    .unwrap();
    assert_eq!(audited, 3);
}

/// What the API's metrics listener exports now.
pub(crate) async fn metrics_text(api: &Api) -> String {
    let metrics_addr = api.running.metrics_addr.unwrap();
    api.http
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn made_up_methods_add_no_metric_series() {
    let api = serve(seeded().await, |_| {}).await;
    for i in 0..1000 {
        let method = reqwest::Method::from_bytes(format!("XM{i}").as_bytes()).unwrap();
        let r = api
            .http
            .request(method, api.url("/v1/products"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{}", r.status());
    }
    let text = metrics_text(&api).await;
    assert!(!text.contains("XM"), "made-up methods became labels");
    assert!(text.contains(r#"method="other""#), "{text}");
}

#[tokio::test]
async fn metrics_are_labelled_by_matched_route() {
    let api = serve(seeded().await, |_| {}).await;
    api.json("/v1/products/1000").await;
    api.json("/v1/products/1001").await;
    let _ = api.get("/v1/no/such/route/42").await;
    let text = metrics_text(&api).await;
    assert!(
        text.contains(
            r#"shelfwatch_http_requests_total{method="GET",route="/v1/products/{id}",status="200"}"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"route="unmatched",status="404""#), "{text}");
    assert!(
        !text.contains("/v1/products/1000"),
        "raw paths never become labels"
    );
    assert!(!text.contains("/v1/no/such"));
    assert!(text.contains(
        "shelfwatch_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/products/{id}\""
    ));
    assert!(text.contains("shelfwatch_http_in_flight"));
    assert!(text.contains(r#"shelfwatch_db_pool_connections{state="idle"}"#));
    assert!(text.contains(r#"shelfwatch_db_pool_connections{state="used"}"#));
}

#[test]
fn committed_openapi_document_matches_the_code() {
    let generated = shelfwatch_api::openapi::document();
    let path = crate::support::repo_path("openapi/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json differs from the API the code serves.\n\
         Regenerate it with `shelfwatch serve --print-openapi > openapi/openapi.json` \
         (or UPDATE_OPENAPI=1 cargo test --test it api::committed_openapi) and review the diff."
    );
}

/// The router serves the document built from the same list of routes as
/// `--print-openapi`, and so the committed one.
#[tokio::test]
async fn served_openapi_document_is_the_committed_one() {
    let api = serve(seeded().await, |_| {}).await;
    let served = api.json("/openapi.json").await;
    let path = crate::support::repo_path("openapi/openapi.json");
    let committed: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(served, committed);
}

/// The binary with only this test's settings.
fn shelfwatch_on(db_url: &str, args: &[&str]) -> std::process::Command {
    let mut cmd = crate::support::shelfwatch_command(args);
    cmd.env("DATABASE_URL", db_url);
    cmd
}

fn sigterm(child: &std::process::Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
}

#[tokio::test]
async fn binary_serves_creates_keys_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let db = seeded().await;
    let out = shelfwatch_on(
        &db.url,
        &["apikey", "create", "--name", "ci", "--scopes", "read,admin"],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("sw_") && key.len() > 40, "{key}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("shown only now"));
    let bad = shelfwatch_on(
        &db.url,
        &["apikey", "create", "--name", "x", "--scopes", "root"],
    )
    .output()
    .unwrap();
    assert!(!bad.status.success());

    let mut child = shelfwatch_on(
        &db.url,
        &[
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--metrics-bind",
            "127.0.0.1:0",
        ],
    )
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // Keep reading stdout to its end, so the server never writes to a closed pipe.
    let stdout = child.stdout.take().unwrap();
    let (first_line, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = first_line.send(line);
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
    let r = http
        .get(format!("{base}/v1/admin/runs"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    sigterm(&child);
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status}");

    let doc = shelfwatch_on("postgres://unused", &["serve", "--print-openapi"])
        .output()
        .unwrap();
    assert!(doc.status.success());
    assert_eq!(
        String::from_utf8(doc.stdout).unwrap(),
        shelfwatch_api::openapi::document()
    );
}

#[tokio::test]
async fn scheduled_forecaster_takes_queued_jobs() {
    use std::io::{BufRead, BufReader};
    let db = seeded().await;
    let mut child = shelfwatch_on(&db.url, &["forecast", "--every", "1h"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = std::sync::Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let pool = db.pool.clone();
    wait_for("the forecaster's heartbeat", async || {
        shelfwatch_store::jobs::last_seen(&pool, "forecaster")
            .await
            .unwrap()
            .is_some()
    })
    .await;
    let (job, _) = shelfwatch_store::jobs::enqueue(
        &db.pool,
        shelfwatch_store::jobs::JobKind::Forecast,
        &serde_json::json!({}),
        "test",
    )
    .await
    .unwrap();
    let pool = db.pool.clone();
    for _ in 0..4 {
        let done = shelfwatch_store::jobs::get(&pool, job.id)
            .await
            .unwrap()
            .unwrap();
        if done.status == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let done = shelfwatch_store::jobs::get(&db.pool, job.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, "succeeded", "{done:?}");
    // Same inputs as the scheduled run: the job finds nothing to do.
    assert!(done.message.unwrap().contains("unchanged"));
    sigterm(&child);
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success());
}

/// chromedriver on a free port, stopped when dropped.
struct ChromeDriver {
    child: std::process::Child,
    port: u16,
}

impl ChromeDriver {
    async fn start() -> ChromeDriver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver (apt-get install chromium-driver)");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ChromeDriver { child, port }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn docs_page_renders_every_endpoint_in_a_browser() {
    use thirtyfour::prelude::*;
    let api = serve(seeded().await, |_| {}).await;
    let driver = ChromeDriver::start().await;
    let profile = tempfile::tempdir().unwrap();
    let mut caps = DesiredCapabilities::chrome();
    caps.set_binary("/usr/bin/chromium").unwrap();
    for arg in shelfwatch_scrape::browser::CHROMIUM_FLAGS {
        caps.add_arg(arg).unwrap();
    }
    caps.add_arg(&format!("--user-data-dir={}", profile.path().display()))
        .unwrap();
    let browser = WebDriver::new(format!("http://127.0.0.1:{}", driver.port), caps)
        .await
        .unwrap();
    browser.goto(api.url("/docs/")).await.unwrap();
    let document: Value = api.json("/openapi.json").await;
    let mut expected: Vec<String> = document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    expected.sort();
    let mut shown: Vec<String> = Vec::new();
    for _ in 0..100 {
        shown.clear();
        for el in browser
            .find_all(By::Css(".opblock-summary-path"))
            .await
            .unwrap()
        {
            if let Some(path) = el.attr("data-path").await.unwrap() {
                shown.push(path);
            }
        }
        if !shown.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let title = browser
        .find(By::Css(".info .title"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    browser.quit().await.unwrap();
    shown.sort();
    shown.dedup();
    assert_eq!(shown, expected, "the rendered page lists every endpoint");
    assert!(title.contains("shelfwatch"), "{title}");
}

#[test]
fn example_config_reads_and_states_the_api_defaults() {
    let example = crate::support::repo_path("shelfwatch.example.toml");
    let settings = shelfwatch::config::Settings::load_from(Some(&example), &[]).unwrap();
    let (api, defaults) = (settings.api, ApiSettings::default());
    assert_eq!(api.bind, defaults.bind);
    assert_eq!(api.metrics_bind, defaults.metrics_bind);
    assert_eq!(api.body_limit_bytes, defaults.body_limit_bytes);
    assert_eq!(
        api.rate_limit.per_ip_burst,
        defaults.rate_limit.per_ip_burst
    );
    assert_eq!(api.webhooks.max_attempts, defaults.webhooks.max_attempts);
    assert_eq!(
        api.max_watches_per_principal,
        defaults.max_watches_per_principal
    );
    let (c, d) = (&api.connections, &defaults.connections);
    assert_eq!(c.header_read_timeout_secs, d.header_read_timeout_secs);
    assert_eq!(c.idle_timeout_secs, d.idle_timeout_secs);
    assert_eq!(c.max_connections_per_client, d.max_connections_per_client);
    assert_eq!(c.max_connections, d.max_connections);
    assert!(api.jwt.is_none());
}

#[tokio::test]
async fn rs256_tokens_from_an_identity_provider() {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("private.pem");
    let public = dir.path().join("public.pem");
    let ok = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&private)
        .status()
        .unwrap()
        .success()
        && std::process::Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&private)
            .arg("-out")
            .arg(&public)
            .status()
            .unwrap()
            .success();
    assert!(ok, "openssl could not make a key pair");
    let public_pem = std::fs::read_to_string(&public).unwrap();
    let api = serve(seeded().await, |s| {
        s.jwt = Some(shelfwatch_api::auth::JwtSettings {
            issuer: "https://idp.example".into(),
            audience: "shelfwatch".into(),
            hs256_secret: None,
            rs256_public_key_pem: Some(public_pem),
            scope_claim: "permissions".into(),
            leeway_secs: 0,
        });
    })
    .await;
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&std::fs::read(&private).unwrap()).unwrap();
    let claims = serde_json::json!({
        "iss": "https://idp.example", "aud": "shelfwatch", "sub": "svc-1",
        "exp": now() + 300, "permissions": ["admin"],
    });
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .unwrap();
    let r = api
        .http
        .get(api.url("/v1/admin/runs"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // An HS256 token cannot pass for RS256 (no algorithm confusion).
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"anything"),
    )
    .unwrap();
    let r = api
        .http
        .get(api.url("/v1/admin/runs"))
        .bearer_auth(&hs)
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn reads_are_reused_briefly_then_refreshed() {
    let api = serve(seeded().await, |s| s.read_cache_ms = 300).await;
    let before = api.json("/v1/products/1001").await;
    sqlx::query("UPDATE products SET name = 'Renamed milk' WHERE id = 1001")
        .execute(&api.db.pool)
        .await
        .unwrap();
    assert_eq!(api.json("/v1/products/1001").await["name"], before["name"]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(api.json("/v1/products/1001").await["name"], "Renamed milk");
}

/// `q=beans` finds "Heinz Beanz" by spelling (pg_trgm word similarity) as
/// well as "Baked Beans" by its words, exact words first; search pages by
/// rank with its own cursor.
#[tokio::test]
async fn search_tolerates_spelling_variants_and_ranks_exact_words_first() {
    let db = seeded().await;
    for (id, name) in [(2000, "Heinz Beanz 415g"), (2001, "Heinz Beanz 4 x 415g")] {
        sqlx::query(
            "INSERT INTO products (id, name, brand, category) OVERRIDING SYSTEM VALUE
             VALUES ($1, $2, 'Heinz', 'Tins')",
        )
        .bind(id)
        .bind(name)
        .execute(&db.pool)
        .await
        .unwrap();
    }
    let api = serve(db, |_| {}).await;
    let ids = |v: &Value| -> Vec<i64> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_i64().unwrap())
            .collect()
    };
    // "Beans" in a name is a word match and comes first; "Beanz" follows.
    let beans = api.json("/v1/products?q=beans").await;
    assert_eq!(ids(&beans), [1000, 2001, 2000], "{beans}");
    // The other way round: "Beanz" names first, then "Beans".
    let beanz = api.json("/v1/products?q=BEANZ").await;
    assert_eq!(ids(&beanz), [2001, 2000, 1000], "{beanz}");
    // Every word must match one way or the other.
    let heinz_beans = api.json("/v1/products?q=heinz%20beans").await;
    assert_eq!(ids(&heinz_beans), [1000, 2001, 2000], "{heinz_beans}");
    let none = api.json("/v1/products?q=caviar").await;
    assert!(ids(&none).is_empty(), "{none}");
    let none = api.json("/v1/products?q=beans%20caviar").await;
    assert!(ids(&none).is_empty(), "{none}");

    // Pages of one through a search: every match once, in rank order.
    let mut seen = Vec::new();
    let mut path = "/v1/products?q=beans&limit=1".to_owned();
    loop {
        let page = api.json(&path).await;
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/products?q=beans&limit=1&cursor={c}"),
            None => break,
        }
        assert!(seen.len() < 10, "paging does not end: {seen:?}");
    }
    assert_eq!(seen, [1000, 2001, 2000]);
    // A list's cursor is not a search's: no page there, as for any cursor
    // this API did not give out for that query.
    let list = api.json("/v1/products?limit=1").await;
    let cursor = list["next_cursor"].as_str().unwrap();
    let r = api
        .get(&format!("/v1/products?q=beans&cursor={cursor}"))
        .await;
    assert_problem(r, StatusCode::NOT_FOUND).await;
}

/// `Accept: text/csv` gets the price history as CSV, one row per point,
/// the same figures as the JSON; anything else gets JSON. The read cache
/// never hands one to a request for the other.
#[tokio::test]
async fn price_history_comes_as_csv_when_asked() {
    let api = serve(seeded().await, |_| {}).await;
    let path = "/v1/products/1000/prices?from=2026-09-01&to=2026-10-01";
    let json = api.json(path).await;
    let csv_get = |accept: &'static str| {
        api.http
            .get(format!("{}{path}", api.base))
            .header("accept", accept)
            .send()
    };
    let r = csv_get("text/csv").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(
        r.headers().get_all("vary").iter().any(|v| v
            .to_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("accept")),
        "{:?}",
        r.headers()
    );
    let body = r.text().await.unwrap();
    let mut lines = body.lines();
    assert_eq!(lines.next(), Some(api::catalogue::PRICES_CSV_HEADER));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let mut points = 0;
    for series in json["series"].as_array().unwrap() {
        let listing = series["listing_id"].to_string();
        for p in series["points"].as_array().unwrap() {
            let row = rows
                .iter()
                .find(|r| r[0] == listing.as_str() && r[3] == p["start"].as_str().unwrap())
                .unwrap_or_else(|| panic!("no CSV row for {p}"));
            assert_eq!(row[1], series["retailer"].as_str().unwrap());
            assert_eq!(row[2], "GBP");
            for (i, k) in [
                (4, "open"),
                (5, "close"),
                (6, "min"),
                (7, "max"),
                (8, "mean"),
                (9, "min_effective"),
            ] {
                assert_eq!(row[i], p[k]["amount_minor"].to_string(), "{k} of {p}");
            }
            assert_eq!(row[10], p["any_promo"].to_string());
            assert_eq!(row[11], p["observations"].to_string());
            assert!(row[3].ends_with('Z'));
            points += 1;
        }
    }
    assert!(points >= 90, "{points} points");
    assert_eq!(rows.len(), points, "one row per point");
    assert!(rows.iter().all(|r| r.len() == 12));

    // JSON for anything else, even straight after the CSV was cached.
    for accept in [
        "application/json",
        "*/*",
        "text/csv;q=0.1, application/json",
    ] {
        let r = csv_get(accept).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{accept}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with("application/json"), "{accept}: {ct}");
    }
    // Errors stay problem+json.
    let r = api
        .http
        .get(format!("{}/v1/products/999999/prices", api.base))
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::NOT_FOUND).await;
}

/// The demo store's history imported by the binary: `import` matches the
/// listings into products named with their packs and categorised from the
/// `category` column, and the category filters of /v1/products and
/// /v1/recommendations keep exactly that aisle.
#[tokio::test]
async fn imported_listings_become_categorised_products() {
    let db = TestDb::new().await;
    let day = chrono::NaiveDate::from_ymd_opt(2025, 9, 1).unwrap();
    let (store, _dir, path) =
        crate::matching::demo_history_csv(day - chrono::Duration::days(29), day);
    let out = shelfwatch_on(
        &db.url,
        &["import", path.to_str().unwrap(), "--no-progress"],
    )
    .env("RUST_LOG", "warn")
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("listings matched across retailers"),
        "{stdout}"
    );
    // Matching again on demand changes nothing.
    let again = shelfwatch_on(&db.url, &["match"]).output().unwrap();
    let again_out = String::from_utf8_lossy(&again.stdout).into_owned();
    assert!(again.status.success(), "{again_out}");
    assert!(
        again_out.contains("0 listings moved, 0 products renamed"),
        "{again_out}"
    );
    forecast::run_once(&db.pool, &Params::default(), Shard::ALL)
        .await
        .unwrap();
    let api = serve(db, |_| {}).await;

    let truth = store.truth(day);
    let frozen_keys: std::collections::BTreeSet<&str> = truth
        .iter()
        .filter(|t| t.category == "Frozen")
        .map(|t| t.product_key.as_str())
        .collect();
    assert!(frozen_keys.len() >= 5);
    let all = api.json("/v1/products?limit=100").await;
    let all = all["data"].as_array().unwrap();
    assert_eq!(all.len(), 54, "one product per demo product");
    assert!(all.iter().all(|p| p["category"].is_string()), "{all:?}");
    let frozen = api.json("/v1/products?category=frozen&limit=100").await;
    let frozen = frozen["data"].as_array().unwrap();
    assert_eq!(frozen.len(), frozen_keys.len(), "{frozen:?}");
    assert!(frozen.iter().all(|p| p["category"] == "Frozen"));
    assert!(
        frozen
            .iter()
            .any(|p| p["name"] == "Birds Eye Cod Fish Fingers 280g"),
        "{frozen:?}"
    );

    let recs = api
        .json("/v1/recommendations?category=Fresh%20%26%20Chilled&limit=100")
        .await;
    let recs = recs["data"].as_array().unwrap();
    assert!(!recs.is_empty());
    for r in recs {
        assert_eq!(r["category"], "Fresh & Chilled", "{r}");
    }
    let everything = api.json("/v1/recommendations?limit=100").await;
    assert!(everything["data"].as_array().unwrap().len() > recs.len());
}
