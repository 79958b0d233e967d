//! Blocking database polls with a deadline, for the background syncs (revocations, signing
//! keys). A poll that outlives its deadline counts as failed; its thread may stay stuck in a
//! connection for as long as the fault lasts (a frozen path whose kernel still acknowledges
//! keeps even `tcp_user_timeout` from firing), so it is set aside, and a new poll starts beside
//! it once it is twice its deadline old, on a new connection: at most [`MAX_STUCK`] at a time.

use std::time::{Duration, Instant};

use actix_web::rt::task::JoinHandle;

/// Stuck polls (threads) allowed at a time before no new one starts.
pub const MAX_STUCK: usize = 4;

/// Why a poll gave no result.
#[derive(Debug)]
pub enum PollFailure {
    /// An earlier poll is still stuck and it is too soon (or too many) to start another.
    StillStuck,
    /// This poll did not finish within its deadline; it was set aside.
    TimedOut(Duration),
    /// The poll's thread panicked.
    Panicked(String),
}

impl std::fmt::Display for PollFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PollFailure::StillStuck => {
                f.write_str("the previous poll is still waiting for the database")
            }
            PollFailure::TimedOut(limit) => write!(
                f,
                "the database did not answer within {}s",
                limit.as_secs_f64()
            ),
            PollFailure::Panicked(e) => write!(f, "the poll task failed: {e}"),
        }
    }
}

/// The polls of one sync loop.
pub struct BoundedPolls<T> {
    stuck: Vec<(JoinHandle<T>, Instant, Duration)>,
}

impl<T: Send + 'static> Default for BoundedPolls<T> {
    fn default() -> Self {
        BoundedPolls { stuck: Vec::new() }
    }
}

impl<T: Send + 'static> BoundedPolls<T> {
    /// Runs `poll` on the blocking pool and waits for it at most `limit`.
    pub async fn run(
        &mut self,
        limit: Duration,
        poll: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PollFailure> {
        // A stuck poll that has ended by now (its connection gave up) is forgotten.
        self.stuck.retain(|(handle, _, _)| !handle.is_finished());
        let too_soon = self
            .stuck
            .last()
            .is_some_and(|(_, since, limit)| since.elapsed() < 2 * *limit);
        if too_soon || self.stuck.len() >= MAX_STUCK {
            return Err(PollFailure::StillStuck);
        }
        let started = Instant::now();
        let mut handle = actix_web::rt::task::spawn_blocking(poll);
        match tokio::time::timeout(limit, &mut handle).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(PollFailure::Panicked(e.to_string())),
            Err(_) => {
                self.stuck.push((handle, started, limit));
                Err(PollFailure::TimedOut(limit))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn a_stuck_poll_is_set_aside_and_replaced_after_twice_its_deadline() {
        let mut polls = BoundedPolls::default();
        let limit = Duration::from_millis(50);
        let hung = polls
            .run(limit, || {
                std::thread::sleep(Duration::from_millis(400));
                0
            })
            .await;
        assert!(matches!(hung, Err(PollFailure::TimedOut(_))));
        assert!(matches!(
            polls.run(limit, || 1).await,
            Err(PollFailure::StillStuck)
        ));
        tokio::time::sleep(2 * limit).await;
        assert!(matches!(polls.run(limit, || 7).await, Ok(7)));
    }
}
