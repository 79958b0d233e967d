//! The server metadata (RFC 8414) and its OpenID Connect discovery alias, with endpoint URLs
//! from `TOKEND_PUBLIC_URL` or the request.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::oauth::metadata::ServerMetadata;
use crate::state::AppState;

/// The base URL of the endpoints: `TOKEND_PUBLIC_URL`, else this request's scheme and Host.
fn base_url(state: &AppState, req: &HttpRequest) -> String {
    if let Some(url) = &state.settings.oauth.public_url {
        return url.clone();
    }
    let scheme = if req.app_config().secure() {
        "https"
    } else {
        "http"
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| req.app_config().host().to_owned());
    format!("{scheme}://{host}")
}

/// OAuth 2.0 authorization server metadata (RFC 8414); the same document at
/// `/.well-known/openid-configuration`. Endpoint URLs use `TOKEND_PUBLIC_URL` when set.
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "oauth2",
    responses((status = 200, description = "server metadata", body = ServerMetadata)))]
pub async fn metadata(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let body = ServerMetadata::new(&state.settings, &base_url(&state, &req));
    let cache = if state.settings.oauth.public_url.is_some() {
        "public, max-age=300"
    } else {
        // Built from this request's Host: a shared cache must not hand it to others.
        "no-store"
    };
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, cache))
        .json(body)
}

/// The RFC 8414 document under its OpenID Connect discovery name, for clients that look there.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "oauth2",
    responses((status = 200, description = "server metadata (the same as /.well-known/oauth-authorization-server)", body = ServerMetadata)))]
pub async fn openid_configuration(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    metadata(state, req).await
}
