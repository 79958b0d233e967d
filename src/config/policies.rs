//! The parsed allow-lists of the settings: whose forwarding headers are believed, and which
//! scopes may be exchanged for which.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::scope::Scope;

/// The peers whose forwarding headers (`X-Forwarded-For`, `X-Forwarded-Uri`, `Forwarded`, …)
/// are believed: `TOKEND_TRUSTED_PROXIES`, a comma list of CIDRs. Empty: nobody's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// The default: loopback only (a proxy on the same host).
    pub const DEFAULT: &'static str = "127.0.0.0/8,::1/128";
    /// Trusts no one.
    pub const NONE: TrustedProxies = TrustedProxies(Vec::new());

    /// `10.0.0.0/8, 192.0.2.7, ::1/128`: CIDRs or single addresses, comma-separated. An empty
    /// list trusts no one.
    pub fn parse(raw: &str) -> Result<TrustedProxies, String> {
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .map(|net| net.trunc())
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!(
                            "'{}' is not a CIDR such as 10.0.0.0/8, 192.0.2.7 or ::1/128",
                            s.escape_debug()
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    /// Whether `ip` is one of the trusted proxies (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }
}

impl Default for TrustedProxies {
    fn default() -> Self {
        TrustedProxies::parse(Self::DEFAULT).unwrap_or(Self::NONE)
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nets: Vec<String> = self.0.iter().map(IpNet::to_string).collect();
        f.write_str(&nets.join(","))
    }
}

/// Who may exchange a token for one of another scope (RFC 8693). Exchanging for the same scope
/// (a shorter life) is always allowed; across scopes only the listed pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangePolicy(Vec<(Scope, Scope)>);

impl ExchangePolicy {
    /// The default: a sensor may mint execution tokens (the executor's job).
    pub const DEFAULT: &'static str = "sensor>execution";

    /// `sensor>execution, admin>execution`: comma list of `from>to` scope pairs; "" allows
    /// no exchange across scopes.
    pub fn parse(raw: &str) -> Result<ExchangePolicy, String> {
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|pair| {
                let (from, to) = pair.split_once('>').ok_or_else(|| {
                    format!("'{pair}' is not a from>to pair such as sensor>execution")
                })?;
                let scope = |s: &str| Scope::parse(s).map_err(|e| e.message().to_owned());
                let (from, to) = (scope(from)?, scope(to)?);
                // Exchange only goes down: a token may become one of a narrower scope, never
                // one that may do more (admin > cli > sensor, webhook > execution).
                if Self::breadth(to) >= Self::breadth(from) && from != to {
                    return Err(format!(
                        "'{pair}' would exchange a {from} token for a {to} token, which is not narrower; \
                         exchange only goes down (admin > cli > sensor, webhook > execution)"
                    ));
                }
                Ok((from, to))
            })
            .collect::<Result<Vec<_>, String>>()
            .map(ExchangePolicy)
    }

    /// How much a token of the scope may do, for "only down".
    fn breadth(scope: Scope) -> u8 {
        match scope {
            Scope::Admin => 3,
            Scope::Cli => 2,
            Scope::Sensor | Scope::Webhook => 1,
            Scope::Execution => 0,
        }
    }

    /// Whether a token of scope `from` may be exchanged for one of scope `to`.
    pub fn allows(&self, from: Scope, to: Scope) -> bool {
        from == to || self.0.contains(&(from, to))
    }

    /// The scopes a `from` token may be exchanged for, itself first.
    pub fn targets(&self, from: Scope) -> Vec<Scope> {
        let mut out = vec![from];
        out.extend(
            self.0
                .iter()
                .filter(|(f, t)| *f == from && *t != from)
                .map(|(_, t)| *t),
        );
        out
    }
}

impl Default for ExchangePolicy {
    fn default() -> Self {
        ExchangePolicy(vec![(Scope::Sensor, Scope::Execution)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::Scope;

    #[test]
    fn exchange_pairs_only_go_down() {
        assert!(ExchangePolicy::parse("sensor>execution, admin>sensor, cli>execution").is_ok());
        for widening in [
            "execution>admin",
            "sensor>admin",
            "execution>sensor",
            "sensor>webhook",
        ] {
            assert!(ExchangePolicy::parse(widening).is_err(), "{widening}");
        }
        assert!(ExchangePolicy::parse("")
            .unwrap()
            .allows(Scope::Sensor, Scope::Sensor));
    }

    #[test]
    fn trusted_proxies() {
        let default = TrustedProxies::default();
        assert_eq!(default.to_string(), "127.0.0.0/8,::1/128");
        assert!(default.contains("127.0.0.1".parse().unwrap()));
        assert!(default.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(default.contains("::1".parse().unwrap()));
        assert!(!default.contains("10.0.0.1".parse().unwrap()));
        let list = TrustedProxies::parse(" 10.0.0.0/8 , 192.0.2.7,2001:db8::/32").unwrap();
        assert_eq!(list.to_string(), "10.0.0.0/8,192.0.2.7/32,2001:db8::/32");
        assert!(list.contains("10.1.2.3".parse().unwrap()));
        assert!(!list.contains("192.0.2.8".parse().unwrap()));
        assert_eq!(TrustedProxies::parse("").unwrap().to_string(), "");
        for bad in ["10.0.0.0/33", "localhost", "10.0.0.0/8;1.2.3.4", "::1/129"] {
            let err = TrustedProxies::parse(bad).unwrap_err();
            assert!(err.contains("is not a CIDR"), "{bad}: {err}");
        }
    }
}
