//! `/docs`: Swagger UI for the API, served from the binary. The UI (swagger-ui-dist, Apache
//! 2.0) is vendored in `vendor/swagger-ui/` and compiled in: no CDN, no download at build.

use actix_web::http::header;
use actix_web::HttpResponse;

const BUNDLE: &str = include_str!("../../vendor/swagger-ui/swagger-ui-bundle.js");
const CSS: &str = include_str!("../../vendor/swagger-ui/swagger-ui.css");

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>tokend API</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
"#;

const INIT: &str = r##"window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: false,
});
"##;

/// The Swagger UI page.
pub async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'",
        ))
        .body(PAGE)
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .body(body)
}

pub async fn bundle() -> HttpResponse {
    asset("text/javascript; charset=utf-8", BUNDLE)
}

pub async fn css() -> HttpResponse {
    asset("text/css; charset=utf-8", CSS)
}

pub async fn init() -> HttpResponse {
    asset("text/javascript; charset=utf-8", INIT)
}
