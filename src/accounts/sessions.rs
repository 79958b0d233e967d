//! Logins, refreshes and logouts.
//!
//! A login is three steps, none holding a database connection while a password is hashed:
//! [`find_candidate`] reads the account (a short read), the caller checks the password on
//! the hashing workers ([`super::hasher`]) behind the throttle ([`super::throttle`]), and
//! [`complete_login`] issues the token in one transaction.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::revoke::revoke_live_tokens;
use super::service::{issue_in_transaction, issue_refreshed};
use super::throttle::{record_failures, FailedLogins};
use super::users::{Login, User};
use crate::audit::{record, Actor};
use crate::config::Settings;
use crate::db::models::{IdentityRow, NewRevocation};
use crate::db::queries::identities::{self, USER};
use crate::db::queries::{revocations, rules as rule_rows, tokens as token_rows};
use crate::db::{write_transaction, DbConnection};
use crate::error::{ApiError, Code};
use crate::scope::Scope;
use crate::time;
use crate::tokens::{Claims, IdentityType, MintedToken, TokenService, TokenSubject};

/// A successful login.
#[derive(Debug, Clone)]
pub struct LoggedIn {
    pub user: User,
    pub token: MintedToken,
    /// Earlier tokens revoked because `TOKEND_LOGIN_REVOKES_PREVIOUS` is on.
    pub revoked: Vec<(Uuid, DateTime<Utc>)>,
}

/// One message for every failed login: nothing tells which part was wrong.
pub fn invalid_credentials() -> ApiError {
    ApiError::new(Code::InvalidCredentials, "invalid login or password")
}

/// The account a login names, if it may log in; read before the password is checked.
#[derive(Debug)]
pub struct Candidate(Option<IdentityRow>);

impl Candidate {
    pub fn identity_id(&self) -> Option<i64> {
        self.0.as_ref().map(|r| r.id)
    }

    /// The stored hash; `None` for an unknown login, which is checked against a dummy hash
    /// so that it costs the same as a wrong password.
    pub fn password_hash(&self) -> Option<String> {
        self.0.as_ref().and_then(|r| r.password_hash.clone())
    }
}

/// Reads the user a login names (revoked users count as unknown).
pub fn find_candidate(conn: &mut DbConnection, login: &Login) -> Result<Candidate, ApiError> {
    let row = identities::find_by_login(conn, login.as_str())?.filter(|r| r.revoked_at.is_none());
    Ok(Candidate(row))
}

/// Issues a `cli` token of lifetime `ttl` to a candidate whose password was right, and writes
/// the failures of this (login, address) not yet in the audit trail before the success.
pub fn complete_login(
    conn: &mut DbConnection,
    tokens: &TokenService,
    settings: &Settings,
    candidate: Candidate,
    ttl: Duration,
    remote_addr: Option<String>,
    earlier: Option<&FailedLogins>,
) -> Result<LoggedIn, ApiError> {
    let checked = candidate.0.ok_or_else(invalid_credentials)?;
    let actor = Actor {
        identity_id: Some(checked.id),
        remote_addr,
    };
    write_transaction(conn, |conn| {
        let now = time::now();
        if let Some(failures) = earlier {
            record_failures(conn, failures)?;
        }
        if identities::lock_unrevoked(conn, checked.id, USER, time::to_db(now))? == 0 {
            return Err(invalid_credentials());
        }
        // The row again, locked: while the password was being checked, an admin may have
        // changed it or the role (and revoked every token). The password checked must still
        // be the user's, and the token carries the role as it is now.
        let row = identities::find(conn, checked.id)?.ok_or_else(invalid_credentials)?;
        if row.password_hash != checked.password_hash {
            return Err(invalid_credentials());
        }
        let user = User::from_row(&row)?;
        let revoked = if settings.login_revokes_previous {
            revoke_live_tokens(
                conn,
                user.identity_id,
                now,
                settings.leeway,
                Some("new login"),
                &actor,
            )?
        } else {
            Vec::new()
        };
        if !revoked.is_empty() {
            record(
                conn,
                &actor,
                "login.revoked_previous",
                Some(user.identity_id),
                None,
                Some("new login"),
                json!({"login": user.login, "revoked_tokens": revoked.len()}),
            )?;
        }
        let metadata = user.token_metadata();
        let subject = TokenSubject {
            identity_id: user.identity_id,
            identity_type: IdentityType::User,
            name: &user.login,
            scope: Scope::Cli,
            metadata: &metadata,
            act: None,
        };
        let token = issue_in_transaction(conn, tokens, &subject, ttl, now, &actor)?;
        record(
            conn,
            &actor,
            "login.succeeded",
            Some(user.identity_id),
            Some(&token.jti.to_string()),
            None,
            json!({
                "login": user.login, "revoked_previous": revoked.len(),
            }),
        )?;
        Ok(LoggedIn {
            user: user.clone(),
            token,
            revoked,
        })
    })
}

/// A refreshed token and, with `revoke_current`, the revoked old one.
#[derive(Debug, Clone)]
pub struct Refreshed {
    pub token: MintedToken,
    pub revoked: Vec<(Uuid, DateTime<Utc>)>,
}

/// Issues a new token for the presented one's account, as the account is *now*: its current
/// name, metadata and (for a user) role, the presented token's lifetime clamped to the
/// scope's current bounds. Refused for a revoked token or account (401 `token_revoked`) and
/// a disabled user (403 `account_disabled`). Only sensor and cli tokens may refresh. The new
/// token joins the presented one's family: revoking either revokes both.
///
/// It can never produce a live token for a revoked account: the account row is locked
/// first, so a concurrent revocation either happens before (and the refresh is refused) or
/// after (and sees, and revokes, the new token).
pub fn refresh(
    conn: &mut DbConnection,
    tokens: &TokenService,
    settings: &Settings,
    claims: &Claims,
    revoke_current: bool,
    actor: &Actor,
) -> Result<Refreshed, ApiError> {
    if claims.act.is_some() {
        return Err(ApiError::insufficient_scope(
            "a token obtained by token exchange cannot be refreshed: it never outlives the token              it was exchanged for; exchange that token again",
        ));
    }
    if !matches!(claims.scope, Scope::Sensor | Scope::Cli) {
        return Err(ApiError::insufficient_scope(format!(
            "only sensor and cli tokens can be refreshed; ask for a new {} token instead",
            claims.scope
        )));
    }
    let lifetime = Duration::from_secs(u64::try_from(claims.exp - claims.iat).unwrap_or(0));
    let ttl = settings.scopes.bounds(claims.scope).clamp(lifetime);
    let jti = claims.jti.to_string();
    write_transaction(conn, |conn| {
        let now = time::now();
        let revoked = || {
            ApiError::new(
                Code::TokenRevoked,
                "the token was revoked; ask an administrator for a new one",
            )
        };
        let locked = identities::lock_unrevoked(
            conn,
            claims.identity_id,
            claims.identity_type.as_str(),
            time::to_db(now),
        )?;
        let account = identities::find(conn, claims.identity_id)?.ok_or_else(revoked)?;
        if locked == 0 {
            return Err(
                if account.disabled_at.is_some() && account.revoked_at.is_none() {
                    account_disabled()
                } else {
                    revoked()
                },
            );
        }
        // Another replica may have revoked this token in the last moments: the table decides.
        // Its row is locked first, so a revocation in progress (a bulk one marks rows before
        // it commits) is waited for rather than read past.
        token_rows::lock(conn, &jti)?;
        let current = token_rows::find(conn, &jti)?.ok_or_else(revoked)?;
        if current.revoked_at.is_some() {
            return Err(revoked());
        }
        // A rule made on another replica may not have reached this one's memory yet.
        let rules = rule_rows::in_force(conn, time::to_db(now))?;
        if rules
            .into_iter()
            .filter_map(crate::tokens::revocation::rule_from_row)
            .any(|rule| rule.covers(claims))
        {
            return Err(revoked());
        }
        // The account as it is now, not as the presented token remembers it.
        let (name, metadata) = match claims.identity_type {
            IdentityType::User => {
                let user = User::from_row(&account)?;
                (user.login.clone(), user.token_metadata())
            }
            IdentityType::ServiceAccount => {
                if account.scope != claims.scope.as_str() {
                    return Err(revoked());
                }
                let metadata = serde_json::from_str(&account.metadata).map_err(|_| {
                    ApiError::from(crate::db::DbError::Corrupt(format!(
                        "account {} has metadata that is not a JSON object",
                        account.id
                    )))
                })?;
                (account.name.clone(), metadata)
            }
        };
        let subject = TokenSubject {
            identity_id: claims.identity_id,
            identity_type: claims.identity_type,
            name: &name,
            scope: claims.scope,
            metadata: &metadata,
            act: None,
        };
        let token = issue_refreshed(conn, tokens, &subject, ttl, now, actor, &current)?;
        let mut gone = Vec::new();
        if revoke_current {
            token_rows::mark_revoked(conn, std::slice::from_ref(&jti), time::to_db(now))?;
            revocations::insert_many(
                conn,
                &[NewRevocation {
                    token_jti: jti.clone(),
                    identity_id: claims.identity_id,
                    token_exp: current.expires_at,
                    revoked_at: time::to_db(now),
                    revoked_by: actor.identity_id,
                    reason: Some("refreshed".into()),
                }],
            )?;
            // The refreshed token was just issued: it is the latest live one.
            let latest =
                token_rows::latest_unrevoked_expiry(conn, claims.identity_id, time::to_db(now))?;
            identities::set_expiry(conn, claims.identity_id, latest)?;
            gone.push((claims.jti, time::from_db(current.expires_at)));
        }
        record(
            conn,
            actor,
            "token.refreshed",
            Some(claims.identity_id),
            Some(&token.jti.to_string()),
            None,
            json!({
                "from_token_id": jti, "revoked_current": revoke_current,
                "family_id": current.family_id.as_deref().unwrap_or(&jti),
            }),
        )?;
        Ok(Refreshed {
            token,
            revoked: gone,
        })
    })
}

/// A disabled user may not refresh or log in.
pub fn account_disabled() -> ApiError {
    ApiError::new(
        Code::AccountDisabled,
        "this account is disabled; ask an administrator to enable it",
    )
}
