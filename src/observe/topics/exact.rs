//! `ExactIndex`: topic fingerprint → group of the exact topics, an open-addressing
//! table of 16-byte entries (four to a cache line). A lookup reads one line (rarely
//! two), whose address is known from the fingerprint alone, so the observer can
//! prefetch it while it hashes the message for fan-out; a general hash map gives no
//! such handle.
//!
//! An entry holds the first hash of the fingerprint (`h1`, forced odd so that 0 marks
//! an empty entry) and 30 bits of the second: two topics share an entry only if 93 of
//! their fingerprint bits agree, about n^2 / 2^94 for n topics (6e-17 for a million;
//! see the module doc of `topics`). The other 2 bits of that word are the topic's
//! fan-out flags (`get_for_fanout`), kept here because a PUBLISH reads this line anyway: the
//! observer decides from them, before hashing the payload, whether the message can
//! take part in fan-out matching. Linear probing, deletion by backward shift (no
//! tombstones), at most 3/4 full (it doubles beyond).

use crate::observe::GroupId;
use crate::observe::prefetch::prefetch;

#[derive(Clone, Copy, Default)]
#[repr(C)]
struct Entry {
    h1: u64,
    /// 30 bits of the second hash (`H2_MASK`) and the fan-out flags.
    h2: u32,
    gid: u32,
}

/// A copy of a message on this topic was seen leaving the broker.
const FAN_OUT_SEEN: u32 = 1 << 31;
/// A message on this topic entered the fan-out table.
const FAN_IN_TRACKED: u32 = 1 << 30;
const H2_MASK: u32 = FAN_IN_TRACKED - 1;

#[inline]
fn h2_bits(h2: u64) -> u32 {
    h2 as u32 & H2_MASK
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
        let (t, h2) = (tag(h1), h2_bits(h2));
        let m = self.mask();
        let mut i = self.home(h1);
        for _ in 0..self.entries.len() {
            let e = self.entries.get(i)?;
            if e.h1 == 0 {
                return None;
            }
            if e.h1 == t && e.h2 & H2_MASK == h2 {
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

    /// The group of `(h1, h2)`, and whether a PUBLISH on it (`outbound`: leaving the
    /// broker) takes part in fan-out matching, updating the topic's flags. An inbound
    /// message is remembered only once a copy of one was seen leaving (the topic has
    /// a subscriber); an outbound copy is looked up only once an inbound message was
    /// remembered (else nothing can match it).
    #[inline]
    pub fn get_for_fanout(&mut self, h1: u64, h2: u64, outbound: bool) -> Option<(GroupId, bool)> {
        let i = self.find(h1, h2)?;
        let e = self.entries.get_mut(i)?;
        let track = if outbound {
            e.h2 |= FAN_OUT_SEEN;
            e.h2 & FAN_IN_TRACKED != 0
        } else {
            let t = e.h2 & FAN_OUT_SEEN != 0;
            if t {
                e.h2 |= FAN_IN_TRACKED;
            }
            t
        };
        Some((GroupId(e.gid), track))
    }

    /// Inserts (or replaces) the group of fingerprint `(h1, h2)`, with no fan-out flags.
    pub fn insert(&mut self, h1: u64, h2: u64, g: GroupId) {
        if let Some(e) = self.find(h1, h2).and_then(|i| self.entries.get_mut(i)) {
            e.gid = g.0;
            e.h2 &= H2_MASK;
            return;
        }
        if (self.len + 1) * 4 > self.entries.len() * 3 {
            self.grow();
        }
        self.put(Entry {
            h1: tag(h1),
            h2: h2_bits(h2),
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
            let key = (tag(h1), h2_bits(h2));
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
                    let want = m.get(&(tag(h1), h2_bits(h2))).map(|&g| GroupId(g));
                    assert_eq!(t.get(h1, h2), want, "key {k}");
                }
            }
        }
        assert!(t.capacity() * 3 >= t.len() * 4);
    }

    /// The fan-out flags follow their entry through growth and backward shifts, and a
    /// new insert of the fingerprint starts without them.
    #[test]
    fn fanout_flags_follow_their_entry() {
        let mut t = ExactIndex::with_capacity(4);
        // Same home (equal high bits) so removals shift entries back.
        let fp = |k: u64| {
            (
                (7u64 << 40) | (k << 1),
                k.wrapping_mul(0x9e37_79b9) | (3 << 30),
            )
        };
        for k in 0..3 {
            let (h1, h2) = fp(k);
            t.insert(h1, h2, GroupId(k as u32));
        }
        let (h1, h2) = fp(1);
        // Inbound before any copy left: not tracked, and no flag set by it.
        assert_eq!(t.get_for_fanout(h1, h2, false), Some((GroupId(1), false)));
        assert_eq!(t.get_for_fanout(h1, h2, false), Some((GroupId(1), false)));
        // First copy out: nothing was remembered, so nothing to look up.
        assert_eq!(t.get_for_fanout(h1, h2, true), Some((GroupId(1), false)));
        // From now on inbound is remembered, and then outbound looked up.
        assert_eq!(t.get_for_fanout(h1, h2, false), Some((GroupId(1), true)));
        assert_eq!(t.get_for_fanout(h1, h2, true), Some((GroupId(1), true)));
        // The flags bits are not fingerprint bits: lookups still find the topic.
        assert_eq!(t.get(h1, h2), Some(GroupId(1)));
        // Backward shift after removing the entry before it, then growth.
        let (r1, r2) = fp(0);
        t.remove(r1, r2);
        for k in 3..40 {
            let (a, b) = fp(k);
            t.insert(a, b, GroupId(k as u32));
        }
        assert_eq!(t.get_for_fanout(h1, h2, true), Some((GroupId(1), true)));
        // Other topics kept no flags of it.
        let (a, b) = fp(2);
        assert_eq!(t.get_for_fanout(a, b, false), Some((GroupId(2), false)));
        // Re-inserted (a new group for the fingerprint): flags start over.
        t.insert(h1, h2, GroupId(99));
        assert_eq!(t.get_for_fanout(h1, h2, false), Some((GroupId(99), false)));
    }
}
