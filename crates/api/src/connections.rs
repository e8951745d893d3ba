//! The API's own accept loop: hyper's HTTP/1.1 server with a timer, so a
//! client has to send its request head in time and cannot hold an idle
//! connection open, and a cap on open connections per client address and
//! in total (a slowloris client cannot take every file descriptor).
//!
//! Connections refused by a cap are answered at once (429 or 503
//! problem+json) and closed, and counted by reason in
//! `shelfwatch_http_connections_refused_total`. Requests hyper refuses
//! before the router sees them (a request line over 64 KiB, headers too
//! large, a head that is not HTTP) are answered with a problem+json body
//! in the API's words instead of hyper's bare status line.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::{IntCounterVec, IntGauge, Opts};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

use shelfwatch_runtime::metrics::register;

use crate::error::Problem;

/// `[api.connections]`: how long a client may take and how many
/// connections it may hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionSettings {
    /// Time allowed for a whole request head (request line and headers),
    /// counted from when the server starts waiting for it: from the
    /// connection's start, or on a kept-alive connection from the end of
    /// the previous response. A client dripping its headers is cut off.
    pub header_read_timeout_secs: u64,
    /// A connection with no request in progress that moves no byte for
    /// this long is closed (idle keep-alive, or opened and left silent).
    pub idle_timeout_secs: u64,
    /// Open connections from one client address (an IPv6 client by its
    /// /64); more are refused with 429. 0: no cap.
    pub max_connections_per_client: usize,
    /// Open connections in all; more are refused with 503. 0: no cap.
    pub max_connections: usize,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        Self {
            header_read_timeout_secs: 10,
            idle_timeout_secs: 5,
            max_connections_per_client: 64,
            max_connections: 1024,
        }
    }
}

static REFUSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "shelfwatch_http_connections_refused_total",
                "API connections refused on accept, by the cap that refused them (per_client, total).",
            ),
            &["reason"],
        )
        .unwrap_or_else(|e| unreachable!("metric is well formed: {e}")),
    )
});

static CLOSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "shelfwatch_http_connections_timed_out_total",
                "API connections closed by the server for slowness, by timeout (header_read, idle).",
            ),
            &["timeout"],
        )
        .unwrap_or_else(|e| unreachable!("metric is well formed: {e}")),
    )
});

static OPEN: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "shelfwatch_http_connections_open",
            "API connections open now.",
        )
        .unwrap_or_else(|e| unreachable!("metric is well formed: {e}")),
    )
});

/// Registers the connection metrics, so they are exported from the start.
pub fn init_metrics() {
    for reason in ["per_client", "total"] {
        REFUSED.with_label_values(&[reason]);
    }
    for timeout in ["header_read", "idle"] {
        CLOSED.with_label_values(&[timeout]);
    }
    LazyLock::force(&OPEN);
}

/// The address a connection is counted against: an IPv4 address, or the
/// /64 an IPv6 address belongs to (one host is usually given a whole /64).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    PerClient,
    Total,
}

/// Open connections, per client and in all.
struct Caps {
    per_client: usize,
    total: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One admitted connection; dropping it gives its place back.
struct Slot {
    caps: Arc<Caps>,
    client: IpAddr,
}

impl Caps {
    fn admit(caps: &Arc<Caps>, ip: IpAddr) -> Result<Slot, Refusal> {
        let client = client_key(ip);
        let mut open = caps.open.lock().unwrap_or_else(|p| p.into_inner());
        let (total, per_client) = &mut *open;
        let mine = per_client.get(&client).copied().unwrap_or(0);
        if caps.per_client > 0 && mine >= caps.per_client {
            return Err(Refusal::PerClient);
        }
        if caps.total > 0 && *total >= caps.total {
            return Err(Refusal::Total);
        }
        *total += 1;
        per_client.insert(client, mine + 1);
        OPEN.inc();
        Ok(Slot {
            caps: caps.clone(),
            client,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.caps.open.lock().unwrap_or_else(|p| p.into_inner());
        let (total, per_client) = &mut *open;
        *total = total.saturating_sub(1);
        if let Some(n) = per_client.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per_client.remove(&self.client);
            }
        }
        OPEN.dec();
    }
}

/// A complete HTTP/1.1 response carrying `problem`, closing the connection.
fn problem_response(status: StatusCode, detail: &str, retry_after: Option<u64>) -> Vec<u8> {
    let mut problem = Problem::new(status, Some(detail.to_owned()));
    let request_id = hex::encode(rand::random::<[u8; 16]>());
    problem.request_id = Some(request_id.clone());
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n{}: {request_id}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error"),
        crate::error::PROBLEM_JSON,
        body.len(),
        crate::layers::REQUEST_ID_HEADER,
    );
    if let Some(secs) = retry_after {
        head.push_str(&format!("retry-after: {secs}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(&body);
    out
}

/// Answers a refused connection without reading from it, and closes it.
fn refuse(stream: TcpStream, peer: SocketAddr, why: Refusal, settings: &ConnectionSettings) {
    let (reason, response) = match why {
        Refusal::PerClient => (
            "per_client",
            problem_response(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "too many open connections from your address (at most {}); reuse or close some",
                    settings.max_connections_per_client
                ),
                Some(1),
            ),
        ),
        Refusal::Total => (
            "total",
            problem_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server has as many connections open as it accepts; try again shortly",
                Some(1),
            ),
        ),
    };
    REFUSED.with_label_values(&[reason]).inc();
    tracing::info!(client = %peer.ip(), reason, "connection refused");
    // A fresh socket's send buffer is empty, so this does not block; a
    // client that cannot take it just sees the connection close.
    let _ = stream.try_write(&response);
}

/// The problem+json response for a request head hyper refused with
/// `status` (hyper itself sends the bare status line).
fn parse_refusal(status: u16) -> Option<Vec<u8>> {
    let (status, detail) = match status {
        400 => (
            StatusCode::BAD_REQUEST,
            "the request is not well-formed HTTP/1.1",
        ),
        414 => (
            StatusCode::URI_TOO_LONG,
            "the request line is too long: the path and query must be under 64 KiB",
        ),
        431 => (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "the request headers are too large",
        ),
        _ => return None,
    };
    Some(problem_response(status, detail, None))
}

/// When `buf` is the whole head of one of hyper's automatic error
/// responses (an error status, no body, no content type: every error the
/// router answers is problem+json), the response to send instead.
fn replacement(buf: &[u8]) -> Option<Vec<u8>> {
    let rest = buf
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| buf.strip_prefix(b"HTTP/1.0 "))?;
    let status: u16 = std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()?;
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    if end != buf.len() {
        return None;
    }
    let head = String::from_utf8_lossy(buf).to_ascii_lowercase();
    if head.contains("\r\ncontent-type:") || !head.contains("\r\ncontent-length: 0\r\n") {
        return None;
    }
    parse_refusal(status)
}

/// When a connection last moved a byte or finished a request, and how
/// many requests it is serving.
struct Activity {
    started: Instant,
    last_ms: AtomicU64,
    busy: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
        }
    }
    fn touch(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(now, Ordering::Relaxed);
    }
    /// How long until the connection has been idle for `idle`; zero when
    /// it has (`None` while a request is being served).
    fn idle_left(&self, idle: Duration) -> Option<Duration> {
        if self.busy.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let since = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        Some((since + idle).saturating_sub(self.started.elapsed()))
    }
}

/// Marks a request in progress until dropped.
struct Busy(Arc<Activity>);

impl Busy {
    fn start(activity: &Arc<Activity>) -> Self {
        activity.busy.fetch_add(1, Ordering::Relaxed);
        activity.touch();
        Self(activity.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The socket as hyper sees it: notes activity, and puts hyper's
/// automatic error responses in the API's words.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
    /// A replacement being written, how much of it is written, and the
    /// length of hyper's buffer it stands for.
    pending: Option<(Vec<u8>, usize, usize)>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.pending.is_none()
            && let Some(instead) = replacement(buf)
        {
            this.pending = Some((instead, 0, buf.len()));
        }
        if let Some((data, written, stands_for)) = &mut this.pending {
            while *written < data.len() {
                let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &data[*written..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                *written += n;
            }
            let claimed = *stands_for;
            this.pending = None;
            this.activity.touch();
            return Poll::Ready(Ok(claimed));
        }
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Serves `router` on `listener` until `stop`, then lets open connections
/// finish their requests (the caller bounds how long with its grace
/// period: dropping this future closes every connection).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ConnectionSettings,
    stop: impl Future<Output = ()>,
) {
    init_metrics();
    let caps = Arc::new(Caps {
        per_client: settings.max_connections_per_client,
        total: settings.max_connections,
        open: Mutex::new((0, HashMap::new())),
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(
            settings.header_read_timeout_secs.max(1),
        ));
    let idle = Duration::from_secs(settings.idle_timeout_secs.max(1));
    let (closing, closing_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut stop = pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors, or a connection reset
                        // before it was taken: wait a little, go on.
                        tracing::warn!(error = %e, "accepting an API connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                match Caps::admit(&caps, peer.ip()) {
                    Ok(slot) => {
                        connections.spawn(connection(
                            stream,
                            peer,
                            router.clone(),
                            http.clone(),
                            idle,
                            slot,
                            closing_rx.clone(),
                        ));
                    }
                    Err(why) => refuse(stream, peer, why, &settings),
                }
            }
        }
    }
    drop(listener);
    let _ = closing.send(true);
    while connections.join_next().await.is_some() {}
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    http: hyper::server::conn::http1::Builder,
    idle: Duration,
    _slot: Slot,
    mut closing: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
        pending: None,
    });
    let served = activity.clone();
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let busy = Busy::start(&served);
        let response = router.clone().oneshot(req);
        async move {
            let response = response.await;
            drop(busy);
            response
        }
    });
    let mut conn = pin!(http.serve_connection(io, service));
    let mut shutting_down = false;
    loop {
        let wait = activity.idle_left(idle).unwrap_or(idle);
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    if e.is_timeout() {
                        CLOSED.with_label_values(&["header_read"]).inc();
                    }
                    tracing::debug!(client = %peer.ip(), error = %e, "API connection ended");
                }
                return;
            }
            changed = closing.changed(), if !shutting_down => {
                if changed.is_err() || *closing.borrow() {
                    shutting_down = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            _ = tokio::time::sleep(wait) => {
                if activity.idle_left(idle).is_some_and(|left| left.is_zero()) {
                    CLOSED.with_label_values(&["idle"]).inc();
                    tracing::debug!(client = %peer.ip(), "idle API connection closed");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn caps_count_per_client_and_in_all_and_give_places_back() {
        let caps = Arc::new(Caps {
            per_client: 2,
            total: 3,
            open: Mutex::new((0, HashMap::new())),
        });
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        let two: IpAddr = "192.0.2.2".parse().unwrap();
        let a = Caps::admit(&caps, one).unwrap();
        let _b = Caps::admit(&caps, one).unwrap();
        assert_eq!(Caps::admit(&caps, one).err(), Some(Refusal::PerClient));
        let _c = Caps::admit(&caps, two).unwrap();
        assert_eq!(Caps::admit(&caps, two).err(), Some(Refusal::Total));
        drop(a);
        assert!(Caps::admit(&caps, one).is_ok());
    }

    #[test]
    fn only_hypers_bare_error_heads_are_replaced() {
        let bare = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: Mon, 30 Nov 2026 15:00:00 GMT\r\n\r\n";
        let instead = String::from_utf8(replacement(bare).unwrap()).unwrap();
        assert!(
            instead.starts_with("HTTP/1.1 414 URI Too Long\r\n"),
            "{instead}"
        );
        assert!(instead.contains("content-type: application/problem+json"));
        let (_, body) = instead.split_once("\r\n\r\n").unwrap();
        let problem: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["status"], 414);
        assert!(problem["detail"].as_str().unwrap().contains("64 KiB"));
        // The router's own problems, successes, and partial heads pass.
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\ncontent-length: 0\r\n\r\n";
        assert!(replacement(ours).is_none());
        assert!(replacement(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(replacement(b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n").is_none());
    }
}
