//! Which verified tokens the cache takes in: those verified twice.
//!
//! A token a gateway presents again is worth remembering (a hit skips the signature and the
//! JSON). A token presented once is not: remembering it costs an allocation, a copy of the
//! token, fresh memory the kernel must zero, and a place a warm token may need. In a profile
//! of new tokens arriving at 34,500/s, memory for cache entries that were never hit was a
//! sixth of the server's cycles (bench/README.md, "Where the time goes").
//!
//! The [`Doorkeeper`] (the admission filter of TinyLFU) remembers a keyed 64-bit hash of each
//! verified token in a fixed table of [`SLOTS`] words (the `/auth/verify` answer memo keeps a
//! smaller one per worker, by token id: `routes/verified_answer.rs`); the cache takes a token when the table
//! still holds its hash, that is on its second verification. It allocates nothing after
//! start. A collision (or a hash forged to collide, which the random key prevents) can only
//! admit a token that was just verified in full, so it costs a cache place, never a check.
//! Only verified tokens are noted: a flood of bad ones cannot fill it, nor the cache.

use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};

/// Tokens remembered as seen once (512 KiB). New tokens arriving at 50,000/s overwrite a slot
/// about every 1.3 s, so a token used again within a second or so is admitted at once; one
/// used less often is admitted on a later pair of close uses, and verified in full meanwhile.
pub const SLOTS: usize = 1 << 16;

pub struct Doorkeeper {
    slots: Box<[AtomicU64]>,
    hasher: foldhash::quality::RandomState,
}

impl Default for Doorkeeper {
    fn default() -> Doorkeeper {
        Doorkeeper::with_slots(SLOTS)
    }
}

impl Doorkeeper {
    /// A doorkeeper that remembers `slots` keys, rounded up to a power of two (so a slot is
    /// found with a mask, not a division).
    pub fn with_slots(slots: usize) -> Doorkeeper {
        Doorkeeper {
            slots: (0..slots.max(1).next_power_of_two())
                .map(|_| AtomicU64::new(0))
                .collect(),
            hasher: foldhash::quality::RandomState::default(),
        }
    }

    /// Notes that `key` (a token, a token id) was verified; true if it was noted before (and
    /// not overwritten since by another key): the cache should take it.
    pub fn admit<K: Hash + ?Sized>(&self, key: &K) -> bool {
        // Never 0, the value of an empty slot.
        let hash = self.hasher.hash_one(key) | 1;
        let slot = &self.slots[(hash >> 32) as usize & (self.slots.len() - 1)];
        if slot.load(Ordering::Relaxed) == hash {
            return true;
        }
        slot.store(hash, Ordering::Relaxed);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_admitted_on_its_second_verification() {
        let door = Doorkeeper::default();
        assert!(!door.admit("a.b.c"));
        assert!(door.admit("a.b.c"));
        assert!(door.admit("a.b.c"), "and on every one after");
        assert!(!door.admit("a.b.d"), "another token is not");
    }

    #[test]
    fn any_key_and_size() {
        let door = Doorkeeper::with_slots(8);
        let id = uuid::Uuid::new_v4();
        assert!(!door.admit(&id));
        assert!(door.admit(&id));
        let one = Doorkeeper::with_slots(0);
        assert!(
            !one.admit(&id) && one.admit(&id),
            "a table of one slot still admits"
        );
    }
}
