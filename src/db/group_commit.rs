//! Group commit: writes that arrive together share one transaction, and so one disk flush.
//!
//! SQLite with `synchronous=FULL` flushes its log on every commit (about 0.9 ms on this
//! machine's disk), which caps one-write-per-request at roughly 1,100 writes a second however
//! fast the rest is. Here one writer thread takes every job that is waiting, runs each in its
//! own savepoint of one transaction (a failing job rolls back alone), commits once, and only
//! then answers each caller: a job is acknowledged only after its rows are durable, exactly as
//! with a transaction of its own. A job that arrives alone goes at once; batches form only
//! while the previous commit is under way, so batching never adds latency.
//!
//! Deadlines are kept as [`super::write_transaction`] keeps them: a job whose caller stopped
//! waiting before it ran is answered unavailable without running, and a batch that reaches
//! its commit after the earliest deadline among its jobs rolls back whole (every job of it is
//! then answered unavailable, and none takes effect).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use diesel::Connection;

use super::{write_transaction, DbConnection, DbError, Pool};

/// The most jobs one transaction takes.
pub const MAX_BATCH: usize = 256;

/// One caller's work, type-erased for the writer thread.
trait Job: Send {
    /// When its caller stops waiting.
    fn deadline(&self) -> Instant;
    /// Runs in its own savepoint of the batch's transaction; `true` if it succeeded (its
    /// changes stay in the batch).
    fn run(&mut self, conn: &mut DbConnection) -> bool;
    /// Answers the caller once the batch's fate is known (`Err`: nothing of it was written).
    fn finish(self: Box<Self>, outcome: Result<(), DbFailure>);
}

/// Why a batch wrote nothing, for every job of it.
#[derive(Debug, Clone)]
pub struct DbFailure {
    /// A storage fault (503) rather than a bug (500).
    fault: bool,
    message: String,
}

impl DbFailure {
    fn to_error(&self) -> DbError {
        if self.fault {
            DbError::Unavailable(self.message.clone())
        } else {
            DbError::Query(diesel::result::Error::QueryBuilderError(
                self.message.clone().into(),
            ))
        }
    }

    fn from_error(err: &DbError) -> DbFailure {
        DbFailure {
            fault: err.is_storage_fault(),
            message: crate::error::cause_chain(err),
        }
    }
}

struct TypedJob<T, E, F> {
    work: Option<F>,
    result: Option<Result<T, E>>,
    deadline: Instant,
    reply: tokio::sync::oneshot::Sender<Result<T, E>>,
}

impl<T, E, F> Job for TypedJob<T, E, F>
where
    T: Send + 'static,
    E: From<DbError> + From<diesel::result::Error> + Send + 'static,
    F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
{
    fn deadline(&self) -> Instant {
        self.deadline
    }

    fn run(&mut self, conn: &mut DbConnection) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        // A nested transaction is a savepoint: a failing job rolls back alone.
        let outcome = conn.transaction(work);
        let ok = outcome.is_ok();
        self.result = Some(outcome);
        ok
    }

    fn finish(self: Box<Self>, outcome: Result<(), DbFailure>) {
        let answer = match (outcome, self.result) {
            // Its own failure (a wrong secret, a revoked account) stands as it is.
            (_, Some(Err(e))) => Err(e),
            (Ok(()), Some(Ok(value))) => Ok(value),
            (Err(failure), Some(Ok(_))) | (Err(failure), None) => Err(failure.to_error().into()),
            (Ok(()), None) => Err(DbError::Unavailable("the job did not run".into()).into()),
        };
        // The caller may have stopped waiting; then nobody needs the answer.
        let _ = self.reply.send(answer);
    }
}

/// Where jobs go.
enum Mode {
    /// SQLite: the one writer thread, which batches.
    Batched(mpsc::Sender<Box<dyn Job>>),
    /// PostgreSQL: each job in a transaction of its own, side by side on the pool. PostgreSQL
    /// flushes concurrent commits together by itself, and its round trips are what one writer
    /// thread would serialise (one writer measured 554 grants/s where parallel transactions of
    /// new accounts reached 891/s, bench/README.md).
    Parallel(Pool),
}

/// The handle to the group-commit writer.
pub struct GroupCommit {
    mode: Mode,
    /// How long a caller waits for its answer (the request's database deadline).
    deadline: Duration,
}

impl GroupCommit {
    /// Starts the writer thread on connections of `pool` (it ends when the handle is dropped),
    /// or with `parallel` none at all (PostgreSQL). A job's caller waits `deadline` at most.
    pub fn start(pool: Pool, parallel: bool, deadline: Duration) -> std::io::Result<GroupCommit> {
        let mode = if parallel {
            Mode::Parallel(pool)
        } else {
            let (jobs, queue) = mpsc::channel::<Box<dyn Job>>();
            std::thread::Builder::new()
                .name("tokend-group-commit".into())
                .spawn(move || writer(pool, queue))?;
            Mode::Batched(jobs)
        };
        Ok(GroupCommit { mode, deadline })
    }

    /// Runs `work` in the next batch's transaction and answers once the batch is committed
    /// (or failed), or unavailable when the deadline passes. As with [`crate::state::with_db`],
    /// a write must reach its commit a second before the caller stops waiting.
    pub async fn run<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + From<diesel::result::Error> + Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    {
        let wait = self.deadline;
        let deadline = Instant::now() + wait.saturating_sub(Duration::from_secs(1));
        let answer = match &self.mode {
            Mode::Parallel(pool) => {
                let pool = pool.clone();
                let alone = actix_web::web::block(move || {
                    super::with_deadline(deadline, || {
                        let mut conn = pool.get().map_err(DbError::from)?;
                        write_transaction(&mut conn, work)
                    })
                });
                match tokio::time::timeout(wait, alone).await {
                    Ok(Ok(answer)) => return answer,
                    Ok(Err(_)) => {
                        return Err(DbError::Unavailable("the blocking pool failed".into()).into())
                    }
                    Err(_) => None,
                }
            }
            Mode::Batched(jobs) => {
                let (reply, answer) = tokio::sync::oneshot::channel();
                let job = TypedJob {
                    work: Some(work),
                    result: None,
                    deadline,
                    reply,
                };
                if jobs.send(Box::new(job)).is_err() {
                    return Err(
                        DbError::Unavailable("the group-commit writer has stopped".into()).into(),
                    );
                }
                match tokio::time::timeout(wait, answer).await {
                    Ok(Ok(answer)) => return answer,
                    Ok(Err(_)) => {
                        return Err(DbError::Unavailable(
                            "the group-commit writer has stopped".into(),
                        )
                        .into())
                    }
                    Err(_) => None,
                }
            }
        };
        answer.unwrap_or_else(|| {
            Err(DbError::Unavailable(format!(
                "no commit within {}s; a write that reaches its commit after its deadline rolls \
                 back, one already committing may still commit (its token then stays unused)",
                wait.as_secs()
            ))
            .into())
        })
    }
}

/// The next batch: the first job to arrive and whatever waits behind it. `None`: the handle
/// is gone.
fn next_batch(queue: &mpsc::Receiver<Box<dyn Job>>) -> Option<Vec<Box<dyn Job>>> {
    let first = queue.recv().ok()?;
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match queue.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    Some(batch)
}

fn writer(pool: Pool, queue: mpsc::Receiver<Box<dyn Job>>) {
    while let Some(batch) = next_batch(&queue) {
        let now = Instant::now();
        let (late, mut batch): (Vec<_>, Vec<_>) =
            batch.into_iter().partition(|j| j.deadline() <= now);
        for job in late {
            job.finish(Err(DbFailure {
                fault: true,
                message: super::DEADLINE_PASSED.into(),
            }));
        }
        if batch.is_empty() {
            continue;
        }
        crate::telemetry::group_commit_batch(batch.len());
        // A panic in a job must not end the writer (every later grant would then wait for
        // nothing): the batch fails, and the next one goes on.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            commit_batch(&pool, &mut batch)
        }))
        .unwrap_or_else(|_| {
            log::error!(
                "a group-commit batch panicked; its {} job(s) failed",
                batch.len()
            );
            Err(DbFailure {
                fault: false,
                message: "a job of the batch panicked".into(),
            })
        });
        for job in batch {
            job.finish(outcome.clone());
        }
    }
}

fn commit_batch(pool: &Pool, batch: &mut [Box<dyn Job>]) -> Result<(), DbFailure> {
    let earliest = batch
        .iter()
        .map(|j| j.deadline())
        .min()
        .unwrap_or_else(Instant::now);
    super::with_deadline(earliest, || {
        let mut conn = pool
            .get()
            .map_err(|e| DbFailure::from_error(&DbError::from(e)))?;
        write_transaction(&mut conn, |conn| {
            for job in batch.iter_mut() {
                job.run(conn);
            }
            Ok::<(), DbError>(())
        })
        .map_err(|e| DbFailure::from_error(&e))
    })
}
