//! The OpenAPI description of the API. `tokend openapi` prints it; `openapi/openapi.json`
//! is its committed snapshot (built-in TTL bounds), and a test fails when the two differ.
//! `GET /openapi.json` serves it with the running server's own TTL bounds.
//!
//! Routes and types are described with utoipa. The request schemas whose rules depend on
//! the scope (TTL bounds per unit, per-scope metadata) are then built here from the same
//! [`ScopePolicy`] and [`rules`] the server enforces, so the spec says exactly what the
//! server accepts; schemathesis checks that they agree (`scripts/schemathesis.sh`).
//!
//! - [`scoped`]: the request schemas and parameters that depend on the scope policy;
//! - [`strings`]: the no-control-characters rule on every request string;
//! - [`errors`]: the failures every operation may meet.

mod errors;
mod scoped;
mod strings;

use serde_json::{json, Value};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admin, audit, auth, health, introspect, service_accounts, session, users, well_known};
use crate::scope::ScopePolicy;
use errors::add_error_responses;
use scoped::{refine_parameters, refine_schemas};
use strings::forbid_control_characters;

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
        service_accounts::tokens::issue_token,
        service_accounts::tokens::revoke_token,
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
        crate::routes::oauth::revoke_introspect::revoke,
        crate::routes::oauth::revoke_introspect::introspect,
        crate::routes::oauth::metadata::metadata,
        crate::routes::oauth::metadata::openid_configuration,
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
