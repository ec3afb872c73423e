//! `ExactIndex`: topic fingerprint → group of the exact topics, an open-addressing
//! table of 16-byte entries (four to a cache line). A lookup reads one line (rarely
//! two), whose address is known from the fingerprint alone, so the observer can
//! prefetch it while it hashes the message for fan-out; a general hash map gives no
//! such handle.
//!
//! An entry holds the first hash of the fingerprint (`h1`, forced odd so that 0 marks
//! an empty entry) and 32 bits of the second: two topics share an entry only if 95 of
//! their fingerprint bits agree, about n^2 / 2^96 for n topics (1e-17 for a million;
//! see the module doc of `topics`). Linear probing, deletion by backward shift (no
//! tombstones), at most 3/4 full (it doubles beyond).

use crate::observe::GroupId;
use crate::observe::prefetch::prefetch;

#[derive(Clone, Copy, Default)]
#[repr(C)]
struct Entry {
    h1: u64,
    h2: u32,
    gid: u32,
}

pub struct ExactIndex {
    entries: Vec<Entry>,
    len: usize,
}

#[inline]
fn tag(h1: u64) -> u64 {
    h1 | 1
}

impl ExactIndex {
    /// Room for `n` topics without growing.
    pub fn with_capacity(n: usize) -> Self {
        let size = (n.saturating_add(n / 3) + 1).next_power_of_two().max(16);
        ExactIndex {
            entries: vec![Entry::default(); size],
            len: 0,
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Entries allocated.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    #[inline]
    fn mask(&self) -> usize {
        self.entries.len() - 1
    }

    #[inline]
    fn home(&self, h1: u64) -> usize {
        // The low bits went into the forced-odd tag; the high ones pick the entry.
        ((h1 >> 32) as usize ^ (h1 >> 7) as usize) & self.mask()
    }

    /// Starts fetching the line a lookup of `h1` reads first.
    #[inline]
    pub fn prefetch(&self, h1: u64) {
        if let Some(e) = self.entries.get(self.home(h1)) {
            prefetch((e as *const Entry).cast());
        }
    }

    #[inline]
    fn find(&self, h1: u64, h2: u64) -> Option<usize> {
        let (t, h2) = (tag(h1), h2 as u32);
        let m = self.mask();
        let mut i = self.home(h1);
        for _ in 0..self.entries.len() {
            let e = self.entries.get(i)?;
            if e.h1 == 0 {
                return None;
            }
            if e.h1 == t && e.h2 == h2 {
                return Some(i);
            }
            i = (i + 1) & m;
        }
        None
    }

    #[inline]
    pub fn get(&self, h1: u64, h2: u64) -> Option<GroupId> {
        self.find(h1, h2)
            .and_then(|i| self.entries.get(i))
            .map(|e| GroupId(e.gid))
    }

    /// Inserts (or replaces) the group of fingerprint `(h1, h2)`.
    pub fn insert(&mut self, h1: u64, h2: u64, g: GroupId) {
        if let Some(e) = self.find(h1, h2).and_then(|i| self.entries.get_mut(i)) {
            e.gid = g.0;
            return;
        }
        if (self.len + 1) * 4 > self.entries.len() * 3 {
            self.grow();
        }
        self.put(Entry {
            h1: tag(h1),
            h2: h2 as u32,
            gid: g.0,
        });
        self.len += 1;
    }

    /// Places `e` at the first empty entry of its probe path.
    fn put(&mut self, e: Entry) {
        let m = self.mask();
        let mut i = self.home(e.h1);
        for _ in 0..self.entries.len() {
            match self.entries.get_mut(i) {
                Some(x) if x.h1 == 0 => {
                    *x = e;
                    return;
                }
                Some(_) => i = (i + 1) & m,
                None => return,
            }
        }
    }

    #[cold]
    fn grow(&mut self) {
        let size = (self.entries.len() * 2).max(16);
        let old = std::mem::replace(&mut self.entries, vec![Entry::default(); size]);
        for e in old.into_iter().filter(|e| e.h1 != 0) {
            self.put(e);
        }
    }

    pub fn remove(&mut self, h1: u64, h2: u64) {
        let Some(i) = self.find(h1, h2) else {
            return;
        };
        self.len -= 1;
        // Backward shift: later entries of the cluster move into the hole when it lies
        // on their probe path, so every entry stays reachable from its home.
        let m = self.mask();
        let mut hole = i;
        let mut j = i;
        for _ in 0..self.entries.len() {
            j = (j + 1) & m;
            let e = self.entries.get(j).copied().unwrap_or_default();
            if e.h1 == 0 {
                break;
            }
            let home = self.home(e.h1);
            if (j.wrapping_sub(home) & m) >= (j.wrapping_sub(hole) & m) {
                if let Some(h) = self.entries.get_mut(hole) {
                    *h = e;
                }
                hole = j;
            }
        }
        if let Some(h) = self.entries.get_mut(hole) {
            *h = Entry::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Against a `HashMap`, through growth and many removals (backward shifts).
    #[test]
    fn agrees_with_a_map() {
        let mut t = ExactIndex::with_capacity(8);
        let mut m: HashMap<(u64, u32), u32> = HashMap::new();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for step in 0..100_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Few distinct keys (so removals hit), clustered homes (same high bits).
            let k = x % 3000;
            let (h1, h2) = ((k << 40) | (k % 7), k.wrapping_mul(0x9e37_79b9));
            let key = (tag(h1), h2 as u32);
            if x >> 62 == 0 {
                t.remove(h1, h2);
                m.remove(&key);
            } else {
                t.insert(h1, h2, GroupId(step));
                m.insert(key, step);
            }
            assert_eq!(t.len(), m.len());
            if step % 5000 == 0 {
                for k in 0..3000u64 {
                    let (h1, h2) = ((k << 40) | (k % 7), k.wrapping_mul(0x9e37_79b9));
                    let want = m.get(&(tag(h1), h2 as u32)).map(|&g| GroupId(g));
                    assert_eq!(t.get(h1, h2), want, "key {k}");
                }
            }
        }
        assert!(t.capacity() * 3 >= t.len() * 4);
    }
}
