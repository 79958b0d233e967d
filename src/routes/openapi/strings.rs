//! Every request string is refused when it holds a control character; the spec says so.

use serde_json::{json, Map, Value};

use crate::scope::rules;

/// Every string of a request is refused (400 `invalid_characters`) when it holds a control
/// character (`routes::extract`); the spec says so with a pattern on each request string that
/// has no stricter rule, and on every key and value of free-form metadata. Header values
/// cannot hold control characters at all. Response schemas are left as they are.
pub(super) fn forbid_control_characters(doc: &mut Value) {
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
