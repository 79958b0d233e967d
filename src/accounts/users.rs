//! Users: people who log in with a password and get `cli` tokens.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

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
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
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
            created_at: time::from_db(row.created_at),
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
        let metadata = json!({"login": login.as_str(), "role": role.as_str()}).to_string();
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
            created_at: now,
        })
    })
}
