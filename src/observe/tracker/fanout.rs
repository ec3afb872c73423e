//! Broker fan-out: the time from a PUBLISH entering the broker to each copy of it
//! leaving toward a subscriber. Packet ids differ per hop, so copies are matched by
//! (topic, payload) hash within a window.
//!
//! One inbound message per (topic, payload) is remembered: a newer identical PUBLISH
//! replaces the older one (periodic telemetry often repeats its payload; the copies of
//! the older one have normally left by then). Outbound copies flagged dup (re-sent to a
//! subscriber) or retain (sent because a subscription was made, MQTT-3.3.1-9, not
//! because of this publication) give no sample.

use std::hash::{BuildHasher, Hasher};

use crate::observe::sketch::Sketch;
use crate::observe::types::GroupId;

/// Fixed seed: the same capture gives the same matches on every run.
const SEED: u64 = 0x6d71_7363_6f70_6566;

/// Hash of (topic, payload) identifying one message across broker hops.
pub fn message_hash(topic: &[u8], payload: &[u8]) -> u64 {
    let mut h = foldhash::fast::FixedState::with_seed(SEED).build_hasher();
    // Length first, so ("ab", "c") and ("a", "bc") differ.
    h.write_usize(topic.len());
    h.write(topic);
    h.write(payload);
    h.finish()
}

/// One remembered inbound message. `hash == 0` marks a free slot (real hashes are
/// forced odd).
#[derive(Clone, Copy, Debug, Default)]
struct Inbound {
    hash: u64,
    ts_ns: u64,
    /// `GroupId` + 1; 0 = none.
    group: u32,
    deliveries: u32,
}

/// Slots per set: a message can sit in any of the 4 slots of the set its hash picks.
const WAYS: usize = 4;

/// Counters of the fan-out matcher.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FanoutCounters {
    /// Inbound PUBLISHes remembered.
    pub inbound: u64,
    /// Outbound copies matched to an inbound message (one latency sample each).
    pub matched: u64,
    /// Outbound PUBLISHes with no inbound message in the window (retained deliveries,
    /// messages from before the capture or from other brokers, bridges).
    pub unmatched: u64,
    /// Outbound copies skipped: dup flag (re-send) or retain flag (new subscription).
    pub skipped_dup: u64,
    pub skipped_retained: u64,
    /// Inbound messages that left the window delivered to 0, 1, or more subscribers.
    pub delivered_0: u64,
    pub delivered_1: u64,
    pub delivered_n: u64,
    /// Inbound messages replaced by an identical newer one inside the window.
    pub replaced: u64,
    /// Inbound messages pushed out because the table was full (not counted above).
    pub evicted: u64,
}

/// A set-associative table of inbound messages: each lookup touches one set of
/// `WAYS` adjacent slots (one or two cache lines), with no hash map, list or allocation
/// after construction. A full set gives up its oldest message (counted `evicted`); a
/// message found past the window is settled when its slot is reused or at `expire`.
///
/// Expiry. Scanning the whole table every tick costs a pass over megabytes of mostly
/// empty slots; instead every remembered message is also queued as (slot, time) in
/// arrival order, and `expire` pops from the front while the front is past the window,
/// so it costs what expires. A queued pair whose slot now holds another message (it
/// was replaced or pushed out) is skipped. The queue holds every live message as long
/// as arrivals come in time order and it stays below the table's size; otherwise
/// (`queue_complete` false) `expire` falls back to a full scan and rebuilds the queue
/// from the survivors, sorted, so results never depend on which path ran.
pub struct Fanout {
    slots: Vec<Inbound>,
    sets: usize,
    live: usize,
    window_ns: u64,
    queue: std::collections::VecDeque<(u32, u64)>,
    /// Every live message is in `queue`, in time order.
    queue_complete: bool,
    /// Time of the newest queued message.
    queue_last_ts: u64,
    pub sketch: Sketch,
    pub counters: FanoutCounters,
}

impl Fanout {
    /// Room for about `cap` messages (rounded up to whole sets).
    pub fn new(cap: usize, window_ms: u64) -> Fanout {
        let sets = cap.div_ceil(WAYS).max(1);
        Fanout {
            slots: vec![Inbound::default(); sets * WAYS],
            sets,
            live: 0,
            window_ns: window_ms.saturating_mul(1_000_000),
            queue: std::collections::VecDeque::new(),
            queue_complete: true,
            queue_last_ts: 0,
            sketch: Sketch::new(),
            counters: FanoutCounters::default(),
        }
    }

    /// Messages remembered.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn mem_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Inbound>()
            + self.queue.capacity() * std::mem::size_of::<(u32, u64)>()
            + self.sketch.mem_bytes()
    }

    /// Index of the first slot of `h`'s set.
    fn set_start(&self, h: u64) -> usize {
        // High bits pick the set (the low bit is forced to 1 in every hash).
        ((h >> 32) as usize % self.sets) * WAYS
    }

    fn set(&mut self, h: u64) -> &mut [Inbound] {
        let i = self.set_start(h);
        self.slots.get_mut(i..i + WAYS).unwrap_or(&mut [])
    }

    /// Queues the message just stored in slot `idx` for expiry.
    fn enqueue(&mut self, idx: usize, ts_ns: u64) {
        if !self.queue_complete {
            return;
        }
        if ts_ns < self.queue_last_ts || self.queue.len() >= self.slots.len() {
            self.queue_complete = false;
            self.queue = std::collections::VecDeque::new();
            return;
        }
        self.queue_last_ts = ts_ns;
        self.queue.push_back((idx as u32, ts_ns));
    }

    fn settle(c: &mut FanoutCounters, deliveries: u32) {
        match deliveries {
            0 => c.delivered_0 += 1,
            1 => c.delivered_1 += 1,
            _ => c.delivered_n += 1,
        }
    }

    /// A PUBLISH entering the broker. `dup`: a re-send of one already remembered.
    pub fn inbound(&mut self, h: u64, ts_ns: u64, group: Option<GroupId>, dup: bool) {
        let h = h | 1;
        let window = self.window_ns;
        let start = self.set_start(h);
        let c = &mut self.counters;
        let Some(set) = self.slots.get_mut(start..start + WAYS) else {
            return;
        };
        let way = if let Some(w) = set.iter().position(|s| s.hash == h) {
            if dup {
                return;
            }
            // The queued (slot, time) of the replaced message no longer matches the
            // slot, so the queue skips it; the new one is queued below.
            c.replaced += 1;
            Self::settle(c, set.get(w).map_or(0, |s| s.deliveries));
            self.live -= 1;
            w
        } else if let Some(w) = set.iter().position(|s| s.hash == 0) {
            w
        } else {
            // Full set: reuse the oldest slot; settle it if it already left the window,
            // else it is pushed out early.
            let (w, old) = set
                .iter()
                .enumerate()
                .min_by_key(|(_, s)| s.ts_ns)
                .map_or((0, Inbound::default()), |(w, s)| (w, *s));
            if old.ts_ns.saturating_add(window) <= ts_ns {
                Self::settle(c, old.deliveries);
            } else {
                c.evicted += 1;
            }
            self.live -= 1;
            w
        };
        if let Some(s) = set.get_mut(way) {
            *s = Inbound {
                hash: h,
                ts_ns,
                group: group.map_or(0, |g| g.0.saturating_add(1)),
                deliveries: 0,
            };
            self.live += 1;
            c.inbound += 1;
            self.enqueue(start + way, ts_ns);
        }
    }

    /// A PUBLISH leaving the broker: fan-out latency in seconds and the inbound
    /// message's group when it matches.
    pub fn outbound(
        &mut self,
        h: u64,
        ts_ns: u64,
        dup: bool,
        retain: bool,
    ) -> Option<(f64, Option<GroupId>)> {
        if dup {
            self.counters.skipped_dup += 1;
            return None;
        }
        if retain {
            self.counters.skipped_retained += 1;
            return None;
        }
        let h = h | 1;
        let window = self.window_ns;
        let hit = self.set(h).iter_mut().find(|s| s.hash == h).and_then(|e| {
            let d = ts_ns.checked_sub(e.ts_ns).filter(|&d| d <= window)?;
            e.deliveries = e.deliveries.saturating_add(1);
            Some((d, e.group.checked_sub(1).map(GroupId)))
        });
        match hit {
            Some((d, g)) => {
                let secs = d as f64 / 1e9;
                self.counters.matched += 1;
                self.sketch.record(secs);
                Some((secs, g))
            }
            None => {
                self.counters.unmatched += 1;
                None
            }
        }
    }

    /// Settles inbound messages older than the window (see the type's doc for how).
    pub fn expire(&mut self, now_ns: u64) {
        let window = self.window_ns;
        if !self.queue_complete {
            self.expire_scan(now_ns);
            return;
        }
        while let Some(&(idx, ts)) = self.queue.front() {
            if ts.saturating_add(window) > now_ns {
                break;
            }
            self.queue.pop_front();
            if let Some(s) = self.slots.get_mut(idx as usize)
                && s.hash != 0
                && s.ts_ns == ts
            {
                Self::settle(&mut self.counters, s.deliveries);
                *s = Inbound::default();
                self.live -= 1;
            }
        }
        if self.queue.is_empty() {
            // Do not pin the memory of a past burst.
            self.queue.shrink_to(1024);
        }
    }

    /// One pass over the table; then every survivor is queued again in time order.
    fn expire_scan(&mut self, now_ns: u64) {
        let window = self.window_ns;
        let mut survivors = Vec::new();
        for (i, s) in self.slots.iter_mut().enumerate() {
            if s.hash == 0 {
                continue;
            }
            if s.ts_ns.saturating_add(window) <= now_ns {
                Self::settle(&mut self.counters, s.deliveries);
                *s = Inbound::default();
                self.live -= 1;
            } else {
                survivors.push((i as u32, s.ts_ns));
            }
        }
        survivors.sort_unstable_by_key(|&(_, ts)| ts);
        self.queue_last_ts = survivors.last().map_or(0, |&(_, ts)| ts);
        self.queue = survivors.into();
        self.queue_complete = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_within_window_and_settles() {
        let mut f = Fanout::new(4, 1); // 1 ms window
        let h = message_hash(b"a/b", b"x");
        assert_ne!(h, message_hash(b"a/", b"bx"));
        f.inbound(h, 1_000, Some(GroupId(3)), false);
        f.inbound(h, 1_500, None, true); // dup re-send: keeps the first
        assert_eq!(
            f.outbound(h, 1_250, false, false),
            Some((250e-9, Some(GroupId(3))))
        );
        assert_eq!(
            f.outbound(h, 1_000 + 1_000_000, false, false).map(|x| x.0),
            Some(1e-3)
        );
        assert_eq!(f.outbound(h, 1_001 + 1_000_000, false, false), None);
        assert_eq!(f.outbound(h, 2_000, false, true), None);
        f.expire(1_000 + 999_999);
        assert_eq!(f.len(), 1);
        f.expire(1_000 + 1_000_000);
        assert_eq!(f.len(), 0);
        let c = f.counters;
        assert_eq!(
            (c.inbound, c.matched, c.unmatched, c.skipped_retained),
            (1, 2, 1, 1)
        );
        assert_eq!((c.delivered_0, c.delivered_1, c.delivered_n), (0, 0, 1));
    }

    /// Expiry through the arrival queue and through the fallback scan (after a message
    /// older than the previous one) settle the same messages at the same times.
    #[test]
    fn queued_and_scanned_expiry_agree() {
        for reorder in [false, true] {
            let mut f = Fanout::new(64, 1); // 1 ms window
            let times: Vec<u64> = if reorder {
                vec![100, 300, 200, 400, 250]
            } else {
                vec![100, 200, 250, 300, 400]
            };
            for (i, &t) in times.iter().enumerate() {
                f.inbound(message_hash(b"t", &[i as u8]), t * 1000, None, false);
            }
            // Replaced message: its first queue entry must not expire the new one early.
            f.inbound(message_hash(b"t", &[0]), 350_000, None, false);
            assert_eq!(f.len(), 5);
            f.expire(1_000_000 + 249_999);
            assert_eq!(f.len(), 4, "reorder {reorder}");
            f.expire(1_000_000 + 300_000);
            assert_eq!(f.len(), 2, "reorder {reorder}");
            f.expire(1_000_000 + 350_000);
            assert_eq!(f.len(), 1, "reorder {reorder}");
            f.expire(1_000_000 + 400_000);
            assert_eq!(f.len(), 0, "reorder {reorder}");
            let c = f.counters;
            assert_eq!((c.inbound, c.replaced, c.delivered_0), (6, 1, 6));
        }
    }
}
