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

use super::table::OrderedMap;

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

#[derive(Debug)]
struct Inbound {
    ts_ns: u64,
    group: Option<GroupId>,
    deliveries: u32,
}

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

pub struct Fanout {
    table: OrderedMap<u64, Inbound>,
    window_ns: u64,
    pub sketch: Sketch,
    pub counters: FanoutCounters,
}

impl Fanout {
    pub fn new(cap: usize, window_ms: u64) -> Fanout {
        Fanout {
            table: OrderedMap::new(cap),
            window_ns: window_ms.saturating_mul(1_000_000),
            sketch: Sketch::new(),
            counters: FanoutCounters::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn mem_bytes(&self) -> usize {
        self.table.mem_bytes() + self.sketch.mem_bytes()
    }

    fn settle(&mut self, deliveries: u32) {
        match deliveries {
            0 => self.counters.delivered_0 += 1,
            1 => self.counters.delivered_1 += 1,
            _ => self.counters.delivered_n += 1,
        }
    }

    /// A PUBLISH entering the broker. `dup`: a re-send of one already remembered.
    pub fn inbound(&mut self, h: u64, ts_ns: u64, group: Option<GroupId>, dup: bool) {
        if let Some(i) = self.table.find(&h) {
            if dup {
                return;
            }
            if let Some((_, old)) = self.table.remove_at(i) {
                self.counters.replaced += 1;
                self.settle(old.deliveries);
            }
        }
        self.counters.inbound += 1;
        let e = Inbound {
            ts_ns,
            group,
            deliveries: 0,
        };
        if let (_, Some(_)) = self.table.insert(h, e) {
            self.counters.evicted += 1;
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
        let window = self.window_ns;
        let hit = self.table.get_mut(&h).and_then(|e| {
            let d = ts_ns.checked_sub(e.ts_ns).filter(|&d| d <= window)?;
            e.deliveries = e.deliveries.saturating_add(1);
            Some((d, e.group))
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

    /// Settles inbound messages older than the window.
    pub fn expire(&mut self, now_ns: u64) {
        while let Some((_, e)) = self.table.front() {
            if e.ts_ns.saturating_add(self.window_ns) > now_ns {
                break;
            }
            if let Some((_, e)) = self.table.pop_front() {
                self.settle(e.deliveries);
            }
        }
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
}
