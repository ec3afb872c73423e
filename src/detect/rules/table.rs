//! Bounded per-key state for the rules: keys come from the wire (addresses, client ids,
//! usernames), so every table has a cap, evicts the least recently touched entry when
//! full, and counts what it evicted.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// The flow table is looked up once per packet: SipHash cost more than the rule checks
/// themselves. foldhash is randomly seeded per table (a sender cannot aim for
/// collisions) and several times cheaper; nothing depends on iteration order.
type Hasher = foldhash::fast::RandomState;

pub struct BoundedTable<K, V> {
    map: HashMap<K, (V, u64), Hasher>,
    cap: usize,
    /// Entries evicted because the table was full.
    pub evicted: u64,
}

impl<K: Hash + Eq + Clone, V> BoundedTable<K, V> {
    pub fn new(cap: usize) -> Self {
        BoundedTable {
            map: HashMap::default(),
            cap: cap.max(1),
            evicted: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn contains(&self, k: &K) -> bool {
        self.map.contains_key(k)
    }

    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        self.map.get_mut(k).map(|(v, _)| v)
    }

    /// The entry for `k`, created with `make` if absent; `now_ns` marks it as touched.
    /// A full table first drops entries untouched for `stale_ns`, then the least
    /// recently touched one (a linear scan, paid only when full).
    pub fn entry(&mut self, k: &K, now_ns: u64, stale_ns: u64, make: impl FnOnce() -> V) -> &mut V {
        // The length test first: below the cap (the usual case) one hash lookup, not two.
        if self.map.len() >= self.cap && !self.map.contains_key(k) {
            let before = self.map.len();
            self.map
                .retain(|_, (_, t)| now_ns.saturating_sub(*t) < stale_ns);
            if self.map.len() >= self.cap {
                let oldest = self
                    .map
                    .iter()
                    .min_by_key(|(_, (_, t))| *t)
                    .map(|(k, _)| k.clone());
                if let Some(o) = oldest {
                    self.map.remove(&o);
                }
            }
            self.evicted += (before - self.map.len()) as u64;
        }
        let e = self
            .map
            .entry(k.clone())
            .or_insert_with(|| (make(), now_ns));
        e.1 = now_ns;
        &mut e.0
    }

    pub fn remove(&mut self, k: &K) -> Option<V> {
        self.map.remove(k).map(|(v, _)| v)
    }

    pub fn retain(&mut self, mut f: impl FnMut(&K, &mut V) -> bool) {
        self.map.retain(|k, (v, _)| f(k, v));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter().map(|(k, (v, _))| (k, v))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        self.map.iter_mut().map(|(k, (v, _))| (k, v))
    }
}

/// The times of the last `n` occurrences, for "at least `n` within `window`": exact, and
/// at most `n` timestamps per key.
#[derive(Debug, Default)]
pub struct CountWindow {
    ts: VecDeque<u64>,
}

impl CountWindow {
    /// Records one occurrence; returns how many fall within `window_ns` ending now
    /// (never more than `n`).
    pub fn push(&mut self, ts_ns: u64, n: u32, window_ns: u64) -> usize {
        let n = n.max(1) as usize;
        while self.ts.len() >= n {
            self.ts.pop_front();
        }
        self.ts.push_back(ts_ns);
        while self
            .ts
            .front()
            .is_some_and(|&t| ts_ns.saturating_sub(t) >= window_ns)
        {
            self.ts.pop_front();
        }
        self.ts.len()
    }

    pub fn first(&self) -> Option<u64> {
        self.ts.front().copied()
    }

    pub fn times(&self) -> impl Iterator<Item = u64> + '_ {
        self.ts.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_window_is_exact_at_the_edge() {
        let mut w = CountWindow::default();
        // 3 within 10 ns: t=0,5,9 -> 3; t=10 drops t=0 (10 - 0 >= 10).
        assert_eq!(w.push(0, 3, 10), 1);
        assert_eq!(w.push(5, 3, 10), 2);
        assert_eq!(w.push(9, 3, 10), 3);
        assert_eq!(w.push(10, 3, 10), 3);
        assert_eq!(w.push(30, 3, 10), 1);
    }

    #[test]
    fn table_evicts_least_recent_and_counts() {
        let mut t: BoundedTable<u32, u32> = BoundedTable::new(2);
        *t.entry(&1, 1, u64::MAX, || 0) += 1;
        *t.entry(&2, 2, u64::MAX, || 0) += 1;
        *t.entry(&1, 3, u64::MAX, || 0) += 1;
        t.entry(&3, 4, u64::MAX, || 0);
        assert_eq!(t.len(), 2);
        assert_eq!(t.evicted, 1);
        assert!(t.get_mut(&2).is_none());
        assert_eq!(t.get_mut(&1), Some(&mut 2));
        // Stale entries go first, all of them.
        t.entry(&4, 100, 10, || 0);
        assert_eq!(t.len(), 1);
        assert_eq!(t.evicted, 3);
    }
}
