//! Outbound HTTP. URLs that API callers choose (Slack webhooks, agents' webhooks) may not
//! reach loopback, private, link-local or otherwise non-public addresses unless
//! `--allow-private-network` is set: checked when the URL is given, and again each time
//! its name is resolved, since DNS can change between the two. Proxy variables in the
//! environment are ignored (a proxy would resolve names where the guard cannot see);
//! `--outbound-proxy` makes one explicit, and then every target is resolved here first and
//! refused when it is not public. Every answer is read as a stream and cut at a small cap,
//! so no receiver can make the server hold more than that.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// How long an outbound call may take in all.
pub const TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where outbound HTTP may go, and through what.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Let caller-chosen URLs reach loopback and private networks (tests, stand-ins).
    pub allow_private_network: bool,
    /// Send everything through this proxy; targets are still checked here first.
    pub proxy: Option<Url>,
}

/// Looks a host name up: every address it has.
pub type Lookup = Arc<
    dyn Fn(String) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>
        + Send
        + Sync,
>;

/// The system resolver.
pub fn system_lookup() -> Lookup {
    Arc::new(|host: String| {
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    })
}

/// True for every address a caller-chosen URL must not reach: the IANA special-purpose
/// registries for IPv4 and IPv6, and every IPv6 form that carries an IPv4 address
/// (mapped, compatible, translated, NAT64, 6to4, Teredo).
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => is_internal_v6(v6),
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    a == 0                                       // "this network", 0.0.0.0/8
        || a == 10                               // private
        || a == 127                              // loopback
        || (a == 100 && (64..128).contains(&b))  // shared address space (CGNAT)
        || (a == 169 && b == 254)                // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b))   // private
        || (a == 192 && b == 0 && c == 0)        // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)        // documentation
        || (a == 192 && b == 88 && c == 99)      // 6to4 relay anycast
        || (a == 192 && b == 168)                // private
        || (a == 198 && (b == 18 || b == 19))    // benchmarking
        || (a == 198 && b == 51 && c == 100)     // documentation
        || (a == 203 && b == 0 && c == 113)      // documentation
        || a >= 224 // multicast 224/4, reserved 240/4, broadcast
}

fn is_internal_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    // Any form that embeds an IPv4 address is refused outright: a webhook has no business
    // there, and each form would otherwise need its embedded address checked.
    let embeds_v4 = (s[0..5] == [0; 5] && (s[5] == 0 || s[5] == 0xffff)) // compatible ::/96, mapped
        || (s[0..4] == [0; 4] && s[4] == 0xffff && s[5] == 0)            // translated ::ffff:0:0/96
        || (s[0] == 0x64 && s[1] == 0xff9b)                              // NAT64 64:ff9b::/96 and /48
        || s[0] == 0x2002                                                // 6to4 2002::/16
        || (s[0] == 0x2001 && s[1] == 0); // Teredo 2001::/32
    embeds_v4
        || ip.is_unspecified()
        || ip.is_loopback()
        || (s[0] & 0xff00) == 0xff00                 // multicast
        || (s[0] & 0xfe00) == 0xfc00                 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80                 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0                 // site-local fec0::/10 (deprecated)
        || (s[0] == 0x100 && s[1..4] == [0; 3])      // discard 100::/64
        || (s[0] == 0x2001 && s[1] < 0x200)          // IETF protocol assignments 2001::/23
        || (s[0] == 0x2001 && s[1] == 0xdb8)         // documentation
        || (s[0] == 0x3fff && s[1] < 0x1000)         // documentation 3fff::/20
        || s[0] == 0x5f00 // segment routing 5f00::/16
}

/// Checks what can be known of `url` without resolving it: `localhost` or a literal
/// internal address is refused. A name that does not resolve now is not a reason to refuse.
pub fn check_url(url: &Url, allow_private_network: bool) -> Result<(), String> {
    if allow_private_network {
        return Ok(());
    }
    match url.host() {
        Some(Host::Ipv4(ip)) if is_internal(IpAddr::V4(ip)) => Err(refused(&ip.to_string())),
        Some(Host::Ipv6(ip)) if is_internal(IpAddr::V6(ip)) => Err(refused(&ip.to_string())),
        Some(Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if name == "localhost" || name.ends_with(".localhost") {
                Err(refused(&name))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

fn refused(what: &str) -> String {
    format!(
        "{what} is a loopback or private address; PausePoint only calls public addresses \
         unless the server runs with --allow-private-network"
    )
}

/// Keeps the public addresses of `host`; an error naming the first one when none is.
pub fn public_addresses(host: &str, all: &[IpAddr]) -> Result<Vec<IpAddr>, String> {
    let public: Vec<IpAddr> = all.iter().copied().filter(|ip| !is_internal(*ip)).collect();
    if public.is_empty() {
        let shown = all.first().map(|ip| ip.to_string()).unwrap_or_default();
        return Err(refused(&format!("{host} resolves to {shown}, which")));
    }
    Ok(public)
}

/// The client for URLs that API callers choose: no redirects (a redirect could lead
/// anywhere), a timeout, no proxy from the environment, and, unless private networks are
/// allowed, a resolver that drops non-public addresses. Fails rather than fall back to a
/// client without the guard.
pub fn client(policy: &Policy, lookup: Lookup) -> Result<reqwest::Client, String> {
    let builder = base(policy)?;
    let builder = if policy.allow_private_network {
        builder
    } else {
        builder.dns_resolver(Arc::new(PublicOnly { lookup }))
    };
    builder
        .build()
        .map_err(|e| format!("cannot build the outbound HTTP client: {e}"))
}

/// The client for a provider the operator configured (Twilio): the same, but its address
/// is the operator's choice, so it may be private.
pub fn provider_client(policy: &Policy) -> Result<reqwest::Client, String> {
    base(policy)?
        .build()
        .map_err(|e| format!("cannot build the outbound HTTP client: {e}"))
}

fn base(policy: &Policy) -> Result<reqwest::ClientBuilder, String> {
    let builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .no_proxy()
        .user_agent(concat!("PausePoint/", env!("CARGO_PKG_VERSION")));
    match &policy.proxy {
        None => Ok(builder),
        Some(proxy) => {
            let proxy = reqwest::Proxy::all(proxy.as_str())
                .map_err(|e| format!("--outbound-proxy is not usable: {e}"))?;
            Ok(builder.proxy(proxy))
        }
    }
}

/// Before a send through a proxy (which resolves names itself, out of the guard's
/// sight), resolves the target here and refuses it when it is not public.
pub async fn check_through_proxy(
    url: &Url,
    policy: &Policy,
    lookup: &Lookup,
) -> Result<(), String> {
    if policy.proxy.is_none() || policy.allow_private_network {
        return Ok(());
    }
    check_url(url, false)?;
    if let Some(Host::Domain(name)) = url.host() {
        let all = lookup(name.to_owned())
            .await
            .map_err(|e| format!("cannot resolve {name}: {e}"))?;
        public_addresses(name, &all)?;
    }
    Ok(())
}

/// Resolves names, keeping only public addresses.
struct PublicOnly {
    lookup: Lookup,
}

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let lookup = Arc::clone(&self.lookup);
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let all = lookup(host.clone()).await?;
            let public = public_addresses(&host, &all)?;
            let addrs: Addrs = Box::new(public.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// The start of an answer's body, read as a stream and cut at `cap` bytes: the rest is
/// never read. True when it was cut.
pub async fn read_capped(mut response: reqwest::Response, cap: usize) -> (String, bool) {
    let mut body: Vec<u8> = Vec::new();
    let mut cut = false;
    // A broken stream ends the excerpt like its end would: what came is what is kept.
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = cap - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            cut = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    let mut text = String::from_utf8_lossy(&body).into_owned();
    if cut {
        // A multi-byte character cut in half shows as a replacement character: drop it.
        while text.ends_with('\u{fffd}') {
            text.pop();
        }
        text.push('…');
    }
    (text, cut)
}

/// The longest wait a `Retry-After` is followed for.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The wait an answer's `Retry-After` asks for, in seconds or as an HTTP date (RFC 9110),
/// at most a day.
pub fn retry_after(response: &reqwest::Response, now: jiff::Timestamp) -> Option<Duration> {
    let value = response.headers().get("retry-after")?.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
            Duration::try_from(at.duration_since(now)).unwrap_or_default()
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
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
    fn every_non_public_address_is_internal() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.8.8.8",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:8.8.8.8",
            "::ffff:0:7f00:1",
            "64:ff9b::7f00:1",
            "64:ff9b::808:808",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:db8::1",
            "2001:10::1",
            "3fff::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "100::1",
            "5f00::1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn public_addresses_are_not_internal() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "34.1.2.3",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.0.1.1",
            "198.17.255.255",
            "223.255.255.255",
            "2606:4700::1111",
            "2a00:1450:4001::1",
            "2001:4860:4860::8888",
        ] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls_checked_before_resolving() {
        let check = |u: &str| check_url(&Url::parse(u).unwrap(), false);
        assert!(check("http://127.0.0.1:9000/hook").is_err());
        assert!(check("http://[::1]/hook").is_err());
        assert!(check("http://[::127.0.0.1]/hook").is_err());
        assert!(check("http://[::ffff:0:7f00:1]/hook").is_err());
        assert!(check("http://[64:ff9b::a00:1]/hook").is_err());
        assert!(check("http://localhost:8080/").is_err());
        assert!(check("http://app.localhost/").is_err());
        assert!(check("http://169.254.169.254/latest/meta-data").is_err());
        assert!(check("https://hooks.slack.com/services/T/B/X").is_ok());
        assert!(check("https://no-such-name.invalid/").is_ok());
        assert!(check_url(&Url::parse("http://127.0.0.1/").unwrap(), true).is_ok());
    }

    /// A resolver that answers the addresses under test; no connection is ever made.
    fn answering(addresses: &'static [&'static str]) -> Lookup {
        Arc::new(move |_host: String| {
            Box::pin(async move { Ok(addresses.iter().map(|a| a.parse().unwrap()).collect()) })
        })
    }

    #[tokio::test]
    async fn the_resolver_keeps_only_public_addresses() {
        let resolver = PublicOnly {
            lookup: answering(&["10.0.0.5", "93.184.215.14", "::1"]),
        };
        let addrs: Vec<SocketAddr> = resolver
            .resolve("example.com".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert_eq!(addrs, ["93.184.215.14:0".parse::<SocketAddr>().unwrap()]);

        let internal_only = PublicOnly {
            lookup: answering(&["169.254.169.254", "::ffff:10.0.0.1"]),
        };
        let refused = internal_only
            .resolve("metadata.example".parse().unwrap())
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(refused.contains("169.254.169.254"), "{refused}");
    }

    #[tokio::test]
    async fn through_a_proxy_targets_are_resolved_here_and_checked() {
        let policy = Policy {
            allow_private_network: false,
            proxy: Some(Url::parse("http://proxy.internal:3128").unwrap()),
        };
        let target = Url::parse("http://internal-name:8080/admin").unwrap();
        let refused = check_through_proxy(&target, &policy, &answering(&["10.1.2.3"])).await;
        assert!(refused.unwrap_err().contains("10.1.2.3"));
        let public = check_through_proxy(&target, &policy, &answering(&["93.184.215.14"])).await;
        assert!(public.is_ok());
        let literal = Url::parse("http://127.0.0.1/").unwrap();
        assert!(check_through_proxy(&literal, &policy, &answering(&[]))
            .await
            .is_err());
        let allowed = Policy {
            allow_private_network: true,
            ..policy
        };
        assert!(
            check_through_proxy(&target, &allowed, &answering(&["10.1.2.3"]))
                .await
                .is_ok()
        );
    }
}
