//! The revoked token ids of the [`RevocationSet`](super::revocation::RevocationSet), compact:
//! each id is its 16 bytes with its expiry as 4 (20 bytes a slot), in the open-addressing
//! tables of std's `HashMap` (hashbrown: one control byte a slot, no allocation per entry),
//! split into shards so that a write locks a sixteenth of the set for a moment and never a
//! reader of the other shards. A million revocations take about 21 to 44 MB (hashbrown's
//! tables grow by doubling), where a concurrent map with an allocation per entry took 110 MB.
//!
//! Token ids are random (UUID v4) and only tokend mints the ones that are inserted, so the
//! first byte picks the shard; inside a shard, foldhash with a per-process seed.

use std::collections::HashMap;
use std::sync::RwLock;

use uuid::Uuid;

const SHARDS: usize = 16;

type Shard = HashMap<[u8; 16], u32, foldhash::fast::RandomState>;

/// Revoked token ids with their expiry (UNIX seconds), readable from every worker at once.
pub struct RevokedIds {
    shards: [RwLock<Shard>; SHARDS],
}

impl Default for RevokedIds {
    fn default() -> Self {
        RevokedIds {
            shards: std::array::from_fn(|_| RwLock::new(Shard::default())),
        }
    }
}

/// Expiry in the 4 bytes of a slot: UNIX seconds up to 2106, clamped (a token cannot live
/// that long; TTLs are bounded per scope).
fn exp_slot(exp: i64) -> u32 {
    exp.clamp(0, i64::from(u32::MAX)) as u32
}

impl RevokedIds {
    fn shard(&self, id: &Uuid) -> &RwLock<Shard> {
        &self.shards[usize::from(id.as_bytes()[0]) % SHARDS]
    }

    pub fn contains(&self, id: &Uuid) -> bool {
        // A poisoned lock only means a writer panicked mid-insert; the table itself is whole.
        let shard = self.shard(id).read().unwrap_or_else(|e| e.into_inner());
        shard.contains_key(id.as_bytes())
    }

    /// Adds `id` (expiring at `exp`, UNIX seconds); whether it was new.
    pub fn insert(&self, id: Uuid, exp: i64) -> bool {
        let mut shard = self.shard(&id).write().unwrap_or_else(|e| e.into_inner());
        shard.insert(*id.as_bytes(), exp_slot(exp)).is_none()
    }

    /// Adds many at once, taking each shard's lock once per call; how many were new.
    pub fn extend(&self, ids: impl IntoIterator<Item = (Uuid, i64)>) -> usize {
        let mut by_shard: [Vec<([u8; 16], u32)>; SHARDS] = Default::default();
        for (id, exp) in ids {
            by_shard[usize::from(id.as_bytes()[0]) % SHARDS].push((*id.as_bytes(), exp_slot(exp)));
        }
        let mut fresh = 0;
        for (lock, rows) in self.shards.iter().zip(by_shard) {
            if rows.is_empty() {
                continue;
            }
            let mut shard = lock.write().unwrap_or_else(|e| e.into_inner());
            shard.reserve(rows.len());
            for (id, exp) in rows {
                fresh += usize::from(shard.insert(id, exp).is_none());
            }
        }
        fresh
    }

    /// Makes room for `total` ids in all before a bulk load: the tables are sized once
    /// instead of doubling on the way, each doubling leaving the old table behind as garbage
    /// the allocator may keep (a million ids: 21 MB of it).
    pub fn reserve(&self, total: usize) {
        // Ids spread evenly over the shards; 2 % over the mean covers the spread.
        let per_shard = total / SHARDS + total / SHARDS / 50 + 16;
        for lock in &self.shards {
            let mut shard = lock.write().unwrap_or_else(|e| e.into_inner());
            let more = per_shard.saturating_sub(shard.len());
            shard.reserve(more);
        }
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets ids that expired before `before` (UNIX seconds), and gives the memory of a
    /// shard that shrank by more than half back.
    pub fn prune(&self, before: i64) {
        for lock in &self.shards {
            let mut shard = lock.write().unwrap_or_else(|e| e.into_inner());
            shard.retain(|_, exp| i64::from(*exp) >= before);
            if shard.len() < shard.capacity() / 4 {
                shard.shrink_to_fit();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_contains_prune() {
        let ids = RevokedIds::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert!(ids.insert(a, 100));
        assert!(!ids.insert(a, 100), "a second insert is not new");
        assert_eq!(ids.extend([(b, 200), (a, 100)]), 1);
        assert!(ids.contains(&a) && ids.contains(&b) && !ids.contains(&Uuid::new_v4()));
        assert_eq!(ids.len(), 2);
        ids.prune(150);
        assert!(!ids.contains(&a) && ids.contains(&b));
        ids.prune(i64::MAX);
        assert!(ids.is_empty());
        // Out-of-range expiries are clamped, not wrapped: a far-future one is kept.
        ids.insert(a, i64::MAX);
        ids.insert(b, -5);
        ids.prune(0);
        assert!(ids.contains(&a) && ids.contains(&b));
        ids.prune(1);
        assert!(ids.contains(&a) && !ids.contains(&b));
    }

    #[test]
    fn a_million_ids_fit_in_a_compact_table() {
        let ids = RevokedIds::default();
        ids.extend((0..1_000_000u32).map(|_| (Uuid::new_v4(), 2_000_000_000)));
        assert_eq!(ids.len(), 1_000_000);
        let slots: usize = ids
            .shards
            .iter()
            .map(|s| s.read().unwrap().capacity())
            .sum();
        // 21 bytes a slot (20 of data, 1 control); hashbrown keeps at most 7/8 full.
        let bytes = slots * 21;
        assert!(bytes <= 50 << 20, "{} MB for a million ids", bytes >> 20);
    }
}
