//! The password hashing workers: a fixed set of threads of their own and a bounded queue.
//!
//! argon2 is slow and memory-hungry on purpose. On the shared blocking pool a flood of logins
//! took every blocking thread (and the database connections they held), and management
//! calls queued behind it. Here at most `workers` hashes run at once and at most `queue`
//! wait; past that the caller is told at once ([`too_busy`]) instead of waiting. No database
//! connection is held while a hash runs: callers read what they need first.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use super::passwords::{Password, Passwords};
use crate::error::{ApiError, Code};

type Job = Box<dyn FnOnce(&Passwords) + Send>;

/// Runs [`Passwords`] work on its own threads.
pub struct Hasher {
    jobs: SyncSender<Job>,
    /// One permit per job running or queued: `workers + queue`.
    slots: Arc<Semaphore>,
    /// Places only [`Hasher::reserve_priority`] may take once `slots` are gone: a flood of
    /// strangers' logins fills the queue, the real user (a known login and address) and an
    /// admin setting a password still get a place.
    reserved: Arc<Semaphore>,
}

/// Places kept for priority work, per hashing thread.
const RESERVED_PER_WORKER: usize = 2;

/// The answer when every hashing thread is busy and the queue is full.
pub fn too_busy() -> ApiError {
    ApiError::new(
        Code::TooManyAttempts,
        "too many password checks in progress; try again in a second",
    )
    .retry_after(1)
}

/// A place on the hashing threads, taken before anything else is done for a login (so a
/// login that would be refused for a full queue does not read the database first).
pub struct Slot<'a> {
    hasher: &'a Hasher,
    permit: OwnedSemaphorePermit,
}

impl Slot<'_> {
    /// Whether `password` matches `stored` (`None`, an unknown login: the same work, `false`).
    pub async fn verify(
        self,
        stored: Option<String>,
        password: Password,
    ) -> Result<bool, ApiError> {
        self.run(move |p| p.verify(stored.as_deref(), &password))
            .await
    }

    async fn run<T: Send + 'static>(
        self,
        f: impl FnOnce(&Passwords) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        self.submit(f)?.await.map_err(|_| {
            ApiError::new(
                Code::InternalError,
                "a password hashing thread failed; the failure was logged on the server",
            )
        })
    }

    /// Queues `f` without waiting: the receiver gets its result.
    fn submit<T: Send + 'static>(
        self,
        f: impl FnOnce(&Passwords) -> T + Send + 'static,
    ) -> Result<oneshot::Receiver<T>, ApiError> {
        let (tx, rx) = oneshot::channel();
        let permit = self.permit;
        let job: Job = Box::new(move |p| {
            let _held = permit;
            // The caller went away (client disconnected): nobody needs this hash.
            if !tx.is_closed() {
                let _ = tx.send(f(p));
            }
        });
        match self.hasher.jobs.try_send(job) {
            Ok(()) => Ok(rx),
            // Not while permits bound the jobs to the channel's capacity.
            Err(TrySendError::Full(_)) => Err(too_busy()),
            Err(TrySendError::Disconnected(_)) => Err(ApiError::new(
                Code::InternalError,
                "password hashing stopped; the server is shutting down",
            )),
        }
    }
}

impl Hasher {
    /// Starts `workers` threads (at least one) sharing a queue of `queue` jobs. The threads
    /// end when the `Hasher` is dropped.
    pub fn start(passwords: Passwords, workers: usize, queue: usize) -> std::io::Result<Hasher> {
        let workers = workers.max(1);
        let reserved = workers * RESERVED_PER_WORKER;
        let (jobs, rx) = sync_channel::<Job>(workers + queue + reserved);
        let rx = Arc::new(Mutex::new(rx));
        let passwords = Arc::new(passwords);
        for n in 0..workers {
            let (rx, passwords) = (rx.clone(), passwords.clone());
            std::thread::Builder::new()
                .name(format!("tokend-hash-{n}"))
                .spawn(move || work(&rx, &passwords))?;
        }
        Ok(Hasher {
            jobs,
            slots: Arc::new(Semaphore::new(workers + queue)),
            reserved: Arc::new(Semaphore::new(reserved)),
        })
    }

    /// A place on the threads, or [`too_busy`] at once.
    pub fn reserve(&self) -> Result<Slot<'_>, ApiError> {
        self.take(&self.slots)
    }

    /// A place for priority work: an ordinary one, else one of the reserved places.
    pub fn reserve_priority(&self) -> Result<Slot<'_>, ApiError> {
        self.reserve().or_else(|_| self.take(&self.reserved))
    }

    fn take(&self, places: &Arc<Semaphore>) -> Result<Slot<'_>, ApiError> {
        let permit = places.clone().try_acquire_owned().map_err(|_| too_busy())?;
        Ok(Slot {
            hasher: self,
            permit,
        })
    }

    /// A PHC string for a new password (an admin's call: a priority place). Err is
    /// [`too_busy`] or an internal error.
    pub async fn hash(&self, password: Password) -> Result<String, ApiError> {
        self.reserve_priority()?
            .run(move |p| p.hash(&password))
            .await?
    }
}

fn work(rx: &Mutex<Receiver<Job>>, passwords: &Passwords) {
    loop {
        // Only the waiting thread holds the lock; it is released before the job runs.
        let job = match rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(passwords))).is_err() {
            log::error!("a password hashing job panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Argon2Cost;

    fn passwords() -> Passwords {
        Passwords::new(Argon2Cost {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap()
    }

    #[actix_web::test]
    async fn hashes_checks_and_refuses_when_full() {
        let hasher = Hasher::start(passwords(), 1, 4).unwrap();
        let hash = hasher
            .hash(Password::presented("correct horse".into()).unwrap())
            .await
            .unwrap();
        let bad = Password::presented("wrong horse".into()).unwrap();
        let slot = hasher.reserve().unwrap();
        assert!(!slot.verify(Some(hash.clone()), bad).await.unwrap());

        let good = Password::presented("correct horse".into()).unwrap();
        let slot = hasher.reserve().unwrap();
        assert!(slot.verify(Some(hash.clone()), good).await.unwrap());

        // One thread, held by a job that waits; four more fill the queue; the sixth is refused
        // before it is given anything to do.
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let blocker = hasher
            .reserve()
            .unwrap()
            .submit(move |_| {
                started_tx.send(()).unwrap();
                hold.recv().unwrap();
            })
            .unwrap();
        started.recv().unwrap();
        let queued: Vec<_> = (0..4)
            .map(|_| hasher.reserve().unwrap().submit(|_| ()).unwrap())
            .collect();
        let refused = hasher.reserve().err().unwrap();
        assert_eq!(refused.code(), Code::TooManyAttempts);
        // Priority work (a known login and address, an admin's new password) still gets the
        // reserved places, and only those.
        let priority: Vec<_> = (0..RESERVED_PER_WORKER)
            .map(|_| hasher.reserve_priority().unwrap().submit(|_| ()).unwrap())
            .collect();
        assert_eq!(
            hasher.reserve_priority().err().unwrap().code(),
            Code::TooManyAttempts
        );
        release.send(()).unwrap();
        for rx in priority {
            rx.await.unwrap();
        }
        blocker.await.unwrap();
        for rx in queued {
            rx.await.unwrap();
        }
        // The places are free again.
        assert!(hasher.reserve().is_ok());
    }
}
