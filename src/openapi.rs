//! The OpenAPI description of the API. `tokend openapi` prints it; `openapi/openapi.json`
//! is its committed snapshot (built-in TTL bounds), and a test fails when the two differ.
//! `GET /openapi.json` serves it with the running server's own TTL bounds.
//!
//! Routes and types are described with utoipa. The request schemas whose rules depend on
//! the scope (TTL bounds per unit, per-scope metadata) are then built here from the same
//! [`ScopePolicy`] and [`rules`] the server enforces, so the spec says exactly what the
//! server accepts; schemathesis checks that they agree (`scripts/schemathesis.sh`).

use serde_json::{json, Map, Value};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{
    admin, audit, auth, health, introspect, service_accounts, session, users, well_known,
};
use crate::scope::{rules, Scope, ScopePolicy};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tokend",
        description = "Service-account token issuer and revocation service. Every error is \
            `{\"error\": {\"code\", \"message\"}}`; times are RFC 3339 UTC. Swagger UI: `/docs`.",
        license(name = "Apache-2.0"),
    ),
    paths(
        health::health,
        health::ready,
        crate::routes::metrics::metrics,
        service_accounts::create,
        service_accounts::list,
        service_accounts::get,
        service_accounts::revoke,
        service_accounts::issue_token,
        service_accounts::revoke_token,
        auth::whoami,
        auth::verify,
        session::login,
        session::logout,
        session::refresh,
        introspect::introspect,
        introspect::revoke_token,
        users::add,
        users::list,
        users::get,
        users::update,
        users::delete,
        crate::routes::revocations::create,
        crate::routes::revocations::list,
        audit::list,
        admin::run_cleanup,
        well_known::jwks,
        crate::routes::keys::list,
        crate::routes::keys::rotate,
        crate::routes::keys::revoke,
        crate::routes::oauth::token,
        crate::routes::oauth::revoke,
        crate::routes::oauth::introspect,
        crate::routes::oauth::metadata,
        crate::routes::oauth::openid_configuration,
        crate::routes::client_secrets::create,
        crate::routes::client_secrets::list,
        crate::routes::client_secrets::revoke,
        crate::routes::client_secrets::register_keys,
        crate::routes::client_secrets::get_keys,
        crate::routes::client_secrets::remove_keys,
        crate::routes::federation::create,
        crate::routes::federation::list,
        crate::routes::federation::get,
        crate::routes::federation::update,
        crate::routes::federation::delete,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail)),
    modifiers(&BearerAuth),
    tags(
        (name = "service-accounts", description = "Create, list, rotate and revoke service accounts"),
        (name = "auth", description = "Logins, refresh, introspection, forward-auth"),
        (name = "users", description = "People who log in for cli tokens"),
        (name = "revocation", description = "Revoke every token matching a selector"),
        (name = "audit", description = "The trail of every change to a credential"),
        (name = "keys", description = "Public keys for offline verification"),
        (name = "oauth2", description = "OAuth 2.0 for stock clients: token endpoint, revocation, introspection, server metadata, client credentials. Errors here are RFC 6749's `{error, error_description}`"),
        (name = "federation", description = "Workload federation: external issuers (Kubernetes, GitHub Actions) whose identity tokens workloads exchange at /oauth2/token for tokend tokens, decided by claim rules"),
        (name = "admin", description = "Maintenance"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
        components.add_security_scheme(
            "client_secret_basic",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
    }
}

/// The spec for a server with these TTL bounds.
pub fn spec(policy: &ScopePolicy) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|_| json!({}));
    refine_schemas(&mut doc, policy);
    refine_parameters(&mut doc);
    forbid_control_characters(&mut doc);
    add_error_responses(&mut doc);
    doc
}

/// The spec as pretty JSON with a trailing newline, exactly as committed (built-in bounds).
pub fn spec_json() -> String {
    spec_json_for(&ScopePolicy::default())
}

pub fn spec_json_for(policy: &ScopePolicy) -> String {
    let mut out = serde_json::to_string_pretty(&spec(policy)).unwrap_or_default();
    out.push('\n');
    out
}

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

fn refine_schemas(doc: &mut Value, policy: &ScopePolicy) {
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
fn refine_parameters(doc: &mut Value) {
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

/// Every string of a request is refused (400 `invalid_characters`) when it holds a control
/// character (`routes::extract`); the spec says so with a pattern on each request string that
/// has no stricter rule, and on every key and value of free-form metadata. Header values
/// cannot hold control characters at all. Response schemas are left as they are.
fn forbid_control_characters(doc: &mut Value) {
    let mut refs = Vec::new();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for op in paths
            .values_mut()
            .filter_map(Value::as_object_mut)
            .flat_map(|item| item.values_mut())
        {
            if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
                for param in params.iter_mut().filter(|p| p["in"] != "header") {
                    if let Some(schema) = param.get_mut("schema") {
                        plain_strings(schema, None);
                    }
                }
            }
            if let Some(content) = op
                .pointer_mut("/requestBody/content")
                .and_then(Value::as_object_mut)
            {
                for schema in content.values_mut().filter_map(|m| m.get_mut("schema")) {
                    collect_refs(schema, &mut refs);
                    plain_strings(schema, None);
                }
            }
        }
    }
    refs.sort();
    refs.dedup();
    for name in refs {
        if let Some(schema) = doc.pointer_mut(&format!("/components/schemas/{name}")) {
            plain_strings(schema, None);
        }
    }
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        schemas.insert(FREE_JSON.into(), free_json());
    }
}

/// The component names a schema refers to.
fn collect_refs(schema: &Value, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(name) = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
            {
                out.push(name.to_owned());
            }
            map.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

fn has_type(schema: &Map<String, Value>, wanted: &str) -> bool {
    match schema.get("type") {
        Some(Value::String(t)) => t == wanted,
        Some(Value::Array(types)) => types.iter().any(|t| t == wanted),
        _ => false,
    }
}

/// Adds the no-control-characters pattern to the unconstrained strings of a request schema
/// (`field` is the property it describes: passwords may hold a tab, free text newlines too).
fn plain_strings(schema: &mut Value, field: Option<&str>) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    let constrained = ["pattern", "enum", "format", "const"]
        .iter()
        .any(|k| obj.contains_key(*k));
    if has_type(obj, "string") && !constrained {
        // The edge's exceptions (routes::extract): tabs in passwords, free text.
        let pattern = match field {
            Some("password") => rules::PASSWORD,
            Some("description" | "reason") => rules::FREE_TEXT,
            _ => rules::NO_CONTROL,
        };
        obj.insert("pattern".into(), json!(pattern));
    }
    // Free-form objects, and objects that accept (and ignore) unknown fields: those must be
    // free of control characters too.
    if has_type(obj, "object") && !obj.contains_key("additionalProperties") {
        obj.insert(
            "propertyNames".into(),
            json!({"pattern": rules::NO_CONTROL}),
        );
        obj.insert(
            "additionalProperties".into(),
            json!({"$ref": FREE_JSON_REF}),
        );
    }
    if let Some(properties) = obj.get_mut("properties").and_then(Value::as_object_mut) {
        for (name, property) in properties.iter_mut() {
            plain_strings(property, Some(name));
        }
    }
    if let Some(items) = obj.get_mut("items") {
        plain_strings(items, None);
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(branches) = obj.get_mut(key).and_then(Value::as_array_mut) {
            branches.iter_mut().for_each(|b| plain_strings(b, field));
        }
    }
}

const FREE_JSON: &str = "FreeFormJson";
const FREE_JSON_REF: &str = "#/components/schemas/FreeFormJson";

/// Any JSON value without control characters in its strings and keys, at any depth.
fn free_json() -> Value {
    // `pattern` constrains strings only, `propertyNames` objects only, `items` arrays only.
    json!({"description": "any JSON value; no control characters in its strings and keys",
        "pattern": rules::NO_CONTROL, "propertyNames": {"pattern": rules::NO_CONTROL},
        "items": {"$ref": FREE_JSON_REF}, "additionalProperties": {"$ref": FREE_JSON_REF}})
}

fn error_response(description: &str) -> Value {
    json!({"description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}})
}

/// Every operation documents the failures any request may meet: a malformed request or a
/// control character in its path or query string (400),
/// a bad token (401) or role (403), an oversized or non-JSON body (413, 415), an oversized
/// URI or headers (414, 431), an unavailable database (503).
fn add_error_responses(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            let secured = op.get("security").is_some();
            let has_body = op.get("requestBody").is_some();
            let has_params = op.get("parameters").is_some();
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            let mut add = |code: &str, description: &str| {
                responses
                    .entry(code.to_owned())
                    .or_insert_with(|| error_response(description));
            };
            add(
                "400",
                if has_body || has_params {
                    "the request is not valid"
                } else {
                    "a control character in the path or query string (invalid_characters)"
                },
            );
            if secured {
                add("401", "missing, invalid, expired or revoked token");
                add("403", "the token may not do this");
            }
            if has_body || method == "post" || method == "delete" {
                add("413", "the body is larger than 64 KiB");
                add("415", "the body is not JSON");
            }
            add("414", "the request URI is longer than 8 KiB");
            add("431", "the request headers are larger than 16 KiB");
            add("503", "the database is unavailable; retry shortly");
        }
    }
}
