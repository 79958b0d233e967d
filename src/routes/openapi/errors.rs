//! The failures every operation documents.

use serde_json::{json, Value};

fn error_response(description: &str) -> Value {
    json!({"description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}})
}

/// Every operation documents the failures any request may meet: a malformed request or a
/// control character in its path or query string (400),
/// a bad token (401) or role (403), an oversized or non-JSON body (413, 415), an oversized
/// URI or headers (414, 431), an unavailable database (503).
pub(super) fn add_error_responses(doc: &mut Value) {
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
