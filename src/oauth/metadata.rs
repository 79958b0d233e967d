//! The authorization server metadata (RFC 8414), served at
//! `/.well-known/oauth-authorization-server` and `/.well-known/openid-configuration`: only
//! what this server really supports.

use serde::Serialize;
use utoipa::ToSchema;

use super::grants;
use crate::config::Settings;
use crate::scope::Scope;

/// The client authentication methods of the token, revocation and introspection endpoints.
pub const AUTH_METHODS: &[&str] = &[
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
];

/// The algorithms client assertions may be signed with.
pub const ASSERTION_ALGS: &[&str] = &["RS256", "ES256", "EdDSA"];

/// RFC 8414 §2 metadata.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "issuer": "https://tokend.example.com",
    "token_endpoint": "https://tokend.example.com/oauth2/token",
    "jwks_uri": "https://tokend.example.com/.well-known/jwks.json",
    "revocation_endpoint": "https://tokend.example.com/oauth2/revoke",
    "introspection_endpoint": "https://tokend.example.com/oauth2/introspect",
    "grant_types_supported": ["client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"],
    "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    "scopes_supported": ["sensor", "execution", "cli", "webhook", "admin"],
    "response_types_supported": []
}))]
pub struct ServerMetadata {
    /// `TOKEND_ISSUER` (the `iss` of every token) when it is a URL, else the base URL.
    pub issuer: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub revocation_endpoint: String,
    pub introspection_endpoint: String,
    pub grant_types_supported: Vec<&'static str>,
    pub token_endpoint_auth_methods_supported: Vec<&'static str>,
    pub revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    pub introspection_endpoint_auth_methods_supported: Vec<&'static str>,
    /// What `private_key_jwt` assertions may be signed with.
    pub token_endpoint_auth_signing_alg_values_supported: Vec<&'static str>,
    /// The signing algorithm of issued tokens (`EdDSA` or `HS256`).
    pub token_signing_alg_values_supported: Vec<&'static str>,
    pub scopes_supported: Vec<&'static str>,
    /// No authorization endpoint: tokend serves machine grants only.
    pub response_types_supported: Vec<&'static str>,
    pub service_documentation: String,
}

impl ServerMetadata {
    /// The metadata with endpoint URLs under `base` (no trailing slash).
    pub fn new(settings: &Settings, base: &str) -> ServerMetadata {
        let alg = match settings.jwt {
            crate::config::JwtAlgorithm::EdDsa => "EdDSA",
            crate::config::JwtAlgorithm::Hs256 { .. } => "HS256",
        };
        // RFC 8414 §2: the issuer identifier is an https URL that the well-known path hangs
        // from. tokend's `iss` is a URL when TOKEND_ISSUER is set to one (recommended); the
        // default `tokend` is not, so the document names the base URL instead (clients such as
        // requests-oauth2client refuse a metadata issuer that is not a URL).
        let issuer =
            if settings.issuer.starts_with("https://") || settings.issuer.starts_with("http://") {
                settings.issuer.clone()
            } else {
                base.to_owned()
            };
        ServerMetadata {
            issuer,
            token_endpoint: format!("{base}/oauth2/token"),
            jwks_uri: format!("{base}/.well-known/jwks.json"),
            revocation_endpoint: format!("{base}/oauth2/revoke"),
            introspection_endpoint: format!("{base}/oauth2/introspect"),
            grant_types_supported: grants::SUPPORTED.to_vec(),
            token_endpoint_auth_methods_supported: AUTH_METHODS.to_vec(),
            revocation_endpoint_auth_methods_supported: AUTH_METHODS.to_vec(),
            introspection_endpoint_auth_methods_supported: AUTH_METHODS.to_vec(),
            token_endpoint_auth_signing_alg_values_supported: ASSERTION_ALGS.to_vec(),
            token_signing_alg_values_supported: vec![alg],
            scopes_supported: Scope::ALL.iter().map(|s| s.as_str()).collect(),
            response_types_supported: Vec::new(),
            service_documentation: format!("{base}/docs"),
        }
    }
}
