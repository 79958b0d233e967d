//! Trusted issuers in storage: create, list, read, change and remove them, each change one
//! transaction with its audit event (`federation.issuer_created|updated|deleted`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use super::spec::{IssuerSpec, KeySource, RuleDocument};
use crate::audit::{record, Actor};
use crate::db::models::{FederationIssuerFields, FederationIssuerRow};
use crate::db::queries::federation as rows;
use crate::db::{write_transaction, DbConnection, DbError};
use crate::error::{ApiError, Code};
use crate::scope::ScopePolicy;
use crate::time::{self, rfc3339};

/// A trusted issuer as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"id": 1, "issuer": "https://kubernetes.default.svc", "jwks_uri": "https://kubernetes.default.svc/openid/v1/jwks", "audiences": ["tokend"], "max_token_age_seconds": 3600, "max_uses_per_token": 10, "rules": [{"match": {"kubernetes.io.namespace": "sensors"}, "scope": "sensor", "name": "sensor:{kubernetes.io.serviceaccount.name}", "metadata": {"trigger_types": ["core.timer"]}}], "workloads": 3, "created_at": "2026-12-01T10:00:00Z", "updated_at": "2026-12-01T10:00:00Z", "created_by": 1}))]
pub struct Issuer {
    pub id: i64,
    /// The exact `iss` of its tokens.
    pub issuer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// The key set given inline (instead of `jwks_uri`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<Value>,
    pub audiences: Vec<String>,
    pub max_token_age_seconds: u64,
    pub max_uses_per_token: u64,
    pub rules: Vec<RuleDocument>,
    /// Workloads of this issuer that were given a service account so far.
    pub workloads: i64,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
    pub created_by: Option<i64>,
}

/// A stored issuer: its row's facts and its parsed settings.
#[derive(Debug, Clone)]
pub struct StoredIssuer {
    pub id: i64,
    pub spec: IssuerSpec,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: Option<i64>,
}

impl StoredIssuer {
    /// Reads a row back through the same parser that checked it.
    pub fn from_row(row: FederationIssuerRow) -> Result<StoredIssuer, DbError> {
        let corrupt = |what: &str, e: String| {
            DbError::Corrupt(format!("federation_issuer {} {what}: {e}", row.id))
        };
        let parse = |text: &str, what: &str| -> Result<Value, DbError> {
            serde_json::from_str(text).map_err(|e| corrupt(what, e.to_string()))
        };
        let mut doc = json!({
            "issuer": row.issuer,
            "audiences": parse(&row.audiences, "audiences")?,
            "max_token_age_seconds": row.max_token_age_seconds,
            "max_uses_per_token": row.max_uses_per_token,
            "rules": parse(&row.rules, "rules")?,
        });
        match (&row.jwks_uri, &row.jwks) {
            (Some(uri), _) => doc["jwks_uri"] = json!(uri),
            (None, Some(jwks)) => doc["jwks"] = parse(jwks, "jwks")?,
            (None, None) => return Err(corrupt("keys", "neither jwks_uri nor jwks".into())),
        }
        let spec = IssuerSpec::parse(&doc, None)
            .map_err(|e| corrupt("settings", e.message().to_owned()))?;
        Ok(StoredIssuer {
            id: row.id,
            spec,
            created_at: time::from_db(row.created_at),
            updated_at: time::from_db(row.updated_at),
            created_by: row.created_by,
        })
    }

    fn view(&self, workloads: i64) -> Issuer {
        let (jwks_uri, jwks) = match &self.spec.keys {
            KeySource::Uri(u) => (Some(u.clone()), None),
            KeySource::Inline { raw, .. } => (None, Some(raw.clone())),
        };
        Issuer {
            id: self.id,
            issuer: self.spec.issuer.clone(),
            jwks_uri,
            jwks,
            audiences: self.spec.audiences.clone(),
            max_token_age_seconds: self.spec.max_token_age.as_secs(),
            max_uses_per_token: self.spec.max_uses,
            rules: self.spec.rule_documents(),
            workloads,
            created_at: self.created_at,
            updated_at: self.updated_at,
            created_by: self.created_by,
        }
    }
}

fn fields(spec: &IssuerSpec, now: DateTime<Utc>) -> FederationIssuerFields {
    let (jwks_uri, jwks) = match &spec.keys {
        KeySource::Uri(u) => (Some(u.clone()), None),
        KeySource::Inline { raw, .. } => (None, Some(raw.to_string())),
    };
    FederationIssuerFields {
        issuer: spec.issuer.clone(),
        jwks_uri,
        jwks,
        audiences: json!(spec.audiences).to_string(),
        max_token_age_seconds: i64::try_from(spec.max_token_age.as_secs()).unwrap_or(i64::MAX),
        max_uses_per_token: i64::try_from(spec.max_uses).unwrap_or(i64::MAX),
        rules: json!(spec.rule_documents()).to_string(),
        updated_at: time::to_db(now),
    }
}

fn taken(issuer: &str) -> ApiError {
    ApiError::new(
        Code::IssuerExists,
        format!(
            "the issuer {issuer} is registered already; change it with PATCH /federation/issuers/{{id}} (GET /federation/issuers lists them)"
        ),
    )
}

fn not_found(id: i64) -> ApiError {
    ApiError::not_found(format!(
        "no trusted issuer with id {id}; GET /federation/issuers lists them"
    ))
}

/// The audit detail of a change: what an admin reviewing the trail needs, never a key.
fn summary(spec: &IssuerSpec, id: i64) -> Value {
    json!({
        "issuer_id": id,
        "issuer": spec.issuer,
        "jwks_uri": match &spec.keys { KeySource::Uri(u) => Some(u.as_str()), KeySource::Inline { .. } => None },
        "audiences": spec.audiences,
        "rules": spec.rules.len(),
        "scopes": spec.rules.iter().map(|r| r.scope.as_str()).collect::<Vec<_>>(),
    })
}

/// Registers a trusted issuer.
pub fn create(
    conn: &mut DbConnection,
    spec: &IssuerSpec,
    actor: &Actor,
) -> Result<Issuer, ApiError> {
    write_transaction(conn, |conn| {
        let now = time::now();
        let id = rows::insert_issuer(conn, &fields(spec, now), actor.identity_id)?
            .ok_or_else(|| taken(&spec.issuer))?;
        record(
            conn,
            actor,
            "federation.issuer_created",
            None,
            None,
            None,
            summary(spec, id),
        )?;
        load(conn, id)
    })
}

fn load(conn: &mut DbConnection, id: i64) -> Result<Issuer, ApiError> {
    let row = rows::find_issuer(conn, id)?.ok_or_else(|| not_found(id))?;
    let workloads = rows::count_subjects(conn, &row.issuer)?;
    Ok(StoredIssuer::from_row(row)?.view(workloads))
}

/// Every trusted issuer, oldest first.
pub fn list(conn: &mut DbConnection) -> Result<Vec<Issuer>, ApiError> {
    rows::list_issuers(conn)?
        .into_iter()
        .map(|row| {
            let workloads = rows::count_subjects(conn, &row.issuer)?;
            Ok(StoredIssuer::from_row(row)?.view(workloads))
        })
        .collect()
}

pub fn get(conn: &mut DbConnection, id: i64) -> Result<Issuer, ApiError> {
    load(conn, id)
}

/// The trusted issuer whose URL is exactly `iss`, if any.
pub fn find_by_url(conn: &mut DbConnection, iss: &str) -> Result<Option<StoredIssuer>, ApiError> {
    match rows::find_issuer_by_url(conn, iss)? {
        Some(row) => Ok(Some(StoredIssuer::from_row(row)?)),
        None => Ok(None),
    }
}

/// Changes an issuer: the fields of `patch` replace the stored ones (`null` resets an optional
/// field to its default; `jwks_uri` replaces `jwks` and the other way round), and the result
/// is checked as a whole, like a new issuer. Read, check and write are one transaction.
pub fn patch(
    conn: &mut DbConnection,
    id: i64,
    patch: &Map<String, Value>,
    policy: &ScopePolicy,
    actor: &Actor,
) -> Result<Issuer, ApiError> {
    if patch.is_empty() {
        return Err(ApiError::new(
            Code::InvalidRequest,
            "nothing to change: give at least one of issuer, jwks_uri, jwks, audiences, max_token_age_seconds, max_uses_per_token, rules",
        ));
    }
    write_transaction(conn, |conn| {
        let row = rows::find_issuer(conn, id)?.ok_or_else(|| not_found(id))?;
        let mut doc = StoredIssuer::from_row(row)?.spec.to_document();
        let Value::Object(fields_now) = &mut doc else {
            return Err(ApiError::from(DbError::Corrupt(format!(
                "federation_issuer {id}: its settings are not an object"
            ))));
        };
        for (key, value) in patch {
            let other = match key.as_str() {
                "jwks_uri" => Some("jwks"),
                "jwks" => Some("jwks_uri"),
                _ => None,
            };
            if let (Some(other), false) = (other, value.is_null()) {
                if !patch.contains_key(other) {
                    fields_now.remove(other);
                }
            }
            if value.is_null() {
                fields_now.remove(key);
            } else {
                fields_now.insert(key.clone(), value.clone());
            }
        }
        let spec = IssuerSpec::parse(&doc, Some(policy))?;
        update_in(conn, id, &spec, actor)
    })
}

fn update_in(
    conn: &mut DbConnection,
    id: i64,
    spec: &IssuerSpec,
    actor: &Actor,
) -> Result<Issuer, ApiError> {
    {
        let now = time::now();
        match rows::update_issuer(conn, id, &fields(spec, now))? {
            None => return Err(taken(&spec.issuer)),
            Some(0) => return Err(not_found(id)),
            Some(_) => {}
        }
        record(
            conn,
            actor,
            "federation.issuer_updated",
            None,
            None,
            None,
            summary(spec, id),
        )?;
        load(conn, id)
    }
}

/// What removing an issuer did.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuerDeleted {
    pub id: i64,
    pub issuer: String,
    #[serde(with = "rfc3339")]
    pub deleted_at: DateTime<Utc>,
    /// Its workloads' service accounts (they and their tokens stay until revoked).
    pub workloads: i64,
}

/// Removes a trusted issuer: its tokens are accepted no more. The service accounts its
/// workloads were given, and the tokens they hold, stay until revoked or expired.
pub fn delete(conn: &mut DbConnection, id: i64, actor: &Actor) -> Result<IssuerDeleted, ApiError> {
    write_transaction(conn, |conn| {
        let row = rows::find_issuer(conn, id)?.ok_or_else(|| not_found(id))?;
        rows::delete_issuer(conn, id)?;
        let workloads = rows::count_subjects(conn, &row.issuer)?;
        record(
            conn,
            actor,
            "federation.issuer_deleted",
            None,
            None,
            None,
            json!({"issuer_id": id, "issuer": row.issuer, "workloads": workloads}),
        )?;
        Ok(IssuerDeleted {
            id,
            issuer: row.issuer,
            deleted_at: time::now(),
            workloads,
        })
    })
}
