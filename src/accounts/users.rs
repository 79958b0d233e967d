//! Users: people who log in with a password and get `cli` tokens.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use super::revoke::revoke_live_tokens;
use crate::audit::{record, Actor};
use crate::db::models::{IdentityRow, NewIdentity};
use crate::db::queries::identities::{self, USER};
use crate::db::{write_transaction, DbConnection};
use crate::error::{ApiError, Code};
use crate::scope::{printable, Scope};
use crate::time::{self, rfc3339};

/// What a user may do: `admin` everything, `viewer` only read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Viewer,
}

impl Role {
    pub fn parse(raw: &str) -> Result<Role, ApiError> {
        match raw.trim() {
            "admin" => Ok(Role::Admin),
            "viewer" => Ok(Role::Viewer),
            other => Err(ApiError::new(
                Code::InvalidRequest,
                format!("role '{}' is not admin or viewer", printable(other, 40)),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }
}

/// A login name: 1 to 64 of `a-z 0-9 . _ @ -`, compared case-insensitively (stored lower-case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login(String);

impl Login {
    pub fn parse(raw: &str) -> Result<Login, ApiError> {
        if !crate::scope::rules::is_login(raw) {
            return Err(ApiError::new(
                Code::InvalidRequest,
                "login must be 1 to 64 characters of letters, digits, '.', '_', '@' or '-'",
            ));
        }
        Ok(Login(raw.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct User {
    pub identity_id: i64,
    #[schema(example = "alice")]
    pub login: String,
    pub role: Role,
    /// A disabled user cannot log in or refresh, and holds no live token.
    pub disabled: bool,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub disabled_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<DateTime<Utc>>,
}

impl User {
    pub fn from_row(row: &IdentityRow) -> Result<User, ApiError> {
        let login = row.login.clone().unwrap_or_else(|| row.name.clone());
        let role = Role::parse(row.role.as_deref().unwrap_or_default()).map_err(|_| {
            ApiError::from(crate::db::DbError::Corrupt(format!(
                "user {} has no valid role",
                row.id
            )))
        })?;
        Ok(User {
            identity_id: row.id,
            login,
            role,
            disabled: row.disabled_at.is_some(),
            created_at: time::from_db(row.created_at),
            disabled_at: row.disabled_at.map(time::from_db),
            last_used_at: row.last_used_at.map(time::from_db),
        })
    }

    /// The metadata of this user's cli tokens: who and with which role.
    pub fn token_metadata(&self) -> Map<String, Value> {
        let mut map = Map::new();
        map.insert("login".into(), json!(self.login));
        map.insert("role".into(), json!(self.role.as_str()));
        map
    }
}

/// Adds a user. A login that exists already is refused with 409.
pub fn add(
    conn: &mut DbConnection,
    login: &Login,
    role: Role,
    password_hash: &str,
    actor: &Actor,
) -> Result<User, ApiError> {
    write_transaction(conn, |conn| {
        if identities::find_by_login(conn, login.as_str())?.is_some() {
            return Err(ApiError::new(
                Code::LoginTaken,
                format!("a user with login '{}' exists already", login.as_str()),
            ));
        }
        let now = time::now();
        let metadata = role_metadata(login.as_str(), role);
        let id = identities::insert(
            conn,
            &NewIdentity {
                identity_type: USER,
                name: login.as_str(),
                scope: Scope::Cli.as_str(),
                description: None,
                metadata: &metadata,
                login: Some(login.as_str()),
                password_hash: Some(password_hash),
                role: Some(role.as_str()),
                created_at: time::to_db(now),
                updated_at: time::to_db(now),
                expires_at: None,
            },
        )?;
        record(
            conn,
            actor,
            "user.added",
            Some(id),
            None,
            None,
            json!({
                "login": login.as_str(), "role": role.as_str(),
            }),
        )?;
        Ok(User {
            identity_id: id,
            login: login.as_str().to_owned(),
            role,
            disabled: false,
            created_at: now,
            disabled_at: None,
            last_used_at: None,
        })
    })
}

/// Every user that has not been deleted, oldest first.
pub fn list(conn: &mut DbConnection) -> Result<Vec<User>, ApiError> {
    identities::users(conn)?
        .iter()
        .map(User::from_row)
        .collect()
}

/// One user; deleted or unknown ones are 404.
pub fn get(conn: &mut DbConnection, id: i64) -> Result<User, ApiError> {
    User::from_row(&find_user_row(conn, id)?)
}

fn find_user_row(conn: &mut DbConnection, id: i64) -> Result<IdentityRow, ApiError> {
    identities::find(conn, id)?
        .filter(|row| row.identity_type == USER && row.revoked_at.is_none())
        .ok_or_else(|| ApiError::not_found(format!("no user {id}; GET /users lists them")))
}

/// Locks a user's row for the rest of the transaction and reads it (404 if deleted).
fn lock_user(conn: &mut DbConnection, id: i64, now: DateTime<Utc>) -> Result<User, ApiError> {
    identities::lock(conn, id, time::to_db(now))?;
    User::from_row(&find_user_row(conn, id)?)
}

/// What `PATCH /users/{id}` changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    /// A new password, already hashed.
    pub password_hash: Option<String>,
}

/// A changed (or deleted) user, and the tokens that change revoked.
#[derive(Debug, Clone)]
pub struct UserChanged {
    pub user: User,
    pub revoked: Vec<(Uuid, DateTime<Utc>)>,
}

/// Changes a user. Disabling, a new role or a new password revokes every token the user
/// holds, in the same transaction: no token outlives the rights it was issued for.
pub fn update(
    conn: &mut DbConnection,
    id: i64,
    change: &UserChange,
    leeway: Duration,
    actor: &Actor,
) -> Result<UserChanged, ApiError> {
    write_transaction(conn, |conn| {
        let now = time::now();
        let old = lock_user(conn, id, now)?;
        let mut actions: Vec<(&str, Value)> = Vec::new();
        if let Some(role) = change.role.filter(|r| *r != old.role) {
            identities::set_role(conn, id, role.as_str(), &role_metadata(&old.login, role))?;
            actions.push((
                "user.role_changed",
                json!({"login": old.login, "from": old.role.as_str(), "to": role.as_str()}),
            ));
        }
        match change.disabled {
            Some(true) if !old.disabled => {
                identities::set_disabled(conn, id, Some(time::to_db(now)))?;
                actions.push(("user.disabled", json!({"login": old.login})));
            }
            Some(false) if old.disabled => {
                identities::set_disabled(conn, id, None)?;
                actions.push(("user.enabled", json!({"login": old.login})));
            }
            _ => {}
        }
        if let Some(hash) = &change.password_hash {
            identities::set_password_hash(conn, id, Some(hash))?;
            actions.push(("user.password_changed", json!({"login": old.login})));
        }
        let revokes = actions.iter().any(|(a, _)| *a != "user.enabled");
        let revoked = if revokes {
            let reason = actions
                .iter()
                .map(|(a, _)| *a)
                .find(|a| *a != "user.enabled")
                .unwrap_or("user.changed");
            revoke_live_tokens(conn, id, now, leeway, Some(reason), actor)?
        } else {
            Vec::new()
        };
        for (action, mut detail) in actions {
            if action != "user.enabled" {
                detail["revoked_tokens"] = json!(revoked.len());
            }
            record(conn, actor, action, Some(id), None, None, detail)?;
        }
        let after = find_user_row(conn, id)?;
        Ok(UserChanged {
            user: User::from_row(&after)?,
            revoked,
        })
    })
}

/// Deletes a user: every token revoked, the login free for reuse, the password forgotten.
/// The row stays (revoked) so the audit trail still names who it was.
pub fn delete(
    conn: &mut DbConnection,
    id: i64,
    leeway: Duration,
    actor: &Actor,
) -> Result<UserChanged, ApiError> {
    write_transaction(conn, |conn| {
        let now = time::now();
        let user = lock_user(conn, id, now)?;
        let revoked = revoke_live_tokens(conn, id, now, leeway, Some("user deleted"), actor)?;
        identities::mark_revoked(
            conn,
            id,
            USER,
            time::to_db(now),
            Some("user deleted"),
            actor.identity_id,
        )?;
        identities::forget_login(conn, id)?;
        record(
            conn,
            actor,
            "user.deleted",
            Some(id),
            None,
            None,
            json!({"login": user.login, "revoked_tokens": revoked.len()}),
        )?;
        Ok(UserChanged { user, revoked })
    })
}

/// The metadata kept on a user row (and copied into their cli tokens at issue).
fn role_metadata(login: &str, role: Role) -> String {
    json!({"login": login, "role": role.as_str()}).to_string()
}
