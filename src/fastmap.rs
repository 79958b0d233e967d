//! The concurrent map of the hot path.

/// Lock-free reads (papaya) with a fast, randomly seeded hash (foldhash). Its keys are token
/// texts and token ids tokend signed itself.
pub type FastMap<K, V> = papaya::HashMap<K, V, foldhash::fast::RandomState>;
