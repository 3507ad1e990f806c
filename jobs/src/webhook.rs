//! Webhook receivers: the SSRF guard every webhook URL passes, at submit (and, once
//! deliveries exist, again at connect time).
//!
//! By default a receiver must be `https` and every address its host resolves to must be a
//! public one: no loopback, private (RFC 1918, unique-local), link-local (which holds the
//! cloud metadata address 169.254.169.254), unspecified, multicast, broadcast, shared
//! (100.64/10) or documentation address. `LONGHAUL_WEBHOOK_ALLOW_PRIVATE=true` relaxes both
//! rules for development and tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// Why a webhook URL is refused (the message names the rule, for the client's 422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RefusedUrl(pub String);

/// Whether `ip` may receive webhooks when private addresses are not allowed.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // Shared address space (carrier-grade NAT), 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // 192.0.0.0/24 (IETF protocol assignments) and 198.18.0.0/15 (benchmarking).
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // Unique local fc00::/7, link-local fe80::/10, documentation 2001:db8::/32.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first == 0x2001 && ip.segments()[1] == 0x0db8))
}

/// Checks a webhook URL: its scheme, and every address its host resolves to (DNS is
/// looked up here). `allow_private` is `LONGHAUL_WEBHOOK_ALLOW_PRIVATE`.
pub async fn check_url(raw: &str, allow_private: bool) -> Result<Url, RefusedUrl> {
    let url = Url::parse(raw).map_err(|_| RefusedUrl("must be an absolute URL".into()))?;
    if allow_private {
        return Ok(url);
    }
    if url.scheme() != "https" {
        return Err(RefusedUrl("must be an https URL".into()));
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<IpAddr> = match url.host() {
        Some(Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
        Some(Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
        Some(Host::Domain(name)) => tokio::net::lookup_host((name, port))
            .await
            .map_err(|_| RefusedUrl(format!("host `{name}` does not resolve")))?
            .map(|a| a.ip())
            .collect(),
        None => return Err(RefusedUrl("must name a host".into())),
    };
    if addrs.is_empty() {
        return Err(RefusedUrl("host does not resolve".into()));
    }
    if let Some(ip) = addrs.into_iter().find(|ip| !is_public(*ip)) {
        return Err(RefusedUrl(format!(
            "must not point at a loopback, private, link-local or metadata address ({ip})"
        )));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn private_loopback_link_local_and_metadata_receivers_are_refused_unless_allowed() {
        for url in [
            "https://127.0.0.1/hook",
            "https://10.0.0.1/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://192.168.1.2/hook",
            "https://[::1]/hook",
            "https://[fd00::1]/hook",
            "https://[::ffff:127.0.0.1]/hook",
            "https://localhost/hook",
            "http://example.com/hook",
        ] {
            assert!(check_url(url, false).await.is_err(), "{url} accepted");
            assert!(
                check_url(url, true).await.is_ok(),
                "{url} refused with the dev flag"
            );
        }
        assert!(check_url("https://93.184.215.14/hook", false).await.is_ok());
    }
}
