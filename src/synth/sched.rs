//! Discrete-event scheduling: each connection keeps its own time-ordered action list,
//! and a global min-heap holds one entry per connection (the time of its next action).
//! Connections therefore interleave in time exactly as their actions fall due, while
//! the file stays in timestamp order.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// Per-connection time-ordered queue. Lists are short (a handful of actions), so a
/// sorted insert into a VecDeque is cheaper than a heap per connection.
#[derive(Debug)]
pub struct Agenda<A> {
    items: VecDeque<(u64, A)>,
}

impl<A> Default for Agenda<A> {
    fn default() -> Self {
        Agenda {
            items: VecDeque::new(),
        }
    }
}

impl<A> Agenda<A> {
    /// Inserts after every action with the same or earlier time (FIFO among equals:
    /// causality inside a connection depends on it).
    pub fn push(&mut self, at: u64, a: A) {
        let idx = self.items.partition_point(|(t, _)| *t <= at);
        self.items.insert(idx, (at, a));
    }

    pub fn next_time(&self) -> Option<u64> {
        self.items.front().map(|(t, _)| *t)
    }

    pub fn pop(&mut self) -> Option<(u64, A)> {
        self.items.pop_front()
    }
}

/// Global queue of (time, tie-break, slot, generation). Stale entries (generation no
/// longer current for the slot) are skipped on pop instead of being removed.
#[derive(Default)]
pub struct Clock {
    heap: BinaryHeap<Reverse<(u64, u64, u32, u32)>>,
    tick: u64,
}

impl Clock {
    pub fn push(&mut self, at: u64, slot: u32, generation: u32) {
        self.tick += 1;
        self.heap.push(Reverse((at, self.tick, slot, generation)));
    }

    pub fn pop(&mut self) -> Option<(u64, u32, u32)> {
        self.heap.pop().map(|Reverse((t, _, s, g))| (t, s, g))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agenda_is_time_ordered_and_fifo_among_equals() {
        let mut a = Agenda::default();
        a.push(5, 'a');
        a.push(1, 'b');
        a.push(5, 'c');
        a.push(3, 'd');
        let order: Vec<char> = std::iter::from_fn(|| a.pop().map(|x| x.1)).collect();
        assert_eq!(order, vec!['b', 'd', 'a', 'c']);
    }

    #[test]
    fn clock_pops_earliest_first_then_insertion_order() {
        let mut c = Clock::default();
        c.push(10, 1, 0);
        c.push(5, 2, 0);
        c.push(10, 3, 0);
        assert_eq!(c.pop(), Some((5, 2, 0)));
        assert_eq!(c.pop(), Some((10, 1, 0)));
        assert_eq!(c.pop(), Some((10, 3, 0)));
        assert_eq!(c.pop(), None);
    }
}
