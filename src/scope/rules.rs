//! Input rules shared by the validators and the OpenAPI schema, so that the two cannot
//! drift apart: the same regular expressions check requests here and appear as `pattern`s in
//! `openapi/openapi.json` (they use only syntax that Rust, ECMA-262 and Python agree on).

use std::sync::LazyLock;

use regex::Regex;

/// Account names: 1 to 128 printable ASCII characters, no space at either end.
pub const NAME: &str = r"^[!-~](?:[ -~]{0,126}[!-~])?$";
pub const NAME_MAX: usize = 128;

/// User logins (compared case-insensitively, stored lower-case).
pub const LOGIN: &str = r"^[A-Za-z0-9._@-]{1,64}$";

/// Free text (descriptions, reasons): no control characters but tab and newline.
pub const FREE_TEXT: &str = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*$";
pub const DESCRIPTION_MAX: usize = 1000;

/// Any other string a request carries (query and path parameters, free-form metadata, tokens):
/// no control character at all. The edge refuses the rest (`routes::extract`: `char::is_control`,
/// the same set).
pub const NO_CONTROL: &str = r"^[^\x00-\x1F\x7F-\x9F]*$";
/// Passwords: no control character but tab.
pub const PASSWORD: &str = r"^[^\x00-\x08\x0A-\x1F\x7F-\x9F]*$";
pub const REASON_MAX: usize = 500;

/// A sensor's trigger type, e.g. `core.timer`.
pub const TRIGGER_TYPE: &str = r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}$";
pub const MAX_TRIGGER_TYPES: usize = 32;

/// An execution's action, e.g. `core.http`.
pub const ACTION_REF: &str = r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,254}$";

/// A webhook path pattern, written decoded (it is matched against the percent-decoded request
/// path): absolute, segments of URL path characters that do not start with a dot (so no `.`
/// or `..`), no empty segments, no `;` and no `%` (a request path holding either is refused
/// anyway), an optional `*` at the very end (prefix match).
pub const PATH_PATTERN: &str = r"^/(?:[A-Za-z0-9_~!$&'()+,=:@-][A-Za-z0-9._~!$&'()+,=:@-]*/)*(?:[A-Za-z0-9_~!$&'()+,=:@-][A-Za-z0-9._~!$&'()+,=:@-]*)?\*?$";
pub const PATH_MAX: usize = 200;
pub const MAX_PATHS: usize = 16;

/// An IPv4 address or CIDR (no leading zeros).
pub const IPV4_CIDR: &str = r"^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?:/(?:3[0-2]|[12]?[0-9]))?$";
/// An IPv6 address (text forms without embedded IPv4 or zone) or CIDR.
pub const IPV6_CIDR: &str = r"^(?:(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}|(?:[0-9a-fA-F]{1,4}:){1,7}:|(?:[0-9a-fA-F]{1,4}:){1,6}:[0-9a-fA-F]{1,4}|(?:[0-9a-fA-F]{1,4}:){1,5}(?::[0-9a-fA-F]{1,4}){1,2}|(?:[0-9a-fA-F]{1,4}:){1,4}(?::[0-9a-fA-F]{1,4}){1,3}|(?:[0-9a-fA-F]{1,4}:){1,3}(?::[0-9a-fA-F]{1,4}){1,4}|(?:[0-9a-fA-F]{1,4}:){1,2}(?::[0-9a-fA-F]{1,4}){1,5}|[0-9a-fA-F]{1,4}:(?::[0-9a-fA-F]{1,4}){1,6}|:(?:(?::[0-9a-fA-F]{1,4}){1,7}|:))(?:/(?:12[0-8]|1[01][0-9]|[1-9]?[0-9]))?$";
pub const MAX_IPS: usize = 16;

/// Free-form (cli, admin) metadata: at most this many top-level keys (and 8 KiB in all).
pub const MAX_FREE_KEYS: usize = 64;

// The list limits above keep any sensor, execution or webhook token well under the 8 KiB a
// verifier accepts (32 × 100 characters of trigger types; 16 × 200 of paths and 16 CIDRs).
// Free-form metadata can be larger; a token that would exceed 8 KiB is refused when issued.

macro_rules! compiled {
    ($name:ident, $pattern:expr) => {
        static $name: LazyLock<Regex> =
            LazyLock::new(|| Regex::new($pattern).expect("a valid built-in pattern"));
    };
}

compiled!(NAME_RE, NAME);
compiled!(LOGIN_RE, LOGIN);
compiled!(FREE_TEXT_RE, FREE_TEXT);
#[cfg(test)]
compiled!(NO_CONTROL_RE, NO_CONTROL);
#[cfg(test)]
compiled!(PASSWORD_RE, PASSWORD);
compiled!(TRIGGER_TYPE_RE, TRIGGER_TYPE);
compiled!(ACTION_REF_RE, ACTION_REF);
compiled!(PATH_PATTERN_RE, PATH_PATTERN);
compiled!(IPV4_CIDR_RE, IPV4_CIDR);
compiled!(IPV6_CIDR_RE, IPV6_CIDR);

pub fn is_name(s: &str) -> bool {
    NAME_RE.is_match(s)
}

pub fn is_login(s: &str) -> bool {
    LOGIN_RE.is_match(s)
}

pub fn is_free_text(s: &str) -> bool {
    FREE_TEXT_RE.is_match(s)
}

pub fn is_trigger_type(s: &str) -> bool {
    TRIGGER_TYPE_RE.is_match(s)
}

pub fn is_action_ref(s: &str) -> bool {
    ACTION_REF_RE.is_match(s)
}

pub fn is_path_pattern(s: &str) -> bool {
    s.chars().count() <= PATH_MAX && PATH_PATTERN_RE.is_match(s)
}

pub fn is_cidr(s: &str) -> bool {
    IPV4_CIDR_RE.is_match(s) || IPV6_CIDR_RE.is_match(s)
}

/// A JSON number that is a whole number (`7` or `7.0`, as JSON Schema's `integer`).
pub fn whole_number(v: &serde_json::Value) -> Option<i128> {
    if let Some(i) = v.as_i64() {
        return Some(i128::from(i));
    }
    if let Some(u) = v.as_u64() {
        return Some(i128::from(u));
    }
    let f = v.as_f64()?;
    (f.fract() == 0.0 && f.abs() < 1e30).then_some(f as i128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        for ok in ["/", "/*", "/hooks/github", "/ci/*", "/a/b/", "/v1.2/x"] {
            assert!(is_path_pattern(ok), "{ok}");
        }
        for bad in [
            "",
            "hooks",
            "/a//b",
            "/a/../b",
            "/./a",
            "/a*b",
            "/a b",
            "/a?x",
            "/.well-known",
            "/a;b",
            "/a/..;/b",
            "/a%2fb",
            "/a/%2e%2e/*",
            "/a\\b",
        ] {
            assert!(!is_path_pattern(bad), "{bad}");
        }
        for ok in [
            "10.0.0.0/8",
            "192.0.2.1",
            "::1",
            "2001:db8::/32",
            "fe80::1/64",
            "::",
        ] {
            assert!(is_cidr(ok), "{ok}");
            assert!(
                ok.parse::<ipnet::IpNet>().is_ok() || ok.parse::<std::net::IpAddr>().is_ok(),
                "{ok}"
            );
        }
        for bad in ["256.0.0.1", "01.2.3.4", "10.0.0.0/33", "::g", "1.2.3"] {
            assert!(!is_cidr(bad), "{bad}");
        }
        assert!(
            is_name("sensor:core.timer")
                && is_name("a b")
                && !is_name(" a")
                && !is_name("a ")
                && !is_name("")
        );
        assert!(is_name(&"x".repeat(128)) && !is_name(&"x".repeat(129)));
        assert_eq!(whole_number(&serde_json::json!(7.0)), Some(7));
    }

    #[test]
    fn the_spec_patterns_say_what_the_edge_refuses() {
        for c in (0..=0x2000).filter_map(char::from_u32) {
            let s = c.to_string();
            assert_eq!(NO_CONTROL_RE.is_match(&s), !c.is_control(), "{c:?}");
            assert_eq!(
                PASSWORD_RE.is_match(&s),
                !c.is_control() || c == '\t',
                "{c:?}"
            );
            assert_eq!(
                is_free_text(&s),
                !c.is_control() || c == '\t' || c == '\n',
                "{c:?}"
            );
        }
        assert_eq!(whole_number(&serde_json::json!(7.5)), None);
    }
}
