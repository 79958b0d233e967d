//! The public keys a service account signs its client assertions with (`private_key_jwt`,
//! RFC 7523 §2.2): a JWKS inline, or a URL tokend fetches it from (cached like a trusted
//! issuer's, `federation::JwksCache`). No shared secret at all: the private key never leaves
//! the client.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::clients::client_id;
use crate::audit::{record, Actor};
use crate::db::models::ClientKeyRow;
use crate::db::queries::client_secrets as rows;
use crate::db::queries::identities::{self, SERVICE_ACCOUNT};
use crate::db::{write_transaction, DbConnection};
use crate::error::{ApiError, Code};
use crate::federation::Jwks;
use crate::time::{self, rfc3339};

/// Where a client's keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    Inline(Value),
    Uri(String),
}

impl KeySource {
    /// Exactly one of `jwks` (a JWKS object of public keys) and `jwks_uri` (https, or http on
    /// the loopback).
    pub fn parse(jwks: Option<Value>, jwks_uri: Option<String>) -> Result<KeySource, ApiError> {
        let bad = |m: String| ApiError::new(Code::InvalidRequest, m);
        match (jwks, jwks_uri) {
            (Some(set), None) => {
                let parsed = Jwks::parse(&set).map_err(|e| bad(format!("jwks: {e}")))?;
                if parsed.has_private_parts() {
                    return Err(bad(
                        "jwks holds private key material: register the public keys only, and keep the private key with the client"
                            .into(),
                    ));
                }
                if parsed.keys().is_empty() {
                    return Err(bad(format!(
                        "jwks has no usable signing key (RS256 of at least 2048 bits, ES256 or EdDSA): {}",
                        parsed.skipped().join("; ")
                    )));
                }
                Ok(KeySource::Inline(set))
            }
            (None, Some(uri)) => Ok(KeySource::Uri(crate::federation::spec::parse_url(
                "jwks_uri", &uri,
            )?)),
            _ => Err(bad(
                "give exactly one of jwks (the public keys inline) and jwks_uri (where the client publishes them)".into(),
            )),
        }
    }
}

/// An account's registered keys as the API shows them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClientKeys {
    #[schema(example = "sa-42")]
    pub client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    #[serde(with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl ClientKeys {
    fn from_row(row: ClientKeyRow) -> ClientKeys {
        ClientKeys {
            client_id: client_id(row.identity_id),
            jwks: row.jwks.and_then(|j| serde_json::from_str(&j).ok()),
            jwks_uri: row.jwks_uri,
            updated_at: time::from_db(row.updated_at),
        }
    }

    /// Where to find the key for an assertion.
    pub fn source(&self) -> Option<KeySource> {
        match (&self.jwks, &self.jwks_uri) {
            (Some(set), _) => Some(KeySource::Inline(set.clone())),
            (None, Some(uri)) => Some(KeySource::Uri(uri.clone())),
            _ => None,
        }
    }
}

fn not_found(identity_id: i64) -> ApiError {
    ApiError::not_found(format!(
        "no service account with id {identity_id}; GET /service-accounts lists them"
    ))
}

/// Registers (or replaces) an account's public keys.
pub fn register(
    conn: &mut DbConnection,
    identity_id: i64,
    source: KeySource,
    actor: &Actor,
) -> Result<ClientKeys, ApiError> {
    write_transaction(conn, |conn| {
        let now = time::now();
        if identities::lock_unrevoked(conn, identity_id, SERVICE_ACCOUNT, time::to_db(now))? == 0 {
            identities::find(conn, identity_id)?
                .filter(|r| r.identity_type == SERVICE_ACCOUNT)
                .ok_or_else(|| not_found(identity_id))?;
            return Err(ApiError::new(
                Code::AccountRevoked,
                format!("service account {identity_id} is revoked; its client cannot get keys"),
            ));
        }
        let (jwks, jwks_uri) = match &source {
            KeySource::Inline(set) => (Some(set.to_string()), None),
            KeySource::Uri(uri) => (None, Some(uri.clone())),
        };
        let row = ClientKeyRow {
            identity_id,
            jwks,
            jwks_uri,
            updated_at: time::to_db(now),
        };
        rows::upsert_key(conn, &row)?;
        record(
            conn,
            actor,
            "client_keys.registered",
            Some(identity_id),
            None,
            None,
            json!({"jwks_uri": row.jwks_uri, "inline": row.jwks.is_some()}),
        )?;
        Ok(ClientKeys::from_row(row))
    })
}

/// The account's registered keys (`None`: none).
pub fn get(conn: &mut DbConnection, identity_id: i64) -> Result<Option<ClientKeys>, ApiError> {
    identities::find(conn, identity_id)?
        .filter(|r| r.identity_type == SERVICE_ACCOUNT)
        .ok_or_else(|| not_found(identity_id))?;
    Ok(rows::key_of_identity(conn, identity_id)?.map(ClientKeys::from_row))
}

/// Forgets the account's keys: its assertions stop working at once. `false`: there were none.
pub fn remove(conn: &mut DbConnection, identity_id: i64, actor: &Actor) -> Result<bool, ApiError> {
    write_transaction(conn, |conn| {
        identities::find(conn, identity_id)?
            .filter(|r| r.identity_type == SERVICE_ACCOUNT)
            .ok_or_else(|| not_found(identity_id))?;
        let removed = rows::delete_key(conn, identity_id)? > 0;
        if removed {
            record(
                conn,
                actor,
                "client_keys.removed",
                Some(identity_id),
                None,
                None,
                json!({}),
            )?;
        }
        Ok(removed)
    })
}
