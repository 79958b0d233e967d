//! Request parsing shared by every route: JSON, query and path errors in the contract's
//! shape, optional JSON bodies, 404 and 405.
//!
//! Control characters (C0, DEL, C1) are refused here, once, in every input: the path, the
//! query string, every string of a JSON body (keys included) and form bodies answer 400
//! `invalid_characters` naming the field. Two deliberate exceptions, in top-level body fields
//! only: a `password` may hold a tab (a pasted one can), and free text (`description`,
//! `reason`) may hold tabs and newlines. A NUL never reaches a handler or the database.

use actix_web::dev::Payload;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::header::{self, ContentType};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, Code};

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Request URIs (path and query) longer than this are refused with 414.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// All request headers together (names and values) larger than this are refused with 431.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Refuses oversized URIs and headers, and control characters in the path or the query
/// string, before any routing or parsing. (Far larger ones are cut off by the HTTP parser
/// itself, without a body.)
pub async fn limits(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let uri_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_len > MAX_URI_BYTES {
        return Err(ApiError::new(
            Code::UriTooLong,
            format!(
                "the request URI is longer than {} KiB",
                MAX_URI_BYTES / 1024
            ),
        )
        .into());
    }
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Err(ApiError::new(
            Code::HeadersTooLarge,
            format!(
                "the request headers are larger than {} KiB",
                MAX_HEADER_BYTES / 1024
            ),
        )
        .into());
    }
    if may_hold_controls(req.path()) {
        check_text(&decode_lossy(req.path()), &[], || "the request path".into())?;
    }
    if may_hold_controls(req.query_string()) {
        check_urlencoded(req.query_string(), "query parameter")?;
    }
    next.call(req).await
}

/// Refuses a control character in `text` unless `allowed` lists it. `what` names the input
/// (never its value: it may be a password).
fn check_text(text: &str, allowed: &[char], what: impl FnOnce() -> String) -> Result<(), ApiError> {
    match text
        .chars()
        .find(|c| c.is_control() && !allowed.contains(c))
    {
        None => Ok(()),
        Some(c) => Err(ApiError::new(
            Code::InvalidCharacters,
            format!(
                "{} contains the control character U+{:04X}; control characters are refused \
                 (tabs and newlines only in descriptions and reasons, tabs in passwords)",
                what(),
                u32::from(c)
            ),
        )),
    }
}

fn decode_lossy(raw: &str) -> std::borrow::Cow<'_, str> {
    percent_encoding::percent_decode_str(raw).decode_utf8_lossy()
}

/// Whether percent-decoded `raw` could hold a control character: only through an escape
/// (`%..`), a control byte, or a byte of a non-ASCII character (C1 controls are U+0080 to
/// U+009F). Most paths and queries are plain ASCII: they are not decoded at all.
fn may_hold_controls(raw: &str) -> bool {
    raw.bytes()
        .any(|b| b == b'%' || b.is_ascii_control() || !b.is_ascii())
}

/// Checks every name and value of `application/x-www-form-urlencoded` text (a query string or
/// a form body), percent-decoded. `kind` is `query parameter` or `form field`.
fn check_urlencoded(raw: &str, kind: &str) -> Result<(), ApiError> {
    for pair in raw.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode_lossy(name);
        check_text(&name, &[], || format!("a {kind} name"))?;
        check_text(&decode_lossy(value), &[], || {
            format!("the {kind} `{}`", crate::scope::printable(&name, 60))
        })?;
    }
    Ok(())
}

/// Refuses control characters in a form body (see the module's rules).
pub fn check_form(body: &[u8]) -> Result<(), ApiError> {
    check_urlencoded(&String::from_utf8_lossy(body), "form field")
}

/// Refuses control characters in any string of a JSON body, keys included (see the module's
/// rules for the two exceptions).
pub fn check_json(body: &serde_json::Value) -> Result<(), ApiError> {
    check_value(body, &mut String::new(), &[])
}

/// The control characters a top-level body field may hold.
fn allowed_controls(field: &str) -> &'static [char] {
    match field {
        "password" => &['\t'],
        "description" | "reason" => &['\t', '\n'],
        _ => &[],
    }
}

fn check_value(
    value: &serde_json::Value,
    path: &mut String,
    allowed: &[char],
) -> Result<(), ApiError> {
    use serde_json::Value;
    let field = |path: &str| format!("the field `{}`", crate::scope::printable(path, 120));
    match value {
        Value::String(s) => check_text(s, allowed, || field(path)),
        Value::Array(items) => {
            let len = path.len();
            for (i, item) in items.iter().enumerate() {
                use std::fmt::Write;
                let _ = write!(path, "[{i}]");
                check_value(item, path, allowed)?;
                path.truncate(len);
            }
            Ok(())
        }
        Value::Object(map) => {
            let len = path.len();
            for (key, item) in map {
                check_text(key, &[], || match len {
                    0 => "a field name of the body".to_owned(),
                    _ => format!("a key in {}", field(path)),
                })?;
                let allowed = if len == 0 {
                    allowed_controls(key)
                } else {
                    path.push('.');
                    &[]
                };
                path.push_str(key);
                check_value(item, path, allowed)?;
                path.truncate(len);
            }
            Ok(())
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(MAX_BODY_BYTES)
        .error_handler(|err, _req| json_error(err).into())
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        let QueryPayloadError::Deserialize(e) = &err else {
            return ApiError::new(Code::InvalidQuery, "the query string is not valid").into();
        };
        ApiError::new(Code::InvalidQuery, format!("invalid query string: {e}")).into()
    })
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err: PathError, req| {
        ApiError::not_found(format!("no resource at {}: {err}", req.path())).into()
    })
}

pub fn payload_config() -> web::PayloadConfig {
    web::PayloadConfig::default().limit(MAX_BODY_BYTES)
}

fn json_error(err: JsonPayloadError) -> ApiError {
    match err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            too_large()
        }
        JsonPayloadError::ContentType => ApiError::new(
            Code::UnsupportedMediaType,
            "send the body as JSON with `Content-Type: application/json`",
        ),
        JsonPayloadError::Deserialize(e) => serde_error(&e),
        other => ApiError::new(
            Code::InvalidRequest,
            format!("cannot read the request body: {other}"),
        ),
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        Code::PayloadTooLarge,
        format!(
            "the request body is larger than {} KiB",
            MAX_BODY_BYTES / 1024
        ),
    )
}

/// Syntax errors are `invalid_json`; well-formed JSON of the wrong shape is `invalid_request`.
fn serde_error(e: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::new(
            Code::InvalidJson,
            format!("the body is not valid JSON: {e}"),
        ),
        Category::Data => ApiError::new(Code::InvalidRequest, format!("invalid request body: {e}")),
    }
}

/// Reads a body that must be a JSON object: serde alone would also read a struct from an array
/// of its fields in order (`[]` for one whose fields all have defaults). `refusal` says what
/// else is accepted.
fn from_object<T: DeserializeOwned>(
    value: serde_json::Value,
    refusal: &'static str,
) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::new(Code::InvalidRequest, refusal));
    }
    check_json(&value)?;
    serde_json::from_value(value).map_err(|e| serde_error(&e))
}

/// A required JSON body that must be an object. `web::Json<T>` alone would also read a
/// struct from an array of its fields in order; this refuses anything but an object with 400
/// `invalid_request`. Size limit and JSON errors as [`json_config`] says.
pub struct JsonObject<T>(T);

impl<T> JsonObject<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonObject<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = web::Json::<serde_json::Value>::from_request(req, payload);
        Box::pin(async move {
            let value = body.await?.into_inner();
            Ok(JsonObject(from_object(
                value,
                "the request body must be a JSON object",
            )?))
        })
    }
}

/// A JSON body that may be absent (`DELETE` with an optional `{reason}`). An empty body is
/// `None`; a present one must be JSON.
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned + 'static> FromRequest for OptionalJson<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.to_ascii_lowercase());
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = body.await.map_err(|e| {
                if e.as_response_error().status_code()
                    == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE
                {
                    too_large()
                } else {
                    ApiError::new(Code::InvalidRequest, "cannot read the request body")
                }
            })?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(OptionalJson(None));
            }
            if let Some(ct) = content_type {
                if !(ct.starts_with("application/json") || ct.contains("+json")) {
                    return Err(ApiError::new(
                        Code::UnsupportedMediaType,
                        "send the body as JSON with `Content-Type: application/json`",
                    ));
                }
            }
            // A JSON `null` body is no body.
            let value: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|e| serde_error(&e))?;
            if value.is_null() {
                return Ok(OptionalJson(None));
            }
            from_object(value, "the request body must be a JSON object (or empty)")
                .map(|v| OptionalJson(Some(v)))
        })
    }
}

/// Unknown routes.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "no route {} {}; GET /openapi.json describes the API",
        req.method(),
        req.path()
    )))
}

/// A resource's fallback for methods it does not serve, with the `Allow` header.
pub fn method_not_allowed(allow: &'static str) -> actix_web::Route {
    web::route().to(move |req: HttpRequest| async move {
        let err = ApiError::new(
            Code::MethodNotAllowed,
            format!(
                "{} is not allowed on {}; use {allow}",
                req.method(),
                req.path()
            ),
        );
        let mut res = actix_web::ResponseError::error_response(&err);
        if let Ok(v) = header::HeaderValue::from_str(allow) {
            res.headers_mut().insert(header::ALLOW, v);
        }
        res
    })
}

/// A JSON response with a status.
pub fn json_response<T: serde::Serialize>(
    status: actix_web::http::StatusCode,
    body: &T,
) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(ContentType::json())
        .json(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_escapes_and_non_ascii_can_hide_controls() {
        for plain in ["/auth/verify", "scope=sensor,cli&trigger_type=a+b", ""] {
            assert!(!may_hold_controls(plain), "{plain}");
        }
        // Each is or decodes to a control character: U+000A, U+0085 (UTF-8 C2 85), DEL.
        for hiding in ["/a%0Ab", "x=%C2%85", "n\u{85}", "x=\u{7f}"] {
            assert!(may_hold_controls(hiding), "{hiding:?}");
        }
    }

    fn refusal(result: Result<(), ApiError>) -> String {
        let err = result.expect_err("refused");
        assert_eq!(err.code(), Code::InvalidCharacters);
        err.message().to_owned()
    }

    #[test]
    fn json_strings_and_keys_are_checked_everywhere() {
        check_json(
            &json!({"description": "a\n\tb", "reason": "c\nd", "password": "e\tf",
            "metadata": {"k": ["v", 1, null, {"deep": "ok"}]}}),
        )
        .unwrap();
        let message = refusal(check_json(&json!({"password": "a\nb"})));
        assert!(
            message.contains("`password`") && message.contains("U+000A"),
            "{message}"
        );
        assert!(!message.contains("a\nb"), "the value is never quoted");
        let message = refusal(check_json(&json!({"metadata": {"description": "a\nb"}})));
        assert!(message.contains("`metadata.description`"), "{message}");
        let message = refusal(check_json(&json!({"m": {"list": [{"x": "\u{0}"}]}})));
        assert!(message.contains("`m.list[0].x`"), "{message}");
        let message = refusal(check_json(&json!({"m": {"bad\u{7f}key": 1}})));
        assert!(message.contains("a key in the field `m`"), "{message}");
        refusal(check_json(&json!({"name": "\u{9b}"})));
        refusal(check_json(&json!({"description": "\r\n"})));
    }

    #[test]
    fn form_and_query_values_are_decoded_then_checked() {
        check_urlencoded("name=a+b&scope=sensor%2Ccli&flag", "query parameter").unwrap();
        let message = refusal(check_urlencoded("limit=1&name=x%00", "query parameter"));
        assert!(message.contains("query parameter `name`"), "{message}");
        refusal(check_urlencoded("na%0ame=x", "query parameter"));
        let message = refusal(check_form(b"token=a\x01b"));
        assert!(message.contains("form field `token`"), "{message}");
    }
}
