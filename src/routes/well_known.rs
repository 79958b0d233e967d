//! Public key discovery for offline verifiers.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use crate::state::AppState;

/// The public keys that verify tokend's tokens (JWKS, RFC 7517). Empty with HS256.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "keys",
    responses((status = 200, description = "JSON Web Key Set", body = Object,
        example = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k", "alg": "EdDSA", "use": "sig"}]}))))]
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    let keys = state.tokens.keys().current();
    HttpResponse::Ok()
        .insert_header((
            header::CACHE_CONTROL,
            format!("public, max-age={}", state.settings.jwks_max_age.as_secs()),
        ))
        .json(keys.jwks())
}
