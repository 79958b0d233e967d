//! The cleanup worker: prunes revocations of expired tokens so `token_revocation` never
//! bloats, and forgets `issued_token` records long after their token expired.
//!
//! Runs every `TOKEND_CLEANUP_INTERVAL` (1 h by default), on demand with `tokend cleanup` and
//! `POST /admin/cleanup`. Deletes go in batches of 5,000 rows (statements of 500), each batch
//! its own transaction: one commit per batch keeps the I/O low, and no lock is held for long
//! (tens of milliseconds on SQLite). On PostgreSQL a session advisory lock makes sure
//! one replica at a time runs it, and a run record in `worker_lease` makes a scheduled run
//! happen once per interval across all replicas rather than once per replica.
//!
//! One clock: every cutoff and the run record are taken from the database's clock, never the
//! replica's, and a replica whose clock is off by more than `TOKEND_MAX_CLOCK_SKEW` deletes
//! nothing at all (a sign something is wrong with the host). A run that did not happen says
//! why ([`Skipped`]); `POST /admin/cleanup` answers it with 409 (503 for clock skew).

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::audit::{record, Actor};
use crate::config::Settings;
use crate::db::queries::{clock, federation, locks, notifications, revocations, rules, tokens};
use crate::db::{write_transaction, DbError, DbManager};
use crate::time;

/// Advisory lock key of the cleanup job (arbitrary, fixed).
const CLEANUP_LOCK: i64 = 7_428_663;
const JOB: &str = "cleanup";
/// Rows per delete, each batch its own transaction. Measured on 900,000 expired of
/// 1,000,000 revocation rows on SQLite (bench/README.md, "Where the time goes"): 1,000 took
/// 31 s, 5,000 18 s, 20,000 12 s (rests included); a batch of 20,000 holds the write lock
/// for about 0.2 s.
const BATCH: i64 = 20_000;
/// After each batch the job rests for this fraction of the time the batch took, so other
/// writers (issue, revoke) get the database between batches.
const REST_DIVISOR: u32 = 4;
/// The cleanup's own SQLite connection gets a larger page cache (KiB) for the run: the
/// token-id index is visited in random order, and a cache that holds it saves a read per
/// row. Freed with the connection when the run ends.
const SQLITE_CLEANUP_CACHE_KIB: u32 = 64 * 1024;

/// What one run removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct CleanupReport {
    /// Revocation rows of tokens that have expired.
    pub deleted_revocations: u64,
    /// Token records that expired more than `TOKEND_TOKEN_RETENTION` ago.
    pub deleted_tokens: u64,
    /// Revocation rules that no live token can fall under any more.
    pub deleted_rules: u64,
    pub took_ms: u64,
}

/// Why a run happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// From the timer: skipped if another replica ran it within the interval.
    Scheduled,
    /// Asked for: always runs (after any run in progress elsewhere).
    OnDemand,
}

/// Why a run did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skipped {
    /// Another replica is running it right now.
    RunningElsewhere,
    /// A scheduled run: it ran within the last interval (on some replica).
    RanRecently,
    /// This host's clock differs from the database's by this many milliseconds, more than
    /// `TOKEND_MAX_CLOCK_SKEW`.
    ClockSkew { skew_ms: i64 },
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skipped::RunningElsewhere => f.write_str(
                "the cleanup did not run: another replica is running it right now; try again when it finished",
            ),
            Skipped::RanRecently => f.write_str("the cleanup ran within the last interval"),
            Skipped::ClockSkew { skew_ms } => write!(
                f,
                "the cleanup did not run: this host's clock differs from the database's by {:.1}s; nothing is deleted until the clock is fixed",
                *skew_ms as f64 / 1000.0
            ),
        }
    }
}

/// Runs the cleanup once; `Ok(Err(why))` when it did not run.
pub fn run(
    manager: &DbManager,
    settings: &Settings,
    trigger: Trigger,
    actor: &Actor,
) -> Result<Result<CleanupReport, Skipped>, DbError> {
    run_observed(manager, settings, trigger, actor, &mut |_, _| {})
}

/// [`run`], telling `progress(what, rows deleted so far)` after every batch, for the
/// progress line of `tokend cleanup` on a terminal.
pub fn run_observed(
    manager: &DbManager,
    settings: &Settings,
    trigger: Trigger,
    actor: &Actor,
    progress: &mut dyn FnMut(&str, u64),
) -> Result<Result<CleanupReport, Skipped>, DbError> {
    // A connection of its own: the advisory lock lives and dies with it, never leaking into
    // the pool, and is released by PostgreSQL if this process dies mid-run.
    let mut conn = manager.connect().map_err(|e| match e {
        diesel::r2d2::Error::ConnectionError(c) => DbError::Connection(c),
        diesel::r2d2::Error::QueryError(q) => DbError::Query(q),
    })?;
    if let crate::db::DbConnection::Sqlite(c) = &mut conn {
        use diesel::RunQueryDsl;
        diesel::sql_query(format!("PRAGMA cache_size = -{SQLITE_CLEANUP_CACHE_KIB}"))
            .execute(c)
            .map_err(DbError::Query)?;
    }
    // Never a wait: a run elsewhere may take long, and a waiting caller would time out anyway.
    if !locks::try_lock(&mut conn, CLEANUP_LOCK)? {
        log::debug!("cleanup skipped: another replica is running it");
        return Ok(Err(Skipped::RunningElsewhere));
    }
    let outcome = locked_run(&mut conn, settings, trigger, actor, progress);
    let _ = locks::unlock(&mut conn, CLEANUP_LOCK);
    outcome
}

/// [`run`] under the job's lock.
fn locked_run(
    conn: &mut crate::db::DbConnection,
    settings: &Settings,
    trigger: Trigger,
    actor: &Actor,
    progress: &mut dyn FnMut(&str, u64),
) -> Result<Result<CleanupReport, Skipped>, DbError> {
    let started = Instant::now();
    // The database's clock decides; a host that disagrees with it by more than the bound
    // deletes nothing (its other decisions are suspect too).
    let local = chrono::Utc::now();
    let now = time::from_db(clock::now(conn)?);
    let skew = now - local;
    let max_skew = chrono::Duration::from_std(settings.max_clock_skew).unwrap_or_default();
    if skew.abs() > max_skew + chrono::Duration::from_std(started.elapsed()).unwrap_or_default() {
        log::warn!(
            "cleanup skipped: this host's clock is {:+.1}s off the database's",
            skew.num_milliseconds() as f64 / 1000.0
        );
        return Ok(Err(Skipped::ClockSkew {
            skew_ms: skew.num_milliseconds(),
        }));
    }
    let interval = chrono::Duration::from_std(settings.cleanup_interval).unwrap_or_default();
    // Scheduled: once per interval across replicas (a little slack for timer jitter).
    let not_after = match trigger {
        Trigger::Scheduled => now - interval * 9 / 10,
        Trigger::OnDemand => now + chrono::Duration::seconds(1),
    };
    let holder = format!("pid {}", std::process::id());
    let claimed = write_transaction(conn, |c| {
        locks::claim_run(
            c,
            JOB,
            time::to_db(now),
            time::to_db(not_after),
            time::to_db(now + interval),
            &holder,
        )
    })?;
    if !claimed {
        log::debug!("cleanup skipped: it ran within the last interval");
        return Ok(Err(Skipped::RanRecently));
    }
    // A revoked token inside the leeway after its expiry still verifies: keep its row until then.
    let leeway = chrono::Duration::from_std(settings.leeway).unwrap_or_default();
    let revocation_cutoff = time::to_db(now - leeway);
    let retention = chrono::Duration::from_std(settings.token_retention).unwrap_or_default();
    let token_cutoff = time::to_db(now - retention.max(leeway));
    let mut report = CleanupReport::default();
    let mut deleted_notifications = 0;
    let outcome = (|| -> Result<(), DbError> {
        let mut after = 0;
        report.deleted_revocations =
            delete_in_batches(conn, &mut |n| progress("revocations", n), |c| {
                let (deleted, last) =
                    revocations::delete_expired_batch(c, revocation_cutoff, after, BATCH)?;
                after = last.unwrap_or(after);
                Ok(deleted)
            })?;
        report.deleted_tokens =
            delete_in_batches(conn, &mut |n| progress("token records", n), |c| {
                tokens::delete_expired_batch(c, token_cutoff, BATCH)
            })?;
        // Rules that no live token can fall under any more.
        report.deleted_rules = rules::delete_expired(conn, revocation_cutoff)? as u64;
        // Use counts of external tokens (workload federation) that no longer verify.
        delete_in_batches(conn, &mut |n| progress("federation use counts", n), |c| {
            federation::delete_expired_replays_batch(c, time::to_db(now), BATCH)
        })?;
        // Webhook deliveries no one needs any more: a warning's row keeps it from repeating
        // only until its token expired (it was written at most a threshold before), a
        // revocation notice is given up after a day.
        let longest_threshold = settings
            .expiry_webhook
            .as_ref()
            .and_then(|hook| hook.thresholds.iter().max().copied())
            .unwrap_or_default();
        let keep = retention
            .max(chrono::Duration::from_std(longest_threshold).unwrap_or_default())
            .max(chrono::Duration::days(2));
        deleted_notifications =
            notifications::delete_created_before(conn, time::to_db(now - keep))?;
        Ok(())
    })();
    report.took_ms = started.elapsed().as_millis() as u64;
    let audit = record(
        conn,
        actor,
        "cleanup.run",
        None,
        None,
        None,
        json!({
            "trigger": match trigger { Trigger::Scheduled => "scheduled", Trigger::OnDemand => "on_demand" },
            "deleted_revocations": report.deleted_revocations,
            "deleted_tokens": report.deleted_tokens,
            "deleted_rules": report.deleted_rules,
            "deleted_notifications": deleted_notifications,
            "took_ms": report.took_ms,
        }),
    );
    outcome?;
    if let Err(e) = audit {
        log::warn!("cleanup: could not record the audit event: {e}");
    }
    crate::telemetry::cleanup(
        match trigger {
            Trigger::Scheduled => "scheduled",
            Trigger::OnDemand => "on_demand",
        },
        report.deleted_revocations,
        report.deleted_tokens,
        started.elapsed().as_secs_f64(),
    );
    log::info!(
        "cleanup: deleted {} revocation rows and {} token records in {} ms",
        report.deleted_revocations,
        report.deleted_tokens,
        report.took_ms
    );
    Ok(Ok(report))
}

/// Runs `batch` (one delete of up to [`BATCH`] rows) until it deletes fewer, each in its own
/// transaction (one commit per batch keeps the I/O low), resting after each a quarter of
/// the time it worked: requests and other writers never wait behind a cleanup for long, whatever the
/// table's size. Tells `deleted_so_far` after each batch. Returns the rows deleted.
fn delete_in_batches(
    conn: &mut crate::db::DbConnection,
    deleted_so_far: &mut dyn FnMut(u64),
    mut batch: impl FnMut(&mut crate::db::DbConnection) -> diesel::QueryResult<usize>,
) -> Result<u64, DbError> {
    let mut deleted = 0;
    loop {
        let started = Instant::now();
        let n = write_transaction(conn, &mut batch)?;
        std::thread::sleep(started.elapsed() / REST_DIVISOR);
        deleted += n as u64;
        deleted_so_far(deleted);
        if (n as i64) < BATCH {
            return Ok(deleted);
        }
    }
}

/// Runs [`run`] on a timer until the process ends. The first run comes a minute after start
/// (or one interval, if shorter), so restarts do not postpone cleanup forever.
pub async fn run_forever(manager: DbManager, settings: std::sync::Arc<Settings>) {
    let interval = settings.cleanup_interval;
    let first = interval.min(Duration::from_secs(60));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + first, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let (manager, settings) = (manager.clone(), settings.clone());
        let result = actix_web::rt::task::spawn_blocking(move || {
            run(&manager, &settings, Trigger::Scheduled, &Actor::default())
        })
        .await;
        match result {
            Ok(Ok(Ok(_) | Err(Skipped::RanRecently | Skipped::RunningElsewhere))) => {}
            Ok(Ok(Err(skipped))) => log::warn!("scheduled {skipped}"),
            Ok(Err(e)) => log::error!("cleanup failed: {}", crate::error::cause_chain(&e)),
            Err(e) => log::error!("cleanup task failed: {e}"),
        }
    }
}
