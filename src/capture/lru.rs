//! A slab of flows threaded on an intrusive doubly linked list in recency order, so that
//! "touch", "evict the least recently active" and "expire the idle ones" are all O(1)
//! per flow instead of a scan over the table.

const NIL: u32 = u32::MAX;

#[derive(Debug)]
struct Node<T> {
    val: Option<T>,
    /// Towards the most recent end.
    prev: u32,
    /// Towards the least recent end.
    next: u32,
}

#[derive(Debug)]
pub(crate) struct LruSlab<T> {
    nodes: Vec<Node<T>>,
    free: Vec<u32>,
    /// Most recently touched.
    head: u32,
    /// Least recently touched.
    tail: u32,
    len: usize,
}

impl<T> LruSlab<T> {
    pub fn new() -> Self {
        LruSlab {
            nodes: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Stores `val` as the most recent entry and returns its index.
    pub fn insert(&mut self, val: T) -> u32 {
        let idx = match self.free.pop() {
            Some(i) => {
                if let Some(n) = self.nodes.get_mut(i as usize) {
                    n.val = Some(val);
                }
                i
            }
            None => {
                // The table caps flows far below u32::MAX, so indices always fit.
                let i = self.nodes.len() as u32;
                self.nodes.push(Node {
                    val: Some(val),
                    prev: NIL,
                    next: NIL,
                });
                i
            }
        };
        self.link_front(idx);
        self.len += 1;
        idx
    }

    pub fn get(&self, idx: u32) -> Option<&T> {
        self.nodes.get(idx as usize).and_then(|n| n.val.as_ref())
    }

    pub fn get_mut(&mut self, idx: u32) -> Option<&mut T> {
        self.nodes
            .get_mut(idx as usize)
            .and_then(|n| n.val.as_mut())
    }

    /// Marks `idx` as the most recently active entry.
    pub fn touch(&mut self, idx: u32) {
        if self.head == idx || self.get(idx).is_none() {
            return;
        }
        self.unlink(idx);
        self.link_front(idx);
    }

    pub fn remove(&mut self, idx: u32) -> Option<T> {
        let val = self.nodes.get_mut(idx as usize)?.val.take()?;
        self.unlink(idx);
        self.free.push(idx);
        self.len -= 1;
        Some(val)
    }

    /// All live entries, in slab order (not recency order).
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.nodes.iter().filter_map(|n| n.val.as_ref())
    }

    /// Index of the least recently active entry.
    pub fn tail(&self) -> Option<u32> {
        (self.tail != NIL).then_some(self.tail)
    }

    fn link_front(&mut self, idx: u32) {
        let old = self.head;
        if let Some(n) = self.nodes.get_mut(idx as usize) {
            n.prev = NIL;
            n.next = old;
        }
        match self.nodes.get_mut(old as usize) {
            Some(h) => h.prev = idx,
            None => self.tail = idx,
        }
        self.head = idx;
    }

    fn unlink(&mut self, idx: u32) {
        let Some(n) = self.nodes.get(idx as usize) else {
            return;
        };
        let (prev, next) = (n.prev, n.next);
        match self.nodes.get_mut(prev as usize) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.nodes.get_mut(next as usize) {
            Some(q) => q.prev = prev,
            None => self.tail = prev,
        }
        if let Some(n) = self.nodes.get_mut(idx as usize) {
            n.prev = NIL;
            n.next = NIL;
        }
    }
}
