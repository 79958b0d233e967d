//! The request schemas whose rules depend on the scope (TTL bounds per unit, per-scope
//! metadata), built from the same [`ScopePolicy`] and [`rules`] the server enforces, and the
//! query parameters utoipa cannot express from raw-string fields.

use serde_json::{json, Map, Value};

use crate::scope::{rules, Scope, ScopePolicy};

const UNITS: [(&str, u64); 4] = [
    ("ttl_seconds", 1),
    ("ttl_minutes", 60),
    ("ttl_hours", 3_600),
    ("ttl_days", 86_400),
];

/// The `ttl_*` properties a scope can satisfy, with per-unit bounds; a unit in which no
/// whole number fits the bounds is left out (and refused as an unknown property).
fn ttl_properties(min_secs: u64, max_secs: u64) -> Vec<(&'static str, Value)> {
    UNITS
        .iter()
        .filter_map(|(field, unit)| {
            let lo = min_secs.div_ceil(*unit).max(1);
            let hi = max_secs / unit;
            (lo <= hi).then(|| {
                (
                    *field,
                    json!({"type": "integer", "minimum": lo, "maximum": hi,
                        "description": format!("lifetime in {}", &field[4..])}),
                )
            })
        })
        .collect()
}

/// "At most one of these fields".
fn at_most_one(fields: &[&str]) -> Value {
    let mut pairs = Vec::new();
    for (i, a) in fields.iter().enumerate() {
        for b in &fields[i + 1..] {
            pairs.push(json!({"required": [a, b]}));
        }
    }
    json!({"anyOf": pairs})
}

fn nullable(schema: Value) -> Value {
    let mut schema = schema;
    if let Some(t) = schema.get("type").and_then(Value::as_str) {
        schema["type"] = json!([t, "null"]);
    }
    schema
}

fn metadata_schema(scope: Scope) -> (Value, bool) {
    let ident = |pattern: &str| json!({"type": "string", "pattern": pattern});
    let int = json!({"type": "integer", "minimum": 0, "maximum": i64::MAX});
    match scope {
        Scope::Sensor => (
            json!({"type": "object", "additionalProperties": false, "required": ["trigger_types"],
                "properties": {"trigger_types": {"type": "array", "minItems": 1,
                    "maxItems": rules::MAX_TRIGGER_TYPES, "items": ident(rules::TRIGGER_TYPE)}},
                "example": {"trigger_types": ["core.timer"]}}),
            true,
        ),
        Scope::Execution => (
            json!({"type": "object", "additionalProperties": false, "required": ["execution_id"],
                "properties": {"execution_id": int.clone(), "action_ref": nullable(ident(rules::ACTION_REF)),
                    "workflow_id": nullable(int)},
                "example": {"execution_id": 4711, "action_ref": "core.http"}}),
            true,
        ),
        Scope::Webhook => (
            json!({"type": "object", "additionalProperties": false, "required": ["allowed_paths"],
                "properties": {
                    "allowed_paths": {"type": "array", "minItems": 1, "maxItems": rules::MAX_PATHS,
                        "description": "absolute paths; a trailing * is a prefix match",
                        "items": {"type": "string", "maxLength": rules::PATH_MAX, "pattern": rules::PATH_PATTERN}},
                    "ip_allowlist": {"type": ["array", "null"], "minItems": 1, "maxItems": rules::MAX_IPS,
                        "description": "CIDRs or addresses the token may be used from",
                        "items": {"type": "string", "anyOf": [{"pattern": rules::IPV4_CIDR}, {"pattern": rules::IPV6_CIDR}]}}},
                "example": {"allowed_paths": ["/webhooks/github", "/webhooks/ci/*"], "ip_allowlist": ["192.0.2.0/24"]}}),
            true,
        ),
        Scope::Cli | Scope::Admin => (
            json!({"type": ["object", "null"], "maxProperties": rules::MAX_FREE_KEYS,
                "description": "free-form; at most 8 KiB when serialized"}),
            false,
        ),
    }
}

/// One `oneOf` branch of the create request: everything a `scope` account accepts.
fn create_variant(scope: Scope, policy: &ScopePolicy) -> Value {
    let bounds = policy.bounds(scope);
    let names: Vec<&str> = match scope {
        Scope::Execution => vec!["execution", "action_execution"],
        Scope::Cli => vec!["cli", "user"],
        other => vec![other.as_str()],
    };
    let ttl = ttl_properties(bounds.min.as_secs(), bounds.max.as_secs());
    let (metadata, metadata_required) = metadata_schema(scope);
    let mut properties = Map::new();
    properties.insert(
        "name".into(),
        json!({"type": "string", "pattern": rules::NAME, "maxLength": rules::NAME_MAX,
            "description": "a label; names need not be unique", "example": format!("{scope}:example")}),
    );
    properties.insert("scope".into(), json!({"type": "string", "enum": names}));
    properties.insert(
        "description".into(),
        json!({"type": ["string", "null"], "maxLength": rules::DESCRIPTION_MAX, "pattern": rules::FREE_TEXT}),
    );
    for (field, schema) in &ttl {
        properties.insert((*field).into(), schema.clone());
    }
    properties.insert("metadata".into(), metadata);
    let mut required = vec!["name", "scope"];
    if metadata_required {
        required.push("metadata");
    }
    let fields: Vec<&str> = ttl.iter().map(|(f, _)| *f).collect();
    json!({
        "title": format!("a {scope} account"),
        "description": format!(
            "Give at most one ttl_* field; none means the default. A {scope} token lives {}.",
            bounds.describe()
        ),
        "type": "object",
        "additionalProperties": false,
        "required": required,
        "properties": properties,
        "not": at_most_one(&fields),
    })
}

/// The `ttl_*` fields of a request whose scope is not known from the request itself
/// (`POST /service-accounts/{id}/tokens`): the union of all scopes' bounds.
fn any_scope_ttl(policy: &ScopePolicy) -> Value {
    let min = Scope::ALL
        .iter()
        .map(|s| policy.bounds(*s).min.as_secs())
        .min()
        .unwrap_or(1);
    let max = Scope::ALL
        .iter()
        .map(|s| policy.bounds(*s).max.as_secs())
        .max()
        .unwrap_or(1);
    let ttl = ttl_properties(min, max);
    let mut properties = Map::new();
    for (field, schema) in &ttl {
        properties.insert((*field).into(), schema.clone());
    }
    let fields: Vec<&str> = ttl.iter().map(|(f, _)| *f).collect();
    json!({
        "type": "object",
        "additionalProperties": false,
        "description": "Give at most one ttl_* field, within the bounds of the account's scope; none means its default.",
        "properties": properties,
        "not": at_most_one(&fields),
    })
}

pub(super) fn refine_schemas(doc: &mut Value, policy: &ScopePolicy) {
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let variants: Vec<Value> = Scope::ALL
        .iter()
        .map(|scope| create_variant(*scope, policy))
        .collect();
    schemas.insert(
        "CreateServiceAccountRequest".into(),
        json!({
            "description": "A new service account and its first token. The rules depend on the scope.",
            "oneOf": variants,
            "examples": [
                {"name": "sensor:core.timer", "scope": "sensor", "ttl_hours": 72, "metadata": {"trigger_types": ["core.timer", "core.interval"]}},
                {"name": "execution:4711", "scope": "execution", "ttl_minutes": 30, "metadata": {"execution_id": 4711, "action_ref": "core.http"}},
                {"name": "cli:alice", "scope": "cli", "ttl_days": 7, "description": "Alice's laptop"},
                {"name": "webhook:github", "scope": "webhook", "ttl_days": 90, "metadata": {"allowed_paths": ["/webhooks/github", "/webhooks/ci/*"], "ip_allowlist": ["192.0.2.0/24"]}},
                {"name": "admin:ops", "scope": "admin", "ttl_hours": 8}
            ]
        }),
    );
    schemas.insert("IssueTokenRequest".into(), any_scope_ttl(policy));

    let cli = policy.bounds(Scope::Cli);
    if let Some(days) = ttl_properties(cli.min.as_secs(), cli.max.as_secs())
        .into_iter()
        .find(|(f, _)| *f == "ttl_days")
    {
        if let Some(login) = schemas.get_mut("LoginRequest") {
            login["properties"]["ttl_days"] = days.1;
            login["properties"]["login"]["pattern"] = json!(rules::LOGIN);
            login["properties"]["password"]["maxLength"] = json!(1024);
            login["additionalProperties"] = json!(false);
        }
    }
    if let Some(user) = schemas.get_mut("NewUserRequest") {
        user["properties"]["login"]["pattern"] = json!(rules::LOGIN);
        user["properties"]["password"]["minLength"] = json!(8);
        user["properties"]["password"]["maxLength"] = json!(1024);
        user["additionalProperties"] = json!(false);
    }
    let reason = json!({"type": ["string", "null"], "maxLength": rules::REASON_MAX, "pattern": rules::FREE_TEXT});
    for name in ["RevokeRequest", "RevokeTokenRequest"] {
        if let Some(s) = schemas.get_mut(name) {
            s["properties"]["reason"] = reason.clone();
            s["additionalProperties"] = json!(false);
        }
    }
    if let Some(s) = schemas.get_mut("RevokeTokenRequest") {
        s["oneOf"] = json!([{"required": ["token"]}, {"required": ["token_id"]}]);
        s["properties"]["token"] = json!({"type": "string", "minLength": 1});
        s["properties"]["token_id"] = json!({"type": "string", "format": "uuid"});
    }
    if let Some(s) = schemas.get_mut("RefreshRequest") {
        s["additionalProperties"] = json!(false);
    }
    if let Some(s) = schemas.get_mut("RevocationRequest") {
        let name = json!({"type": ["string", "null"], "pattern": rules::NAME, "maxLength": rules::NAME_MAX});
        for field in ["name", "name_prefix", "key_id"] {
            s["properties"][field] = name.clone();
        }
        s["properties"]["user"] = json!({"type": ["string", "null"], "pattern": rules::LOGIN});
        s["properties"]["reason"] = reason.clone();
        s["additionalProperties"] = json!(false);
        // At least one selector (reason and dry_run alone select nothing).
        let selectors = [
            "scope",
            "name",
            "name_prefix",
            "identity_id",
            "user",
            "issued_before",
            "key_id",
        ];
        s["anyOf"] = selectors
            .iter()
            .map(|f| json!({"required": [f], "properties": {*f: {"not": {"type": "null"}}}}))
            .collect();
    }
    if let Some(s) = schemas.get_mut("UserPatch") {
        s["properties"]["password"] =
            json!({"type": ["string", "null"], "minLength": 8, "maxLength": 1024});
        s["additionalProperties"] = json!(false);
        s["anyOf"] = ["role", "disabled", "password"]
            .iter()
            .map(|f| json!({"required": [f], "properties": {*f: {"not": {"type": "null"}}}}))
            .collect();
    }
}

/// Query parameters whose allowed values utoipa cannot express from the raw-string fields.
pub(super) fn refine_parameters(doc: &mut Value) {
    let scopes = json!([
        "sensor",
        "execution",
        "action_execution",
        "cli",
        "user",
        "webhook",
        "admin"
    ]);
    let Some(params) = doc
        .pointer_mut("/paths/~1service-accounts/get/parameters")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for p in params {
        match p["name"].as_str() {
            Some("scope") => p["schema"] = json!({"type": "string", "enum": scopes}),
            Some("status") => {
                p["schema"] =
                    json!({"type": "string", "enum": ["active", "expired", "revoked", "all"]})
            }
            _ => {}
        }
    }
}
