//! The OpenAPI description of the API. `tokend openapi` prints it; `openapi/openapi.json`
//! is its committed snapshot, and a test fails when the two differ.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{
    admin, audit, auth, health, introspect, service_accounts, session, users, well_known,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tokend",
        description = "Service-account token issuer and revocation service. Every error is \
            `{\"error\": {\"code\", \"message\"}}`; times are RFC 3339 UTC.",
        license(name = "Apache-2.0"),
    ),
    paths(
        health::health,
        health::ready,
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
        audit::list,
        admin::run_cleanup,
        well_known::jwks,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail)),
    modifiers(&BearerAuth),
    tags(
        (name = "service-accounts", description = "Create, list, rotate and revoke service accounts"),
        (name = "auth", description = "Token introspection and forward-auth"),
        (name = "users", description = "People who log in for cli tokens"),
        (name = "audit", description = "The trail of every change to a credential"),
        (name = "keys", description = "Public keys for offline verification"),
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
    }
}

/// The spec as pretty JSON with a trailing newline, exactly as committed.
pub fn spec_json() -> String {
    let mut out = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    out.push('\n');
    out
}
