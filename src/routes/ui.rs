//! `/ui`: the dashboard, served from the binary (plain HTML, CSS and JavaScript in
//! `static/ui/`, no build step, no CDN). It talks to the same API with the token it was
//! given or got from a login, kept in the tab's sessionStorage. The chart library (uPlot,
//! MIT) is vendored in `vendor/uplot/` and compiled in like Swagger UI.

use actix_web::http::header;
use actix_web::HttpResponse;

const INDEX: &str = include_str!("../../static/ui/index.html");

/// Nothing but our own files; no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Our own files change with every release: the browser asks again each time.
const OURS: &str = "no-cache";
/// A vendored library changes only with its version, which is in its path
/// (`/ui/vendor/uplot-1.6.32/…`; tests/api/ui.rs holds the two to vendor/uplot/VERSION).
const VENDORED: &str = "public, max-age=86400";

/// A file under `/ui/`, compiled in.
pub struct Asset {
    /// The path inside the `/ui` scope, e.g. `/app.js`.
    pub path: &'static str,
    /// The full pattern, for the access log and the latency histogram.
    pub pattern: &'static str,
    content_type: &'static str,
    cache_control: &'static str,
    body: &'static str,
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Every file the dashboard loads besides the page itself.
pub const ASSETS: &[Asset] = &[
    Asset {
        path: "/app.js",
        pattern: "/ui/app.js",
        content_type: JS,
        cache_control: OURS,
        body: include_str!("../../static/ui/app.js"),
    },
    Asset {
        path: "/common.js",
        pattern: "/ui/common.js",
        content_type: JS,
        cache_control: OURS,
        body: include_str!("../../static/ui/common.js"),
    },
    Asset {
        path: "/accounts.js",
        pattern: "/ui/accounts.js",
        content_type: JS,
        cache_control: OURS,
        body: include_str!("../../static/ui/accounts.js"),
    },
    Asset {
        path: "/views.js",
        pattern: "/ui/views.js",
        content_type: JS,
        cache_control: OURS,
        body: include_str!("../../static/ui/views.js"),
    },
    Asset {
        path: "/chart.js",
        pattern: "/ui/chart.js",
        content_type: JS,
        cache_control: OURS,
        body: include_str!("../../static/ui/chart.js"),
    },
    Asset {
        path: "/app.css",
        pattern: "/ui/app.css",
        content_type: CSS,
        cache_control: OURS,
        body: include_str!("../../static/ui/app.css"),
    },
    Asset {
        path: "/vendor/uplot-1.6.32/uPlot.iife.min.js",
        pattern: "/ui/vendor/uplot-1.6.32/uPlot.iife.min.js",
        content_type: JS,
        cache_control: VENDORED,
        body: include_str!("../../vendor/uplot/uPlot.iife.min.js"),
    },
    Asset {
        path: "/vendor/uplot-1.6.32/uPlot.min.css",
        pattern: "/ui/vendor/uplot-1.6.32/uPlot.min.css",
        content_type: CSS,
        cache_control: VENDORED,
        body: include_str!("../../vendor/uplot/uPlot.min.css"),
    },
];

fn respond(
    content_type: &'static str,
    cache_control: &'static str,
    body: &'static str,
) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::CACHE_CONTROL, cache_control))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(body)
}

impl Asset {
    pub fn respond(&self) -> HttpResponse {
        respond(self.content_type, self.cache_control, self.body)
    }
}

/// The page.
pub async fn index() -> HttpResponse {
    respond("text/html; charset=utf-8", OURS, INDEX)
}
