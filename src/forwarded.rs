//! Forwarding headers, and the one place that decides what they are worth.
//!
//! `X-Forwarded-For`, `X-Real-IP`, `Forwarded` (RFC 7239), `X-Forwarded-Uri`, `X-Original-URI`
//! and `X-Forwarded-Prefix` count only when the TCP peer is in `TOKEND_TRUSTED_PROXIES`;
//! otherwise the client is the peer and the path is the request's own. Everything that needs
//! the client's address or original path asks here: [`client_ip`], [`client_address`],
//! [`original_uri`].
//!
//! A trusted proxy still passes on the headers it does not set itself, so behind it a client
//! can add a second source next to the one the proxy sets. A proxy sets one: when two sources
//! are present and disagree, one came from the client. The original path is then refused
//! (403 `ambiguous_original_uri`) and the client address is [`ClientAddress::Ambiguous`].

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use actix_web::http::header::{HeaderMap, HeaderValue};
use actix_web::{web, HttpRequest};

use crate::config::TrustedProxies;
use crate::error::{ApiError, Code};
use crate::scope::printable;
use crate::state::AppState;

/// Sources of the client address, in the order they are compared.
const CLIENT_SOURCES: [&str; 3] = ["X-Forwarded-For", "Forwarded", "X-Real-IP"];
/// Sources of the original URI that carry it whole.
const URI_SOURCES: [&str; 2] = ["X-Forwarded-Uri", "X-Original-URI"];
/// The prefix a proxy stripped before passing the request on (the original is prefix + path).
const PREFIX_SOURCE: &str = "X-Forwarded-Prefix";

/// Who sent a request, as far as tokend can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAddress {
    /// The TCP peer, or the address a trusted proxy reports.
    Known(IpAddr),
    /// A trusted proxy passed on sources that name different clients: one came from the
    /// client itself, and none can be believed.
    Ambiguous,
    /// No address: no TCP peer address, or a trusted proxy reports `unknown`, an obfuscated
    /// name or something that is not an address.
    Unknown,
}

/// The client address: the rightmost `X-Forwarded-For` (or `Forwarded: for=`) entry that is
/// not itself a trusted proxy, or `X-Real-IP`, when the peer is a trusted proxy and these
/// sources agree; else the TCP peer.
pub fn client_address(req: &HttpRequest) -> ClientAddress {
    resolve_client(peer(req), req.headers(), trusted(req))
}

/// The client address for audit, logs and throttling: [`client_address`] when known, else the
/// TCP peer (when a proxy's sources disagree or say nothing usable, the peer is the one fact).
pub fn client_ip(req: &HttpRequest) -> Option<IpAddr> {
    match client_address(req) {
        ClientAddress::Known(ip) => Some(ip),
        ClientAddress::Ambiguous | ClientAddress::Unknown => peer(req),
    }
}

/// The URI a client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginalUri<'a> {
    /// Reported by a trusted proxy: `X-Forwarded-Uri`, `X-Original-URI`, or
    /// `X-Forwarded-Prefix` + this request's path. May carry a query.
    Forwarded {
        source: &'static str,
        uri: Cow<'a, str>,
    },
    /// This request's own path: the peer is not a trusted proxy, or it reported none.
    Own(&'a str),
}

impl OriginalUri<'_> {
    pub fn as_str(&self) -> &str {
        match self {
            OriginalUri::Forwarded { uri, .. } => uri,
            OriginalUri::Own(path) => path,
        }
    }
}

/// The original URI of the request. 403 `ambiguous_original_uri` when a trusted proxy passed
/// on more than one source and their paths differ; 403 `path_not_allowed` when a source is
/// not text.
pub fn original_uri(req: &HttpRequest) -> Result<OriginalUri<'_>, ApiError> {
    resolve_original_uri(req.path(), peer(req), req.headers(), trusted(req))
}

/// The peer, when it sent forwarding headers that were ignored because it is not a trusted
/// proxy: worth saying in an error message, since it is a misconfiguration or an attack.
pub fn ignored_forwarding(req: &HttpRequest) -> Option<IpAddr> {
    let peer = peer(req)?;
    let sent = CLIENT_SOURCES
        .iter()
        .chain(URI_SOURCES.iter())
        .chain(std::iter::once(&PREFIX_SOURCE))
        .any(|name| req.headers().contains_key(*name));
    (sent && !trusted(req).contains(peer)).then_some(peer)
}

fn peer(req: &HttpRequest) -> Option<IpAddr> {
    req.peer_addr().map(|a| a.ip().to_canonical())
}

fn trusted(req: &HttpRequest) -> &TrustedProxies {
    static NOBODY: TrustedProxies = TrustedProxies::NONE;
    req.app_data::<web::Data<AppState>>()
        .map_or(&NOBODY, |state| &state.settings.trusted_proxies)
}

fn resolve_client(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted: &TrustedProxies,
) -> ClientAddress {
    let Some(peer) = peer.map(|p| p.to_canonical()) else {
        return ClientAddress::Unknown;
    };
    if !trusted.contains(peer) {
        return ClientAddress::Known(peer);
    }
    let mut said: Option<Option<IpAddr>> = None;
    for name in CLIENT_SOURCES {
        let hops = if name == "Forwarded" {
            forwarded_for(headers)
        } else {
            list(headers, name).map(parse_hop).collect()
        };
        match (said, client_of(&hops, trusted)) {
            (_, None) => {}
            (None, Some(client)) => said = Some(client),
            (Some(before), Some(client)) if before == client => {}
            (Some(_), Some(_)) => return ClientAddress::Ambiguous,
        }
    }
    match said {
        None => ClientAddress::Known(peer),
        Some(Some(ip)) => ClientAddress::Known(ip),
        Some(None) => ClientAddress::Unknown,
    }
}

/// The client of a chain of hops, nearest last: the rightmost hop that is not a trusted proxy
/// (or the leftmost when all are). `None`: no hops; `Some(None)`: the client is unknown.
fn client_of(hops: &[Option<IpAddr>], trusted: &TrustedProxies) -> Option<Option<IpAddr>> {
    let mut farthest = None;
    for hop in hops.iter().rev() {
        match hop {
            Some(ip) if trusted.contains(*ip) => farthest = Some(Some(*ip)),
            other => return Some(*other),
        }
    }
    farthest
}

/// The comma-separated entries of every instance of a header, in order (RFC 9110 §5.3); a
/// value that is not text is one unusable entry.
fn list<'h>(headers: &'h HeaderMap, name: &str) -> impl Iterator<Item = &'h str> {
    headers
        .get_all(name)
        .flat_map(|value| value.to_str().unwrap_or("\u{fffd}").split(','))
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
}

/// `192.0.2.7`, `192.0.2.7:4711`, `2001:db8::1`, `[2001:db8::1]:4711` (quoted or not); anything
/// else (`unknown`, `_hidden`) is not an address.
fn parse_hop(raw: &str) -> Option<IpAddr> {
    let raw = raw.trim().trim_matches('"');
    let ip = raw
        .parse::<IpAddr>()
        .ok()
        .or_else(|| raw.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            raw.strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|r| r.parse::<IpAddr>().ok())
        })?;
    Some(ip.to_canonical())
}

/// The `for=` of each element of every `Forwarded` header (RFC 7239), nearest last. An element
/// without `for` is an unknown hop.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("forwarded")
        .flat_map(|value| split_unquoted(value.to_str().unwrap_or("\u{fffd}"), ','))
        .filter(|element| !element.trim().is_empty())
        .map(|element| {
            split_unquoted(element, ';')
                .filter_map(|pair| pair.split_once('='))
                .find(|(key, _)| key.trim().eq_ignore_ascii_case("for"))
                .and_then(|(_, value)| parse_hop(value))
        })
        .collect()
}

/// Splits at `sep` outside double quotes.
fn split_unquoted(s: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    let mut escaped = false;
    s.split(move |c: char| {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        }
        c == sep && !quoted
    })
}

fn resolve_original_uri<'a>(
    own_path: &'a str,
    peer: Option<IpAddr>,
    headers: &'a HeaderMap,
    trusted: &TrustedProxies,
) -> Result<OriginalUri<'a>, ApiError> {
    if !peer.is_some_and(|p| trusted.contains(p)) {
        return Ok(OriginalUri::Own(own_path));
    }
    let mut sources: Vec<(&'static str, Cow<'a, str>)> = Vec::new();
    for name in URI_SOURCES {
        for value in headers.get_all(name) {
            sources.push((name, Cow::Borrowed(text(name, value)?)));
        }
    }
    for value in headers.get_all(PREFIX_SOURCE) {
        let prefix = text(PREFIX_SOURCE, value)?.trim_end_matches('/');
        sources.push((PREFIX_SOURCE, Cow::Owned(format!("{prefix}{own_path}"))));
    }
    let mut sources = sources.into_iter();
    let Some((source, uri)) = sources.next() else {
        return Ok(OriginalUri::Own(own_path));
    };
    for (other, other_uri) in sources {
        if path_of(&other_uri) != path_of(&uri) {
            return Err(ApiError::new(
                Code::AmbiguousOriginalUri,
                format!(
                    "the original path is ambiguous: {source} says '{}' but {other} says '{}'; \
                     a proxy sets one of them, so the other came from the client. Make the proxy \
                     set the header itself (docs/integrations.md: Forward-auth for gateways)",
                    printable(&uri, 120),
                    printable(&other_uri, 120)
                ),
            ));
        }
    }
    Ok(OriginalUri::Forwarded { source, uri })
}

fn text<'h>(name: &str, value: &'h HeaderValue) -> Result<&'h str, ApiError> {
    value.to_str().map_err(|_| {
        ApiError::new(
            Code::PathNotAllowed,
            format!("the {name} header is not valid text"),
        )
    })
}

/// A URI without its query or fragment: what `allowed_paths` are checked against.
fn path_of(uri: &str) -> &str {
    uri.split(['?', '#']).next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderName;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn client(peer: &str, trusted: &str, pairs: &[(&str, &str)]) -> ClientAddress {
        resolve_client(
            Some(ip(peer)),
            &headers(pairs),
            &TrustedProxies::parse(trusted).unwrap(),
        )
    }

    fn uri(peer: &str, pairs: &[(&str, &str)]) -> Result<String, &'static str> {
        let map = headers(pairs);
        resolve_original_uri(
            "/auth/whoami",
            Some(ip(peer)),
            &map,
            &TrustedProxies::default(),
        )
        .map(|u| match u {
            OriginalUri::Forwarded { source, uri } => format!("{source}: {uri}"),
            OriginalUri::Own(p) => format!("own: {p}"),
        })
        .map_err(|e| e.code().as_str())
    }

    use ClientAddress::{Ambiguous, Known, Unknown};

    #[test]
    fn untrusted_peers_are_the_client() {
        let spoof = [
            ("X-Forwarded-For", "192.0.2.5"),
            ("X-Real-IP", "192.0.2.5"),
            ("Forwarded", "for=192.0.2.5"),
        ];
        assert_eq!(client("10.9.9.9", "", &spoof), Known(ip("10.9.9.9")));
        assert_eq!(
            client("10.9.9.9", "127.0.0.1/32", &spoof),
            Known(ip("10.9.9.9"))
        );
        assert_eq!(
            client("::ffff:127.0.0.1", "127.0.0.1/32", &[]),
            Known(ip("127.0.0.1"))
        );
    }

    #[test]
    fn rightmost_untrusted_forwarded_for() {
        let t = "127.0.0.0/8,10.0.0.0/8";
        // The client's own (forged) entries come first; the proxies append on the right.
        let xff = [("X-Forwarded-For", "192.0.2.5, 198.51.100.7, 10.0.0.2")];
        assert_eq!(client("127.0.0.1", t, &xff), Known(ip("198.51.100.7")));
        let split = [
            ("X-Forwarded-For", "192.0.2.5"),
            ("X-Forwarded-For", "198.51.100.7:4711"),
        ];
        assert_eq!(client("127.0.0.1", t, &split), Known(ip("198.51.100.7")));
        assert_eq!(
            client("127.0.0.1", t, &[("X-Forwarded-For", "10.0.0.3, 10.0.0.2")]),
            Known(ip("10.0.0.3")),
            "all trusted: the farthest"
        );
        assert_eq!(
            client("127.0.0.1", t, &[("X-Forwarded-For", "192.0.2.5, garbage")]),
            Unknown
        );
        assert_eq!(client("127.0.0.1", t, &[]), Known(ip("127.0.0.1")));
    }

    #[test]
    fn rfc7239_forwarded() {
        let t = "127.0.0.0/8";
        let fwd = [(
            "Forwarded",
            r#"for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711";host="a,b", for=127.0.0.1"#,
        )];
        assert_eq!(client("127.0.0.1", t, &fwd), Known(ip("2001:db8:cafe::17")));
        assert_eq!(
            client("127.0.0.1", t, &[("Forwarded", "for=unknown")]),
            Unknown
        );
        assert_eq!(
            client(
                "127.0.0.1",
                t,
                &[("Forwarded", "for=_hidden, for=127.0.0.2")]
            ),
            Unknown
        );
        assert_eq!(
            client("127.0.0.1", t, &[("Forwarded", "proto=https")]),
            Unknown
        );
    }

    #[test]
    fn sources_that_disagree_are_not_believed() {
        let t = "127.0.0.0/8";
        // nginx sets X-Real-IP; the client added X-Forwarded-For.
        let spoof = [
            ("X-Real-IP", "198.51.100.7"),
            ("X-Forwarded-For", "192.0.2.5"),
        ];
        assert_eq!(client("127.0.0.1", t, &spoof), Ambiguous);
        let spoof = [
            ("X-Forwarded-For", "198.51.100.7"),
            ("Forwarded", "for=192.0.2.5"),
        ];
        assert_eq!(client("127.0.0.1", t, &spoof), Ambiguous);
        let agree = [
            ("X-Real-IP", "198.51.100.7"),
            ("X-Forwarded-For", "192.0.2.5, 198.51.100.7"),
            ("Forwarded", "for=198.51.100.7"),
        ];
        assert_eq!(client("127.0.0.1", t, &agree), Known(ip("198.51.100.7")));
    }

    #[test]
    fn original_uri_sources() {
        assert_eq!(uri("127.0.0.1", &[]).unwrap(), "own: /auth/whoami");
        assert_eq!(
            uri("10.1.1.1", &[("X-Forwarded-Uri", "/webhooks/deploy")]).unwrap(),
            "own: /auth/whoami",
            "an untrusted peer's header is ignored"
        );
        assert_eq!(
            uri("127.0.0.1", &[("X-Original-URI", "/webhooks/deploy?x=1")]).unwrap(),
            "X-Original-URI: /webhooks/deploy?x=1"
        );
        assert_eq!(
            uri("127.0.0.1", &[("X-Forwarded-Prefix", "/tokend/")]).unwrap(),
            "X-Forwarded-Prefix: /tokend/auth/whoami"
        );
        assert_eq!(
            uri(
                "127.0.0.1",
                &[("X-Forwarded-Uri", "/a?x=1"), ("X-Original-URI", "/a?y=2"),]
            )
            .unwrap(),
            "X-Forwarded-Uri: /a?x=1",
            "the same path with another query agrees"
        );
        for spoof in [
            [
                ("X-Forwarded-Uri", "/admin"),
                ("X-Original-URI", "/webhooks/deploy"),
            ],
            [
                ("X-Original-URI", "/admin"),
                ("X-Forwarded-Prefix", "/webhooks"),
            ],
            [
                ("X-Forwarded-Uri", "/admin"),
                ("X-Forwarded-Uri", "/webhooks/deploy"),
            ],
        ] {
            assert_eq!(
                uri("127.0.0.1", &spoof),
                Err("ambiguous_original_uri"),
                "{spoof:?}"
            );
        }
    }
}
