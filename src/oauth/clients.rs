//! Client credentials of service accounts: the OAuth 2.0 `client_id` (stable per account), and
//! client secrets that are generated here, shown once, kept as SHA-256, expire, rotate with an
//! overlap and can be revoked.
//!
//! Why SHA-256 and not argon2: a client secret is 256 random bits, so no dictionary or brute
//! force reaches it whatever the hash; a slow password hash would buy nothing but a way for
//! anyone to make the token endpoint burn CPU (issue 14 measures the cost in bench/).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use zeroize::Zeroizing;

use super::error::OAuthError;
use crate::accounts::Account;
use crate::audit::{record, Actor};
use crate::db::models::{ClientSecretRow, IdentityRow};
use crate::db::queries::client_secrets as rows;
use crate::db::queries::identities::{self, SERVICE_ACCOUNT};
use crate::db::{write_transaction, DbConnection};
use crate::error::{ApiError, Code};
use crate::time::{self, rfc3339};

/// The prefix of every client secret, so secret scanners and people recognise one.
pub const SECRET_PREFIX: &str = "tokend_cs_";
/// Default and longest life of a client secret: every credential expires.
pub const DEFAULT_SECRET_DAYS: u64 = 90;
pub const MAX_SECRET_DAYS: u64 = 365;
/// The most overlap a rotation may give the secrets it replaces.
pub const MAX_OVERLAP_SECS: u64 = 30 * 24 * 3600;
/// The most secrets an account may hold at once (live ones).
pub const MAX_LIVE_SECRETS: usize = 10;

/// A service account's `client_id`: `sa-` and its identity id.
pub fn client_id(identity_id: i64) -> String {
    format!("sa-{identity_id}")
}

/// The identity id a `client_id` names, if it is one of ours.
pub fn parse_client_id(client_id: &str) -> Option<i64> {
    let digits = client_id.strip_prefix("sa-")?;
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|id| *id > 0)
}

/// Lowercase hex SHA-256 of a secret, as stored.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn generate_secret() -> Zeroizing<String> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(bytes.as_mut());
    Zeroizing::new(format!("{SECRET_PREFIX}{}", URL_SAFE_NO_PAD.encode(*bytes)))
}

/// How a client secret stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecretStatus {
    Active,
    Expired,
    Revoked,
}

/// A client secret as listings show it (never the secret).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClientSecretInfo {
    #[schema(example = "9b1c3f0e-2b7a-4c55-8d0e-6a3f1b2c4d5e")]
    pub secret_id: String,
    pub status: SecretStatus,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub expires_at: DateTime<Utc>,
    #[serde(with = "rfc3339::option")]
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ClientSecretInfo {
    fn from_row(row: &ClientSecretRow, now: DateTime<Utc>) -> Self {
        let expires_at = time::from_db(row.expires_at);
        let revoked_at = row.revoked_at.map(time::from_db);
        let status = match revoked_at {
            Some(_) => SecretStatus::Revoked,
            None if expires_at <= now => SecretStatus::Expired,
            None => SecretStatus::Active,
        };
        ClientSecretInfo {
            secret_id: row.secret_id.clone(),
            status,
            created_at: time::from_db(row.created_at),
            expires_at,
            revoked_at,
        }
    }
}

/// A secret just created: the only time the secret itself exists outside its holder.
pub struct NewSecret {
    pub client_id: String,
    pub secret: Zeroizing<String>,
    pub info: ClientSecretInfo,
    /// How many other secrets now stop at the overlap's end.
    pub shortened: usize,
}

/// What a new secret asks for: its life, and how long the others keep working.
#[derive(Debug, Clone, Copy)]
pub struct SecretRequest {
    pub lifetime: std::time::Duration,
    /// `Some`: every other live secret of the account stops this long from now (rotation).
    pub overlap: Option<std::time::Duration>,
}

fn find_account(conn: &mut DbConnection, identity_id: i64) -> Result<IdentityRow, ApiError> {
    identities::find(conn, identity_id)?
        .filter(|r| r.identity_type == SERVICE_ACCOUNT)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no service account with id {identity_id}; GET /service-accounts lists them"
            ))
        })
}

/// Creates a client secret for a service account (and, for a rotation, shortens the others).
pub fn create_secret(
    conn: &mut DbConnection,
    identity_id: i64,
    request: SecretRequest,
    actor: &Actor,
) -> Result<NewSecret, ApiError> {
    write_transaction(conn, |conn| {
        let now = time::now();
        if identities::lock_unrevoked(conn, identity_id, SERVICE_ACCOUNT, time::to_db(now))? == 0 {
            find_account(conn, identity_id)?;
            return Err(ApiError::new(
                Code::AccountRevoked,
                format!("service account {identity_id} is revoked; its clients cannot get secrets"),
            ));
        }
        let live = rows::live_of_identity(conn, identity_id, time::to_db(now))?;
        if live.len() >= MAX_LIVE_SECRETS && request.overlap.is_none() {
            // The account's state, not the request, is at fault: 409.
            return Err(ApiError::new(
                Code::TooManyClientSecrets,
                format!(
                    "service account {identity_id} already holds {MAX_LIVE_SECRETS} live client secrets; \
                     revoke one, or rotate (overlap_seconds) so the others expire"
                ),
            ));
        }
        let secret = generate_secret();
        let expires =
            now + chrono::Duration::from_std(request.lifetime).unwrap_or(chrono::Duration::MAX);
        let row = ClientSecretRow {
            secret_id: uuid::Uuid::new_v4().to_string(),
            identity_id,
            secret_hash: hash_secret(&secret),
            created_at: time::to_db(now),
            expires_at: time::to_db(expires),
            revoked_at: None,
            created_by: actor.identity_id,
        };
        rows::insert(conn, &row)?;
        let shortened = match request.overlap {
            Some(overlap) => {
                let until =
                    now + chrono::Duration::from_std(overlap).unwrap_or(chrono::Duration::MAX);
                rows::shorten_others(
                    conn,
                    identity_id,
                    &row.secret_id,
                    time::to_db(now),
                    time::to_db(until),
                )?
            }
            None => 0,
        };
        record(
            conn,
            actor,
            "client_secret.created",
            Some(identity_id),
            None,
            None,
            json!({
                "secret_id": row.secret_id,
                "expires_at": time::format(&expires),
                "others_shortened": shortened,
                "overlap_seconds": request.overlap.map(|d| d.as_secs()),
            }),
        )?;
        Ok(NewSecret {
            client_id: client_id(identity_id),
            secret,
            info: ClientSecretInfo::from_row(&row, now),
            shortened,
        })
    })
}

/// Every client secret of a service account, newest first.
pub fn list_secrets(
    conn: &mut DbConnection,
    identity_id: i64,
) -> Result<Vec<ClientSecretInfo>, ApiError> {
    find_account(conn, identity_id)?;
    let now = time::now();
    Ok(rows::of_identity(conn, identity_id)?
        .iter()
        .map(|r| ClientSecretInfo::from_row(r, now))
        .collect())
}

/// A revoked secret, and whether it already was.
pub struct RevokedSecret {
    pub info: ClientSecretInfo,
    pub already_revoked: bool,
}

/// Revokes one client secret: from now on it authenticates nothing. Tokens it obtained stay
/// valid until they expire (revoke the account's tokens for those). Repeating it is harmless.
pub fn revoke_secret(
    conn: &mut DbConnection,
    identity_id: i64,
    secret_id: &str,
    reason: Option<&str>,
    actor: &Actor,
) -> Result<RevokedSecret, ApiError> {
    write_transaction(conn, |conn| {
        find_account(conn, identity_id)?;
        let now = time::now();
        let changed = rows::revoke(conn, identity_id, secret_id, time::to_db(now))?;
        let row = rows::find(conn, identity_id, secret_id)?.ok_or_else(|| {
            ApiError::not_found(format!(
                "service account {identity_id} has no client secret {secret_id}; \
                 GET /service-accounts/{identity_id}/client-secrets lists them"
            ))
        })?;
        if changed > 0 {
            record(
                conn,
                actor,
                "client_secret.revoked",
                Some(identity_id),
                None,
                reason,
                json!({"secret_id": secret_id}),
            )?;
        }
        Ok(RevokedSecret {
            info: ClientSecretInfo::from_row(&row, now),
            already_revoked: changed == 0,
        })
    })
}

/// A client that proved who it is: the service account as it is now.
#[derive(Debug, Clone)]
pub struct AuthenticatedClient {
    pub client_id: String,
    pub account: Account,
    /// How it authenticated (`client_secret_basic`, `client_secret_post`, `private_key_jwt`).
    pub method: &'static str,
    /// The client secret it presented: a grant re-checks it inside its transaction, so a
    /// revocation of the secret that returned 200 is never followed by a token from it.
    pub secret_id: Option<String>,
}

/// Whether the client's secret still works at `now`, holding a shared lock on its row
/// (PostgreSQL) for the rest of the transaction: revoking it waits for this grant, and a grant
/// after the revocation sees it. A client that authenticated otherwise passes.
pub fn secret_still_live(
    conn: &mut DbConnection,
    client: &AuthenticatedClient,
) -> Result<(), OAuthError> {
    let Some(secret_id) = &client.secret_id else {
        return Ok(());
    };
    let now = time::to_db(time::now());
    if rows::share_lock_live(conn, client.account.identity_id, secret_id, now)? {
        Ok(())
    } else {
        Err(OAuthError::invalid_client(
            "this client secret was revoked or expired a moment ago; create a new one",
        ))
    }
}

/// Checks a client secret against the account's secrets. Run inside the caller's
/// transaction when a token is issued, so a revocation of the account cannot slip between
/// the check and the token.
pub fn authenticate_secret(
    conn: &mut DbConnection,
    client_id_value: &str,
    secret: &str,
    method: &'static str,
) -> Result<AuthenticatedClient, OAuthError> {
    let failed = || {
        OAuthError::invalid_client(
            "client authentication failed: unknown client_id or wrong client_secret",
        )
    };
    let identity_id = parse_client_id(client_id_value).ok_or_else(failed)?;
    let now = time::now();
    let presented = Sha256::digest(secret.as_bytes());
    let mut matched: Option<ClientSecretRow> = None;
    for row in rows::of_identity(conn, identity_id)? {
        let Ok(stored) = hex::decode(&row.secret_hash) else {
            continue;
        };
        if bool::from(stored.as_slice().ct_eq(presented.as_slice())) {
            matched = Some(row);
        }
    }
    let row = matched.ok_or_else(failed)?;
    // The caller holds the secret: it may learn why it no longer works.
    if let Some(at) = row.revoked_at {
        return Err(OAuthError::invalid_client(format!(
            "this client secret was revoked at {}; create a new one (POST /service-accounts/{identity_id}/client-secrets)",
            time::format(&time::from_db(at))
        )));
    }
    if time::from_db(row.expires_at) <= now {
        return Err(OAuthError::invalid_client(format!(
            "this client secret expired at {}; create a new one (POST /service-accounts/{identity_id}/client-secrets)",
            time::format(&time::from_db(row.expires_at))
        )));
    }
    let account = live_account(conn, identity_id, now)?;
    Ok(AuthenticatedClient {
        client_id: client_id(identity_id),
        account,
        method,
        secret_id: Some(row.secret_id),
    })
}

/// The service account behind an authenticated client, refused if revoked.
pub fn live_account(
    conn: &mut DbConnection,
    identity_id: i64,
    now: DateTime<Utc>,
) -> Result<Account, OAuthError> {
    let row = identities::find(conn, identity_id)?
        .filter(|r| r.identity_type == SERVICE_ACCOUNT)
        .ok_or_else(|| {
            OAuthError::invalid_client("client authentication failed: unknown client_id")
        })?;
    if let Some(at) = row.revoked_at {
        return Err(OAuthError::invalid_client(format!(
            "service account {identity_id} was revoked at {}; its client credentials no longer work",
            time::format(&time::from_db(at))
        )));
    }
    Ok(Account::from_row(row, now).map_err(ApiError::from)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_round_trip_and_refuse_lookalikes() {
        assert_eq!(parse_client_id(&client_id(42)), Some(42));
        for bad in [
            "sa-",
            "sa-0",
            "sa--1",
            "sa-1x",
            "42",
            "sa-+1",
            "sa-99999999999999999999",
        ] {
            assert_eq!(parse_client_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn secrets_are_long_random_and_url_safe() {
        let (a, b) = (generate_secret(), generate_secret());
        assert_ne!(*a, *b);
        assert!(a.starts_with(SECRET_PREFIX));
        assert_eq!(a.len(), SECRET_PREFIX.len() + 43);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-'));
        assert_eq!(hash_secret(&a).len(), 64);
    }
}
