//! `OrderedMap`: a capped hash map whose entries also sit on one doubly linked list, so
//! the oldest entry (by insertion, or by last use when the caller `touch`es) is found in
//! O(1). Every tracker table keyed by wire data is one of these: the list gives LRU
//! eviction when full and front-first expiry by time, without scanning.
//!
//! Entries live in a slab (`Vec` of nodes, freed slots reused), so after warm-up inserts
//! and removals do not allocate; the map holds slab indices.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

const NIL: u32 = u32::MAX;

struct Node<K, V> {
    kv: Option<(K, V)>,
    prev: u32,
    next: u32,
}

pub struct OrderedMap<K, V> {
    // Randomly seeded: keys come from the wire, and a fixed seed would let a sender
    // aim for collisions. Nothing observable depends on map order (the list decides).
    map: HashMap<K, u32, foldhash::fast::RandomState>,
    nodes: Vec<Node<K, V>>,
    free: Vec<u32>,
    head: u32,
    tail: u32,
    cap: usize,
}

impl<K: Hash + Eq + Clone, V> OrderedMap<K, V> {
    /// A map holding at most `cap` entries (at least 1).
    pub fn new(cap: usize) -> Self {
        OrderedMap {
            map: HashMap::default(),
            nodes: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            cap: cap.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    #[allow(dead_code)] // general API of the table; the pending table moved to `FifoMap`
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Slot of `k`, valid until that entry is removed.
    pub fn find<Q: Hash + Eq + ?Sized>(&self, k: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
    {
        self.map.get(k).copied()
    }

    pub fn get<Q: Hash + Eq + ?Sized>(&self, k: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.find(k).and_then(|i| self.at(i))
    }

    pub fn get_mut<Q: Hash + Eq + ?Sized>(&mut self, k: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        self.find(k).and_then(|i| self.at_mut(i))
    }

    /// Entry in slot `i`, if that slot is occupied.
    pub fn at(&self, i: u32) -> Option<&V> {
        self.nodes.get(i as usize)?.kv.as_ref().map(|(_, v)| v)
    }

    pub fn at_mut(&mut self, i: u32) -> Option<&mut V> {
        self.nodes.get_mut(i as usize)?.kv.as_mut().map(|(_, v)| v)
    }

    /// Marks slot `i` most recently used (moves it to the back).
    pub fn touch(&mut self, i: u32) {
        if i == self.tail || self.nodes.get(i as usize).is_none_or(|n| n.kv.is_none()) {
            return;
        }
        self.unlink(i);
        self.link_back(i);
    }

    /// Inserts `k` at the back (replacing an existing entry's value in place, without
    /// moving it). When full, the front entry is pushed out and returned.
    pub fn insert(&mut self, k: K, v: V) -> (u32, Option<(K, V)>) {
        if let Some(i) = self.find(&k) {
            if let Some(slot) = self.at_mut(i) {
                *slot = v;
            }
            return (i, None);
        }
        self.insert_absent(k, v)
    }

    /// `insert` for a key the caller just looked up and did not find (saves a lookup).
    pub fn insert_absent(&mut self, k: K, v: V) -> (u32, Option<(K, V)>) {
        let evicted = if self.map.len() >= self.cap {
            self.pop_front()
        } else {
            None
        };
        let i = match self.free.pop() {
            Some(i) => {
                if let Some(n) = self.nodes.get_mut(i as usize) {
                    n.kv = Some((k.clone(), v));
                }
                i
            }
            None => {
                // Grow by doubling, but never past the cap: a full table holds exactly
                // `cap` slots rather than up to twice that.
                if self.nodes.len() == self.nodes.capacity() {
                    let room = self.cap.saturating_sub(self.nodes.len()).max(1);
                    self.nodes.reserve_exact(self.nodes.len().max(16).min(room));
                }
                self.nodes.push(Node {
                    kv: Some((k.clone(), v)),
                    prev: NIL,
                    next: NIL,
                });
                (self.nodes.len() - 1) as u32
            }
        };
        self.link_back(i);
        self.map.insert(k, i);
        (i, evicted)
    }

    pub fn remove<Q: Hash + Eq + ?Sized>(&mut self, k: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        // One map operation: the map gives up the slot, then the slot is emptied.
        let i = self.map.remove(k)?;
        self.take_node(i).map(|(_, v)| v)
    }

    pub fn remove_at(&mut self, i: u32) -> Option<(K, V)> {
        let kv = self.take_node(i)?;
        self.map.remove(&kv.0);
        Some(kv)
    }

    /// Empties slot `i` (its key must already be out of the map, or be removed next).
    fn take_node(&mut self, i: u32) -> Option<(K, V)> {
        let kv = self.nodes.get_mut(i as usize)?.kv.take()?;
        self.unlink(i);
        self.free.push(i);
        Some(kv)
    }

    /// Oldest entry (least recently inserted or touched).
    #[allow(dead_code)] // general API of the table; the pending table moved to `FifoMap`
    pub fn front(&self) -> Option<(&K, &V)> {
        let n = self.nodes.get(self.head as usize)?;
        n.kv.as_ref().map(|(k, v)| (k, v))
    }

    pub fn pop_front(&mut self) -> Option<(K, V)> {
        if self.head == NIL {
            return None;
        }
        self.remove_at(self.head)
    }

    /// Entries from oldest to newest.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        let mut i = self.head;
        std::iter::from_fn(move || {
            let n = self.nodes.get(i as usize)?;
            i = n.next;
            n.kv.as_ref().map(|(k, v)| (k, v))
        })
    }

    /// Removes every entry for which `keep` is false, handing each to `gone`. Entries
    /// are visited in slab order (a sequential pass, not a walk of the list through
    /// scattered nodes), so `gone` sees them in no particular order.
    #[allow(dead_code)] // general API of the table; the pending table moved to `FifoMap`
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool, mut gone: impl FnMut(K, V)) {
        for i in 0..self.nodes.len() {
            let drop_it = self
                .nodes
                .get(i)
                .and_then(|n| n.kv.as_ref())
                .is_some_and(|(k, v)| !keep(k, v));
            if drop_it && let Some((k, v)) = self.remove_at(i as u32) {
                gone(k, v);
            }
        }
    }

    /// Approximate heap bytes: slab slots plus hash map buckets (key, index, control byte).
    pub fn mem_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node<K, V>>()
            + self.free.capacity() * 4
            + self.map.capacity() * (std::mem::size_of::<K>() + 4 + 1)
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = match self.nodes.get(i as usize) {
            Some(n) => (n.prev, n.next),
            None => return,
        };
        match self.nodes.get_mut(prev as usize) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.nodes.get_mut(next as usize) {
            Some(n) => n.prev = prev,
            None => self.tail = prev,
        }
        if let Some(n) = self.nodes.get_mut(i as usize) {
            n.prev = NIL;
            n.next = NIL;
        }
    }

    fn link_back(&mut self, i: u32) {
        let tail = self.tail;
        if let Some(n) = self.nodes.get_mut(i as usize) {
            n.prev = tail;
            n.next = NIL;
        }
        match self.nodes.get_mut(tail as usize) {
            Some(t) => t.next = i,
            None => self.head = i,
        }
        self.tail = i;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(m: &OrderedMap<u32, u32>) -> Vec<u32> {
        m.iter().map(|(k, _)| *k).collect()
    }

    #[test]
    fn evicts_least_recent_and_reuses_slots() {
        let mut m = OrderedMap::new(3);
        for k in 1..=3 {
            assert!(m.insert(k, k * 10).1.is_none());
        }
        let i1 = m.find(&1).unwrap();
        m.touch(i1);
        assert_eq!(keys(&m), vec![2, 3, 1]);
        let (_, ev) = m.insert(4, 40);
        assert_eq!(ev, Some((2, 20)));
        assert_eq!(keys(&m), vec![3, 1, 4]);
        assert_eq!(m.remove(&1), Some(10));
        assert_eq!(keys(&m), vec![3, 4]);
        m.insert(5, 50);
        // Slab did not grow past the cap: the freed slot was reused.
        assert_eq!(m.nodes.len(), 3);
        assert_eq!(m.pop_front(), Some((3, 30)));
        m.retain(|k, _| *k != 4, |_, _| {});
        assert_eq!(keys(&m), vec![5]);
        assert_eq!(m.get(&5), Some(&50));
        assert_eq!(m.len(), 1);
    }
}
