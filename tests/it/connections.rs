//! Slow and greedy clients against the real API listener, over raw TCP:
//! silent, drip-fed and idle kept-alive connections are closed, one
//! address cannot hold every connection, and requests hyper refuses
//! before routing are answered in the API's own words.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::api::{Api, metrics_text, serve};
use crate::support::TestDb;

async fn api_with(tweak: impl FnOnce(&mut shelfwatch_api::ApiSettings)) -> Api {
    serve(TestDb::new().await, tweak).await
}

/// A connection to `server` from the loopback address `from`.
async fn connect_from(from: &str, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(server).await.unwrap()
}

/// Reads until the server closes the connection (or `limit` passes);
/// returns what was read and when it closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, Option<Duration>) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return (got, None),
            Ok(Ok(0)) | Ok(Err(_)) => return (got, Some(started.elapsed())),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// The value of the counter line starting with `series` (0 when absent).
fn counter(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series).map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0.0)
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: shelfwatch\r\n\r\n";

#[tokio::test]
async fn silent_drip_fed_and_idle_connections_are_closed() {
    let api = api_with(|s| {
        s.connections.header_read_timeout_secs = 2;
        s.connections.idle_timeout_secs = 1;
    })
    .await;
    let idle_series = "shelfwatch_http_connections_timed_out_total{timeout=\"idle\"}";
    let header_series = "shelfwatch_http_connections_timed_out_total{timeout=\"header_read\"}";
    let before = metrics_text(&api).await;
    let limit = Duration::from_secs(8);

    // Opened and never written to.
    let mut silent = TcpStream::connect(api.running.addr).await.unwrap();
    // A request head sent one byte every 300 ms, never finished.
    let mut drip = TcpStream::connect(api.running.addr).await.unwrap();
    // One request answered, then kept alive and left idle.
    let mut kept = TcpStream::connect(api.running.addr).await.unwrap();
    kept.write_all(HEALTHZ).await.unwrap();
    let mut first = [0u8; 12];
    kept.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");

    let dripping = tokio::spawn(async move {
        let started = Instant::now();
        drip.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: ")
            .await
            .unwrap();
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if drip.write_all(b"a").await.is_err() || started.elapsed() > limit {
                break;
            }
        }
        let (got, closed) = read_until_closed(&mut drip, Duration::from_secs(1)).await;
        (started.elapsed(), got, closed)
    });
    let (_, silent_closed) = read_until_closed(&mut silent, limit).await;
    let (_, kept_closed) = read_until_closed(&mut kept, limit).await;
    let (drip_elapsed, _, _) = dripping.await.unwrap();

    let silent_closed = silent_closed.expect("a silent connection is closed");
    let kept_closed = kept_closed.expect("an idle kept-alive connection is closed");
    assert!(
        silent_closed >= Duration::from_millis(900),
        "{silent_closed:?}"
    );
    assert!(kept_closed < Duration::from_secs(5), "{kept_closed:?}");
    // Each byte of the drip is activity, so only the header timer ends it:
    // after the idle time, near the two seconds allowed for a head.
    assert!(
        drip_elapsed >= Duration::from_millis(1800) && drip_elapsed < Duration::from_secs(6),
        "the drip-fed head was cut off after {drip_elapsed:?}"
    );

    let after = metrics_text(&api).await;
    assert!(counter(&after, idle_series) >= counter(&before, idle_series) + 2.0);
    assert!(counter(&after, header_series) > counter(&before, header_series));
    api.running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn one_address_cannot_hold_every_connection() {
    let api = api_with(|s| {
        s.connections.max_connections_per_client = 4;
        s.connections.max_connections = 6;
        s.connections.idle_timeout_secs = 60;
        s.connections.header_read_timeout_secs = 60;
    })
    .await;
    let addr = api.running.addr;
    let series =
        |reason: &str| format!("shelfwatch_http_connections_refused_total{{reason=\"{reason}\"}}");
    let before = metrics_text(&api).await;

    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect_from("127.0.0.1", addr).await);
    }
    // Make sure the server has taken all four before the fifth.
    for stream in &mut held {
        stream.write_all(HEALTHZ).await.unwrap();
        let mut status = [0u8; 12];
        stream.read_exact(&mut status).await.unwrap();
        assert_eq!(&status, b"HTTP/1.1 200");
    }
    let mut fifth = connect_from("127.0.0.1", addr).await;
    let (got, closed) = read_until_closed(&mut fifth, Duration::from_secs(5)).await;
    assert!(closed.is_some(), "the fifth connection is closed");
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 429 "), "{got}");
    assert!(
        got.contains("content-type: application/problem+json"),
        "{got}"
    );
    assert!(
        got.contains("too many open connections from your address"),
        "{got}"
    );

    // Another address is still served.
    let mut other = connect_from("127.0.0.2", addr).await;
    other.write_all(HEALTHZ).await.unwrap();
    let mut status = [0u8; 12];
    other.read_exact(&mut status).await.unwrap();
    assert_eq!(&status, b"HTTP/1.1 200");

    // Six open in all: a seventh from a third address is refused too.
    let _sixth = connect_from("127.0.0.3", addr).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut seventh = connect_from("127.0.0.4", addr).await;
    let (got, _) = read_until_closed(&mut seventh, Duration::from_secs(5)).await;
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 503 "), "{got}");

    // A closed connection gives its place back.
    drop(held.pop());
    let started = Instant::now();
    loop {
        let mut again = connect_from("127.0.0.1", addr).await;
        again.write_all(HEALTHZ).await.unwrap();
        let mut status = [0u8; 12];
        if again.read_exact(&mut status).await.is_ok() && &status == b"HTTP/1.1 200" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no place given back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let after = metrics_text(&api).await;
    assert!(counter(&after, &series("per_client")) > counter(&before, &series("per_client")));
    assert!(counter(&after, &series("total")) > counter(&before, &series("total")));
    api.running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn overlong_urls_get_a_problem_in_the_apis_words() {
    let api = api_with(|_| {}).await;
    for length in [100_000, 64 * 1024] {
        let mut stream = TcpStream::connect(api.running.addr).await.unwrap();
        let path = format!("/healthz?pad={}", "a".repeat(length));
        let request = format!("GET {path} HTTP/1.1\r\nhost: shelfwatch\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let (got, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
        assert!(closed.is_some());
        let got = String::from_utf8(got).unwrap();
        let (head, body) = got.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 414 "), "{length}: {head}");
        assert!(
            head.contains("content-type: application/problem+json"),
            "{head}"
        );
        let problem: Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["status"], 414);
        assert_eq!(problem["title"], "URI Too Long");
        assert!(
            problem["detail"].as_str().unwrap().contains("64 KiB"),
            "{problem}"
        );
        assert!(problem["request_id"].is_string());
    }
    // A URL just under the limit is routed as usual.
    let fine = api
        .get(&format!("/healthz?pad={}", "a".repeat(60_000)))
        .await;
    assert_eq!(fine.status(), reqwest::StatusCode::OK);
    api.running.shutdown(Duration::from_secs(5)).await;
}
