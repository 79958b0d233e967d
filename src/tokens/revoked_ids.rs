//! The revoked token ids of the [`RevocationSet`](super::revocation::RevocationSet), compact.
//!
//! Two parts, each id with its expiry (UNIX seconds) in 20 bytes:
//! - **the base**: an immutable array sorted by id, found through a table of where each
//!   16-bit prefix starts (ids are random UUIDs, so a million of them put about 15 in each
//!   of the 65,536 buckets). Exactly 20 bytes an id, no slack: a million take 20 MB. Readers
//!   take no lock (an `ArcSwap`).
//! - **the recent**: revocations since the base was built, in 16 shards of std's `HashMap`
//!   (hashbrown), so a write locks a sixteenth of them for a moment.
//!
//! The sync task folds the recent into a new base once they are an eighth of it
//! ([`RevokedIds::merge_if_due`]): the new base is published before the folded ids leave the
//! recent, so a reader always finds a revoked id in one part or the other.
//!
//! Token ids are random (UUID v4) and only tokend mints the ones that are inserted, so the
//! first byte picks the shard; inside a shard, foldhash with a per-process seed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use arc_swap::ArcSwap;
use uuid::Uuid;

const SHARDS: usize = 16;

type Shard = HashMap<[u8; 16], u32, foldhash::fast::RandomState>;

/// One id and its expiry: 20 bytes (alignment 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    id: [u8; 16],
    exp: u32,
}

/// The sorted, immutable part.
struct Base {
    entries: Vec<Entry>,
    /// `starts[p]..starts[p + 1]`: the entries whose id begins with the 16 bits `p`.
    starts: Vec<u32>,
}

fn prefix(id: &[u8; 16]) -> usize {
    usize::from(u16::from_be_bytes([id[0], id[1]]))
}

impl Base {
    fn empty() -> Base {
        Base::from_sorted(Vec::new())
    }

    /// `entries` sorted by id, without duplicates.
    fn from_sorted(mut entries: Vec<Entry>) -> Base {
        entries.shrink_to_fit();
        let mut starts = vec![0u32; (1 << 16) + 1];
        for e in &entries {
            starts[prefix(&e.id) + 1] += 1;
        }
        for p in 0..(1 << 16) {
            starts[p + 1] += starts[p];
        }
        Base { entries, starts }
    }

    fn find(&self, id: &[u8; 16]) -> Option<&Entry> {
        let p = prefix(id);
        let bucket = &self.entries[self.starts[p] as usize..self.starts[p + 1] as usize];
        bucket
            .binary_search_by(|e| e.id.cmp(id))
            .ok()
            .map(|i| &bucket[i])
    }
}

/// Collects the ids of a bulk load; [`BaseLoader::finish`] makes them (with the current base)
/// the new base.
pub struct BaseLoader<'a> {
    ids: &'a RevokedIds,
    entries: Vec<Entry>,
}

impl BaseLoader<'_> {
    pub fn push(&mut self, id: Uuid, exp: i64) {
        self.entries.push(Entry {
            id: *id.as_bytes(),
            exp: exp_slot(exp),
        });
    }

    /// Publishes the new base; how many ids it gained.
    pub fn finish(self) -> usize {
        let _rebuild = self.ids.rebuild.lock().unwrap_or_else(|e| e.into_inner());
        self.ids.publish_with(self.entries)
    }
}

/// Revoked token ids with their expiry (UNIX seconds), readable from every worker at once.
pub struct RevokedIds {
    base: ArcSwap<Base>,
    recent: [RwLock<Shard>; SHARDS],
    /// One rebuild of the base at a time (merges and prunes).
    rebuild: Mutex<()>,
}

impl Default for RevokedIds {
    fn default() -> Self {
        RevokedIds {
            base: ArcSwap::from_pointee(Base::empty()),
            recent: std::array::from_fn(|_| RwLock::new(Shard::default())),
            rebuild: Mutex::new(()),
        }
    }
}

/// Expiry in the 4 bytes of a slot: UNIX seconds up to 2106, clamped (a token cannot live
/// that long; TTLs are bounded per scope).
fn exp_slot(exp: i64) -> u32 {
    exp.clamp(0, i64::from(u32::MAX)) as u32
}

// A poisoned lock only means a writer panicked mid-insert; the table itself is whole.
fn read(shard: &RwLock<Shard>) -> std::sync::RwLockReadGuard<'_, Shard> {
    shard.read().unwrap_or_else(|e| e.into_inner())
}

fn write(shard: &RwLock<Shard>) -> std::sync::RwLockWriteGuard<'_, Shard> {
    shard.write().unwrap_or_else(|e| e.into_inner())
}

/// Which shard of the recent holds `id`.
fn shard_index(id: &[u8; 16]) -> usize {
    usize::from(id[0]) % SHARDS
}

impl RevokedIds {
    fn shard(&self, id: &[u8; 16]) -> &RwLock<Shard> {
        &self.recent[shard_index(id)]
    }

    /// Publishes the current base with `more` ids added (sorted, duplicates once); how many
    /// it gained. The caller holds `rebuild`.
    fn publish_with(&self, mut more: Vec<Entry>) -> usize {
        let old = self.base.load_full();
        more.extend_from_slice(&old.entries);
        more.sort_unstable_by_key(|e| e.id);
        more.dedup_by(|a, b| a.id == b.id);
        let added = more.len() - old.entries.len();
        self.base.store(Arc::new(Base::from_sorted(more)));
        added
    }

    pub fn contains(&self, id: &Uuid) -> bool {
        let id = id.as_bytes();
        // The recent first, then the base: a merge publishes the new base before it removes
        // the folded ids from the recent, so an id gone from the recent is in the base this
        // load sees. (The other order can miss an id that moves between the two looks.)
        read(self.shard(id)).contains_key(id) || self.base.load().find(id).is_some()
    }

    /// Adds `id` (expiring at `exp`, UNIX seconds); whether it was new.
    pub fn insert(&self, id: Uuid, exp: i64) -> bool {
        let id = id.as_bytes();
        if self.base.load().find(id).is_some() {
            return false;
        }
        write(self.shard(id)).insert(*id, exp_slot(exp)).is_none()
    }

    /// Adds many at once, taking each shard's lock once per call; how many were new.
    pub fn extend(&self, ids: impl IntoIterator<Item = (Uuid, i64)>) -> usize {
        let base = self.base.load();
        let mut by_shard: [Vec<([u8; 16], u32)>; SHARDS] = Default::default();
        for (id, exp) in ids {
            let id = *id.as_bytes();
            if base.find(&id).is_none() {
                by_shard[shard_index(&id)].push((id, exp_slot(exp)));
            }
        }
        let mut fresh = 0;
        for (lock, rows) in self.recent.iter().zip(by_shard) {
            if rows.is_empty() {
                continue;
            }
            let mut shard = write(lock);
            shard.reserve(rows.len());
            for (id, exp) in rows {
                fresh += usize::from(shard.insert(id, exp).is_none());
            }
        }
        fresh
    }

    /// The start-up load: what is pushed into the returned loader becomes the base when it
    /// is finished (sorted there), in exactly 20 bytes an id; `expected` sizes it up front.
    pub fn loader(&self, expected: usize) -> BaseLoader<'_> {
        BaseLoader {
            ids: self,
            entries: Vec::with_capacity(expected),
        }
    }

    fn recent_len(&self) -> usize {
        self.recent.iter().map(|s| read(s).len()).sum()
    }

    pub fn len(&self) -> usize {
        self.base.load().entries.len() + self.recent_len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Folds the recent ids into a new base once they are an eighth of it (and at least
    /// 4,096): lookups stay one search of the array and one of a small table. The new base
    /// is published first, then the folded ids leave the recent: a reader never misses one.
    /// Returns whether it merged. Called by the sync task, never on a request.
    pub fn merge_if_due(&self) -> bool {
        let recent = self.recent_len();
        let base_len = self.base.load().entries.len();
        if recent < 4_096 || recent < base_len / 8 {
            return false;
        }
        let _rebuild = self.rebuild.lock().unwrap_or_else(|e| e.into_inner());
        let folded: Vec<Entry> = self
            .recent
            .iter()
            .flat_map(|shard| {
                read(shard)
                    .iter()
                    .map(|(id, exp)| Entry { id: *id, exp: *exp })
                    .collect::<Vec<_>>()
            })
            .collect();
        self.publish_with(folded.clone());
        // Only now: each folded id is in the published base.
        for (i, lock) in self.recent.iter().enumerate() {
            let mut shard = write(lock);
            for e in folded.iter().filter(|e| shard_index(&e.id) == i) {
                shard.remove(&e.id);
            }
        }
        true
    }

    /// Forgets ids that expired before `before` (UNIX seconds): the recent at once, the base
    /// rebuilt when an eighth of it has expired (until then an expired id may stay in it,
    /// and in `len`; its token is refused as expired anyway).
    pub fn prune(&self, before: i64) {
        for lock in &self.recent {
            let mut shard = write(lock);
            shard.retain(|_, exp| i64::from(*exp) >= before);
            if shard.len() < shard.capacity() / 4 {
                shard.shrink_to_fit();
            }
        }
        let base = self.base.load_full();
        let expired = base
            .entries
            .iter()
            .filter(|e| i64::from(e.exp) < before)
            .count();
        if expired == 0 || expired < base.entries.len() / 8 {
            return;
        }
        let _rebuild = self.rebuild.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.base.load_full();
        let kept: Vec<Entry> = current
            .entries
            .iter()
            .filter(|e| i64::from(e.exp) >= before)
            .copied()
            .collect();
        self.base.store(Arc::new(Base::from_sorted(kept)));
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
    fn a_million_ids_take_twenty_bytes_each() {
        let ids = RevokedIds::default();
        let mut loader = ids.loader(1_000_000);
        let all: Vec<Uuid> = (0..1_000_000).map(|_| Uuid::new_v4()).collect();
        for id in &all {
            loader.push(*id, 2_000_000_000);
        }
        assert_eq!(loader.finish(), 1_000_000);
        assert_eq!(ids.len(), 1_000_000);
        let base = ids.base.load();
        assert_eq!(std::mem::size_of::<Entry>(), 20);
        assert!(base.entries.capacity() <= 1_000_000, "no slack");
        assert!(all.iter().step_by(97).all(|id| ids.contains(id)));
        assert!((0..10_000).all(|_| !ids.contains(&Uuid::new_v4())));
    }

    /// Random inserts, loads, merges and prunes agree with a plain map at every step.
    #[test]
    fn agrees_with_a_plain_map() {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        let ids = RevokedIds::default();
        let mut model: std::collections::HashMap<Uuid, i64> = Default::default();
        let mut known: Vec<Uuid> = Vec::new();
        let mut pruned: std::collections::HashSet<Uuid> = Default::default();
        for step in 0..200 {
            match rng.gen_range(0..10) {
                0..=5 => {
                    for _ in 0..rng.gen_range(1..500) {
                        let (id, exp) = (Uuid::new_v4(), rng.gen_range(0..1_000));
                        assert_eq!(ids.insert(id, exp), !model.contains_key(&id));
                        model.entry(id).or_insert(exp);
                        known.push(id);
                    }
                }
                6 => {
                    let mut loader = ids.loader(100);
                    for _ in 0..rng.gen_range(0..800) {
                        let (id, exp) = (Uuid::new_v4(), rng.gen_range(0..1_000));
                        loader.push(id, exp);
                        model.entry(id).or_insert(exp);
                        known.push(id);
                    }
                    loader.finish();
                }
                7 | 8 => {
                    ids.merge_if_due();
                }
                _ => {
                    let before = rng.gen_range(0..(step + 1) * 2);
                    ids.prune(before);
                    model.retain(|id, exp| {
                        let keep = *exp >= before;
                        if !keep {
                            pruned.insert(*id);
                        }
                        keep
                    });
                }
            }
            // Never a revoked id missed; an expired one may linger until the base is rebuilt.
            assert!(ids.len() >= model.len(), "step {step}");
            for id in known
                .iter()
                .rev()
                .take(300)
                .chain(known.iter().step_by(101))
            {
                if model.contains_key(id) {
                    assert!(ids.contains(id), "step {step}: a revoked id is missing");
                } else {
                    assert!(
                        !ids.contains(id) || pruned.contains(id),
                        "step {step}: {id} was never revoked"
                    );
                }
            }
        }
    }

    /// While the sync task merges, every id inserted before a check is found by it.
    #[test]
    fn readers_never_miss_an_id_during_a_merge() {
        let ids = Arc::new(RevokedIds::default());
        let inserted = Arc::new(Mutex::new(Vec::<Uuid>::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (ids, inserted, stop) = (ids.clone(), inserted.clone(), stop.clone());
            std::thread::spawn(move || {
                for _ in 0..20 {
                    for _ in 0..2_000 {
                        let id = Uuid::new_v4();
                        ids.insert(id, 2_000_000_000);
                        inserted.lock().unwrap().push(id);
                    }
                    ids.merge_if_due();
                }
                stop.store(true, std::sync::atomic::Ordering::SeqCst);
            })
        };
        let mut checks = 0u64;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            let sample: Vec<Uuid> = {
                let all = inserted.lock().unwrap();
                all.iter().rev().take(200).copied().collect()
            };
            for id in sample {
                assert!(ids.contains(&id), "an inserted id was missed");
                checks += 1;
            }
        }
        writer.join().unwrap();
        assert!(checks > 0);
        assert_eq!(ids.len(), 40_000);
    }
}
