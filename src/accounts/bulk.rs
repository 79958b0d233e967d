//! Revocation by selector: `POST /revocations`, `tokend revoke`.
//!
//! One call revokes every live token matching all the given selectors (scope, name or name
//! prefix, account, user, signing key, issued before). It is enforced by a rule, checked in
//! memory on every verification and read by every replica on its next sync, not by one
//! `token_revocation` row per token; the matching `issued_token` rows are marked revoked in
//! the same transaction so listings agree. The rule is pruned once no token it covers can
//! still verify.

use chrono::{DateTime, Utc};
use serde_json::json;

use uuid::Uuid;

use super::input::Reason;
use super::revoke::{revoke_families, revoke_rows};
use super::users::Login;
use crate::audit::{record, Actor};
use crate::config::Settings;
use crate::db::models::{NewRevocationRule, RuleSelector};
use crate::db::queries::identities::{self, USER};
use crate::db::queries::rules as rule_rows;
use crate::db::queries::tokens as token_rows;
use crate::db::{write_transaction, DbConnection};
use crate::error::{ApiError, Code};
use crate::scope::Scope;
use crate::time;
use crate::tokens::rules::{Rule, Selector};

/// A bulk revocation, parsed.
#[derive(Debug, Clone, Default)]
pub struct BulkRevocation {
    pub selector: Selector,
    /// A user, by login: their tokens.
    pub user: Option<Login>,
    /// Only tokens issued at or before this; never later than now.
    pub issued_before: Option<DateTime<Utc>>,
    pub reason: Option<Reason>,
    pub dry_run: bool,
}

/// What it did (or, dry, would do).
#[derive(Debug, Clone)]
pub struct BulkOutcome {
    /// Live tokens covered.
    pub matched: usize,
    pub revoked_at: DateTime<Utc>,
    pub dry_run: bool,
    /// The rule now in force (not for a dry run).
    pub rule: Option<Rule>,
    /// Tokens revoked one by one: refreshed from covered ones (their families), or too old
    /// for any rule this server keeps.
    pub revoked_individually: Vec<(Uuid, DateTime<Utc>)>,
}

/// Revokes (or counts) every live token the request selects.
pub fn revoke_matching(
    conn: &mut DbConnection,
    settings: &Settings,
    request: &BulkRevocation,
    actor: &Actor,
) -> Result<BulkOutcome, ApiError> {
    if request.selector.is_empty() && request.user.is_none() && request.issued_before.is_none() {
        return Err(ApiError::new(
            Code::InvalidRequest,
            "give at least one selector: scope, name, name_prefix, identity_id, user, issued_before or key_id",
        ));
    }
    let now = time::now();
    // Whole seconds, as token times are: a token issued this second, before the rule, is
    // covered.
    let cutoff = request.issued_before.map_or(now, |t| t.min(now));
    let cutoff = time::from_unix(cutoff.timestamp());
    let leeway = chrono::Duration::from_std(settings.leeway).unwrap_or_default();
    let run = |conn: &mut DbConnection| -> Result<BulkOutcome, ApiError> {
        let mut selector = request.selector.clone();
        if let Some(login) = &request.user {
            let user = identities::find_by_login(conn, login.as_str())?
                .filter(|row| row.identity_type == USER)
                .ok_or_else(|| {
                    ApiError::not_found(format!(
                        "no user '{}'; GET /users lists them",
                        login.as_str()
                    ))
                })?;
            if selector.identity_id.is_some_and(|id| id != user.id) {
                // Selectors are all required: two that name different accounts match nothing.
                return Ok(BulkOutcome {
                    matched: 0,
                    revoked_at: now,
                    dry_run: request.dry_run,
                    revoked_individually: Vec::new(),
                    rule: None,
                });
            }
            selector.identity_id = Some(user.id);
        }
        let stored = RuleSelector {
            scope: selector.scope.map(|s| s.as_str().to_owned()),
            name: selector.name.clone(),
            name_prefix: selector.name_prefix.clone(),
            identity_id: selector.identity_id,
            key_id: selector.key_id.clone(),
            issued_before: time::to_db(cutoff),
        };
        let matched = rule_rows::matching_live(conn, &stored, time::to_db(now - leeway))?;
        if request.dry_run {
            return Ok(BulkOutcome {
                matched: matched.len(),
                revoked_at: now,
                dry_run: true,
                revoked_individually: Vec::new(),
                rule: None,
            });
        }
        // The latest any covered token can expire: issued by the cutoff, living at most its
        // scope's ceiling (the verifier refuses longer ones), verified within the leeway.
        // (Not the configured maximum alone: a rule pruned too early would let a token issued
        // under a larger bound verify again.)
        // An account's tokens all have its scope: a rule for one account lives as long as
        // that scope needs, not as long as the longest-lived scope.
        let account_scope = match (selector.scope, selector.identity_id) {
            (None, Some(id)) => {
                identities::find(conn, id)?.and_then(|row| Scope::parse(&row.scope).ok())
            }
            _ => None,
        };
        let scopes = match selector.scope.as_ref().or(account_scope.as_ref()) {
            Some(scope) => std::slice::from_ref(scope),
            None => &Scope::ALL[..],
        };
        let longest = scopes
            .iter()
            .map(|s| settings.scopes.lifetime_ceiling(*s))
            .max()
            .unwrap_or_default()
            + settings.leeway;
        // One second more: a token still verifies at exactly `exp + leeway`.
        let expires_at = cutoff
            + chrono::Duration::from_std(longest).unwrap_or_default()
            + chrono::Duration::seconds(1);
        let reason = request.reason.as_ref().map(Reason::as_str);
        // A cutoff so old that nothing it covers can still verify needs no rule.
        let needed = expires_at > now;
        let id = if !needed {
            None
        } else {
            Some(rule_rows::insert(
                conn,
                &NewRevocationRule {
                    selector: stored.clone(),
                    expires_at: time::to_db(expires_at),
                    created_at: time::to_db(now),
                    created_by: actor.identity_id,
                    reason: reason.map(str::to_owned),
                    matched: matched.len() as i64,
                },
            )?)
        };
        let jtis: Vec<String> = matched.iter().map(|t| t.jti.clone()).collect();
        let mut one_by_one = Vec::new();
        if id.is_none() && !matched.is_empty() {
            // Live tokens older than any this server's bounds allow (issued under other
            // settings): no rule would be kept long enough, so they are revoked one by one.
            let rows = token_rows::find_many(conn, &jtis)?;
            one_by_one = revoke_rows(conn, &rows, now, reason, actor)?;
        }
        token_rows::mark_revoked(conn, &jtis, time::to_db(now))?;
        // Tokens refreshed from a covered one were issued after the cutoff (or signed by a
        // newer key): the rule does not cover them, their family does.
        let mut families: Vec<String> = matched
            .iter()
            .map(|t| t.family_id.clone().unwrap_or_else(|| t.jti.clone()))
            .collect();
        families.sort_unstable();
        families.dedup();
        let mut relatives = revoke_families(conn, &families, now, settings.leeway, reason, actor)?;
        relatives.extend(one_by_one);
        let mut ids: Vec<i64> = matched.iter().map(|t| t.identity_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let live_after = now - chrono::Duration::from_std(settings.leeway).unwrap_or_default();
        rule_rows::refresh_expiries(conn, &ids, time::to_db(live_after))?;
        record(
            conn,
            actor,
            "revocation.bulk",
            selector.identity_id,
            None,
            reason,
            json!({
                "rule_id": id,
                "matched": matched.len(),
                "revoked_individually": relatives.len(),
                "accounts": ids.len(),
                "scope": stored.scope,
                "name": stored.name,
                "name_prefix": stored.name_prefix,
                "user": request.user.as_ref().map(Login::as_str),
                "key_id": stored.key_id,
                "issued_before": time::format(&cutoff),
            }),
        )?;
        Ok(BulkOutcome {
            matched: matched.len(),
            revoked_at: now,
            dry_run: false,
            revoked_individually: relatives,
            rule: id.map(|id| Rule {
                id,
                selector,
                issued_before: cutoff.timestamp(),
                expires_at: expires_at.timestamp(),
            }),
        })
    };
    if request.dry_run {
        run(conn)
    } else {
        write_transaction(conn, run)
    }
}

/// The rules in force, newest last, as stored.
pub fn rules_in_force(
    conn: &mut DbConnection,
) -> Result<Vec<crate::db::models::RevocationRuleRow>, ApiError> {
    Ok(rule_rows::in_force(conn, time::to_db(time::now()))?)
}
