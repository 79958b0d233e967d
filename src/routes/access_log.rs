//! The access log: one line and one latency sample per request, written by the outermost
//! middleware. The metrics themselves are `telemetry`'s; this is where HTTP meets them.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::HttpMessage;

use crate::telemetry::{access_log_enabled, record_latency, RequestIdentity, RoutePattern};

/// One access-log line and one latency sample per request. The line never holds a token:
/// `method=GET route=/service-accounts/{id} status=200 latency_ms=0.84 identity=5 peer=10.0.0.7 client=198.51.100.7`
/// (`peer` is the TCP peer; `client` what a trusted proxy reports, else the peer).
pub async fn access(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = method_label(req.method());
    let peer = req.peer_addr().map(|a| a.ip());
    let client = access_log_enabled()
        .then(|| crate::forwarded::client_ip(req.request()))
        .flatten();
    let result = next.call(req).await;
    let (status, route, identity) = match &result {
        Ok(res) => (
            res.status().as_u16(),
            res.request()
                .app_data::<RoutePattern>()
                .map_or("unmatched", |p| p.0),
            res.request()
                .extensions()
                .get::<RequestIdentity>()
                .map(|i| i.0),
        ),
        Err(e) => (
            e.as_response_error().status_code().as_u16(),
            "unmatched",
            None,
        ),
    };
    let elapsed = started.elapsed().as_secs_f64();
    record_latency(method, route, status, elapsed);
    if access_log_enabled() {
        log::info!(
            target: "tokend::access",
            "method={method} route={route} status={status} latency_ms={:.2} identity={} peer={} client={}",
            elapsed * 1000.0,
            identity.map_or_else(|| "-".to_owned(), |i| i.to_string()),
            peer.map_or_else(|| "-".to_owned(), |p| p.to_string()),
            client.map_or_else(|| "-".to_owned(), |c| c.to_string()),
        );
    }
    result
}

/// A method as a label: the standard ones by name, any other as `OTHER`, so a client
/// inventing methods cannot grow the metric's label set.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "OTHER",
    }
}
