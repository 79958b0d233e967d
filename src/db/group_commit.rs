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

use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use diesel::Connection;

use super::{write_transaction, DbConnection, DbError, Pool};

/// The most jobs one transaction takes.
pub const MAX_BATCH: usize = 256;

/// One caller's work, type-erased for the writer thread.
trait Job: Send {
    /// When its caller stops waiting.
    fn deadline(&self) -> Instant;
    /// The row it locks first (an identity id): a batch runs its jobs in this order, so that
    /// writers committing side by side always lock rows in the same order and never deadlock.
    fn key(&self) -> i64;
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
    key: i64,
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

    fn key(&self) -> i64 {
        self.key
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

/// The handle to the writer threads.
pub struct GroupCommit {
    jobs: mpsc::Sender<Box<dyn Job>>,
    /// PostgreSQL: each job runs in a transaction of its own, side by side on the pool.
    /// PostgreSQL flushes concurrent commits together by itself, and its round trips are what
    /// one writer thread would serialise (one writer measured 554 grants/s where parallel
    /// transactions of new accounts reached 891/s, bench/README.md).
    parallel: Option<Pool>,
}

/// The jobs waiting, shared by the writers: each takes what is there when it is free.
type Queue = Arc<Mutex<mpsc::Receiver<Box<dyn Job>>>>;

impl GroupCommit {
    /// Starts `writers` writer threads on connections of `pool` (SQLite has one writer at a
    /// time, so one is enough there; on PostgreSQL several batches commit side by side, each
    /// paying its round trips while the others wait for theirs). They end when the handle is
    /// dropped.
    pub fn start(pool: Pool, writers: usize) -> std::io::Result<GroupCommit> {
        Self::start_with(pool, writers, false)
    }

    /// [`GroupCommit::start`], or with `parallel` no writer at all: every job in a transaction
    /// of its own on the pool (PostgreSQL).
    pub fn start_with(pool: Pool, writers: usize, parallel: bool) -> std::io::Result<GroupCommit> {
        if parallel {
            let (jobs, _) = mpsc::channel::<Box<dyn Job>>();
            return Ok(GroupCommit {
                jobs,
                parallel: Some(pool),
            });
        }
        let (jobs, queue) = mpsc::channel::<Box<dyn Job>>();
        let queue: Queue = Arc::new(Mutex::new(queue));
        for i in 0..writers.max(1) {
            let (pool, queue) = (pool.clone(), queue.clone());
            std::thread::Builder::new()
                .name(format!("tokend-group-commit-{i}"))
                .spawn(move || writer(pool, queue))?;
        }
        Ok(GroupCommit {
            jobs,
            parallel: None,
        })
    }

    /// Runs `work` in the next batch's transaction and answers once the batch is committed
    /// (or failed), or when `deadline` passes (unavailable). `key` is the row `work` locks
    /// first (see [`Job::key`]); it must lock no other row of that table.
    pub async fn run<T, E, F>(&self, deadline: Instant, key: i64, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + From<diesel::result::Error> + Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    {
        if let Some(pool) = &self.parallel {
            let pool = pool.clone();
            let wait = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(1);
            let alone = actix_web::web::block(move || {
                super::with_deadline(deadline, || {
                    let mut conn = pool.get().map_err(DbError::from)?;
                    write_transaction(&mut conn, work)
                })
            });
            return match tokio::time::timeout(wait, alone).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(_)) => Err(DbError::Unavailable("the blocking pool failed".into()).into()),
                Err(_) => Err(DbError::Unavailable(format!(
                    "no commit within {}s; a write that reaches its commit after its deadline \
                     rolls back, one already committing may still commit",
                    wait.as_secs()
                ))
                .into()),
            };
        }
        let _ = key;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = TypedJob {
            key,
            work: Some(work),
            result: None,
            deadline,
            reply,
        };
        if self.jobs.send(Box::new(job)).is_err() {
            return Err(DbError::Unavailable("the group-commit writer has stopped".into()).into());
        }
        let wait = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(1);
        match tokio::time::timeout(wait, answer).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => {
                Err(DbError::Unavailable("the group-commit writer has stopped".into()).into())
            }
            Err(_) => Err(DbError::Unavailable(format!(
                "no commit within {}s; a batch that reaches its commit after its deadline \
                 rolls back, one already committing may still commit (its token then stays \
                 unused)",
                wait.as_secs()
            ))
            .into()),
        }
    }
}

/// The next batch: the first job to arrive and whatever waits behind it. `None`: the handle
/// is gone.
fn next_batch(queue: &Queue) -> Option<Vec<Box<dyn Job>>> {
    let queue = queue.lock().unwrap_or_else(PoisonError::into_inner);
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

fn writer(pool: Pool, queue: Queue) {
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
        batch.sort_by_key(|j| j.key());
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
