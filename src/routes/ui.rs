//! `/ui`: the dashboard, served from the binary (plain HTML, CSS and JavaScript in
//! `static/ui/`, no build step, no CDN). It talks to the same API with the token it was
//! given or got from a login, kept in the tab's sessionStorage.

use actix_web::http::header;
use actix_web::HttpResponse;

const INDEX: &str = include_str!("../../static/ui/index.html");
const SCRIPT: &str = include_str!("../../static/ui/app.js");
const STYLE: &str = include_str!("../../static/ui/app.css");

/// Nothing but our own files; no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .body(body)
}

pub async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX)
}

pub async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE)
}
