//! Requests of one kind that arrive together, handed to one job as a batch.
//!
//! [`super::group_commit`] shares a transaction between jobs but still runs each job's
//! statements; a coalescer goes one step further for the requests that are all alike
//! (creating an account, revoking one): their items are collected into one `Vec`, so the job
//! can write them with one multi-row statement per table.
//!
//! No request waits for a batch to fill: a request that finds fewer than `max_in_flight`
//! batches under way starts one at once (a batch of one); requests that arrive while every
//! slot is busy wait for the next batch, which starts the moment a slot frees. Each request
//! is answered with its own result, only when its batch's job has returned (for a write: once
//! its transaction committed).

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use super::DbError;

/// The most items one batch takes (as [`super::group_commit::MAX_BATCH`]).
pub const MAX_ITEMS: usize = 256;

/// Collects items of one kind into batches.
pub struct Coalescer<R, T, E> {
    queue: Mutex<Queue<R, T, E>>,
    max_in_flight: usize,
}

struct Queue<R, T, E> {
    waiting: Vec<Waiter<R, T, E>>,
    in_flight: usize,
}

struct Waiter<R, T, E> {
    item: R,
    reply: oneshot::Sender<Result<T, E>>,
}

/// What a batch's job returns: an answer per item, in order, or one failure for all.
pub type BatchResult<T, E> = Result<Vec<Result<T, E>>, E>;

impl<R, T, E> Coalescer<R, T, E>
where
    R: 'static,
    T: 'static,
    E: Clone + From<DbError> + 'static,
{
    /// At most `max_in_flight` batches at once (1 for SQLite's single writer).
    pub fn new(max_in_flight: usize) -> Arc<Self> {
        Arc::new(Coalescer {
            queue: Mutex::new(Queue {
                waiting: Vec::new(),
                in_flight: 0,
            }),
            max_in_flight: max_in_flight.max(1),
        })
    }

    /// Hands `item` to the next batch, run by `job`, and waits for its own answer. The job of
    /// whichever request starts a batch runs it (on this worker, as a task of its own, so a
    /// caller that stops waiting does not cancel the others).
    pub async fn submit<F, Fut>(self: &Arc<Self>, item: R, job: F) -> Result<T, E>
    where
        F: Fn(Vec<R>) -> Fut + 'static,
        Fut: Future<Output = BatchResult<T, E>> + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut queue = self.lock();
            queue.waiting.push(Waiter { item, reply });
            if queue.in_flight < self.max_in_flight {
                queue.in_flight += 1;
                Some(queue.take())
            } else {
                None
            }
        };
        if let Some(batch) = start {
            actix_web::rt::spawn(drain(self.clone(), batch, job));
        }
        answer.await.unwrap_or_else(|_| {
            Err(DbError::Unavailable("the batch ended without an answer".into()).into())
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue<R, T, E>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<R, T, E> Queue<R, T, E> {
    fn take(&mut self) -> Vec<Waiter<R, T, E>> {
        let n = self.waiting.len().min(MAX_ITEMS);
        self.waiting.drain(..n).collect()
    }
}

/// Runs batches in one slot until nothing waits.
async fn drain<R, T, E, F, Fut>(
    coalescer: Arc<Coalescer<R, T, E>>,
    mut batch: Vec<Waiter<R, T, E>>,
    job: F,
) where
    R: 'static,
    T: 'static,
    E: Clone + From<DbError> + 'static,
    F: Fn(Vec<R>) -> Fut,
    Fut: Future<Output = BatchResult<T, E>>,
{
    // Frees the slot however this task ends (a panicking job included); requests still
    // waiting then get an error rather than waiting for a slot that never frees.
    let _slot = Slot(&coalescer.queue);
    loop {
        let (items, replies): (Vec<R>, Vec<_>) =
            batch.into_iter().map(|w| (w.item, w.reply)).unzip();
        let n = replies.len();
        match job(items).await {
            Ok(answers) if answers.len() == n => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    // The caller may have stopped waiting.
                    let _ = reply.send(answer);
                }
            }
            Ok(answers) => {
                let e = E::from(DbError::Corrupt(format!(
                    "a batch of {n} answered {}",
                    answers.len()
                )));
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
        let mut queue = coalescer.lock();
        if queue.waiting.is_empty() {
            return;
        }
        batch = queue.take();
    }
}

struct Slot<'a, R, T, E>(&'a Mutex<Queue<R, T, E>>);

impl<R, T, E> Drop for Slot<'_, R, T, E> {
    fn drop(&mut self) {
        let mut queue = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        queue.in_flight -= 1;
        if std::thread::panicking() {
            // Dropping the senders answers their callers ("ended without an answer").
            queue.waiting.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    #[derive(Debug, Clone, PartialEq)]
    struct Failed(String);
    impl From<DbError> for Failed {
        fn from(e: DbError) -> Self {
            Failed(e.to_string())
        }
    }

    #[actix_web::test]
    async fn a_lone_item_goes_at_once_and_later_ones_share_a_batch() {
        let batches: Rc<RefCell<Vec<Vec<u32>>>> = Rc::default();
        let c = Coalescer::<u32, u32, Failed>::new(1);
        let job = {
            let batches = batches.clone();
            move |items: Vec<u32>| {
                let batches = batches.clone();
                async move {
                    batches.borrow_mut().push(items.clone());
                    // Others arrive while this batch is under way.
                    actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
                    Ok(items
                        .into_iter()
                        .map(|i| {
                            if i == 3 {
                                Err(Failed("three".into()))
                            } else {
                                Ok(i * 10)
                            }
                        })
                        .collect())
                }
            }
        };
        let answers = futures_util::future::join_all((1..=5).map(|i| {
            let c = c.clone();
            let job = job.clone();
            async move { c.submit(i, job).await }
        }))
        .await;
        assert_eq!(
            answers,
            vec![Ok(10), Ok(20), Err(Failed("three".into())), Ok(40), Ok(50)]
        );
        assert_eq!(*batches.borrow(), vec![vec![1], vec![2, 3, 4, 5]]);
        assert_eq!(c.lock().in_flight, 0);
    }

    #[actix_web::test]
    async fn a_failed_batch_fails_each_of_its_items() {
        let c = Coalescer::<u32, u32, Failed>::new(2);
        let job = |_: Vec<u32>| async { Err(Failed("disk".into())) };
        assert_eq!(c.submit(1, job).await, Err(Failed("disk".into())));
        assert_eq!(c.lock().in_flight, 0);
    }
}
