//! `FifoMap`: a capped map whose entries are kept in insertion order in one ring buffer,
//! found through a small open-addressing index. For tables whose entries are inserted
//! at the back and leave mostly from the front or from near it (requests waiting for
//! their answer, inbound messages waiting for their copies).
//!
//! Why not a hash map plus a linked list (`OrderedMap`): every insert and removal there
//! touches the map's bucket, a slab node and its two neighbours, scattered over memory.
//! Here an insert writes the ring's tail (the line just written by the previous insert)
//! and one index word; the index holds 8 bytes per slot, so at the sizes these tables
//! really run at (hundreds to a few thousand live entries) it stays in the L1/L2 cache.
//!
//! Layout. `ring` holds positions `head..tail` (counters; slot = counter mod ring size).
//! A removed entry leaves a hole (`None`) in the ring, skipped when it reaches the front.
//! The index maps a key to its slot: `0` = empty, else `(tag << 32) | (slot + 1)` with
//! `tag` the key's 32-bit `FifoKey::tag` (which also picks the home index slot, so a
//! slot's home is known without the key). Linear probing, deletion by backward shift (no
//! tombstones), at most half full.
//!
//! Size. When the ring's positions run out it is rebuilt (holes dropped, order kept):
//! doubled while more than half of them hold live entries, else at eight times the
//! live entries (so one old entry pinning the front costs a rebuild per 7 × live
//! inserts, and a past burst does not pin its memory). It never exceeds `max_ring`,
//! the power of two at or above 5/4 of `cap`: a full ring there is rebuilt in place,
//! which frees at least a fifth of it. Rebuilds are O(ring) and at least ring/5
//! inserts apart: O(1) amortised. Worst case, a map holds `max_ring` ring slots and
//! twice as many 8-byte index words; at the rates these tables really see it holds a
//! few thousand. The live entries never exceed `cap`: inserting into a full map first
//! pushes out the front (oldest) entry and hands it back.

use std::hash::BuildHasher;

/// `pop_front_while` prefetches the index probe of the entry this far behind the front.
const DRAIN_AHEAD: usize = 8;

/// Smallest ring allocated.
const MIN_RING: usize = 16;

/// A key of a `FifoMap`: equality plus a cheap 32-bit tag for the index, mixed with a
/// per-table random seed (keys come from the wire; the seed keeps senders from aiming
/// at one probe cluster). Any function of the key works; the index layout changes
/// nothing observable, only speed.
pub trait FifoKey: Eq {
    fn tag(&self, seed: u64) -> u32;
}

/// Multiply-xorshift finaliser of a 64-bit value with the seed: high bits well mixed.
#[inline]
pub fn mix_tag(x: u64, seed: u64) -> u32 {
    let m = (u128::from(x ^ seed)).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
    ((m >> 64) as u64 ^ m as u64) as u32
}

impl FifoKey for std::num::NonZeroU64 {
    #[inline]
    fn tag(&self, seed: u64) -> u32 {
        mix_tag(self.get(), seed)
    }
}

impl FifoKey for u32 {
    #[inline]
    fn tag(&self, seed: u64) -> u32 {
        mix_tag(u64::from(*self), seed)
    }
}

pub struct FifoMap<K, V> {
    ring: Vec<Option<(K, V)>>,
    /// Positions in use are `head..tail` (ring slot = position & (ring.len() - 1)).
    head: usize,
    tail: usize,
    live: usize,
    cap: usize,
    /// Largest ring (see the module doc).
    max_ring: usize,
    index: Vec<u64>,
    seed: u64,
}

impl<K: FifoKey, V> FifoMap<K, V> {
    /// A map holding at most `cap` entries (at least 1). Nothing is allocated until the
    /// first insert.
    pub fn new(cap: usize) -> Self {
        FifoMap {
            ring: Vec::new(),
            head: 0,
            tail: 0,
            live: 0,
            cap: cap.clamp(1, 1 << 30),
            max_ring: {
                let c = cap.clamp(1, 1 << 30);
                (c + c / 4 + 1).next_power_of_two().max(MIN_RING)
            },
            index: Vec::new(),
            seed: foldhash::fast::RandomState::default().hash_one(0x6669_666fu64),
        }
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    #[inline]
    fn mask(&self) -> usize {
        self.ring.len().wrapping_sub(1)
    }

    #[inline]
    fn imask(&self) -> usize {
        self.index.len().wrapping_sub(1)
    }

    #[inline]
    fn tag_of(&self, k: &K) -> u32 {
        k.tag(self.seed)
    }

    /// Index slot holding the entry of ring slot `slot` (whose tag is `tag`).
    #[inline]
    fn index_slot_of(&self, tag: u32, slot: usize) -> Option<usize> {
        let want = (u64::from(tag) << 32) | (slot as u64 + 1);
        let m = self.imask();
        let mut i = tag as usize & m;
        for _ in 0..self.index.len() {
            let e = *self.index.get(i)?;
            if e == want {
                return Some(i);
            }
            if e == 0 {
                return None;
            }
            i = (i + 1) & m;
        }
        None
    }

    /// Index slot holding `k` and the ring slot it names.
    #[inline]
    fn locate(&self, k: &K) -> Option<(usize, usize)> {
        if self.index.is_empty() {
            return None;
        }
        let tag = self.tag_of(k);
        let m = self.imask();
        let mut i = tag as usize & m;
        loop {
            let e = *self.index.get(i)?;
            if e == 0 {
                return None;
            }
            if (e >> 32) as u32 == tag {
                let slot = (e as u32 as usize).wrapping_sub(1);
                if let Some(Some((key, _))) = self.ring.get(slot)
                    && key == k
                {
                    return Some((i, slot));
                }
            }
            i = (i + 1) & m;
        }
    }

    /// Starts fetching the index line a lookup of `k` reads first (a hint: no effect on
    /// results).
    #[inline]
    pub fn prefetch(&self, k: &K) {
        let i = self.tag_of(k) as usize & self.imask();
        if let Some(e) = self.index.get(i) {
            crate::observe::prefetch::prefetch((e as *const u64).cast());
        }
    }

    /// Pops front entries while `expired` says so, handing each to `gone`. Each pop
    /// probes the index at a random place; the probe of the entry `DRAIN_AHEAD` behind
    /// is started first, so a burst of expiries (a second's worth of fan-out messages)
    /// overlaps its misses instead of taking them one after another.
    pub fn pop_front_while(
        &mut self,
        mut expired: impl FnMut(&K, &V) -> bool,
        mut gone: impl FnMut(K, V),
    ) {
        while let Some((k, v)) = self.front() {
            if !expired(k, v) {
                break;
            }
            let ahead = self.head.wrapping_add(DRAIN_AHEAD);
            if ahead < self.tail
                && let Some(Some((k, _))) = self.ring.get(ahead & self.mask())
            {
                self.prefetch(k);
            }
            match self.pop_front() {
                Some((k, v)) => gone(k, v),
                None => break,
            }
        }
    }

    /// Ring slot of `k`, valid until that entry is removed or the map is rebuilt (any
    /// insert may rebuild it).
    #[inline]
    pub fn find(&self, k: &K) -> Option<usize> {
        self.locate(k).map(|(_, s)| s)
    }

    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        let s = self.find(k)?;
        self.at_mut(s)
    }

    pub fn at_mut(&mut self, slot: usize) -> Option<&mut V> {
        self.ring.get_mut(slot)?.as_mut().map(|(_, v)| v)
    }

    fn index_insert(&mut self, tag: u32, slot: usize) {
        let m = self.imask();
        let mut i = tag as usize & m;
        // The index is at most half full, so an empty slot is always found.
        for _ in 0..self.index.len() {
            match self.index.get_mut(i) {
                Some(e) if *e == 0 => {
                    *e = (u64::from(tag) << 32) | (slot as u64 + 1);
                    return;
                }
                Some(_) => i = (i + 1) & m,
                None => return,
            }
        }
    }

    /// Empties index slot `i`, moving later entries of its cluster back so that every
    /// entry stays reachable from its home slot.
    fn index_remove(&mut self, i: usize) {
        let m = self.imask();
        let mut hole = i;
        let mut j = i;
        for _ in 0..self.index.len() {
            j = (j + 1) & m;
            let e = self.index.get(j).copied().unwrap_or(0);
            if e == 0 {
                break;
            }
            let home = (e >> 32) as usize & m;
            // `e` may fill the hole if the hole lies on its probe path (home ..= j).
            if (j.wrapping_sub(home) & m) >= (j.wrapping_sub(hole) & m) {
                if let Some(h) = self.index.get_mut(hole) {
                    *h = e;
                }
                hole = j;
            }
        }
        if let Some(h) = self.index.get_mut(hole) {
            *h = 0;
        }
    }

    /// Takes the entry in ring slot `slot` out (its index entry is `islot`).
    fn take(&mut self, islot: usize, slot: usize) -> Option<(K, V)> {
        let kv = self.ring.get_mut(slot)?.take()?;
        self.index_remove(islot);
        self.live -= 1;
        self.skip_holes();
        Some(kv)
    }

    /// Moves `head` past removed entries.
    fn skip_holes(&mut self) {
        let m = self.mask();
        while self.head < self.tail && matches!(self.ring.get(self.head & m), Some(None)) {
            self.head += 1;
        }
    }

    pub fn remove(&mut self, k: &K) -> Option<V> {
        let (i, s) = self.locate(k)?;
        self.take(i, s).map(|(_, v)| v)
    }

    /// Oldest entry (least recently inserted).
    pub fn front(&self) -> Option<(&K, &V)> {
        if self.head >= self.tail {
            return None;
        }
        match self.ring.get(self.head & self.mask()) {
            Some(Some((k, v))) => Some((k, v)),
            _ => None,
        }
    }

    pub fn pop_front(&mut self) -> Option<(K, V)> {
        if self.head >= self.tail {
            return None;
        }
        let slot = self.head & self.mask();
        let tag = match self.ring.get(slot) {
            Some(Some((k, _))) => self.tag_of(k),
            _ => return None,
        };
        let i = self.index_slot_of(tag, slot)?;
        self.take(i, slot)
    }

    /// Inserts `k` (which must not be present: the caller just looked it up) at the back.
    /// When full, the front entry is pushed out first and returned.
    pub fn insert_absent(&mut self, k: K, v: V) -> Option<(K, V)> {
        let evicted = if self.live >= self.cap {
            self.pop_front()
        } else {
            None
        };
        if self.tail - self.head >= self.ring.len() {
            self.make_room();
        }
        let tag = self.tag_of(&k);
        let slot = self.tail & self.mask();
        if let Some(s) = self.ring.get_mut(slot) {
            *s = Some((k, v));
            self.tail += 1;
            self.live += 1;
            self.index_insert(tag, slot);
        }
        evicted
    }

    /// All positions are taken: grow, or drop the holes (see the module doc).
    #[cold]
    fn make_room(&mut self) {
        let len = self.ring.len();
        // Room for eight times the live entries after the rebuild, so the next one is
        // at least 7 × live inserts away even when an old entry pins the front; shrink
        // only when far larger than that (after a burst).
        let max = self.max_ring;
        let fit = (self.live * 8).next_power_of_two().clamp(MIN_RING, max);
        let want = if self.live * 2 > len && len < max {
            (len * 2).clamp(MIN_RING, max)
        } else if fit * 4 < len {
            fit
        } else {
            len.max(fit).min(max)
        };
        self.rebuild(want);
    }

    /// Copies the live entries, in order, into a fresh ring of `size` slots (a power of
    /// two, at least the live count) and re-indexes them.
    fn rebuild(&mut self, size: usize) {
        let m = self.mask();
        let mut ring: Vec<Option<(K, V)>> = Vec::with_capacity(size);
        for p in self.head..self.tail {
            if let Some(e) = self.ring.get_mut(p & m).and_then(Option::take) {
                ring.push(Some(e));
            }
        }
        ring.resize_with(size, || None);
        self.install(ring);
    }

    /// Makes `ring` (entries first, in order, then `None`s; length a power of two) the
    /// ring, and indexes it.
    fn install(&mut self, ring: Vec<Option<(K, V)>>) {
        let n = ring.iter().take_while(|e| e.is_some()).count();
        self.ring = ring;
        self.head = 0;
        self.tail = n;
        self.live = n;
        self.index.clear();
        self.index.resize(self.ring.len() * 2, 0);
        for slot in 0..n {
            if let Some(Some((k, _))) = self.ring.get(slot) {
                let tag = self.tag_of(k);
                self.index_insert(tag, slot);
            }
        }
    }

    /// Entries from oldest to newest.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        let m = self.mask();
        (self.head..self.tail).filter_map(move |p| match self.ring.get(p & m) {
            Some(Some((k, v))) => Some((k, v)),
            _ => None,
        })
    }

    /// Removes every entry for which `keep` is false, handing each to `gone` (oldest
    /// first).
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool, mut gone: impl FnMut(K, V)) {
        let m = self.mask();
        for p in self.head..self.tail {
            let slot = p & m;
            let tag = match self.ring.get(slot) {
                Some(Some((k, v))) if !keep(k, v) => self.tag_of(k),
                _ => continue,
            };
            if let Some(i) = self.index_slot_of(tag, slot)
                && let Some((k, v)) = self.take(i, slot)
            {
                gone(k, v);
            }
        }
    }

    /// Re-orders the entries by `key` (stable), e.g. by time after out-of-order inserts.
    pub fn sort_by_key<T: Ord>(&mut self, mut key: impl FnMut(&K, &V) -> T) {
        let m = self.mask();
        let mut items: Vec<(K, V)> = Vec::with_capacity(self.live);
        for p in self.head..self.tail {
            if let Some(e) = self.ring.get_mut(p & m).and_then(Option::take) {
                items.push(e);
            }
        }
        items.sort_by_key(|(k, v)| key(k, v));
        let size = self.ring.len().max(MIN_RING);
        let mut ring: Vec<Option<(K, V)>> = Vec::with_capacity(size);
        ring.extend(items.into_iter().map(Some));
        ring.resize_with(size, || None);
        self.install(ring);
    }

    /// Bytes held: ring slots and index words.
    pub fn mem_bytes(&self) -> usize {
        self.ring.capacity() * std::mem::size_of::<Option<(K, V)>>() + self.index.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(m: &FifoMap<u32, u32>) -> Vec<u32> {
        m.iter().map(|(k, _)| *k).collect()
    }

    #[test]
    fn fifo_order_cap_and_removal() {
        let mut m = FifoMap::new(3);
        for k in 1..=3 {
            assert!(m.insert_absent(k, k * 10).is_none());
        }
        assert_eq!(m.insert_absent(4, 40), Some((1, 10)));
        assert_eq!(keys(&m), vec![2, 3, 4]);
        assert_eq!(m.remove(&3), Some(30));
        assert_eq!(m.remove(&3), None);
        assert_eq!(keys(&m), vec![2, 4]);
        assert_eq!(m.front(), Some((&2, &20)));
        assert_eq!(m.pop_front(), Some((2, 20)));
        assert_eq!(m.front(), Some((&4, &40)));
        *m.get_mut(&4).unwrap() = 41;
        m.insert_absent(5, 50);
        m.retain(|k, _| *k != 4, |k, _| assert_eq!(k, 4));
        assert_eq!(keys(&m), vec![5]);
        assert_eq!(m.len(), 1);
    }

    /// Against a model (a plain vector in insertion order), through many rebuilds,
    /// wrap-arounds and backward-shift deletions.
    #[test]
    fn agrees_with_a_model() {
        let mut m: FifoMap<u32, u32> = FifoMap::new(200);
        let mut model: Vec<(u32, u32)> = Vec::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut max_ring = 0;
        for step in 0..200_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = (x % 500) as u32;
            match x >> 60 {
                0..=6 => {
                    if m.find(&k).is_none() {
                        let ev = m.insert_absent(k, step);
                        let want = if model.len() >= 200 {
                            Some(model.remove(0))
                        } else {
                            None
                        };
                        assert_eq!(ev, want);
                        model.push((k, step));
                    }
                }
                7..=12 => {
                    let want = model
                        .iter()
                        .position(|e| e.0 == k)
                        .map(|i| model.remove(i).1);
                    assert_eq!(m.remove(&k), want);
                }
                13 => {
                    let want = (!model.is_empty()).then(|| model.remove(0));
                    assert_eq!(m.pop_front(), want);
                }
                _ => {
                    m.retain(|k, _| k % 7 != 0, |_, _| {});
                    model.retain(|e| e.0 % 7 != 0);
                }
            }
            assert_eq!(m.len(), model.len());
            max_ring = max_ring.max(m.ring.len());
            if step % 1000 == 0 {
                assert_eq!(m.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>(), model);
                for (k, v) in &model {
                    assert_eq!(m.get_mut(k).copied(), Some(*v));
                }
            }
        }
        // Bounded by 5/4 of the cap, rounded up to a power of two.
        assert!(max_ring <= 256, "{max_ring}");
    }

    #[test]
    fn sort_restores_order() {
        let mut m = FifoMap::new(10);
        for (k, t) in [(1u32, 30u32), (2, 10), (3, 20)] {
            m.insert_absent(k, t);
        }
        m.sort_by_key(|_, t| *t);
        assert_eq!(keys(&m), vec![2, 3, 1]);
        assert_eq!(m.get_mut(&1).copied(), Some(30));
    }
}
