//! Token exchange (RFC 8693) of a tokend token, and how the dispatcher tells a workload's
//! external token apart.

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::{
    requested_scope, requested_ttl, response, Authenticate, Granted, ACCESS_TOKEN_TYPE,
    JWT_TOKEN_TYPE, TOKEN_EXCHANGE,
};
use crate::accounts::service::{issue_granted, Lineage};
use crate::audit::Actor;
use crate::config::Settings;
use crate::db::queries::identities::{self, SERVICE_ACCOUNT, USER};
use crate::db::queries::tokens as token_rows;
use crate::db::{write_transaction, DbConnection};
use crate::error::ApiError;
use crate::oauth::error::{OAuthCode, OAuthError};
use crate::oauth::form::Form;
use crate::scope::{Scope, ValidMetadata};
use crate::time;
use crate::tokens::{Claims, IdentityType, TokenError, TokenService, TokenSubject};

/// The metadata of an exchanged token: the subject's own for the same scope; for another
/// scope, built from the request (`execution_id`, `action_ref`, `workflow_id`, or `metadata`
/// as a JSON object) and checked like any new token's.
fn exchanged_metadata(
    form: &Form,
    subject: &Claims,
    target: Scope,
) -> Result<ValidMetadata, OAuthError> {
    let fields = ["execution_id", "action_ref", "workflow_id", "metadata"];
    let given: Vec<&str> = fields
        .into_iter()
        .filter(|f| form.get(f).is_some())
        .collect();
    if target == subject.scope {
        if let Some(field) = given.first() {
            return Err(OAuthError::invalid_request(format!(
                "{field} applies only when exchanging for another scope; a {target} token exchanged for a {target} token keeps its metadata"
            )));
        }
        return Ok(ValidMetadata::parse(
            target,
            Some(Value::Object(subject.metadata.clone())),
        )?);
    }
    let mut map = match form.get("metadata") {
        None => Map::new(),
        Some(raw) => match serde_json::from_str::<Value>(raw) {
            Ok(Value::Object(m)) => m,
            _ => {
                return Err(OAuthError::invalid_request(
                    "metadata must be a JSON object, e.g. {\"execution_id\": 4711}",
                ))
            }
        },
    };
    for field in ["execution_id", "workflow_id"] {
        if let Some(raw) = form.get(field) {
            let n: i64 = raw
                .parse()
                .map_err(|_| OAuthError::invalid_request(format!("{field} must be an integer")))?;
            map.insert(field.into(), json!(n));
        }
    }
    if let Some(action) = form.get("action_ref") {
        map.insert("action_ref".into(), json!(action));
    }
    Ok(ValidMetadata::parse(target, Some(Value::Object(map)))?)
}

/// Workload federation's branch of token exchange: a subject token of type `…:jwt` whose
/// (unverified) `iss` is not tokend's own is a workload's identity token, exchanged by
/// `crate::federation` like a jwt-bearer assertion (RFC 8693 §2.1 allows any token type). The
/// dispatcher asks this before [`token_exchange`] runs, because checking that token may need
/// to fetch its issuer's keys, which the database step cannot wait for.
pub fn is_federated_exchange(form: &Form, settings: &Settings) -> bool {
    form.get("subject_token_type") == Some(JWT_TOKEN_TYPE)
        && form
            .get("subject_token")
            .and_then(crate::federation::assertion::unverified_issuer)
            .is_some_and(|iss| iss != settings.issuer)
}

/// Token exchange (RFC 8693): a valid tokend token (`subject_token`) for a narrower one — the
/// same scope with a shorter life, or another scope the policy (`TOKEND_TOKEN_EXCHANGE`)
/// allows, e.g. a sensor's token for an `execution` token of one execution. The new token
/// belongs to the subject's account (so it dies with it), never outlives the subject token,
/// carries `act` naming it, and is revoked with the subject token's family. Client
/// authentication is optional; when sent it must be valid.
pub fn token_exchange(
    conn: &mut DbConnection,
    tokens: &TokenService,
    settings: &Settings,
    authenticate: Option<Authenticate>,
    form: &Form,
    remote_addr: Option<String>,
) -> Result<Granted, OAuthError> {
    let subject_token = form.require("subject_token")?;
    match form.require("subject_token_type")? {
        ACCESS_TOKEN_TYPE | JWT_TOKEN_TYPE => {}
        other => {
            return Err(OAuthError::new(
                OAuthCode::InvalidRequest,
                format!(
                    "subject_token_type {other:?} is not one tokend issues; use {ACCESS_TOKEN_TYPE}"
                ),
            ))
        }
    }
    let issued_type = match form.get("requested_token_type") {
        None | Some(ACCESS_TOKEN_TYPE) => ACCESS_TOKEN_TYPE,
        Some(JWT_TOKEN_TYPE) => JWT_TOKEN_TYPE,
        Some(other) => {
            return Err(OAuthError::new(
                OAuthCode::InvalidRequest,
                format!("requested_token_type {other:?} is not supported; tokend issues {ACCESS_TOKEN_TYPE}"),
            ))
        }
    };
    form.refuse(
        "actor_token",
        "tokend exchanges a token for a narrower one of the same holder",
    )?;
    form.refuse("actor_token_type", "there is no actor_token")?;
    for target in ["audience", "resource"] {
        if let Some(value) = form.get(target) {
            if value != settings.audience {
                return Err(OAuthError::new(
                    OAuthCode::InvalidTarget,
                    format!(
                        "tokend issues tokens for the audience {:?} only",
                        settings.audience
                    ),
                ));
            }
        }
    }
    let claims = match tokens.verify(subject_token.trim()) {
        Ok(claims) => claims,
        Err(e @ TokenError::Unavailable(_)) => return Err(ApiError::from(e).into()),
        Err(e) => {
            return Err(OAuthError::invalid_grant(format!(
                "the subject_token is not valid here: {}",
                ApiError::from(e).message()
            )))
        }
    };
    let target = requested_scope(form)?.unwrap_or(claims.scope);
    if !settings.oauth.exchange.allows(claims.scope, target) {
        let allowed: Vec<&str> = settings
            .oauth
            .exchange
            .targets(claims.scope)
            .iter()
            .map(|s| s.as_str())
            .collect();
        return Err(OAuthError::new(
            OAuthCode::InvalidScope,
            format!(
                "a {} token may be exchanged only for: {} (TOKEND_TOKEN_EXCHANGE)",
                claims.scope,
                allowed.join(", ")
            ),
        ));
    }
    let metadata = exchanged_metadata(form, &claims, target)?;
    let now = time::now();
    let remaining = Duration::from_secs(u64::try_from(claims.exp - now.timestamp()).unwrap_or(0));
    let bounds = settings.scopes.bounds(target);
    let ttl = match requested_ttl(form)? {
        Some(requested) => settings.scopes.resolve(target, Some(requested))?,
        None => bounds.default,
    }
    .min(remaining);
    if ttl < bounds.min {
        return Err(OAuthError::invalid_grant(format!(
            "the subject_token expires in {}, sooner than the shortest {target} token ({}); refresh it first",
            time::human_duration(remaining),
            time::human_duration(bounds.min)
        )));
    }
    let mut act = Map::new();
    act.insert("sub".into(), json!(claims.sub));
    act.insert("identity_id".into(), json!(claims.identity_id));
    act.insert("token_id".into(), json!(claims.jti));
    if let Some(prior) = &claims.act {
        act.insert("act".into(), Value::Object(prior.clone()));
    }
    let name = match target {
        _ if target == claims.scope => claims.sub.clone(),
        Scope::Execution => format!(
            "execution:{}",
            metadata
                .as_map()
                .get("execution_id")
                .cloned()
                .unwrap_or_default()
        ),
        _ => format!("{target}:{}", claims.sub),
    };
    write_transaction(conn, |conn| {
        if let Some(authenticate) = authenticate {
            authenticate(conn)?;
        }
        let now = time::now();
        let kind = match claims.identity_type {
            IdentityType::ServiceAccount => SERVICE_ACCOUNT,
            IdentityType::User => USER,
        };
        if identities::lock_unrevoked(conn, claims.identity_id, kind, time::to_db(now))? == 0 {
            return Err(OAuthError::invalid_grant(
                "the subject_token's account is revoked or disabled",
            ));
        }
        // Waiting for locks took time: the new token still ends no later than the subject.
        let left = Duration::from_secs(u64::try_from(claims.exp - now.timestamp()).unwrap_or(0));
        let ttl = ttl.min(left);
        if ttl < bounds.min {
            return Err(OAuthError::invalid_grant(
                "the subject_token expires too soon for this token; refresh it first",
            ));
        }
        let parent = token_rows::find(conn, &claims.jti.to_string())?
            .filter(|row| row.revoked_at.is_none())
            .ok_or_else(|| OAuthError::invalid_grant("the subject_token was revoked"))?;
        let subject = TokenSubject {
            identity_id: claims.identity_id,
            identity_type: claims.identity_type,
            name: &name,
            scope: target,
            metadata: metadata.as_map(),
            act: Some(&act),
        };
        let actor = Actor {
            identity_id: Some(claims.identity_id),
            remote_addr: remote_addr.clone(),
        };
        let minted = issue_granted(
            conn,
            tokens,
            &subject,
            ttl,
            now,
            &actor,
            Lineage::Exchanged(&parent),
            TOKEN_EXCHANGE,
        )?;
        Ok(Granted {
            token_id: minted.jti,
            identity_id: claims.identity_id,
            scope: target,
            extend_after_commit: None,
            response: response(minted, target, Some(issued_type)),
        })
    })
}
