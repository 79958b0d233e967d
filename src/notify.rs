//! Webhook deliveries: revocations (`credentials.revoked`, recorded by [`revocation_delivery`] in the
//! revocation's transaction) and expiry warnings pushed before they bite: when an unrevoked
//! token crosses a threshold (24 h and 6 h before expiry by default), one signed POST to
//! `TOKEND_EXPIRY_WEBHOOK_URL`:
//!
//! ```json
//! {"event": "token.expiring", "identity_id": 12, "name": "sensor:core.timer", "scope": "sensor",
//!  "token_id": "…", "expires_at": "2026-11-25T02:31:14Z", "hours_remaining": 5.9, "threshold_hours": 6}
//! ```
//!
//! with `X-Tokend-Signature: sha256=<hex HMAC-SHA256 of the body with TOKEND_EXPIRY_WEBHOOK_SECRET>`,
//! `X-Tokend-Event: token.expiring` and `X-Tokend-Delivery: <token_id>:<threshold seconds>`.
//!
//! Nothing lost, nothing repeated: each warning is first recorded in `expiry_notification`
//! (unique per token and threshold), then delivered; a delivered one is marked `sent` and
//! never sent again, an undelivered one is retried with exponential backoff and jitter, across
//! restarts, until its token expires. Each attempt is claimed with a short lease on the row,
//! so replicas (or a restarted process) never send the same warning at once. A crash between
//! the receiver's 2xx and marking the row leaves one possible repeat; `X-Tokend-Delivery`
//! lets the receiver drop it.

use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::Rng;
use secrecy::ExposeSecret;
use serde_json::json;
use sha2::Sha256;

pub use crate::config::ExpiryWebhook;
use crate::db::queries::clock;
use crate::db::queries::notifications::{self, ABANDONED, PENDING};
use crate::db::Pool;
use crate::time;

/// `sha256=<hex>` of the body.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A revocation's webhook delivery (`credentials.revoked`), so the platform can tell
/// whoever is affected: recorded with [`notifications::insert_pending`] in the revocation's
/// own transaction, then delivered like expiry warnings (signed, retried, never repeated);
/// given up after a day.
pub fn revocation_delivery(
    now: chrono::DateTime<chrono::Utc>,
    action: &str,
    identity_id: Option<i64>,
    token_id: Option<&str>,
    reason: Option<&str>,
    detail: &serde_json::Value,
) -> notifications::NewDelivery {
    notifications::NewDelivery {
        // Unique: a delivery of its own, never merged with another. Time-ordered (UUIDv7),
        // so new keys land at the end of the table's unique index instead of on a random
        // page of it: fewer pages for each commit to write.
        key: format!("revocation:{}", uuid::Uuid::now_v7()),
        identity_id: identity_id.unwrap_or(0),
        payload: json!({
            "event": REVOKED_EVENT,
            "action": action,
            "identity_id": identity_id,
            "token_id": token_id,
            "reason": reason,
            "occurred_at": time::format(&now),
            "detail": detail,
        })
        .to_string(),
    }
}

/// The event of a revocation delivery.
pub const REVOKED_EVENT: &str = "credentials.revoked";

/// How long an undelivered revocation is retried.
const REVOCATION_DELIVERY_WINDOW: chrono::Duration = chrono::Duration::hours(24);

/// Records new warnings and delivers the ones due. Blocking (HTTP and database).
pub fn run_once(pool: &Pool, hook: &ExpiryWebhook, agent: &ureq::Agent) -> Result<(), String> {
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    let now = time::now();
    for threshold in &hook.thresholds {
        let window = chrono::Duration::from_std(*threshold).unwrap_or_default();
        let candidates =
            notifications::expiring(&mut conn, time::to_db(now), time::to_db(now + window))
                .map_err(|e| e.to_string())?;
        // Only tokens that lived longer than the threshold *cross* it; a 30-minute execution
        // token is not "about to expire" from birth.
        let crossing: Vec<_> = candidates
            .into_iter()
            .filter(|t| time::from_db(t.issued_at) < time::from_db(t.expires_at) - window)
            .collect();
        if crossing.is_empty() {
            continue;
        }
        let jtis: Vec<String> = crossing.iter().map(|t| t.jti.clone()).collect();
        let threshold_secs = threshold.as_secs() as i64;
        let known = notifications::already_recorded(&mut conn, &jtis, threshold_secs)
            .map_err(|e| e.to_string())?;
        for t in crossing.iter().filter(|t| !known.contains(&t.jti)) {
            let expires = time::from_db(t.expires_at);
            let remaining = (expires - now).num_seconds() as f64 / 3600.0;
            let payload = json!({
                "event": "token.expiring",
                "identity_id": t.identity_id,
                "name": t.name,
                "scope": t.scope,
                "token_id": t.jti,
                "expires_at": time::format(&expires),
                "hours_remaining": (remaining * 10.0).round() / 10.0,
                "threshold_hours": threshold_secs as f64 / 3600.0,
            })
            .to_string();
            notifications::record(
                &mut conn,
                &t.jti,
                threshold_secs,
                t.identity_id,
                &payload,
                time::to_db(now),
            )
            .map_err(|e| e.to_string())?;
        }
    }
    deliver_due(&mut conn, hook, agent)
}

fn deliver_due(
    conn: &mut crate::db::PooledConn,
    hook: &ExpiryWebhook,
    agent: &ureq::Agent,
) -> Result<(), String> {
    // Due times and leases are compared by every replica: the database's clock decides
    // (a replica whose clock ran ahead would otherwise lease deliveries far into the future).
    let now = time::from_db(clock::now(conn).map_err(|e| e.to_string())?);
    let offset = now - chrono::Utc::now();
    let due = notifications::due(conn, time::to_db(now), 100).map_err(|e| e.to_string())?;
    for n in due {
        let lease =
            time::to_db(now + chrono::Duration::from_std(ATTEMPT_LEASE).unwrap_or_default());
        if !notifications::claim(conn, n.id, time::to_db(now), lease).map_err(|e| e.to_string())? {
            continue;
        }
        let attempts = n.attempts + 1;
        let payload: serde_json::Value = serde_json::from_str(&n.payload).unwrap_or_default();
        let event = payload["event"].as_str().unwrap_or("token.expiring");
        let delivery = if n.threshold_secs == 0 {
            n.token_jti.clone()
        } else {
            format!("{}:{}", n.token_jti, n.threshold_secs)
        };
        let sent = agent
            .post(&hook.url)
            .header("Content-Type", "application/json")
            .header("X-Tokend-Event", event)
            .header("X-Tokend-Delivery", &delivery)
            .header(
                "X-Tokend-Signature",
                signature(hook.secret.expose_secret(), n.payload.as_bytes()),
            )
            .send(n.payload.as_bytes());
        let outcome = match sent {
            Ok(res) if res.status().is_success() => Ok(()),
            Ok(res) => Err(format!("HTTP {}", res.status().as_u16())),
            Err(e) => Err(e.to_string()),
        };
        let done = chrono::Utc::now() + offset;
        match outcome {
            Ok(()) => {
                notifications::mark_sent(conn, n.id, attempts, time::to_db(done))
                    .map_err(|e| e.to_string())?;
                log::info!("{event} {delivery} delivered (attempt {attempts})");
            }
            Err(error) => {
                let at = |field: &str| {
                    payload[field]
                        .as_str()
                        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                        .map(|t| t.with_timezone(&chrono::Utc))
                };
                // A warning is pointless once its token expired; a revocation notice after a day.
                let give_up = if event == REVOKED_EVENT {
                    at("occurred_at").map(|t| t + REVOCATION_DELIVERY_WINDOW)
                } else {
                    at("expires_at")
                };
                let (status, next) = if give_up.is_some_and(|e| e <= done) {
                    log::error!(
                        "webhook delivery {delivery} abandoned after {attempts} attempts ({error})"
                    );
                    (ABANDONED, done)
                } else {
                    log::warn!("{event} {delivery} not delivered (attempt {attempts}): {error}");
                    (PENDING, done + backoff(hook.retry_base, attempts))
                };
                notifications::mark_failed(conn, n.id, attempts, status, time::to_db(next), &error)
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(())
}

/// `base × 2^(attempts-1)`, at most an hour, with ±20 % jitter.
fn backoff(base: Duration, attempts: i64) -> chrono::Duration {
    let exp = base.as_secs_f64() * 2f64.powi((attempts - 1).clamp(0, 20) as i32);
    let capped = exp.min(3600.0);
    let jitter = rand::thread_rng().gen_range(0.8..1.2);
    chrono::Duration::milliseconds((capped * jitter * 1000.0) as i64)
        .max(chrono::Duration::seconds(1))
}

/// How long one delivery attempt may take before it is abandoned.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an attempt holds its row: the attempt's timeout and a margin, so a process killed
/// mid-attempt leaves the warning to be retried (by a replica or after a restart) this soon.
pub const ATTEMPT_LEASE: Duration = Duration::from_secs(15);

/// Polls until the process ends.
pub async fn run_forever(pool: Pool, hook: ExpiryWebhook) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(ATTEMPT_TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into();
    let mut ticker = tokio::time::interval(hook.poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let (pool, hook, agent) = (pool.clone(), hook.clone(), agent.clone());
        match actix_web::rt::task::spawn_blocking(move || run_once(&pool, &hook, &agent)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => log::warn!("expiry warnings: {e}"),
            Err(e) => log::warn!("expiry warnings task failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_secs(10);
        assert!(backoff(base, 1).num_seconds() <= 12);
        assert!(backoff(base, 4).num_seconds() >= 64);
        assert!(backoff(base, 30).num_seconds() <= 4320);
    }
}
