//! `client_credentials` (RFC 6749 §4.4).

use super::{requested_scope, requested_ttl, response, Granted, CLIENT_CREDENTIALS};
use crate::accounts::service::{issue_granted, issue_granted_unextended, Lineage};
use crate::audit::Actor;
use crate::config::Settings;
use crate::db::queries::identities::{self, SERVICE_ACCOUNT};
use crate::db::DbConnection;
use crate::oauth::clients::AuthenticatedClient;
use crate::oauth::error::{OAuthCode, OAuthError};
use crate::oauth::form::Form;
use crate::scope::{RequestedTtl, Scope};
use crate::time;
use crate::tokens::{IdentityType, TokenService, TokenSubject};

/// `client_credentials` (RFC 6749 §4.4), its parameters parsed: a token of the client's own
/// service account, its scope and metadata, the scope's default lifetime (or `ttl_seconds`
/// within its bounds). `scope`, when given, must be the account's: it can narrow nothing
/// further, and never widens.
pub struct ClientCredentialsGrant {
    asked: Option<Scope>,
    ttl: Option<RequestedTtl>,
    remote_addr: Option<String>,
}

impl ClientCredentialsGrant {
    pub fn parse(form: &Form, remote_addr: Option<String>) -> Result<Self, OAuthError> {
        Ok(ClientCredentialsGrant {
            asked: requested_scope(form)?,
            ttl: requested_ttl(form)?,
            remote_addr,
        })
    }

    /// Issues the authenticated client's token, inside the caller's write transaction (a
    /// group commit's savepoint). It locks the account's row first and no other identity row.
    pub fn issue(
        self,
        conn: &mut DbConnection,
        tokens: &TokenService,
        settings: &Settings,
        client: &AuthenticatedClient,
    ) -> Result<Granted, OAuthError> {
        let account = &client.account;
        let id = account.identity_id;
        let now = time::now();
        // Row lock: a concurrent revocation of the account waits for this token (and then
        // revokes it), or this grant sees it revoked. Client authentication ran before, off
        // the writer: a secret revoked in between still issues this one token. On PostgreSQL
        // a shared lock, so one busy client's grants run side by side; its `expires_at` is
        // then brought forward after the commit (an update here would deadlock two grants).
        // The secret it presented, again, under a shared lock: a revocation of the secret
        // that answered 200 is never followed by a token obtained with it.
        crate::oauth::clients::secret_still_live(conn, client)?;
        let shared = matches!(conn, DbConnection::Pg(_));
        let live = if shared {
            identities::share_lock_unrevoked(conn, id, SERVICE_ACCOUNT)?
        } else {
            identities::lock_unrevoked(conn, id, SERVICE_ACCOUNT, time::to_db(now))? == 1
        };
        if !live {
            return Err(OAuthError::invalid_client(format!(
                "service account {id} is revoked; its client credentials no longer work"
            )));
        }
        if let Some(scope) = self.asked {
            if scope != account.scope {
                return Err(OAuthError::new(
                    OAuthCode::InvalidScope,
                    format!(
                        "client {} may only obtain {} tokens (its service account's scope), not {scope}",
                        client.client_id, account.scope
                    ),
                ));
            }
        }
        let ttl = settings.scopes.resolve(account.scope, self.ttl)?;
        let subject = TokenSubject {
            identity_id: id,
            identity_type: IdentityType::ServiceAccount,
            name: &account.name,
            scope: account.scope,
            metadata: &account.metadata,
            act: None,
        };
        let actor = Actor {
            identity_id: Some(id),
            remote_addr: self.remote_addr,
        };
        let minted = if shared {
            issue_granted_unextended(conn, tokens, &subject, ttl, now, &actor, CLIENT_CREDENTIALS)?
        } else {
            issue_granted(
                conn,
                tokens,
                &subject,
                ttl,
                now,
                &actor,
                Lineage::First,
                CLIENT_CREDENTIALS,
            )?
        };
        Ok(Granted {
            token_id: minted.jti,
            identity_id: id,
            scope: account.scope,
            extend_after_commit: shared.then(|| time::to_db(minted.expires_at)),
            response: response(minted, account.scope, None),
        })
    }
}
