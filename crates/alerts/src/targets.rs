//! Where a webhook may go: http only, no credentials, and every address
//! the host resolves to public or on the allow-list (`allowed_hosts`).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::WebhookSettings;

/// An allow-list entry: an address block or a host name.
enum Allowed {
    Net(IpAddr, u8),
    Host(String),
}

fn parse_allowed(entry: &str) -> Option<Allowed> {
    let entry = entry.trim();
    if let Some((addr, bits)) = entry.split_once('/') {
        let ip: IpAddr = addr.parse().ok()?;
        let bits: u8 = bits.parse().ok()?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        return (bits <= max).then_some(Allowed::Net(ip, bits));
    }
    if let Ok(ip) = entry.parse::<IpAddr>() {
        let bits = if ip.is_ipv4() { 32 } else { 128 };
        return Some(Allowed::Net(ip, bits));
    }
    (!entry.is_empty()).then(|| Allowed::Host(entry.to_ascii_lowercase()))
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits))
            };
            (u32::from(a) & mask) == (u32::from(n) & mask)
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits))
            };
            (u128::from(a) & mask) == (u128::from(n) & mask)
        }
        _ => false,
    }
}

/// Addresses a webhook may not reach unless allowed: loopback, private,
/// link-local, shared (CGNAT), unspecified, multicast, documentation.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || in_net(ip, IpAddr::from([100, 64, 0, 0]), 10)
                || in_net(ip, IpAddr::from([0, 0, 0, 0]), 8)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Checks a webhook URL and resolves it: http only, a host, and every
/// address it resolves to public or allowed. Returns the URL and the
/// addresses to connect to (so a later DNS answer cannot redirect it).
pub async fn check_url(
    url: &str,
    settings: &WebhookSettings,
) -> Result<(reqwest::Url, Vec<SocketAddr>), String> {
    if url.len() > 2000 {
        return Err("webhook_url is longer than 2000 characters".into());
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("webhook_url is not a URL: {e}"))?;
    match parsed.scheme() {
        "http" => {}
        "https" => {
            return Err("https webhooks are not supported by this build yet; use http".into());
        }
        other => return Err(format!("webhook_url scheme {other:?} is not http")),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("webhook_url must not carry credentials".into());
    }
    let host = parsed
        .host_str()
        .ok_or("webhook_url has no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let allowed: Vec<Allowed> = settings
        .allowed_hosts
        .iter()
        .filter_map(|e| parse_allowed(e))
        .collect();
    let host_allowed = allowed
        .iter()
        .any(|a| matches!(a, Allowed::Host(h) if *h == host));
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::lookup_host((host.as_str(), port)),
        )
        .await
        .map_err(|_| format!("resolving {host} took too long"))?
        .map_err(|_| format!("webhook host {host} does not resolve"))?
        .collect(),
    };
    if addrs.is_empty() {
        return Err(format!("webhook host {host} does not resolve"));
    }
    for addr in &addrs {
        let ip = addr.ip();
        let ok = host_allowed
            || !is_internal(ip)
            || allowed
                .iter()
                .any(|a| matches!(a, Allowed::Net(net, bits) if in_net(ip, *net, *bits)));
        if !ok {
            return Err(format!(
                "webhook target {ip} is a private, loopback or link-local address; \
                 add it to api.webhooks.allowed_hosts to allow it"
            ));
        }
    }
    Ok((parsed, addrs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.5",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "151.101.1.1", "2a00:1450::1"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn urls_are_checked_against_the_allow_list() {
        let mut s = WebhookSettings::default();
        assert!(check_url("http://127.0.0.1:9/x", &s).await.is_err());
        assert!(
            check_url("http://169.254.169.254/latest", &s)
                .await
                .is_err()
        );
        assert!(check_url("ftp://8.8.8.8/", &s).await.is_err());
        assert!(check_url("http://u:p@8.8.8.8/", &s).await.is_err());
        assert!(check_url("http://8.8.8.8/hook", &s).await.is_ok());
        s.allowed_hosts = vec!["127.0.0.0/8".into()];
        assert!(check_url("http://127.0.0.1:9/x", &s).await.is_ok());
        assert!(check_url("http://10.0.0.1/x", &s).await.is_err());
        s.allowed_hosts = vec!["localhost".into()];
        assert!(check_url("http://localhost:9/x", &s).await.is_ok());
    }
}
