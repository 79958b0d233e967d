//! Creating accounts, issuing tokens, listing and reading accounts.
//!
//! Everything here is synchronous and runs on the blocking pool. Each write is one
//! transaction: the token is returned only after its record is committed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::input::{AccountName, Description};
use super::model::{Account, AccountDetail, TokenRecord};
use crate::audit::{record, Actor};
use crate::db::models::{IdentityRow, IssuedTokenRow, NewIdentity};
use crate::db::queries::identities::{self, ListFilter, SERVICE_ACCOUNT};
use crate::db::queries::tokens as token_rows;
use crate::db::{write_transaction, DbConnection, DbError};
use crate::error::{ApiError, Code};
use crate::scope::{RequestedTtl, Scope, ScopePolicy, ValidMetadata};
use crate::time;
use crate::tokens::{IdentityType, MintedToken, TokenService, TokenSubject};

/// A validated request for a new service account.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub name: AccountName,
    pub scope: Scope,
    pub description: Option<Description>,
    pub ttl: Duration,
    pub metadata: ValidMetadata,
}

/// An account together with the token just issued for it.
#[derive(Debug, Clone)]
pub struct Issued {
    pub account: Account,
    pub token: MintedToken,
}

pub fn create(
    conn: &mut DbConnection,
    tokens: &TokenService,
    new: &NewAccount,
    actor: &Actor,
) -> Result<Issued, ApiError> {
    write_transaction(conn, |conn| create_in(conn, tokens, new, actor))
}

/// [`create`] inside the caller's write transaction (a group-commit batch, `db::group_commit`).
pub fn create_in(
    conn: &mut DbConnection,
    tokens: &TokenService,
    new: &NewAccount,
    actor: &Actor,
) -> Result<Issued, ApiError> {
    {
        let now = time::now();
        let expires = now + chrono::Duration::from_std(new.ttl).unwrap_or(chrono::Duration::MAX);
        let metadata_json = new.metadata.to_json();
        let id = identities::insert(
            conn,
            &NewIdentity {
                identity_type: SERVICE_ACCOUNT,
                name: new.name.as_str(),
                scope: new.scope.as_str(),
                description: new.description.as_ref().map(Description::as_str),
                metadata: &metadata_json,
                login: None,
                password_hash: None,
                role: None,
                created_at: time::to_db(now),
                updated_at: time::to_db(now),
                expires_at: Some(time::to_db(expires)),
            },
        )?;
        record(
            conn,
            actor,
            "account.created",
            Some(id),
            None,
            None,
            json!({
                "name": new.name.as_str(), "scope": new.scope.as_str(),
            }),
        )?;
        let subject = TokenSubject {
            identity_id: id,
            identity_type: IdentityType::ServiceAccount,
            name: new.name.as_str(),
            scope: new.scope,
            metadata: new.metadata.as_map(),
            act: None,
        };
        let token = issue_in_transaction(conn, tokens, &subject, new.ttl, now, actor)?;
        let row = identities::find(conn, id)?
            .ok_or_else(|| ApiError::from(DbError::Corrupt(format!("identity {id} vanished"))))?;
        Ok(Issued {
            account: Account::from_row(row, now)?,
            token,
        })
    }
}

/// A new token for an existing, unrevoked account (rotation that keeps `identity_id`).
pub fn issue_token(
    conn: &mut DbConnection,
    tokens: &TokenService,
    policy: &ScopePolicy,
    identity_id: i64,
    ttl: Option<RequestedTtl>,
    actor: &Actor,
) -> Result<Issued, ApiError> {
    write_transaction(conn, |conn| {
        let now = time::now();
        // Row lock first: a concurrent revocation of the account waits for us, or we for it.
        if identities::lock_unrevoked(conn, identity_id, SERVICE_ACCOUNT, time::to_db(now))? == 0 {
            return Err(match find_account_row(conn, identity_id)? {
                Some(_) => ApiError::new(
                    Code::AccountRevoked,
                    format!(
                        "service account {identity_id} is revoked; create a new account instead"
                    ),
                ),
                None => not_found(identity_id),
            });
        }
        let row = find_account_row(conn, identity_id)?.ok_or_else(|| not_found(identity_id))?;
        let account = Account::from_row(row, now)?;
        let ttl = policy.resolve(account.scope, ttl)?;
        let subject = TokenSubject {
            identity_id,
            identity_type: IdentityType::ServiceAccount,
            name: &account.name,
            scope: account.scope,
            metadata: &account.metadata,
            act: None,
        };
        let token = issue_in_transaction(conn, tokens, &subject, ttl, now, actor)?;
        let row = find_account_row(conn, identity_id)?.ok_or_else(|| not_found(identity_id))?;
        Ok(Issued {
            account: Account::from_row(row, now)?,
            token,
        })
    })
}

/// Signs a token and records it; the caller's transaction makes both one unit.
pub fn issue_in_transaction(
    conn: &mut DbConnection,
    tokens: &TokenService,
    subject: &TokenSubject<'_>,
    ttl: Duration,
    now: DateTime<Utc>,
    actor: &Actor,
) -> Result<MintedToken, ApiError> {
    issue_with_lineage(
        conn,
        tokens,
        subject,
        ttl,
        now,
        actor,
        Lineage::First,
        None,
        true,
    )
}

/// [`issue_in_transaction`] for a token refreshed from `parent`: it joins the parent's
/// family, so revoking any token of the family revokes this one too.
pub fn issue_refreshed(
    conn: &mut DbConnection,
    tokens: &TokenService,
    subject: &TokenSubject<'_>,
    ttl: Duration,
    now: DateTime<Utc>,
    actor: &Actor,
    parent: &IssuedTokenRow,
) -> Result<MintedToken, ApiError> {
    issue_with_lineage(
        conn,
        tokens,
        subject,
        ttl,
        now,
        actor,
        Lineage::Refreshed(parent),
        None,
        true,
    )
}

/// Where a new token comes from.
#[derive(Debug, Clone, Copy)]
pub enum Lineage<'a> {
    /// A first token: it founds a family.
    First,
    /// Refreshed from this token: it joins its family.
    Refreshed(&'a IssuedTokenRow),
    /// Exchanged for this token (RFC 8693): a family of its own that names this token as its
    /// parent, so a refresh of the parent with `revoke_current` leaves it alone while revoking
    /// the parent's family, or its account, takes it too.
    Exchanged(&'a IssuedTokenRow),
}

/// [`issue_in_transaction`] for an OAuth 2.0 grant: the audit event names the grant type.
#[allow(clippy::too_many_arguments)]
pub fn issue_granted(
    conn: &mut DbConnection,
    tokens: &TokenService,
    subject: &TokenSubject<'_>,
    ttl: Duration,
    now: DateTime<Utc>,
    actor: &Actor,
    lineage: Lineage<'_>,
    grant_type: &str,
) -> Result<MintedToken, ApiError> {
    issue_with_lineage(
        conn,
        tokens,
        subject,
        ttl,
        now,
        actor,
        lineage,
        Some(grant_type),
        true,
    )
}

/// [`issue_granted`] that leaves the account's `expires_at` alone: for a caller holding only a
/// shared lock on the account's row (an update there would upgrade it, and two such grants
/// would deadlock), which brings `expires_at` forward itself after its commit.
#[allow(clippy::too_many_arguments)]
pub fn issue_granted_unextended(
    conn: &mut DbConnection,
    tokens: &TokenService,
    subject: &TokenSubject<'_>,
    ttl: Duration,
    now: DateTime<Utc>,
    actor: &Actor,
    grant_type: &str,
) -> Result<MintedToken, ApiError> {
    issue_with_lineage(
        conn,
        tokens,
        subject,
        ttl,
        now,
        actor,
        Lineage::First,
        Some(grant_type),
        false,
    )
}

#[allow(clippy::too_many_arguments)]
fn issue_with_lineage(
    conn: &mut DbConnection,
    tokens: &TokenService,
    subject: &TokenSubject<'_>,
    ttl: Duration,
    now: DateTime<Utc>,
    actor: &Actor,
    lineage: Lineage<'_>,
    grant_type: Option<&str>,
    extend: bool,
) -> Result<MintedToken, ApiError> {
    let parent = match lineage {
        Lineage::First => None,
        Lineage::Refreshed(p) | Lineage::Exchanged(p) => Some(p),
    };
    let minted = tokens
        .mint(subject, ttl, now)
        .map_err(|e| ApiError::internal("signing a token", &e))?;
    // Verifiers refuse tokens over 8 KiB unread; never hand one out.
    if minted.token.len() > crate::tokens::MAX_TOKEN_BYTES {
        return Err(ApiError::new(
            Code::InvalidMetadata,
            format!(
                "the token would be {} bytes, over the {}-byte limit every verifier enforces; \
                 shorten the metadata or the name",
                minted.token.len(),
                crate::tokens::MAX_TOKEN_BYTES
            ),
        ));
    }
    token_rows::insert(
        conn,
        &IssuedTokenRow {
            jti: minted.jti.to_string(),
            identity_id: subject.identity_id,
            kid: minted.kid.clone(),
            fingerprint: minted.fingerprint.clone(),
            issued_at: time::to_db(minted.issued_at),
            expires_at: time::to_db(minted.expires_at),
            revoked_at: None,
            // A first token starts its family; a refreshed one joins its parent's (a token
            // issued before families were recorded founds one under its own id).
            family_id: Some(match lineage {
                Lineage::Refreshed(p) => p.family_id.clone().unwrap_or_else(|| p.jti.clone()),
                Lineage::First | Lineage::Exchanged(_) => minted.jti.to_string(),
            }),
            parent_jti: parent.map(|p| p.jti.clone()),
        },
    )?;
    if extend {
        identities::extend_expiry(conn, subject.identity_id, time::to_db(minted.expires_at))?;
    }
    let detail = issued_detail(parent, subject.scope, &minted, grant_type);
    record(
        conn,
        actor,
        "token.issued",
        Some(subject.identity_id),
        Some(&minted.jti.to_string()),
        None,
        detail,
    )?;
    Ok(minted)
}

/// The detail of a `token.issued` audit event.
pub(super) fn issued_detail(
    parent: Option<&IssuedTokenRow>,
    scope: Scope,
    minted: &MintedToken,
    grant_type: Option<&str>,
) -> serde_json::Value {
    let mut detail = json!({
        "parent_token_id": parent.map(|p| p.jti.as_str()),
        "scope": scope.as_str(),
        "expires_at": time::format(&minted.expires_at),
        "fingerprint": minted.fingerprint,
    });
    if let Some(grant_type) = grant_type {
        detail["grant_type"] = json!(grant_type);
    }
    detail
}

/// One page of accounts and the total matching.
pub fn list(conn: &mut DbConnection, filter: &ListFilter) -> Result<(Vec<Account>, i64), ApiError> {
    let (rows, total) = identities::list(conn, filter)?;
    let now = time::from_db(filter.now);
    let accounts = rows
        .into_iter()
        .map(|row| Account::from_row(row, now))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((accounts, total))
}

/// An account with all its recorded tokens.
pub fn get(conn: &mut DbConnection, identity_id: i64) -> Result<AccountDetail, ApiError> {
    let row = find_account_row(conn, identity_id)?.ok_or_else(|| not_found(identity_id))?;
    let tokens = token_rows::of_identity(conn, identity_id)?
        .into_iter()
        .map(TokenRecord::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AccountDetail {
        account: Account::from_row(row, time::now())?,
        tokens,
    })
}

/// The identity row if it is a service account.
pub(super) fn find_account_row(
    conn: &mut DbConnection,
    identity_id: i64,
) -> Result<Option<IdentityRow>, ApiError> {
    Ok(identities::find(conn, identity_id)?.filter(|r| r.identity_type == SERVICE_ACCOUNT))
}

pub(super) fn not_found(identity_id: i64) -> ApiError {
    ApiError::not_found(format!(
        "no service account with id {identity_id}; GET /service-accounts lists them"
    ))
}
