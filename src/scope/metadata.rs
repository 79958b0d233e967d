//! Per-scope token metadata: what each scope requires, checked once when a token is asked for.
//!
//! Scopes with a fixed set of keys (sensor, execution, webhook) refuse unknown keys: a typo
//! such as `ip_allow_list` must not silently drop a restriction. `cli` and `admin` metadata
//! is free-form.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Map, Value};

use super::rules::{self, whole_number};
use super::{printable, Scope};
use crate::error::{ApiError, Code};

/// Serialized metadata may not exceed 8 KiB: it travels inside every token.
pub const MAX_METADATA_BYTES: usize = 8 * 1024;

/// Metadata that passed its scope's checks, in canonical form (optional keys given as
/// `null` are dropped, CIDRs are normalised).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ValidMetadata(Map<String, Value>);

impl ValidMetadata {
    /// Checks `raw` against the rules of `scope`.
    pub fn parse(scope: Scope, raw: Option<Value>) -> Result<ValidMetadata, ApiError> {
        let map = match raw {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map,
            Some(other) => {
                return Err(invalid(format!(
                    "metadata must be a JSON object, got {}",
                    json_kind(&other)
                )))
            }
        };
        let size = serde_json::to_vec(&map)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > MAX_METADATA_BYTES {
            return Err(invalid(format!(
                "metadata is {size} bytes when serialized; the limit is {MAX_METADATA_BYTES} bytes"
            )));
        }
        let map = match scope {
            Scope::Sensor => sensor(map)?,
            Scope::Execution => execution(map)?,
            Scope::Webhook => webhook(map)?,
            Scope::Cli | Scope::Admin if map.len() > rules::MAX_FREE_KEYS => {
                return Err(invalid(format!(
                    "metadata has {} keys; at most {} are allowed",
                    map.len(),
                    rules::MAX_FREE_KEYS
                )))
            }
            Scope::Cli | Scope::Admin => map,
        };
        Ok(ValidMetadata(map))
    }

    /// Metadata read back from storage, where it was stored only after [`ValidMetadata::parse`].
    pub fn from_stored(raw: &str) -> Result<ValidMetadata, serde_json::Error> {
        serde_json::from_str(raw).map(ValidMetadata)
    }

    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    pub fn into_map(self) -> Map<String, Value> {
        self.0
    }

    pub fn to_json(&self) -> String {
        Value::Object(self.0.clone()).to_string()
    }
}

fn invalid(message: String) -> ApiError {
    ApiError::bad_request(Code::InvalidMetadata, message)
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn only_keys(scope: Scope, map: &Map<String, Value>, allowed: &[&str]) -> Result<(), ApiError> {
    if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(invalid(format!(
            "unknown metadata key '{}' for a {scope} token; allowed keys: {}",
            printable(unknown, 60),
            allowed.join(", ")
        )));
    }
    Ok(())
}

/// A required or optional array of strings, each checked by `item`.
fn string_list(
    scope: Scope,
    key: &str,
    value: Option<Value>,
    required: bool,
    max_items: usize,
    item: impl Fn(&str) -> Result<String, String>,
) -> Result<Option<Vec<Value>>, ApiError> {
    let value = match value {
        None | Some(Value::Null) if required => {
            return Err(invalid(format!(
                "a {scope} token needs metadata.{key}: a non-empty array of strings"
            )))
        }
        None | Some(Value::Null) => return Ok(None),
        Some(v) => v,
    };
    let Value::Array(items) = value else {
        return Err(invalid(format!(
            "metadata.{key} must be a non-empty array of strings, got {}",
            json_kind(&value)
        )));
    };
    if items.is_empty() {
        let hint = if required {
            ""
        } else {
            " (omit it to allow any)"
        };
        return Err(invalid(format!("metadata.{key} must not be empty{hint}")));
    }
    if items.len() > max_items {
        return Err(invalid(format!(
            "metadata.{key} has {} entries; at most {max_items} are allowed",
            items.len()
        )));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, entry) in items.iter().enumerate() {
        let Value::String(s) = entry else {
            return Err(invalid(format!(
                "metadata.{key}[{i}] must be a string, got {}",
                json_kind(entry)
            )));
        };
        let checked = item(s).map_err(|why| invalid(format!("metadata.{key}[{i}]: {why}")))?;
        out.push(Value::String(checked));
    }
    Ok(Some(out))
}

fn sensor(mut map: Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    only_keys(Scope::Sensor, &map, &["trigger_types"])?;
    let types = string_list(
        Scope::Sensor,
        "trigger_types",
        map.remove("trigger_types"),
        true,
        rules::MAX_TRIGGER_TYPES,
        |s| {
            if rules::is_trigger_type(s) {
                Ok(s.to_owned())
            } else {
                Err(format!(
                    "'{}' is not a trigger type: 1 to 100 of letters, digits, '_', '.', ':', '/', '-', starting with a letter or digit",
                    printable(s, 60)
                ))
            }
        },
    )?
    .unwrap_or_default();
    let mut out = Map::new();
    out.insert("trigger_types".into(), Value::Array(types));
    Ok(out)
}

fn execution(mut map: Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    only_keys(
        Scope::Execution,
        &map,
        &["execution_id", "action_ref", "workflow_id"],
    )?;
    let mut out = Map::new();
    match map.remove("execution_id") {
        Some(v) if whole_number(&v).is_some_and(|n| n >= 0 && n <= i128::from(i64::MAX)) => {
            out.insert(
                "execution_id".into(),
                Value::from(whole_number(&v).unwrap_or_default() as i64),
            );
        }
        None | Some(Value::Null) => {
            return Err(invalid(
                "an execution token needs metadata.execution_id: the integer id of the execution"
                    .into(),
            ))
        }
        Some(other) => {
            return Err(invalid(format!(
                "metadata.execution_id must be a non-negative integer, got {}",
                printable(&other.to_string(), 40)
            )))
        }
    }
    match map.remove("action_ref") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if rules::is_action_ref(&s) => {
            out.insert("action_ref".into(), Value::String(s));
        }
        Some(_) => {
            return Err(invalid(
                "metadata.action_ref must be an action reference such as \"core.http\": 1 to 255 of letters, digits, '_', '.', ':', '/', '-'".into(),
            ))
        }
    }
    match map.remove("workflow_id") {
        None | Some(Value::Null) => {}
        Some(v) if whole_number(&v).is_some_and(|n| n >= 0 && n <= i128::from(i64::MAX)) => {
            out.insert(
                "workflow_id".into(),
                Value::from(whole_number(&v).unwrap_or_default() as i64),
            );
        }
        Some(other) => {
            return Err(invalid(format!(
                "metadata.workflow_id must be a non-negative integer, got {}",
                printable(&other.to_string(), 40)
            )))
        }
    }
    Ok(out)
}

fn webhook(mut map: Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    only_keys(Scope::Webhook, &map, &["allowed_paths", "ip_allowlist"])?;
    let paths = string_list(
        Scope::Webhook,
        "allowed_paths",
        map.remove("allowed_paths"),
        true,
        rules::MAX_PATHS,
        check_path_pattern,
    )?
    .unwrap_or_default();
    let ips = string_list(
        Scope::Webhook,
        "ip_allowlist",
        map.remove("ip_allowlist"),
        false,
        rules::MAX_IPS,
        |s| parse_cidr(s).map(|net| net.to_string()),
    )?;
    let mut out = Map::new();
    out.insert("allowed_paths".into(), Value::Array(paths));
    if let Some(ips) = ips {
        out.insert("ip_allowlist".into(), Value::Array(ips));
    }
    Ok(out)
}

fn check_path_pattern(s: &str) -> Result<String, String> {
    if rules::is_path_pattern(s) {
        return Ok(s.to_owned());
    }
    Err(format!(
        "'{}' is not a path pattern: an absolute path (e.g. /webhooks/github) of at most {} characters, \
         written decoded: without spaces, '?', '#', ';', '%', backslashes, empty segments or segments \
         starting with '.', and '*' only at the end",
        printable(s, 60),
        rules::PATH_MAX
    ))
}

/// A CIDR (`10.0.0.0/8`) or a single address (`192.0.2.7`, taken as `/32` or `/128`).
fn parse_cidr(s: &str) -> Result<IpNet, String> {
    if !rules::is_cidr(s) {
        return Err(format!(
            "'{}' is not a CIDR such as 10.0.0.0/8 or 2001:db8::/32",
            printable(s, 60)
        ));
    }
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("'{}' is not a CIDR such as 10.0.0.0/8", printable(s, 60)))
}

/// Whether a request path is allowed by a webhook token's `allowed_paths` (already
/// normalised with [`normalize_request_path`]). A trailing `*` is a prefix match.
pub fn path_allowed(patterns: &[Value], path: &str) -> bool {
    patterns
        .iter()
        .filter_map(Value::as_str)
        .any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => path == pattern,
        })
}

/// Whether an address is inside a webhook token's `ip_allowlist`.
pub fn ip_allowed(allowlist: &[Value], ip: IpAddr) -> bool {
    allowlist
        .iter()
        .filter_map(Value::as_str)
        .filter_map(|s| s.parse::<IpNet>().ok())
        .any(|net| net.contains(&ip))
}

/// The path of an original request URI as a gateway forwards it, ready for matching: query
/// and fragment removed, percent-decoded exactly once, repeated slashes folded.
///
/// `None` (refuse) for anything a server behind the gateway might read differently than we
/// do: not absolute; invalid UTF-8 or a malformed `%` escape; an encoded `/`, `\` or `%`
/// (`%2f`, `%5c`, and `%25`, i.e. double encoding such as `%252e`); after decoding, a
/// segment of only dots (`.`, `..`), a `;` (path parameters: Tomcat and Jetty read `..;` as
/// `..`), a backslash, `?`, `#` or a control character.
pub fn normalize_request_path(raw: &str) -> Option<String> {
    let path = raw.split(['?', '#']).next().unwrap_or_default();
    if !escapes_are_plain(path) {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .ok()?;
    let refused = |c: char| c.is_control() || matches!(c, '\\' | ';' | '?' | '#');
    if !decoded.starts_with('/') || decoded.contains(refused) {
        return None;
    }
    let mut out = String::with_capacity(decoded.len());
    for segment in decoded.split('/').filter(|s| !s.is_empty()) {
        if segment.bytes().all(|b| b == b'.') {
            return None;
        }
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || decoded.ends_with('/') {
        out.push('/');
    }
    Some(out)
}

/// Whether every `%` starts a two-hex-digit escape that does not encode `/`, `\` or `%`.
fn escapes_are_plain(path: &str) -> bool {
    let bytes = path.as_bytes();
    let mut i = 0;
    while let Some(at) = bytes[i..].iter().position(|b| *b == b'%') {
        let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
        let (Some(hi), Some(lo)) = (hex(bytes.get(i + at + 1)), hex(bytes.get(i + at + 2))) else {
            return false;
        };
        if matches!(hi * 16 + lo, 0x2f | 0x5c | 0x25) {
            return false;
        }
        i += at + 3;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sensor_requires_trigger_types() {
        assert_eq!(
            ValidMetadata::parse(Scope::Sensor, None)
                .unwrap_err()
                .code(),
            Code::InvalidMetadata
        );
        for bad in [
            json!({"trigger_types": []}),
            json!({"trigger_types": [1]}),
            json!({"trigger_types": "x"}),
            json!({"trigger_types": ["a"], "x": 1}),
        ] {
            assert!(ValidMetadata::parse(Scope::Sensor, Some(bad)).is_err());
        }
        let ok = ValidMetadata::parse(
            Scope::Sensor,
            Some(json!({"trigger_types": ["core.timer"]})),
        )
        .unwrap();
        assert_eq!(ok.as_map()["trigger_types"], json!(["core.timer"]));
    }

    #[test]
    fn execution_and_webhook_rules() {
        assert!(
            ValidMetadata::parse(Scope::Execution, Some(json!({"execution_id": "7"}))).is_err()
        );
        assert!(ValidMetadata::parse(
            Scope::Execution,
            Some(json!({"execution_id": 7, "action_ref": null}))
        )
        .is_ok());
        assert!(
            ValidMetadata::parse(Scope::Webhook, Some(json!({"allowed_paths": ["hooks"]})))
                .is_err()
        );
        assert!(
            ValidMetadata::parse(Scope::Webhook, Some(json!({"allowed_paths": ["/a*b"]}))).is_err()
        );
        let ok = ValidMetadata::parse(
            Scope::Webhook,
            Some(
                json!({"allowed_paths": ["/hooks/*"], "ip_allowlist": ["10.1.2.3/8", "192.0.2.1"]}),
            ),
        )
        .unwrap();
        assert_eq!(
            ok.as_map()["ip_allowlist"],
            json!(["10.0.0.0/8", "192.0.2.1/32"])
        );
        assert!(ValidMetadata::parse(
            Scope::Webhook,
            Some(json!({"allowed_paths": ["/a"], "ip_allowlist": []}))
        )
        .is_err());
    }

    #[test]
    fn size_limit() {
        let big = "x".repeat(MAX_METADATA_BYTES);
        assert!(ValidMetadata::parse(Scope::Cli, Some(json!({ "k": big }))).is_err());
    }

    #[test]
    fn path_normalisation_and_matching() {
        assert_eq!(
            normalize_request_path("/hooks//github?x=1").as_deref(),
            Some("/hooks/github")
        );
        assert_eq!(
            normalize_request_path("/hooks/%67ithub").as_deref(),
            Some("/hooks/github")
        );
        assert_eq!(normalize_request_path("/hooks/../admin"), None);
        assert_eq!(normalize_request_path("/hooks/%2e%2e/admin"), None);
        assert_eq!(normalize_request_path("hooks"), None);
        assert_eq!(
            normalize_request_path("/hooks/a%20b/").as_deref(),
            Some("/hooks/a b/")
        );
        for trick in [
            "/hooks/..;/admin",
            "/hooks/.;/x",
            "/hooks/x;jsessionid=1",
            "/hooks/%3b/x",
            "/hooks/%3B/x",
            "/hooks/%252e%252e/admin",
            "/hooks/%25/x",
            "/hooks/a%2fb",
            "/hooks/a%2Fb",
            "/hooks/a%5cb",
            "/hooks/a\\b",
            "/hooks/.",
            "/hooks/./x",
            "/hooks/.../x",
            "/hooks/%2e/x",
            "/hooks/a%00",
            "/hooks/a%0a",
            "/hooks/a%7f",
            "/hooks/a%zz",
            "/hooks/a%2",
            "/hooks/a%",
            "/hooks/a%3fx",
            "/hooks/a%23x",
            "/hooks/%ff",
        ] {
            assert_eq!(normalize_request_path(trick), None, "{trick}");
        }
        let patterns = [json!("/hooks/github"), json!("/ci/*")];
        assert!(path_allowed(&patterns, "/hooks/github"));
        assert!(!path_allowed(&patterns, "/hooks/github/x"));
        assert!(path_allowed(&patterns, "/ci/build/1"));
        assert!(!path_allowed(&patterns, "/cix"));
    }

    #[test]
    fn ip_matching() {
        let list = [json!("10.0.0.0/8")];
        assert!(ip_allowed(&list, "10.2.3.4".parse().unwrap()));
        assert!(!ip_allowed(&list, "11.2.3.4".parse().unwrap()));
    }
}
