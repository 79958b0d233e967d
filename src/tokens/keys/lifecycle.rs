//! The keys' lifecycle in the `signing_key` table: the first keys created (once, even when
//! replicas start together), re-read, rotated, revoked in an emergency. Each change is one
//! write transaction; every replica picks it up by [`super::sync`].

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use secrecy::ExposeSecret;

use super::material::{build, generate_ed25519, hs256, usable, version_of};
use super::{KeyError, KeyStore, Revocation, Rotation, ACTIVE, EDDSA, NEXT, RETIRING, REVOKED};
use crate::config::{JwtAlgorithm, Settings};
use crate::db::models::SigningKeyRow;
use crate::db::queries::keys as key_queries;
use crate::db::{write_transaction, DbConnection};
use crate::time;
use crate::tokens::kek::Kek;

impl KeyStore {
    /// Loads the keys for the configured algorithm, creating the first EdDSA keys (an active
    /// one and the next) if the database has none, once, even when replicas start together.
    pub fn load_or_create(
        conn: &mut DbConnection,
        settings: &Settings,
    ) -> Result<KeyStore, KeyError> {
        match &settings.jwt {
            JwtAlgorithm::Hs256 { secret } => {
                Ok(KeyStore::new(hs256(secret.expose_secret().as_bytes())))
            }
            JwtAlgorithm::EdDsa => {
                let kek = Kek::load(settings).map_err(KeyError::Config)?;
                let rows =
                    write_transaction(conn, |conn| -> Result<Vec<SigningKeyRow>, KeyError> {
                        key_queries::lock_key_creation(conn)?;
                        let now = time::now();
                        let mut rows = key_queries::with_status(conn, EDDSA, &[ACTIVE, NEXT])?;
                        for status in [ACTIVE, NEXT] {
                            if !rows.iter().any(|r| r.status == status) {
                                let row = generate_ed25519(&kek, status, now)?;
                                key_queries::insert(conn, &row)?;
                                log::info!(
                                    "generated an Ed25519 signing key ({status}), kid {}",
                                    row.kid
                                );
                                rows.push(row);
                            }
                        }
                        Ok(key_queries::verifying(conn, EDDSA)?)
                    })?;
                let keys = build(&rows, &kek, chrono::Utc::now())?;
                Ok(KeyStore {
                    current: ArcSwap::from_pointee(keys),
                    kek: Some(kek),
                })
            }
        }
    }

    /// Re-reads the keys; swaps in a new set when anything changed. Returns whether it did.
    pub fn reload(&self, conn: &mut DbConnection) -> Result<bool, KeyError> {
        let Some(kek) = &self.kek else {
            return Ok(false);
        };
        // Full precision: retirement times come from the database's clock, to the microsecond.
        let now = chrono::Utc::now();
        let rows: Vec<SigningKeyRow> = key_queries::verifying(conn, EDDSA)?
            .into_iter()
            .filter(|r| usable(r, now))
            .collect();
        let version = version_of(&rows);
        if version == self.current.load().version {
            return Ok(false);
        }
        self.current.store(Arc::new(build(&rows, kek, now)?));
        Ok(true)
    }

    /// Rotates: `next` becomes `active`, `active` becomes `retiring` until `retire_after`, and
    /// a new `next` is made. With `only_if_older_than`, does nothing unless the active key was
    /// activated longer ago than that (the scheduled rotation; replicas racing do it once).
    ///
    /// The next key must have been published for at least `publish_lead` (the JWKS cache
    /// lifetime), so that every verifier knows it before a token carries it; otherwise
    /// [`KeyError::TooSoon`].
    pub fn rotate(
        &self,
        conn: &mut DbConnection,
        max_token_lifetime: Duration,
        only_if_older_than: Option<Duration>,
        publish_lead: Duration,
    ) -> Result<Option<Rotation>, KeyError> {
        let Some(kek) = &self.kek else {
            return Err(KeyError::NotManaged);
        };
        let rotation = write_transaction(conn, |conn| -> Result<Option<Rotation>, KeyError> {
            key_queries::lock_key_creation(conn)?;
            // The database's clock: retirement times are compared by every replica.
            let now = time::from_db(crate::db::queries::clock::now(conn)?);
            let rows = key_queries::with_status(conn, EDDSA, &[ACTIVE, NEXT])?;
            let active = rows.iter().find(|r| r.status == ACTIVE);
            if let (Some(min_age), Some(active)) = (only_if_older_than, active) {
                let since = active.activated_at.unwrap_or(active.created_at);
                if time::from_db(since) + chrono::Duration::from_std(min_age).unwrap_or_default()
                    > now
                {
                    return Ok(None);
                }
            }
            if let Some(next) = rows.iter().find(|r| r.status == NEXT) {
                // Times are stored in whole seconds: one more covers the truncation.
                let ready = time::from_db(next.created_at)
                    + chrono::Duration::from_std(publish_lead).unwrap_or_default()
                    + chrono::Duration::seconds(1);
                if ready > now {
                    return Err(KeyError::TooSoon {
                        retry_after_secs: (ready - now).num_seconds().max(1) as u64,
                    });
                }
            }
            let retire_after =
                now + chrono::Duration::from_std(max_token_lifetime).unwrap_or_default();
            if let Some(active) = active {
                key_queries::set_status(
                    conn,
                    &active.kid,
                    RETIRING,
                    Some(time::to_db(retire_after)),
                    None,
                )?;
            }
            let new_active = match rows.iter().find(|r| r.status == NEXT) {
                Some(next) => {
                    key_queries::activate(conn, &next.kid, time::to_db(now))?;
                    next.kid.clone()
                }
                None => {
                    let row = generate_ed25519(kek, ACTIVE, now)?;
                    key_queries::insert(conn, &row)?;
                    row.kid
                }
            };
            let next = generate_ed25519(kek, NEXT, now)?;
            key_queries::insert(conn, &next)?;
            Ok(Some(Rotation {
                active_kid: new_active,
                retiring_kid: active.map(|a| a.kid.clone()),
                next_kid: next.kid,
                retire_after,
            }))
        })?;
        if rotation.is_some() {
            self.reload(conn)?;
        }
        Ok(rotation)
    }

    /// Retires a key at once: every token it signed stops verifying. If it was the active key,
    /// the next one takes over signing and a new next key is made.
    pub fn revoke(
        &self,
        conn: &mut DbConnection,
        kid: &str,
    ) -> Result<Option<Revocation>, KeyError> {
        let Some(kek) = &self.kek else {
            return Err(KeyError::NotManaged);
        };
        let revocation = write_transaction(conn, |conn| -> Result<Option<Revocation>, KeyError> {
            key_queries::lock_key_creation(conn)?;
            // The database's clock: retirement times are compared by every replica.
            let now = time::from_db(crate::db::queries::clock::now(conn)?);
            let rows = key_queries::with_status(conn, EDDSA, &[ACTIVE, NEXT, RETIRING])?;
            let Some(key) = rows.iter().find(|r| r.kid == kid) else {
                return Ok(None);
            };
            key_queries::set_status(conn, kid, REVOKED, None, Some(time::to_db(now)))?;
            let mut active_kid = rows
                .iter()
                .find(|r| r.status == ACTIVE)
                .map(|r| r.kid.clone());
            if key.status == ACTIVE || key.status == NEXT {
                if key.status == ACTIVE {
                    active_kid = match rows.iter().find(|r| r.status == NEXT) {
                        Some(next) => {
                            key_queries::activate(conn, &next.kid, time::to_db(now))?;
                            Some(next.kid.clone())
                        }
                        None => {
                            let row = generate_ed25519(kek, ACTIVE, now)?;
                            key_queries::insert(conn, &row)?;
                            Some(row.kid)
                        }
                    };
                }
                key_queries::insert(conn, &generate_ed25519(kek, NEXT, now)?)?;
            }
            Ok(Some(Revocation {
                kid: kid.to_owned(),
                revoked_at: now,
                active_kid: active_kid.unwrap_or_default(),
            }))
        })?;
        self.reload(conn)?;
        Ok(revocation)
    }
}
