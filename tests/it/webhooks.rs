//! Webhooks from the receiver's side (the verification example in
//! docs/webhooks.md, run as written, and https receivers), and the limit
//! on how many watches one caller may keep.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::HeaderMap;
use reqwest::StatusCode;
use serde_json::{Value, json};
use shelfwatch_api::auth::{Scope, create_key};

use crate::api::{Api, Received, receiver_app, seeded, serve, wait_for};
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

/// Asserts that a received delivery is signed by `secret` the Standard
/// Webhooks way and was sent within the last minute; returns the time it
/// was sent.
pub fn assert_signed(secret: &str, headers: &HeaderMap, body: &str) -> i64 {
    let id = headers["webhook-id"].to_str().unwrap();
    let sent_at: i64 = headers["webhook-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((chrono::Utc::now().timestamp() - sent_at).abs() < 60);
    assert_eq!(
        headers["webhook-signature"].to_str().unwrap(),
        shelfwatch_alerts::sign(secret, id, sent_at, body.as_bytes())
    );
    sent_at
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

// ---- https receivers -------------------------------------------------------

/// A certificate authority made for one test.
struct TestCa(rcgen::CertifiedIssuer<'static, rcgen::KeyPair>);

impl TestCa {
    fn new(name: &str) -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyUsagePurpose};
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = rcgen::KeyPair::generate().unwrap();
        TestCa(rcgen::CertifiedIssuer::self_signed(params, key).unwrap())
    }

    fn pem(&self) -> String {
        self.0.pem()
    }

    /// A server config whose certificate, for `name`, this CA issued.
    fn server_config(&self, name: &str) -> tokio_rustls::rustls::ServerConfig {
        use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&key, &self.0)
            .unwrap();
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap()
    }
}

/// Accepts TLS connections for `axum::serve`, counting failed handshakes.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    failed: Arc<AtomicUsize>,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            match self.acceptor.accept(tcp).await {
                Ok(tls) => return (tls, addr),
                Err(_) => {
                    self.failed.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// An https webhook receiver on 127.0.0.1 whose certificate, for `name`,
/// `ca` issued; returns its address, what it received and how many
/// handshakes failed.
async fn tls_receiver(ca: &TestCa, name: &str) -> (SocketAddr, Received, Arc<AtomicUsize>) {
    let (app, received) = receiver_app(0);
    let failed = Arc::new(AtomicUsize::new(0));
    let listener = TlsListener {
        tcp: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(ca.server_config(name))),
        failed: failed.clone(),
    };
    let addr = axum::serve::Listener::local_addr(&listener).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, received, failed)
}

/// A watch met at once (a target above today's cheapest price) that
/// POSTs to `url`; returns its secret.
async fn met_watch(api: &Api, key: &str, url: &str) -> String {
    let cheapest =
        api.json("/v1/products/1000").await["cheapest"][0]["effective_price"]["amount_minor"]
            .as_i64()
            .unwrap();
    let r = api
        .http
        .post(format!("{}/v1/watches", api.base))
        .header("x-api-key", key)
        .json(
            &json!({"product_id": 1000, "target_price_pence": cheapest + 1,
                      "webhook_url": url}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let watch: Value = r.json().await.unwrap();
    assert_eq!(watch["webhook_url"], url);
    watch["secret"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn https_webhooks_reach_only_receivers_whose_certificate_is_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let ours = TestCa::new("shelfwatch test CA");
    let theirs = TestCa::new("a CA nobody configured");
    let ca_file = dir.path().join("hooks-ca.pem");
    std::fs::write(&ca_file, ours.pem()).unwrap();
    let (trusted, trusted_received, _) = tls_receiver(&ours, "127.0.0.1").await;
    let stranger = tls_receiver(&theirs, "127.0.0.1").await;
    // Our CA, but a certificate for another host.
    let misnamed = tls_receiver(&ours, "hooks.example").await;

    let db = seeded().await;
    let (_, key) = create_key(&db.pool, "hooks", &[Scope::Watch])
        .await
        .unwrap();
    let api = serve(db, |s| {
        s.webhooks.allowed_hosts = vec!["127.0.0.1".into()];
        s.webhooks.ca_file = Some(ca_file);
        s.webhooks.max_attempts = 1;
    })
    .await;
    let trusted_url = format!("https://{trusted}/hook");
    let secret = met_watch(&api, &key, &trusted_url).await;
    let refused = [
        (stranger, "certificate not trusted"),
        (misnamed, "certificate not valid for this host name"),
    ];
    for ((addr, _, _), _) in &refused {
        met_watch(&api, &key, &format!("https://{addr}/hook")).await;
    }
    assert_eq!(
        shelfwatch_alerts::evaluate_watches(&api.db.pool)
            .await
            .unwrap(),
        3
    );
    let pool = api.db.pool.clone();
    wait_for("every delivery to end", async || {
        let pending: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM webhook_deliveries WHERE status NOT IN ('delivered', 'failed')",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        pending == 0
    })
    .await;
    let outcomes: Vec<(String, String, Option<i32>, Option<String>)> = sqlx::query_as(
        "SELECT w.webhook_url, d.status, d.last_status, d.last_error
         FROM webhook_deliveries d JOIN watches w ON w.id = d.watch_id ORDER BY d.id",
    )
    .fetch_all(&api.db.pool)
    .await
    .unwrap();
    let outcome = |url: &str| outcomes.iter().find(|o| o.0 == url).unwrap().clone();

    // Over TLS to the receiver the CA file vouches for: delivered, signed.
    let (_, status, code, error) = outcome(&trusted_url);
    assert_eq!(
        (status.as_str(), code, error),
        ("delivered", Some(204), None)
    );
    let received = trusted_received.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    let (headers, body) = &received[0];
    assert_signed(&secret, headers, body);
    let event: Value = serde_json::from_str(body).unwrap();
    assert_eq!(event["event"], "price_at_target");

    // A certificate from any other CA, or for another host: the handshake
    // is refused, nothing is sent, and the attempt says why.
    for ((addr, received, failed_handshakes), why) in refused {
        let url = format!("https://{addr}/hook");
        let (_, status, code, error) = outcome(&url);
        assert_eq!((status.as_str(), code), ("failed", None), "{url}");
        let error = error.unwrap();
        assert!(
            error.contains(&format!("TLS handshake with 127.0.0.1: {why}")),
            "{error}"
        );
        let attempts: Vec<(Option<i32>, Option<String>)> = sqlx::query_as(
            "SELECT a.status_code, a.error FROM webhook_attempts a
             JOIN webhook_deliveries d ON d.id = a.delivery_id
             JOIN watches w ON w.id = d.watch_id WHERE w.webhook_url = $1",
        )
        .bind(&url)
        .fetch_all(&api.db.pool)
        .await
        .unwrap();
        assert_eq!(attempts, [(None, Some(error))]);
        assert!(received.lock().unwrap().is_empty(), "{url}");
        assert_eq!(failed_handshakes.load(Ordering::SeqCst), 1, "{url}");
    }
    api.running
        .shutdown(std::time::Duration::from_secs(5))
        .await;
}

#[tokio::test]
async fn the_api_refuses_to_start_with_a_ca_file_it_cannot_use() {
    let db = crate::support::TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    for (path, says) in [
        (dir.path().join("missing.pem"), "No such file"),
        (not_pem, "holds no PEM certificate"),
    ] {
        let mut settings = crate::api::test_settings();
        settings.webhooks.ca_file = Some(path.clone());
        let e = match shelfwatch_api::start(db.pool.clone(), settings).await {
            Ok(_) => panic!("started with ca_file {}", path.display()),
            Err(e) => format!("{e:#}"),
        };
        assert!(e.contains("api.webhooks.ca_file"), "{e}");
        assert!(e.contains(says), "{e}");
    }
}
