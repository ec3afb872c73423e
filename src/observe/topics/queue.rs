//! Queued group updates: the observer's PUBLISHes and latency samples are applied to
//! their groups a few dozen at a time instead of one by one.
//!
//! Why. With thousands of groups, a group's lines are rarely in cache when its next
//! PUBLISH comes (the packet stream itself sweeps the caches), so updating it at once
//! costs several memory round trips, one after another (the group, then its sketch
//! bucket). Within one record there is too little other work to hide them. Queued,
//! the updates are applied in a loop that prefetches the lines of the entry `2 * AHEAD`
//! positions ahead and the sketch bucket of the entry `AHEAD` ahead, so the fetches of
//! many groups overlap and the applying finds them in cache.
//!
//! Same results. Entries are applied in arrival order, so every group sees its updates
//! in the same order as without the queue. The queue is applied before anything that
//! could evict a group or look at its statistics through `&mut self` (`tick`, admitting
//! a new topic, the immediate `on_publish` / `on_latency`), and the read-only views
//! (`snapshot`, `snapshot_of`, `for_each_group`) show a group with its queued updates
//! applied to a copy, so a reader never sees a difference.

use std::borrow::Cow;

use super::stats::{GroupStats, PublishInfo};
use super::{SLOT_MASK, Slot, Topics};
use crate::observe::prefetch::prefetch;
use crate::observe::{Exchange, GroupId};

/// Entries held before they are applied.
pub(super) const QUEUE_CAP: usize = 128;
/// Prefetch distance, in entries, of the sketch bucket (the group's lines: twice this).
const AHEAD: usize = 8;

#[derive(Clone, Copy, Debug)]
pub(super) enum Update {
    Publish(PublishInfo),
    Latency(Exchange, f64),
}

/// Sorted ids of the groups with queued updates (`Topics::queued_ids`).
pub(super) struct QueuedIds {
    ids: [u32; QUEUE_CAP],
    n: usize,
}

impl QueuedIds {
    fn contains(&self, id: u32) -> bool {
        self.ids
            .get(..self.n)
            .is_some_and(|v| v.binary_search(&id).is_ok())
    }
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Queued {
    pub g: GroupId,
    pub u: Update,
}

fn apply_to(stats: &mut GroupStats, u: &Update) {
    match u {
        Update::Publish(p) => stats.on_publish(p),
        Update::Latency(ex, s) => stats.on_latency(*ex, *s),
    }
}

impl Topics {
    /// `record_publish`, queued (see the module doc).
    #[inline]
    pub(super) fn queue(&mut self, q: Queued) {
        if self.queue.len() >= QUEUE_CAP {
            self.apply_queued();
        }
        self.queue.push(q);
    }

    /// Applies every queued update, in order.
    pub(super) fn apply_queued(&mut self) {
        if self.queue.is_empty() {
            return;
        }
        let q = std::mem::take(&mut self.queue);
        let n = q.len();
        for e in q.iter().take(2 * AHEAD) {
            self.prefetch_lines(e);
        }
        for e in q.iter().take(AHEAD) {
            self.prefetch_bucket(e);
        }
        for (i, e) in q.iter().enumerate() {
            if let Some(f) = q.get(i + 2 * AHEAD) {
                self.prefetch_lines(f);
            }
            if let Some(f) = q.get(i + AHEAD) {
                self.prefetch_bucket(f);
            }
            self.apply_one(e);
        }
        debug_assert_eq!(n, q.len());
        self.queue = q;
        self.queue.clear();
    }

    fn apply_one(&mut self, e: &Queued) {
        match self.get_mut(e.g) {
            Some(group) => {
                if let Update::Publish(p) = &e.u {
                    group.last_used_ns = group.last_used_ns.max(p.ts_ns);
                }
                apply_to(&mut group.stats, &e.u);
            }
            None => self.c.stale_ids += 1,
        }
    }

    /// Starts fetching the lines an update touches (addresses only: reads nothing of
    /// the group).
    #[inline]
    fn prefetch_lines(&self, e: &Queued) {
        let Some(slot) = self.slots.get((e.g.0 & SLOT_MASK) as usize) else {
            return;
        };
        prefetch((slot as *const Slot).cast());
        match &e.u {
            Update::Publish(_) => {
                for p in slot.stats.hot_lines() {
                    prefetch(p);
                }
            }
            Update::Latency(ex, _) => {
                if let Some(p) = slot.stats.latency_line(*ex) {
                    prefetch(p);
                    prefetch(p.wrapping_add(56));
                }
            }
        }
    }

    /// Starts fetching the sketch bucket an update will add to (reads the sketch's
    /// header, fetched `AHEAD` entries ago).
    #[inline]
    fn prefetch_bucket(&self, e: &Queued) {
        let Some(slot) = self.slots.get((e.g.0 & SLOT_MASK) as usize) else {
            return;
        };
        let p = match &e.u {
            Update::Publish(p) if p.dir == crate::mqtt::Direction::C2S => {
                slot.stats.payload_bin_line(p.payload_len)
            }
            Update::Latency(ex, s) => slot.stats.latency_bin_line(*ex, *s),
            Update::Publish(_) => None,
        };
        if let Some(p) = p {
            prefetch(p);
        }
    }

    /// The statistics of live slot `idx` as a reader should see them: with the queued
    /// updates of that group applied (to a copy; the slot is untouched).
    pub(super) fn view<'a>(&'a self, idx: usize, slot: &'a Slot) -> Cow<'a, GroupStats> {
        self.view_in(idx, slot, None)
    }

    /// The ids of the groups with queued updates, sorted, for `view_in` (a reader that
    /// visits every group would otherwise scan the whole queue once per group: with
    /// 10 000 groups, half of the anomaly engine's per-bucket pass).
    pub(super) fn queued_ids(&self) -> QueuedIds {
        let mut ids = [0; QUEUE_CAP];
        let n = self.queue.len().min(QUEUE_CAP);
        for (dst, q) in ids.iter_mut().zip(&self.queue) {
            *dst = q.g.0;
        }
        if let Some(v) = ids.get_mut(..n) {
            v.sort_unstable();
        }
        QueuedIds { ids, n }
    }

    /// `view`, told which groups have queued updates (`None`: look through the queue).
    pub(super) fn view_in<'a>(
        &'a self,
        idx: usize,
        slot: &'a Slot,
        queued: Option<&QueuedIds>,
    ) -> Cow<'a, GroupStats> {
        let gen_id = (u32::from(slot.generation) << super::SLOT_BITS) | idx as u32;
        if queued.is_some_and(|q| !q.contains(gen_id)) {
            return Cow::Borrowed(&slot.stats);
        }
        let mut mine = self.queue.iter().filter(|q| q.g.0 == gen_id).peekable();
        if mine.peek().is_none() {
            return Cow::Borrowed(&slot.stats);
        }
        let mut copy = slot.stats.clone();
        for q in mine {
            apply_to(&mut copy, &q.u);
        }
        Cow::Owned(copy)
    }

    /// Bytes of the queue (its capacity stays at `QUEUE_CAP`).
    pub(super) fn queue_bytes(&self) -> usize {
        self.queue.capacity() * std::mem::size_of::<Queued>()
    }
}

#[cfg(test)]
mod tests {
    use crate::mqtt::Direction;
    use crate::observe::topics::Topics;
    use crate::observe::{Exchange, GroupKind, ObserveConfig};

    const S: u64 = 1_000_000_000;

    fn cfg() -> ObserveConfig {
        ObserveConfig {
            max_exact_topics: 3,
            max_templates: 2,
            ..ObserveConfig::default()
        }
    }

    /// Every reader sees the same through the queue as with immediate updates, before
    /// and after the queue is applied, across evictions and stale ids.
    #[test]
    fn queued_updates_read_the_same_as_immediate_ones() {
        let (mut q, mut i) = (Topics::new(&cfg()).unwrap(), Topics::new(&cfg()).unwrap());
        let topics: Vec<String> = (0..12)
            .map(|n| format!("site/{}/t{}", n % 5, n % 4))
            .collect();
        let mut x: u64 = 7;
        for step in 0..3_000u64 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let t = &topics[(x >> 33) as usize % topics.len()];
            // Time jumps now and then past the idle limit, so groups get evicted.
            let ts = step * S / 10 + if step % 700 == 699 { 20 * 60 * S } else { 0 };
            let ts = ts + (step / 700) * 20 * 60 * S;
            let dir = if x & 1 == 0 {
                Direction::C2S
            } else {
                Direction::S2C
            };
            let k = q.key_prefetched(t.as_bytes());
            let r = q.group_for_publish(t.as_bytes(), k, dir, ts);
            let gq = r.g;
            let gi = i.group_of(t.as_bytes(), ts);
            assert_eq!(gq, gi, "same grouping");
            // The exactness it reports without reading the group is the group's kind.
            assert_eq!(r.exact, i.group_kind(gi) == GroupKind::Exact, "{t}");
            // Groups that mix topics always take part in fan-out matching.
            assert!(r.exact || r.fanout, "{t}");
            let (qos, retain, dup) = (((x >> 3) % 4) as u8, x & 16 != 0, x & 32 != 0);
            let len = ((x >> 40) % 5000) as usize;
            q.record_publish(gq, dir, x % 7, qos, retain, dup, len, ts);
            i.on_publish(gi, dir, x % 7, qos, retain, dup, len, ts);
            if x & 64 != 0 {
                let ex = [Exchange::PublishQos1, Exchange::Fanout, Exchange::Connect]
                    [(x >> 8) as usize % 3];
                let secs = ((x >> 20) % 10_000) as f64 * 1e-6;
                q.record_latency(gq, ex, secs);
                i.on_latency(gi, ex, secs);
            }
            if step % 97 == 0 {
                // A stale id (a group evicted meanwhile is refused the same way).
                let stale = crate::observe::GroupId(gq.0 ^ (1 << 22));
                q.record_latency(stale, Exchange::Fanout, 1.0);
                i.on_latency(stale, Exchange::Fanout, 1.0);
            }
            if step % 13 == 0 {
                assert_eq!(q.snapshot(ts), i.snapshot(ts), "step {step}");
                assert_eq!(q.snapshot_of(gq, ts), i.snapshot_of(gi, ts));
                let mut a = Vec::new();
                q.for_each_group(|n, k, s| {
                    a.push((
                        n.to_string(),
                        k,
                        s.payload_sketch().count(),
                        s.latency_sketch(Exchange::Fanout).map(|s| s.count()),
                    ))
                });
                let mut b = Vec::new();
                i.for_each_group(|n, k, s| {
                    b.push((
                        n.to_string(),
                        k,
                        s.payload_sketch().count(),
                        s.latency_sketch(Exchange::Fanout).map(|s| s.count()),
                    ))
                });
                assert_eq!(a, b);
            }
            if step % 211 == 0 {
                q.tick(ts);
                i.tick(ts);
            }
        }
        let end = 3_000 * S;
        q.tick(end);
        i.tick(end);
        assert_eq!(q.snapshot(end), i.snapshot(end));
        let (kq, ki) = (q.counters(), i.counters());
        assert_eq!(
            (
                kq.exact_evicted,
                kq.template_evicted,
                kq.stale_ids,
                kq.routed_to_template
            ),
            (
                ki.exact_evicted,
                ki.template_evicted,
                ki.stale_ids,
                ki.routed_to_template
            )
        );
        assert!(kq.exact_evicted > 0 && kq.stale_ids > 0, "{kq:?}");
    }
}
