//! The workload federation grant: an external token, already verified, becomes a tokend token
//! of the service account its workload (issuer, `sub`) was given, with exactly what the first
//! matching rule of its issuer says. One transaction: the replay count, the account (created
//! on first use, refused once revoked) and the token commit together or not at all.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;

use super::{Authenticate, Granted, TokenResponse};
use crate::accounts::service::{issue_granted, Lineage};
use crate::accounts::{AccountName, Description};
use crate::audit::{record, Actor};
use crate::config::Settings;
use crate::db::models::{FederatedSubjectRow, NewIdentity};
use crate::db::queries::federation as rows;
use crate::db::queries::identities::{self, SERVICE_ACCOUNT};
use crate::db::{write_transaction, DbConnection};
use crate::federation::assertion::Verified;
use crate::federation::issuers::StoredIssuer;
use crate::oauth::{Form, OAuthCode, OAuthError};
use crate::scope::{RequestedTtl, Scope, ValidMetadata};
use crate::time;
use crate::tokens::{IdentityType, TokenService, TokenSubject};

/// What the rules give a workload: checked like any account's and token's.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub scope: Scope,
    pub name: AccountName,
    pub metadata: ValidMetadata,
    pub ttl: Duration,
}

/// Applies the issuer's rules to a verified token: the first rule whose `match` holds decides
/// everything. `asked` (the request's `scope`) must be that rule's scope; `ttl` may only
/// shorten the rule's.
pub fn decide(
    issuer: &StoredIssuer,
    token: &Verified,
    asked: Option<Scope>,
    ttl: Option<RequestedTtl>,
    settings: &Settings,
) -> Result<Outcome, OAuthError> {
    let spec = &issuer.spec;
    let rule = spec.first_match(&token.claims).ok_or_else(|| {
        OAuthError::invalid_grant(format!(
            "no rule of the trusted issuer {} matches this token (sub {:?}); an admin adds or widens one with PATCH /federation/issuers/{}",
            spec.issuer,
            token.sub.chars().take(80).collect::<String>(),
            issuer.id
        ))
    })?;
    if let Some(asked) = asked {
        if asked != rule.scope {
            return Err(OAuthError::new(
                OAuthCode::InvalidScope,
                format!(
                    "this workload's rule gives {} tokens, not {asked}; ask for scope={} or none",
                    rule.scope, rule.scope
                ),
            ));
        }
    }
    let scope = rule.scope;
    let misfit = |what: &str, why: &str| {
        OAuthError::invalid_grant(format!(
            "the matching rule's {what} does not fit this token: {why}; an admin fixes the rule (PATCH /federation/issuers/{})",
            issuer.id
        ))
    };
    let name = rule
        .name
        .render(&token.claims)
        .map_err(|e| misfit("name", &e))?;
    let name = AccountName::parse(&name).map_err(|e| misfit("name", e.message()))?;
    let metadata = match &rule.metadata {
        Some(t) => Some(
            t.render(&token.claims)
                .map_err(|e| misfit("metadata", &e))?,
        ),
        None => None,
    };
    let metadata =
        ValidMetadata::parse(scope, metadata).map_err(|e| misfit("metadata", e.message()))?;
    let bounds = settings.scopes.bounds(scope);
    let ceiling = rule.ttl.unwrap_or(Duration::MAX);
    let ttl = match ttl {
        Some(requested) => settings.scopes.resolve(scope, Some(requested))?,
        None => rule.ttl.unwrap_or(bounds.default),
    }
    .min(ceiling);
    if !bounds.contains(ttl) {
        return Err(misfit(
            "ttl_seconds",
            &format!("{scope} tokens must now live {}", bounds.describe()),
        ));
    }
    Ok(Outcome {
        scope,
        name,
        metadata,
        ttl,
    })
}

/// The part of the request the transaction needs.
pub struct Request {
    pub grant_type: &'static str,
    /// Token exchange: the `issued_token_type` of the answer.
    pub issued_token_type: Option<&'static str>,
    pub remote_addr: Option<String>,
}

/// Issues the token: counts the use against the replay limit, finds or creates the
/// workload's service account (refusing a revoked one), brings its name and metadata up to
/// the rule's result, and issues. All in one transaction.
pub fn issue(
    conn: &mut DbConnection,
    tokens: &TokenService,
    issuer: &StoredIssuer,
    token: &Verified,
    outcome: &Outcome,
    authenticate: Option<Authenticate>,
    request: Request,
) -> Result<Granted, OAuthError> {
    write_transaction(conn, |conn| {
        issue_in_transaction(conn, tokens, issuer, token, outcome, authenticate, request)
    })
}

/// [`issue`] inside the caller's write transaction (a group commit's savepoint).
pub fn issue_in_transaction(
    conn: &mut DbConnection,
    tokens: &TokenService,
    issuer: &StoredIssuer,
    token: &Verified,
    outcome: &Outcome,
    authenticate: Option<Authenticate>,
    request: Request,
) -> Result<Granted, OAuthError> {
    let spec = &issuer.spec;
    {
        if let Some(authenticate) = authenticate {
            authenticate(conn)?;
        }
        let now = time::now();
        let counted_until =
            chrono::DateTime::from_timestamp(token.counted_until, 0).unwrap_or_else(Utc::now);
        let max_uses = i64::try_from(spec.max_uses).unwrap_or(i64::MAX);
        if !rows::count_use(
            conn,
            &token.replay_key,
            time::to_db(counted_until),
            max_uses,
        )? {
            return Err(OAuthError::invalid_grant(format!(
                "this token was used {max_uses} times already, the most its issuer allows (max_uses_per_token); get a fresh token from the issuer"
            )));
        }
        let metadata_json = outcome.metadata.to_json();
        let actor = |id| Actor {
            identity_id: Some(id),
            remote_addr: request.remote_addr.clone(),
        };
        let identity_id = match rows::find_subject(conn, &spec.issuer, &token.sub)? {
            Some(mapped) => {
                // Row lock first, as for any token: a concurrent revocation waits for this
                // grant, or this grant sees it.
                if identities::lock_unrevoked(
                    conn,
                    mapped.identity_id,
                    SERVICE_ACCOUNT,
                    time::to_db(now),
                )? == 0
                {
                    return Err(OAuthError::invalid_grant(format!(
                        "the service account {} of this workload was revoked; an admin revoked it on purpose, and no token is issued for it again (ask them, or register the workload under another sub)",
                        mapped.identity_id
                    )));
                }
                rows::set_profile(
                    conn,
                    mapped.identity_id,
                    outcome.name.as_str(),
                    outcome.scope.as_str(),
                    &metadata_json,
                    time::to_db(now),
                )?;
                mapped.identity_id
            }
            None => {
                let description =
                    Description::parse(&format!("workload {} of {}", token.sub, spec.issuer)).ok();
                let expires =
                    now + chrono::Duration::from_std(outcome.ttl).unwrap_or(chrono::Duration::MAX);
                let id = identities::insert(
                    conn,
                    &NewIdentity {
                        identity_type: SERVICE_ACCOUNT,
                        name: outcome.name.as_str(),
                        scope: outcome.scope.as_str(),
                        description: description.as_ref().map(Description::as_str),
                        metadata: &metadata_json,
                        login: None,
                        password_hash: None,
                        role: None,
                        created_at: time::to_db(now),
                        updated_at: time::to_db(now),
                        expires_at: Some(time::to_db(expires)),
                    },
                )?;
                let mapped = FederatedSubjectRow {
                    issuer: spec.issuer.clone(),
                    subject: token.sub.clone(),
                    identity_id: id,
                    created_at: time::to_db(now),
                };
                if rows::insert_subject(conn, &mapped)?.is_none() {
                    return Err(OAuthError::new(
                        OAuthCode::TemporarilyUnavailable,
                        "another first grant of this workload is under way; retry",
                    ));
                }
                record(
                    conn,
                    &actor(id),
                    "account.created",
                    Some(id),
                    None,
                    None,
                    json!({
                        "name": outcome.name.as_str(), "scope": outcome.scope.as_str(),
                        "federated": {"issuer": spec.issuer, "issuer_id": issuer.id, "sub": token.sub},
                    }),
                )?;
                id
            }
        };
        let subject = TokenSubject {
            identity_id,
            identity_type: IdentityType::ServiceAccount,
            name: outcome.name.as_str(),
            scope: outcome.scope,
            metadata: outcome.metadata.as_map(),
            act: None,
        };
        let minted = issue_granted(
            conn,
            tokens,
            &subject,
            outcome.ttl,
            now,
            &actor(identity_id),
            Lineage::First,
            request.grant_type,
        )?;
        Ok(Granted {
            token_id: minted.jti,
            identity_id,
            scope: outcome.scope,
            extend_after_commit: None,
            response: TokenResponse {
                expires_in: (minted.expires_at - Utc::now()).num_seconds().max(0),
                access_token: minted.token,
                token_type: "Bearer",
                scope: outcome.scope.as_str().to_owned(),
                issued_token_type: request.issued_token_type,
            },
        })
    }
}

/// The form parameters the rules decide, which a request may not set.
pub fn refuse_rule_fields(form: &Form) -> Result<(), OAuthError> {
    for field in [
        "execution_id",
        "action_ref",
        "workflow_id",
        "metadata",
        "actor_token",
    ] {
        form.refuse(
            field,
            "for a workload's token the issuer's rule decides the metadata",
        )?;
    }
    Ok(())
}
