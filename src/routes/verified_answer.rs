//! The answer of a successful `GET /auth/verify`, rendered once per token and worker.
//!
//! Its body and `X-Tokend-*` headers depend only on the token's signed claims, which never
//! change, so rendering them (JSON, header values) for every request of a gateway would redo
//! the same work: in instruction counts (callgrind), about a sixth of a warm verification.
//! Each worker keeps the last [`MAX_ANSWERS`] answers by token id; the checks (signature
//! cache, times, revocation, the request's conditions) still run on every request. As in the
//! token cache (`tokens::admission`), an answer is kept from its token's second request on:
//! keeping the answer of a token seen once costs copies and memory for nothing.

use std::cell::RefCell;
use std::collections::HashMap;

use actix_web::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::HttpResponse;
use uuid::Uuid;

use super::auth::VerifyResponse;
use crate::time;
use crate::tokens::admission::Doorkeeper;
use crate::tokens::Claims;

/// Answers remembered per worker; the memo starts over when full.
const MAX_ANSWERS: usize = 4096;

const IDENTITY_ID: HeaderName = HeaderName::from_static("x-tokend-identity-id");
const NAME: HeaderName = HeaderName::from_static("x-tokend-name");
const SCOPE: HeaderName = HeaderName::from_static("x-tokend-scope");
const TOKEN_ID: HeaderName = HeaderName::from_static("x-tokend-token-id");

#[derive(Clone)]
struct Answer {
    /// What the answer was rendered from, compared on every use.
    identity_id: i64,
    exp: i64,
    body: Bytes,
    headers: [Option<(HeaderName, HeaderValue)>; 4],
}

/// Token ids seen once, per worker: a token's answer is kept from its second request on.
const SEEN_SLOTS: usize = 4096;

thread_local! {
    static ANSWERS: RefCell<HashMap<Uuid, Answer, foldhash::fast::RandomState>> =
        RefCell::new(HashMap::default());
    static SEEN: Doorkeeper = Doorkeeper::with_slots(SEEN_SLOTS);
}

/// The 200 answer for a verified token.
pub fn respond(claims: &Claims) -> HttpResponse {
    let answer = ANSWERS.with(|answers| {
        let mut answers = answers.borrow_mut();
        if let Some(a) = answers.get(&claims.jti) {
            if a.identity_id == claims.identity_id && a.exp == claims.exp {
                return a.clone();
            }
        }
        let a = render(claims);
        if SEEN.with(|seen| seen.admit(&claims.jti)) {
            if answers.len() >= MAX_ANSWERS {
                answers.clear();
            }
            answers.insert(claims.jti, a.clone());
        }
        a
    });
    // Built directly rather than through the builder: its header conversions were a tenth of
    // a warm verification (callgrind).
    let mut res = HttpResponse::with_body(StatusCode::OK, answer.body);
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in answer.headers.into_iter().flatten() {
        headers.insert(name, value);
    }
    res.map_into_boxed_body()
}

fn render(claims: &Claims) -> Answer {
    let body = serde_json::to_vec(&VerifyResponse {
        identity_id: claims.identity_id,
        name: &claims.sub,
        scope: claims.scope,
        token_id: claims.jti,
        expires_at: time::from_unix(claims.exp),
    })
    .unwrap_or_default();
    let mut jti = Uuid::encode_buffer();
    let token_id = HeaderValue::from_str(claims.jti.hyphenated().encode_lower(&mut jti)).ok();
    Answer {
        identity_id: claims.identity_id,
        exp: claims.exp,
        body: Bytes::from(body),
        headers: [
            Some((IDENTITY_ID, HeaderValue::from(claims.identity_id))),
            // A name that is not a valid header value (it may hold any text) is left out of
            // the headers; the body always has it.
            HeaderValue::from_str(&claims.sub).ok().map(|v| (NAME, v)),
            Some((SCOPE, HeaderValue::from_static(claims.scope.as_str()))),
            token_id.map(|v| (TOKEN_ID, v)),
        ],
    }
}
