//! A budget of log lines a second, for lines any client can cause at will (a refused token).
//!
//! A flood of bad tokens must not become a flood of log lines: writing one cost the server
//! more than refusing the token (a cold bad-signature flood was as dear as cold valid tokens),
//! and unbounded lines fill disks and drown the lines that matter. The first
//! [`LogBudget::per_second`] lines of each second are written; the rest are counted, and the
//! next line written says how many were left out. Metrics count every event regardless.

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};

pub struct LogBudget {
    per_second: u32,
    second: AtomicI64,
    used: AtomicU32,
    left_out: AtomicU64,
}

/// What to do with one line.
#[derive(Debug, PartialEq, Eq)]
pub enum Take {
    /// Write it; `left_out` lines were not written since the last one that was.
    Write {
        left_out: u64,
    },
    Skip,
}

impl LogBudget {
    pub const fn new(per_second: u32) -> LogBudget {
        LogBudget {
            per_second,
            second: AtomicI64::new(i64::MIN),
            used: AtomicU32::new(0),
            left_out: AtomicU64::new(0),
        }
    }

    pub fn per_second(&self) -> u32 {
        self.per_second
    }

    /// One line at `now` (UNIX seconds). Approximate under contention at a second's turn (a
    /// few lines more or less), never unbounded.
    pub fn take(&self, now: i64) -> Take {
        let second = self.second.load(Ordering::Relaxed);
        // A new second, or the clock stepped back: a fresh budget either way.
        if now != second
            && self
                .second
                .compare_exchange(second, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.used.store(1, Ordering::Relaxed);
            return Take::Write {
                left_out: self.left_out.swap(0, Ordering::Relaxed),
            };
        }
        if self.used.fetch_add(1, Ordering::Relaxed) < self.per_second {
            return Take::Write {
                left_out: self.left_out.swap(0, Ordering::Relaxed),
            };
        }
        self.left_out.fetch_add(1, Ordering::Relaxed);
        Take::Skip
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_takes_its_budget_and_the_next_line_counts_the_rest() {
        let budget = LogBudget::new(3);
        let written = (0..100)
            .filter(|_| matches!(budget.take(1_000), Take::Write { .. }))
            .count();
        assert_eq!(written, 3);
        assert_eq!(budget.take(1_001), Take::Write { left_out: 97 });
        assert_eq!(budget.take(1_001), Take::Write { left_out: 0 });
        assert_eq!(budget.take(1_001), Take::Write { left_out: 0 });
        assert_eq!(budget.take(1_001), Take::Skip);
        assert_eq!(
            budget.take(900),
            Take::Write { left_out: 1 },
            "a clock stepped back does not silence the log"
        );
    }
}
