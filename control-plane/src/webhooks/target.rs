//! Where a webhook may go. An endpoint's URL is chosen by a user, so without care the
//! control plane would make requests for them inside its own network (SSRF): to the
//! database, a cloud metadata service, an admin port on loopback. Unless the operator
//! allows private addresses (`--webhooks-allow-private`), a URL naming such an address is
//! refused when registered, and a host name is resolved by [`PublicOnly`] at every
//! connection, so a name that later points inside (DNS rebinding) gets no connection.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

/// Longest endpoint URL.
pub const MAX_URL: usize = 2048;

/// Why a URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not a URL, too long, or not http/https.
    #[error("url must be an http:// or https:// URL of at most 2048 characters")]
    Malformed,
    /// `user:password@` in the URL (the secret is the signature).
    #[error("url must not carry credentials")]
    Credentials,
    /// A private, loopback, link-local or otherwise internal address.
    #[error("url points at a private or local address")]
    Private,
}

/// Whether `ip` is reachable on the public internet (not loopback, private, link-local,
/// shared, documentation, multicast or unspecified).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => public_v4(v4),
            None => public_v6(v6),
        },
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // 100.64.0.0/10, carrier-grade NAT.
        || (a == 100 && (64..128).contains(&b))
        // 192.0.0.0/24, IETF protocol assignments; 198.18.0.0/15, benchmarking.
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        || (a == 198 && (18..20).contains(&b))
        // 240.0.0.0/4, reserved.
        || a >= 240)
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // fc00::/7 unique local, fe80::/10 link-local, 2001:db8::/32 documentation.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
        // ::ffff:0:0/96 handled by the caller; 64:ff9b::/96 NAT64 may reach inside.
        || (first == 0x0064 && ip.segments()[1] == 0xff9b))
}

/// Checks an endpoint URL; returns it normalized.
pub fn check(url: &str, allow_private: bool) -> Result<Url, TargetError> {
    if url.len() > MAX_URL {
        return Err(TargetError::Malformed);
    }
    let parsed = Url::parse(url.trim()).map_err(|_| TargetError::Malformed)?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(TargetError::Malformed);
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(TargetError::Credentials);
    }
    if !allow_private && !host_may_be_public(&parsed) {
        return Err(TargetError::Private);
    }
    Ok(parsed)
}

/// False for an IP literal that is not public, or a name that is always local.
fn host_may_be_public(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return is_public(ip);
    }
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    !(name == "localhost" || name.ends_with(".localhost") || name.ends_with(".internal"))
}

/// A resolver that drops every non-public address of a name (and fails when none is
/// left), so the connection can only go to what [`is_public`] accepts.
#[derive(Debug, Default)]
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(Box::new(TargetError::Private) as _);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_refused() {
        for url in [
            "http://127.0.0.1:8080/hook",
            "http://[::1]/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://localhost:9000/",
            "http://api.localhost/",
            "http://2130706433/",
        ] {
            assert_eq!(check(url, false), Err(TargetError::Private), "{url}");
            assert!(check(url, true).is_ok(), "{url} with private allowed");
        }
    }

    #[test]
    fn public_urls_pass_and_junk_does_not() {
        assert!(check("https://hooks.example.com/cascade?x=1", false).is_ok());
        assert!(check("http://93.184.216.34/", false).is_ok());
        assert!(check("http://[2606:4700::1]/", false).is_ok());
        for bad in [
            "ftp://example.com/",
            "not a url",
            "https://",
            "file:///etc/passwd",
        ] {
            assert_eq!(check(bad, false), Err(TargetError::Malformed), "{bad}");
        }
        assert_eq!(
            check("https://u:p@example.com/", false),
            Err(TargetError::Credentials)
        );
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL));
        assert_eq!(check(&long, false), Err(TargetError::Malformed));
    }
}
