//! Outbound HTTP to URLs that API callers choose (Slack webhooks, later agent webhooks).
//! Unless `--allow-private-network` is set, such a URL may not reach loopback, private,
//! link-local or otherwise internal addresses: checked when the URL is given, and again
//! each time its name is resolved, since DNS can change between the two.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// How long an outbound call may take in all.
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// True for addresses a caller-chosen URL must not reach.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                // Shared address space (carrier-grade NAT), 100.64.0.0/10.
                || (a == 100 && (64..128).contains(&b))
                // Benchmarking, 198.18.0.0/15.
                || (a == 198 && (b == 18 || b == 19))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // Unique local fc00::/7 and link-local fe80::/10.
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Checks what can be known of `url` without resolving it: `localhost` or a literal
/// internal address is refused. A name that does not resolve now is not a reason to refuse.
pub fn check_url(url: &Url, allow_private_network: bool) -> Result<(), String> {
    if allow_private_network {
        return Ok(());
    }
    let refused = |what: String| {
        Err(format!(
            "{what} is a loopback or private address; PausePoint only calls public addresses \
             unless the server runs with --allow-private-network"
        ))
    };
    match url.host() {
        Some(Host::Ipv4(ip)) if is_internal(IpAddr::V4(ip)) => refused(ip.to_string()),
        Some(Host::Ipv6(ip)) if is_internal(IpAddr::V6(ip)) => refused(ip.to_string()),
        Some(Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if name == "localhost" || name.ends_with(".localhost") {
                refused(name)
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// The client for caller-chosen URLs: no redirects (a redirect could lead anywhere), a
/// timeout, and, unless private networks are allowed, a resolver that drops internal
/// addresses.
pub fn client(allow_private_network: bool) -> reqwest::Client {
    let builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("PausePoint/", env!("CARGO_PKG_VERSION")));
    let builder = if allow_private_network {
        builder
    } else {
        builder.dns_resolver(Arc::new(PublicOnly))
    };
    builder.build().unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot build the outbound HTTP client; using defaults");
        reqwest::Client::new()
    })
}

/// Resolves names, keeping only public addresses.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| !is_internal(a.ip()))
                .collect();
            if public.is_empty() {
                let shown = all.first().map(|a| a.ip().to_string()).unwrap_or_default();
                return Err(format!(
                    "{host} resolves to {shown}, a loopback or private address; PausePoint only \
                     calls public addresses unless the server runs with --allow-private-network"
                )
                .into());
            }
            let addrs: Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// A reqwest error with its causes, in one line a person can read.
pub fn describe(error: &reqwest::Error) -> String {
    let mut message = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        error.to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["1.1.1.1", "34.1.2.3", "2606:4700::1111"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls_checked_before_resolving() {
        let check = |u: &str| check_url(&Url::parse(u).unwrap(), false);
        assert!(check("http://127.0.0.1:9000/hook").is_err());
        assert!(check("http://[::1]/hook").is_err());
        assert!(check("http://localhost:8080/").is_err());
        assert!(check("http://169.254.169.254/latest/meta-data").is_err());
        assert!(check("https://hooks.slack.com/services/T/B/X").is_ok());
        assert!(check("https://no-such-name.invalid/").is_ok());
        assert!(check_url(&Url::parse("http://127.0.0.1/").unwrap(), true).is_ok());
    }
}
