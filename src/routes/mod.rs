//! Every route, registered in one place. Each handler is documented with `#[utoipa::path]`
//! and listed in [`crate::routes::openapi::ApiDoc`].

pub mod access_log;
pub mod admin;
pub mod audit;
pub mod auth;
pub mod client_secrets;
pub mod docs;
pub mod extract;
pub mod federation;
pub mod health;
pub mod introspect;
pub mod keys;
pub mod metrics;
pub mod oauth;
pub mod openapi;
pub mod revocations;
pub mod service_accounts;
pub mod session;
pub mod ui;
pub mod users;
pub mod verified_answer;
pub mod well_known;

use actix_web::{web, HttpResponse, Resource};

use extract::method_not_allowed;

/// A resource whose other methods get 405 with `Allow`, labelled with its pattern for the
/// access log and the latency histogram.
fn resource(path: &'static str, allow: &'static str) -> Resource {
    labelled(path, path).default_service(method_not_allowed(allow))
}

/// A GET-only resource inside the `/docs` or `/ui` scope.
fn docs_resource(path: &'static str, pattern: &'static str) -> Resource {
    labelled(path, pattern).default_service(method_not_allowed("GET"))
}

/// A resource that knows its full pattern (`pattern` differs from `path` inside a scope), so
/// the access log reads it instead of matching the path against every route again.
fn labelled(path: &'static str, pattern: &'static str) -> Resource {
    web::resource(path).app_data(crate::telemetry::RoutePattern(pattern))
}

/// Registers the API on an actix app.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(extract::json_config())
        .app_data(extract::query_config())
        .app_data(extract::path_config())
        .app_data(extract::payload_config())
        // The hot path first: routes are tried in the order they are registered.
        // Forward-auth: gateways may send the original request's method.
        .service(labelled("/auth/verify", "/auth/verify").route(web::route().to(auth::verify)))
        .service(resource("/auth/whoami", "GET").route(web::get().to(auth::whoami)))
        .service(resource("/health", "GET").route(web::get().to(health::health)))
        .service(resource("/ready", "GET").route(web::get().to(health::ready)))
        .service(resource("/metrics", "GET").route(web::get().to(metrics::metrics)))
        .service(
            resource("/service-accounts", "GET, POST")
                .route(web::get().to(service_accounts::list))
                .route(web::post().to(service_accounts::create)),
        )
        .service(
            resource("/service-accounts/{id}", "GET, DELETE")
                .route(web::get().to(service_accounts::get))
                .route(web::delete().to(service_accounts::revoke)),
        )
        .service(
            resource("/service-accounts/{id}/tokens", "POST")
                .route(web::post().to(service_accounts::tokens::issue_token)),
        )
        .service(
            resource("/service-accounts/{id}/tokens/{token_id}", "DELETE")
                .route(web::delete().to(service_accounts::tokens::revoke_token)),
        )
        .service(resource("/auth/login", "POST").route(web::post().to(session::login)))
        .service(resource("/auth/logout", "POST").route(web::post().to(session::logout)))
        .service(resource("/auth/refresh", "POST").route(web::post().to(session::refresh)))
        .service(resource("/auth/introspect", "POST").route(web::post().to(introspect::introspect)))
        .service(resource("/tokens/revoke", "POST").route(web::post().to(introspect::revoke_token)))
        .service(
            resource("/users", "GET, POST")
                .route(web::get().to(users::list))
                .route(web::post().to(users::add)),
        )
        .service(
            resource("/users/{id}", "GET, PATCH, DELETE")
                .route(web::get().to(users::get))
                .route(web::patch().to(users::update))
                .route(web::delete().to(users::delete)),
        )
        .service(
            resource("/revocations", "GET, POST")
                .route(web::get().to(revocations::list))
                .route(web::post().to(revocations::create)),
        )
        .service(resource("/keys", "GET").route(web::get().to(keys::list)))
        .service(resource("/keys/rotate", "POST").route(web::post().to(keys::rotate)))
        .service(resource("/keys/{kid}/revoke", "POST").route(web::post().to(keys::revoke)))
        .service(resource("/audit", "GET").route(web::get().to(audit::list)))
        .service(resource("/admin/cleanup", "POST").route(web::post().to(admin::run_cleanup)))
        .service(resource("/.well-known/jwks.json", "GET").route(web::get().to(well_known::jwks)))
        .service(resource("/oauth2/token", "POST").route(web::post().to(oauth::token)))
        .service(
            resource("/oauth2/revoke", "POST")
                .route(web::post().to(oauth::revoke_introspect::revoke)),
        )
        .service(
            resource("/oauth2/introspect", "POST")
                .route(web::post().to(oauth::revoke_introspect::introspect)),
        )
        .service(
            resource("/.well-known/oauth-authorization-server", "GET")
                .route(web::get().to(oauth::metadata::metadata)),
        )
        .service(
            resource("/.well-known/openid-configuration", "GET")
                .route(web::get().to(oauth::metadata::openid_configuration)),
        )
        .service(
            resource("/service-accounts/{id}/jwks", "GET, PUT, DELETE")
                .route(web::get().to(client_secrets::get_keys))
                .route(web::put().to(client_secrets::register_keys))
                .route(web::delete().to(client_secrets::remove_keys)),
        )
        .service(
            resource("/service-accounts/{id}/client-secrets", "GET, POST")
                .route(web::get().to(client_secrets::list))
                .route(web::post().to(client_secrets::create)),
        )
        .service(
            resource(
                "/service-accounts/{id}/client-secrets/{secret_id}",
                "DELETE",
            )
            .route(web::delete().to(client_secrets::revoke)),
        )
        .service(
            resource("/federation/issuers", "GET, POST")
                .route(web::get().to(federation::list))
                .route(web::post().to(federation::create)),
        )
        .service(
            resource("/federation/issuers/{id}", "GET, PATCH, DELETE")
                .route(web::get().to(federation::get))
                .route(web::patch().to(federation::update))
                .route(web::delete().to(federation::delete)),
        )
        .service(resource("/openapi.json", "GET").route(web::get().to(openapi_json)))
        .service(resource("/docs", "GET").route(web::get().to(docs::page)))
        .service(resource("/ui", "GET").route(web::get().to(ui::index)))
        .service(ui_assets().wrap(actix_web::middleware::Compress::default()))
        .service(
            web::scope("/docs")
                .wrap(actix_web::middleware::Compress::default())
                .service(
                    docs_resource("/swagger-ui-bundle.js", "/docs/swagger-ui-bundle.js")
                        .route(web::get().to(docs::bundle)),
                )
                .service(
                    docs_resource("/swagger-ui.css", "/docs/swagger-ui.css")
                        .route(web::get().to(docs::css)),
                )
                .service(
                    docs_resource("/init.js", "/docs/init.js").route(web::get().to(docs::init)),
                ),
        );
}

/// The dashboard's scripts, styles and vendored chart library, compressed like `/docs`.
fn ui_assets() -> actix_web::Scope {
    let mut scope = web::scope("/ui");
    for asset in ui::ASSETS {
        scope = scope.service(
            docs_resource(asset.path, asset.pattern)
                .route(web::get().to(move || async move { asset.respond() })),
        );
    }
    scope
}

/// The spec, with this server's TTL bounds.
async fn openapi_json(state: web::Data<crate::state::AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(crate::routes::openapi::spec_json_for(
            &state.settings.scopes,
        ))
}
