//! Where a webhook may go: http or https, no credentials, and every
//! address the host resolves to public or on the allow-list
//! (`allowed_hosts`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
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

/// IPv4 blocks of the IANA IPv4 Special-Purpose Address Registry, plus
/// multicast (224.0.0.0/4). A webhook reaches none of them unless allowed,
/// not even the few marked globally reachable (AS112, AMT, anycast relays):
/// no receiver of ours lives there.
const SPECIAL_V4: [([u8; 4], u8); 19] = [
    ([0, 0, 0, 0], 8),          // "this network"
    ([10, 0, 0, 0], 8),         // private
    ([100, 64, 0, 0], 10),      // shared address space (CGNAT)
    ([127, 0, 0, 0], 8),        // loopback
    ([169, 254, 0, 0], 16),     // link-local (cloud metadata)
    ([172, 16, 0, 0], 12),      // private
    ([192, 0, 0, 0], 24),       // IETF protocol assignments
    ([192, 0, 2, 0], 24),       // documentation (TEST-NET-1)
    ([192, 31, 196, 0], 24),    // AS112-v4
    ([192, 52, 193, 0], 24),    // AMT
    ([192, 88, 99, 0], 24),     // deprecated 6to4 relay anycast
    ([192, 168, 0, 0], 16),     // private
    ([192, 175, 48, 0], 24),    // AS112 direct delegation
    ([198, 18, 0, 0], 15),      // benchmarking
    ([198, 51, 100, 0], 24),    // documentation (TEST-NET-2)
    ([203, 0, 113, 0], 24),     // documentation (TEST-NET-3)
    ([224, 0, 0, 0], 4),        // multicast
    ([240, 0, 0, 0], 4),        // reserved for future use
    ([255, 255, 255, 255], 32), // limited broadcast
];

/// IPv6 blocks of the IANA IPv6 Special-Purpose Address Registry that lie
/// inside global unicast (2000::/3). Everything outside global unicast is
/// refused as well: loopback, unspecified, IPv4-compatible, discard-only,
/// local-use translation (64:ff9b:1::/48), segment routing, unique local,
/// link-local, site-local and multicast. The forms that embed an IPv4
/// address are unwrapped first ([`embedded_v4`]).
const SPECIAL_V6: [(u128, u8); 4] = [
    (0x2001_0000_0000_0000_0000_0000_0000_0000, 23), // IETF protocol assignments, Teredo included
    (0x2001_0db8_0000_0000_0000_0000_0000_0000, 32), // documentation
    (0x2620_004f_8000_0000_0000_0000_0000_0000, 48), // AS112 direct delegation
    (0x3fff_0000_0000_0000_0000_0000_0000_0000, 20), // documentation
];

/// IPv4-mapped addresses (::ffff:0:0/96).
const MAPPED: u128 = 0xffff_0000_0000;
/// The well-known NAT64 prefix (64:ff9b::/96).
const NAT64: u128 = 0x0064_ff9b_0000_0000_0000_0000_0000_0000;

fn in_v4(ip: Ipv4Addr, net: [u8; 4], bits: u8) -> bool {
    in_net(IpAddr::V4(ip), IpAddr::from(net), bits)
}

fn in_v6(ip: u128, net: u128, bits: u8) -> bool {
    in_net(
        IpAddr::V6(Ipv6Addr::from(ip)),
        IpAddr::V6(Ipv6Addr::from(net)),
        bits,
    )
}

/// The IPv4 addresses an IPv6 address carries, and so reaches: IPv4-mapped
/// (::ffff:0:0/96), IPv4-compatible (::/96), NAT64 (64:ff9b::/96), 6to4
/// (2002::/16, the relay's address in bits 16-48) and Teredo (2001::/32,
/// the server in bits 32-64 and the client, inverted, in the last 32).
fn embedded_v4(v6: Ipv6Addr) -> Vec<Ipv4Addr> {
    let n = u128::from(v6);
    // The low 32 bits, where every form but 6to4 keeps its address.
    let low = Ipv4Addr::from((n & 0xffff_ffff) as u32);
    if in_v6(n, MAPPED, 96) || in_v6(n, 0, 96) || in_v6(n, NAT64, 96) {
        vec![low]
    } else if in_v6(n, 0x2002_0000_0000_0000_0000_0000_0000_0000, 16) {
        vec![Ipv4Addr::from(((n >> 80) & 0xffff_ffff) as u32)]
    } else if in_v6(n, 0x2001_0000_0000_0000_0000_0000_0000_0000, 32) {
        vec![
            Ipv4Addr::from(((n >> 64) & 0xffff_ffff) as u32),
            Ipv4Addr::from(!((n & 0xffff_ffff) as u32)),
        ]
    } else {
        Vec::new()
    }
}

/// Addresses a webhook may not reach unless allowed: every block of the
/// IANA special-purpose registries (loopback, private, link-local, shared,
/// benchmarking, documentation, reserved, ...), multicast, IPv6 outside
/// global unicast, and any IPv6 address that embeds an IPv4 address that
/// is itself internal.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => SPECIAL_V4.iter().any(|&(net, bits)| in_v4(v4, net, bits)),
        IpAddr::V6(v6) => {
            if embedded_v4(v6)
                .into_iter()
                .any(|v4| is_internal(IpAddr::V4(v4)))
            {
                return true;
            }
            let n = u128::from(v6);
            if in_v6(n, MAPPED, 96) || in_v6(n, NAT64, 96) {
                // A public IPv4 address, reached directly or through NAT64.
                return false;
            }
            !in_v6(n, 0x2000_0000_0000_0000_0000_0000_0000_0000, 3)
                || SPECIAL_V6.iter().any(|&(net, bits)| in_v6(n, net, bits))
        }
    }
}

/// Checks a webhook URL and resolves it: http or https, a host, and every
/// address it resolves to public or allowed. Returns the URL and the
/// addresses to connect to (so a later DNS answer cannot redirect it).
pub async fn check_url(
    url: &str,
    settings: &WebhookSettings,
) -> Result<(url::Url, Vec<SocketAddr>), String> {
    if url.len() > 2000 {
        return Err("webhook_url is longer than 2000 characters".into());
    }
    let parsed = url::Url::parse(url).map_err(|e| format!("webhook_url is not a URL: {e}"))?;
    let port = match parsed.scheme() {
        "http" => parsed.port().unwrap_or(80),
        "https" => parsed.port().unwrap_or(443),
        other => return Err(format!("webhook_url scheme {other:?} is not http or https")),
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("webhook_url must not carry credentials".into());
    }
    let host = parsed
        .host_str()
        .ok_or("webhook_url has no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
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
            // NAT64 to metadata and loopback, and local-use NAT64.
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::7f00:1",
            "64:ff9b:1::a9fe:a9fe",
            "64:ff9b:1::808:808",
            // IPv4-compatible.
            "::127.0.0.1",
            "::a9fe:a9fe",
            "::8.8.8.8",
            // 6to4 relays inside the network.
            "2002:a9fe:a9fe::1",
            "2002:7f00:1::1",
            "2002:a00:1::1",
            // Teredo, whatever it wraps.
            "2001:0:a9fe:a9fe::1",
            "2001:0:808:808::f7f7:f7f7",
            // Site-local, documentation, discard-only, ORCHID, benchmarking.
            "fec0::1",
            "2001:db8::1",
            "3fff::1",
            "100::1",
            "2001:20::1",
            "2001:2::1",
            "5f00::1",
            "ff02::1",
            // IPv4 special-purpose blocks.
            "198.18.0.1",
            "198.19.255.255",
            "240.0.0.1",
            "255.255.255.255",
            "192.0.0.170",
            "192.0.2.1",
            "198.51.100.1",
            "203.0.113.1",
            "192.88.99.1",
            "224.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "151.101.1.1",
            "2a00:1450::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "198.20.0.1",
            "192.0.3.1",
        ] {
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

    #[tokio::test]
    async fn https_urls_are_accepted_and_checked_the_same_way() {
        let mut s = WebhookSettings::default();
        let (url, addrs) = check_url("https://8.8.8.8/hook", &s).await.unwrap();
        assert_eq!(url.scheme(), "https");
        assert_eq!(addrs, ["8.8.8.8:443".parse().unwrap()]);
        let (_, addrs) = check_url("https://8.8.8.8:8443/hook", &s).await.unwrap();
        assert_eq!(addrs, ["8.8.8.8:8443".parse().unwrap()]);
        for url in [
            "https://127.0.0.1/hook",
            "https://169.254.169.254/latest",
            "https://[::1]/hook",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://10.0.0.1:8443/hook",
            "https://localhost/hook",
        ] {
            let e = check_url(url, &s).await.unwrap_err();
            assert!(e.contains("allowed_hosts"), "{url}: {e}");
        }
        assert!(check_url("https://u:p@8.8.8.8/", &s).await.is_err());
        let e = check_url("wss://8.8.8.8/", &s).await.unwrap_err();
        assert!(e.contains("not http or https"), "{e}");
        s.allowed_hosts = vec!["127.0.0.1".into()];
        let (_, addrs) = check_url("https://127.0.0.1/hook", &s).await.unwrap();
        assert_eq!(addrs, ["127.0.0.1:443".parse().unwrap()]);
    }

    #[tokio::test]
    async fn the_checked_url_is_the_normalised_one() {
        let s = WebhookSettings {
            allowed_hosts: vec!["127.0.0.1".into()],
            ..WebhookSettings::default()
        };
        for (raw, normal) in [
            ("http://0x7f000001:18610/", "http://127.0.0.1:18610/"),
            ("http://127.0.0.1:9/hook\n\t", "http://127.0.0.1:9/hook"),
            ("  http://127.0.0.1:9/a\tb ", "http://127.0.0.1:9/ab"),
            ("http://127.0.0.1:9/a\0b", "http://127.0.0.1:9/a%00b"),
        ] {
            let (url, _) = check_url(raw, &s).await.unwrap();
            assert_eq!(url.as_str(), normal, "{raw:?}");
        }
    }
}
