//! Where webhooks may point: the check of a URL an integrator gives
//! ([`check_url`]), the classification of addresses webhooks must never
//! reach ([`classify`]: loopback, private networks, link-local and cloud
//! metadata, CGNAT, unique-local, multicast, documentation…), and the DNS
//! resolver the [`Sender`](crate::Sender) connects through, which applies
//! the same rule to every address it hands out (so a DNS answer that changes
//! after the check cannot reach a private address).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::{Host, Url};

/// The longest URL accepted, in bytes.
pub const MAX_URL_LEN: usize = 2000;

/// Where webhooks may point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UrlPolicy {
    /// Whether loopback, private and other non-public addresses (and
    /// `localhost` names) are allowed. `false` in production; `true` only
    /// for development and tests against a local server.
    pub allow_private: bool,
}

impl UrlPolicy {
    /// The production policy: public addresses only.
    pub const PUBLIC_ONLY: Self = Self {
        allow_private: false,
    };

    /// The development policy: any address, including loopback.
    pub const ALLOW_PRIVATE: Self = Self {
        allow_private: true,
    };
}

/// Why an address is not one webhooks may be sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    /// 0.0.0.0/8, `::`.
    Unspecified,
    /// 127.0.0.0/8, `::1`.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16, and the deprecated IPv6 site-local
    /// fec0::/10.
    Private,
    /// 100.64.0.0/10 (carrier-grade NAT).
    SharedCgnat,
    /// 169.254.0.0/16 (including cloud metadata at 169.254.169.254),
    /// fe80::/10.
    LinkLocal,
    /// fc00::/7.
    UniqueLocal,
    /// 224.0.0.0/4, ff00::/8.
    Multicast,
    /// 255.255.255.255.
    Broadcast,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20.
    Documentation,
    /// Other special-purpose ranges: 192.0.0/24, 198.18/15 (benchmarking),
    /// 240/4, 100::/64 (discard).
    Reserved,
}

impl fmt::Display for AddressKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unspecified => "an unspecified (0.0.0.0 / ::) address",
            Self::Loopback => "a loopback address (this machine)",
            Self::Private => "a private network address",
            Self::SharedCgnat => "a carrier-grade NAT (100.64.0.0/10) address",
            Self::LinkLocal => "a link-local address (which includes cloud metadata services)",
            Self::UniqueLocal => "a unique-local IPv6 address (a private network)",
            Self::Multicast => "a multicast address",
            Self::Broadcast => "the broadcast address",
            Self::Documentation => "an address reserved for documentation",
            Self::Reserved => "a reserved special-purpose address",
        })
    }
}

/// Whether `ip` is an address webhooks must not be sent to (and why), or
/// `None` for a public address. IPv6 addresses that embed an IPv4 address
/// (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, NAT64
/// `64:ff9b::/96`, 6to4 `2002::/16`) are judged by that IPv4 address.
pub fn classify(ip: IpAddr) -> Option<AddressKind> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressKind> {
    let [a, b, c, _] = ip.octets();
    let kind = match (a, b, c) {
        (0, _, _) => AddressKind::Unspecified,
        (127, _, _) => AddressKind::Loopback,
        (10, _, _) | (192, 168, _) => AddressKind::Private,
        (172, 16..=31, _) => AddressKind::Private,
        (100, 64..=127, _) => AddressKind::SharedCgnat,
        (169, 254, _) => AddressKind::LinkLocal,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => AddressKind::Documentation,
        (192, 0, 0) | (198, 18..=19, _) => AddressKind::Reserved,
        (224..=239, _, _) => AddressKind::Multicast,
        _ if ip == Ipv4Addr::BROADCAST => AddressKind::Broadcast,
        (240..=255, _, _) => AddressKind::Reserved,
        _ => return None,
    };
    Some(kind)
}

fn classify_v6(ip: Ipv6Addr) -> Option<AddressKind> {
    if ip.is_unspecified() {
        return Some(AddressKind::Unspecified);
    }
    if ip.is_loopback() {
        return Some(AddressKind::Loopback);
    }
    if let Some(v4) = embedded_v4(ip) {
        return classify_v4(v4);
    }
    let s = ip.segments();
    let kind = match s[0] {
        0x0100 if s[1..4] == [0, 0, 0] => AddressKind::Reserved,
        0x2001 if s[1] == 0x0db8 => AddressKind::Documentation,
        0x3fff if s[1] <= 0x0fff => AddressKind::Documentation,
        x if x & 0xfe00 == 0xfc00 => AddressKind::UniqueLocal,
        x if x & 0xffc0 == 0xfe80 => AddressKind::LinkLocal,
        x if x & 0xffc0 == 0xfec0 => AddressKind::Private,
        x if x & 0xff00 == 0xff00 => AddressKind::Multicast,
        _ => return None,
    };
    Some(kind)
}

/// The IPv4 address an IPv6 address carries, for the forms that route to it.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let [.., a, b, c, d] = ip.octets();
    let low = Ipv4Addr::new(a, b, c, d);
    match s {
        // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated).
        [0, 0, 0, 0, 0, 0xffff | 0, _, _] => Some(low),
        // 64:ff9b::a.b.c.d (NAT64 well-known prefix).
        [0x0064, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        // 2002:aabb:ccdd::/48 (6to4).
        [0x2002, hi, lo, ..] => {
            let [a, b] = hi.to_be_bytes();
            let [c, d] = lo.to_be_bytes();
            Some(Ipv4Addr::new(a, b, c, d))
        }
        _ => None,
    }
}

/// Whether a host name is one of the `localhost` names (RFC 6761).
fn is_localhost_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

/// Why a webhook URL is refused. Every variant is about the `url` field
/// ([`UrlError::field`]) and reads as a sentence an integrator can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    /// Longer than [`MAX_URL_LEN`].
    TooLong {
        /// The length given, in bytes.
        length: usize,
    },
    /// Not a URL at all.
    Invalid {
        /// What the parser said.
        reason: String,
    },
    /// A scheme other than http or https.
    Scheme {
        /// The scheme given.
        scheme: String,
    },
    /// No host (e.g. `mailto:` or `data:` URLs).
    NoHost,
    /// A user name or password in the URL.
    Credentials,
    /// `localhost` or a `*.localhost` name.
    LocalName {
        /// The host given.
        host: String,
    },
    /// The host is, or resolves to, an address webhooks must not reach.
    Forbidden {
        /// The host name when it was resolved, `None` for an IP literal.
        name: Option<String>,
        /// The offending address.
        address: IpAddr,
        /// Why the address is refused.
        kind: AddressKind,
    },
    /// The host name does not resolve.
    Unresolvable {
        /// The host name.
        host: String,
        /// What the resolver said.
        reason: String,
    },
}

impl UrlError {
    /// The field of the subscription form this error is about: always
    /// `"url"`.
    pub fn field(&self) -> &'static str {
        "url"
    }

    /// Whether the URL will never be accepted as it is. `false` only for
    /// what depends on DNS ([`UrlError::Unresolvable`], and
    /// [`UrlError::Forbidden`] reached through a name): DNS can be fixed or
    /// change, so a delivery refused for those reasons may be retried (each
    /// attempt is checked again).
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Unresolvable { .. } => false,
            Self::Forbidden { name, .. } => name.is_none(),
            _ => true,
        }
    }
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const PUBLIC_ONLY: &str = "webhooks may only be sent to public internet addresses";
        match self {
            Self::TooLong { length } => write!(
                f,
                "the webhook URL is {length} characters long; at most {MAX_URL_LEN} are allowed"
            ),
            Self::Invalid { reason } => write!(
                f,
                "the webhook URL is not a valid URL ({reason}); give a full address such as \
                 https://example.org/webhooks"
            ),
            Self::Scheme { scheme } => write!(
                f,
                "the webhook URL uses {scheme:?}; only http and https are allowed (https is \
                 recommended)"
            ),
            Self::NoHost => f.write_str(
                "the webhook URL has no host; give a full address such as \
                 https://example.org/webhooks",
            ),
            Self::Credentials => f.write_str(
                "the webhook URL contains a user name or password; credentials in URLs are \
                 refused: put the secret in your endpoint, not the URL (deliveries are signed)",
            ),
            Self::LocalName { host } => {
                write!(
                    f,
                    "the webhook URL points to {host}, this machine; {PUBLIC_ONLY}"
                )
            }
            Self::Forbidden {
                name: None,
                address,
                kind,
            } => write!(
                f,
                "the webhook URL points to {address}, {kind}; {PUBLIC_ONLY}"
            ),
            Self::Forbidden {
                name: Some(name),
                address,
                kind,
            } => write!(
                f,
                "the webhook host {name} resolves to {address}, {kind}; {PUBLIC_ONLY}"
            ),
            Self::Unresolvable { host, reason } => write!(
                f,
                "the webhook host {host} could not be resolved ({reason}); check its spelling \
                 and that it has a public DNS record"
            ),
        }
    }
}

impl std::error::Error for UrlError {}

/// Checks a URL an integrator gives and returns it parsed.
///
/// Refused: anything longer than [`MAX_URL_LEN`], schemes other than http
/// and https, URLs without a host, URLs with a user name or password, and —
/// unless `policy.allow_private` — `localhost` names and hosts that are, or
/// resolve to (any of their addresses), an address [`classify`] refuses. A
/// name that does not resolve is refused with [`UrlError::Unresolvable`].
/// With `allow_private`, names are not resolved.
pub async fn check_url(url: &str, policy: &UrlPolicy) -> Result<Url, UrlError> {
    let url = url.trim();
    if url.len() > MAX_URL_LEN {
        return Err(UrlError::TooLong { length: url.len() });
    }
    let parsed = Url::parse(url).map_err(|e| UrlError::Invalid {
        reason: e.to_string(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(UrlError::Scheme {
            scheme: parsed.scheme().to_owned(),
        });
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(UrlError::Credentials);
    }
    let Some(host) = parsed.host().filter(|h| *h != Host::Domain("")) else {
        return Err(UrlError::NoHost);
    };
    if policy.allow_private {
        return Ok(parsed);
    }
    let literal = match host {
        Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        Host::Domain(name) if is_localhost_name(name) => {
            return Err(UrlError::LocalName {
                host: name.to_owned(),
            });
        }
        Host::Domain(_) => None,
    };
    if let Some(address) = literal {
        return match classify(address) {
            Some(kind) => Err(UrlError::Forbidden {
                name: None,
                address,
                kind,
            }),
            None => Ok(parsed),
        };
    }
    let name = parsed.host_str().unwrap_or_default().to_owned();
    let port = parsed.port_or_known_default().unwrap_or(80);
    resolve_public(&name, port).await?;
    Ok(parsed)
}

/// Resolves `name` and refuses it when it resolves to nothing or when any of
/// its addresses is not public.
pub(crate) async fn resolve_public(name: &str, port: u16) -> Result<Vec<SocketAddr>, UrlError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name, port))
        .await
        .map_err(|e| UrlError::Unresolvable {
            host: name.to_owned(),
            reason: e.to_string(),
        })?
        .collect();
    if addrs.is_empty() {
        return Err(UrlError::Unresolvable {
            host: name.to_owned(),
            reason: "no address".to_owned(),
        });
    }
    for addr in &addrs {
        if let Some(kind) = classify(addr.ip()) {
            return Err(UrlError::Forbidden {
                name: Some(name.to_owned()),
                address: addr.ip(),
                kind,
            });
        }
    }
    Ok(addrs)
}

/// The DNS resolver of the [`Sender`](crate::Sender)'s HTTP client: every
/// name the client connects to is resolved here and, unless the policy
/// allows private addresses, refused when any of its addresses is not
/// public. This is what pins connections to checked addresses: the client
/// can only connect to an address that passed [`classify`] at connect time,
/// whatever DNS answered when the URL was checked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PolicyResolver {
    pub(crate) policy: UrlPolicy,
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: reqwest puts the URL's port in.
            let addrs = if policy.allow_private {
                tokio::net::lookup_host((host.as_str(), 0))
                    .await?
                    .collect::<Vec<_>>()
            } else {
                resolve_public(&host, 0).await?
            };
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn kind(ip: &str) -> Option<AddressKind> {
        classify(ip.parse().unwrap())
    }

    #[test]
    fn classifies_special_ranges() {
        use AddressKind::*;
        let cases = [
            ("0.0.0.0", Some(Unspecified)),
            ("127.0.0.1", Some(Loopback)),
            ("127.255.1.2", Some(Loopback)),
            ("10.1.2.3", Some(Private)),
            ("172.16.0.1", Some(Private)),
            ("172.31.255.255", Some(Private)),
            ("172.32.0.1", None),
            ("192.168.0.1", Some(Private)),
            ("100.64.0.1", Some(SharedCgnat)),
            ("100.127.255.255", Some(SharedCgnat)),
            ("100.128.0.1", None),
            ("169.254.169.254", Some(LinkLocal)),
            ("192.0.2.1", Some(Documentation)),
            ("198.51.100.7", Some(Documentation)),
            ("203.0.113.9", Some(Documentation)),
            ("198.18.0.1", Some(Reserved)),
            ("224.0.0.1", Some(Multicast)),
            ("240.0.0.1", Some(Reserved)),
            ("255.255.255.255", Some(Broadcast)),
            ("93.184.216.34", None),
            ("8.8.8.8", None),
            ("::", Some(Unspecified)),
            ("::1", Some(Loopback)),
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("::ffff:10.0.0.1", Some(Private)),
            ("::ffff:93.184.216.34", None),
            ("::127.0.0.1", Some(Loopback)),
            ("64:ff9b::a9fe:a9fe", Some(LinkLocal)),
            ("2002:7f00:1::1", Some(Loopback)),
            ("fe80::1", Some(LinkLocal)),
            ("fc00::1", Some(UniqueLocal)),
            ("fd12:3456::1", Some(UniqueLocal)),
            ("fec0::1", Some(Private)),
            ("ff02::1", Some(Multicast)),
            ("2001:db8::1", Some(Documentation)),
            ("3fff::1", Some(Documentation)),
            ("100::1", Some(Reserved)),
            ("2606:4700:4700::1111", None),
            ("2a00:1450:4001::1", None),
        ];
        for (ip, expected) in cases {
            assert_eq!(kind(ip), expected, "{ip}");
        }
    }

    #[test]
    fn localhost_names() {
        assert!(is_localhost_name("localhost"));
        assert!(is_localhost_name("LOCALHOST."));
        assert!(is_localhost_name("api.localhost"));
        assert!(!is_localhost_name("localhost.example.org"));
        assert!(!is_localhost_name("notlocalhost"));
    }

    #[test]
    fn only_dns_dependent_refusals_are_temporary() {
        let by_name = UrlError::Forbidden {
            name: Some("x.example".into()),
            address: "10.0.0.1".parse().unwrap(),
            kind: AddressKind::Private,
        };
        assert!(!by_name.is_permanent());
        assert!(by_name.to_string().contains("resolves to 10.0.0.1"));
        let literal = UrlError::Forbidden {
            name: None,
            address: "10.0.0.1".parse().unwrap(),
            kind: AddressKind::Private,
        };
        assert!(literal.is_permanent());
        assert!(UrlError::Credentials.is_permanent());
        assert_eq!(UrlError::NoHost.field(), "url");
    }

    #[tokio::test]
    async fn the_resolver_refuses_private_answers_unless_allowed() {
        use reqwest::dns::Resolve;
        let name = |s: &str| s.parse::<reqwest::dns::Name>().unwrap();
        let strict = PolicyResolver {
            policy: UrlPolicy::PUBLIC_ONLY,
        };
        let err = match strict.resolve(name("localhost")).await {
            Ok(_) => panic!("localhost must be refused"),
            Err(e) => e,
        };
        assert!(err.downcast_ref::<UrlError>().is_some(), "{err}");
        let lenient = PolicyResolver {
            policy: UrlPolicy::ALLOW_PRIVATE,
        };
        let addrs: Vec<_> = lenient.resolve(name("localhost")).await.unwrap().collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
    }
}
