//! The webhook HTTP client: one POST per connection, over `http` or
//! `https`, to the addresses [`crate::check_url`] approved. It opens the
//! socket itself, so no second DNS lookup can send it elsewhere; it never
//! follows a redirect; the whole exchange has one time limit.
//!
//! TLS is rustls with the ring provider named in the config itself (no
//! process-wide default is installed, so other HTTP clients in the process
//! are untouched). The trusted roots are the system's store plus
//! `api.webhooks.ca_file`; the certificate is checked against the URL's
//! host name (or IP address), which is also the SNI name.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HOST, HeaderName, HeaderValue, USER_AGENT};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, CertificateError, ClientConfig, RootCertStore};
use url::{Host, Url};

use crate::WebhookSettings;

/// Sends webhook requests; built once from `[api.webhooks]`.
#[derive(Clone)]
pub struct WebhookClient {
    tls: Arc<ClientConfig>,
    timeout: Duration,
}

impl std::fmt::Debug for WebhookClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookClient")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl WebhookClient {
    /// The client for these settings: the system's root certificates plus
    /// those of `ca_file`. A `ca_file` that cannot be read, holds no
    /// certificate or holds one that is not a usable CA is an error.
    pub fn new(settings: &WebhookSettings) -> Result<Self, String> {
        let mut roots = RootCertStore::empty();
        let system = rustls_native_certs::load_native_certs();
        for e in &system.errors {
            tracing::warn!(error = %e, "reading the system's root certificates");
        }
        let (added, ignored) = roots.add_parsable_certificates(system.certs);
        if ignored > 0 {
            tracing::debug!(added, ignored, "system root certificates not usable");
        }
        if let Some(path) = &settings.ca_file {
            for cert in read_ca_file(path)? {
                roots.add(cert).map_err(|e| {
                    format!(
                        "api.webhooks.ca_file {}: a certificate is not a usable CA: {e}",
                        path.display()
                    )
                })?;
            }
        }
        if roots.is_empty() {
            tracing::warn!(
                "no trusted root certificates (none in the system's store, no \
                 api.webhooks.ca_file): https webhooks will fail"
            );
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("setting up TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            tls: Arc::new(tls),
            timeout: Duration::from_secs(settings.timeout_secs.max(1)),
        })
    }

    /// POSTs `body` as JSON to `url` through the first of `addrs` that
    /// accepts a connection, with `headers`; returns the status code, or
    /// why there is none. Redirects are answers like any other.
    pub async fn post(
        &self,
        url: &Url,
        addrs: &[SocketAddr],
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<u16, String> {
        let host = url.host().ok_or("webhook_url has no host")?;
        let request = request(url, headers, body)?;
        let exchange = async {
            let tcp = connect(addrs).await?;
            match url.scheme() {
                "http" => exchange(tcp, request).await,
                "https" => {
                    let name = server_name(&host)?;
                    let tls = TlsConnector::from(self.tls.clone())
                        .connect(name, tcp)
                        .await
                        .map_err(|e| {
                            format!("TLS handshake with {host}: {}", handshake_error(&e))
                        })?;
                    exchange(tls, request).await
                }
                other => Err(format!("webhook_url scheme {other:?} is not http or https")),
            }
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| format!("no answer from {host} within {} s", self.timeout.as_secs()))?
    }
}

/// The certificates of a PEM file.
fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let what = || format!("api.webhooks.ca_file {}", path.display());
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", what()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not PEM certificates: {e}", what()))?;
    if certs.is_empty() {
        return Err(format!("{}: holds no PEM certificate", what()));
    }
    Ok(certs)
}

/// The name the receiver's certificate must carry: the URL's host.
fn server_name(host: &Host<&str>) -> Result<ServerName<'static>, String> {
    match host {
        Host::Domain(name) => ServerName::try_from(name.to_string())
            .map_err(|_| format!("{name} is not a name a certificate can carry")),
        Host::Ipv4(ip) => Ok(ServerName::IpAddress((*ip).into())),
        Host::Ipv6(ip) => Ok(ServerName::IpAddress((*ip).into())),
    }
}

/// Why a TLS handshake failed, in words an operator can act on.
fn handshake_error(e: &std::io::Error) -> String {
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return e.to_string();
    };
    match tls {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "certificate not trusted (its issuer is not a trusted root; \
             see api.webhooks.ca_file)"
                .to_owned()
        }
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => "certificate not valid for this host name".to_owned(),
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => "certificate expired".to_owned(),
        rustls::Error::InvalidCertificate(other) => format!("certificate refused: {other:?}"),
        rustls::Error::AlertReceived(alert) => format!("the receiver refused: {alert:?}"),
        other => other.to_string(),
    }
}

/// A connection to the first of `addrs` that accepts one.
async fn connect(addrs: &[SocketAddr]) -> Result<TcpStream, String> {
    let mut last = String::from("no address to connect to");
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(tcp) => {
                // One small request: send it without waiting to fill a packet.
                let _ = tcp.set_nodelay(true);
                return Ok(tcp);
            }
            Err(e) => last = format!("connecting to {addr}: {e}"),
        }
    }
    Err(last)
}

/// The POST: origin-form target, `Host` as the URL spells it.
fn request(
    url: &Url,
    headers: &[(&str, String)],
    body: Bytes,
) -> Result<hyper::Request<Full<Bytes>>, String> {
    let host = url.host_str().ok_or("webhook_url has no host")?;
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let target = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let mut builder = hyper::Request::post(target)
        .header(HOST, authority)
        .header(CONTENT_TYPE, "application/json")
        .header(
            USER_AGENT,
            concat!("shelfwatch-webhooks/", env!("CARGO_PKG_VERSION")),
        );
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| format!("header name {name:?}: {e}"))?;
        let value =
            HeaderValue::from_str(value).map_err(|e| format!("header {name} value: {e}"))?;
        builder = builder.header(name, value);
    }
    builder
        .body(Full::new(body))
        .map_err(|e| format!("building the request: {e}"))
}

/// Sends `request` over `io` (HTTP/1.1) and returns the status code.
async fn exchange<I>(io: I, request: hyper::Request<Full<Bytes>>) -> Result<u16, String>
where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("sending: {e}"))?;
    // The connection is driven beside the request and ends with it: only
    // the status is read.
    let driver = AbortOnDrop(tokio::spawn(connection));
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("sending: {e}"));
    drop(driver);
    Ok(response?.status().as_u16())
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_names_the_host_and_path_as_the_url_does() {
        let url = Url::parse("https://hooks.example:8443/a/b?x=1#frag").unwrap();
        let r = request(&url, &[("webhook-id", "msg_1".into())], Bytes::new()).unwrap();
        assert_eq!(r.uri(), "/a/b?x=1");
        assert_eq!(r.headers()[HOST], "hooks.example:8443");
        assert_eq!(r.headers()["webhook-id"], "msg_1");
        let url = Url::parse("https://[::1]:443/").unwrap();
        let r = request(&url, &[], Bytes::new()).unwrap();
        assert_eq!(r.headers()[HOST], "[::1]");
        assert_eq!(r.uri(), "/");
    }

    #[tokio::test]
    async fn a_receiver_that_never_answers_is_given_up_at_the_time_limit() {
        let settings = WebhookSettings {
            timeout_secs: 1,
            ..WebhookSettings::default()
        };
        let client = WebhookClient::new(&settings).unwrap();
        // Accepts connections and never says a word: no HTTP answer, no
        // TLS handshake.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((tcp, _)) = silent.accept().await {
                open.push(tcp);
            }
        });
        for scheme in ["http", "https"] {
            let url = Url::parse(&format!("{scheme}://{addr}/hook")).unwrap();
            let started = std::time::Instant::now();
            let e = client
                .post(&url, &[addr], &[], Bytes::from_static(b"{}"))
                .await
                .unwrap_err();
            assert_eq!(e, "no answer from 127.0.0.1 within 1 s", "{scheme}");
            let took = started.elapsed();
            assert!(took < Duration::from_secs(3), "{scheme}: {took:?}");
        }
        held.abort();
        let _ = held.await;
        // Nothing listening: the connection error names the address.
        let url = Url::parse(&format!("http://{addr}/hook")).unwrap();
        let e = client
            .post(&url, &[addr], &[], Bytes::new())
            .await
            .unwrap_err();
        assert!(e.starts_with(&format!("connecting to {addr}: ")), "{e}");
    }
}
