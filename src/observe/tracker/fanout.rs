//! Broker fan-out: the time from a PUBLISH entering the broker to each copy of it
//! leaving toward a subscriber. Packet ids differ per hop, so copies are matched by
//! (topic, payload) hash within a window.
//!
//! One inbound message per (topic, payload) is remembered: a newer identical PUBLISH
//! replaces the older one (periodic telemetry often repeats its payload; the copies of
//! the older one have normally left by then). Outbound copies flagged dup (re-sent to a
//! subscriber) or retain (sent because a subscription was made, MQTT-3.3.1-9, not
//! because of this publication) give no sample.
//!
//! Which messages are remembered. Hashing a payload (up to 64 KB) and remembering it
//! is the costly part, and wasted on a topic nobody subscribes to: in a telemetry
//! fleet most topics have no subscriber on the broker (their data leaves through
//! rules and bridges). So for an exact topic group the observer remembers an inbound
//! message only once a copy of some message on that topic has been seen leaving the
//! broker, and looks up an outbound copy only once an inbound message on it was
//! remembered (`Topics::group_for_publish`, flags in the topic index). The cost: the
//! messages of a topic published before its first copy out are not timed; they are
//! counted `untracked`, not among the `delivered_*` outcomes (their copies, if the
//! first copy out was one of them, count `unmatched`). On a 30-minute plant capture
//! with real subscribers that is one message per topic (0.4 % of the deliveries).
//! Template and `__other__` groups mix many topics and are always remembered.

use std::hash::{BuildHasher, Hasher};
use std::num::NonZeroU64;

use super::fifo::FifoMap;
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

/// One remembered inbound message (keyed by its hash, forced odd so never zero).
#[derive(Clone, Copy, Debug)]
struct Inbound {
    ts_ns: u64,
    /// `GroupId` + 1; 0 = none.
    group: u32,
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
    /// Inbound PUBLISHes not remembered: their topic had no copy seen leaving the
    /// broker yet (see the module doc). Their outcome is unknown, so they are in none
    /// of the `delivered_*` counts.
    pub untracked: u64,
}

/// The inbound messages of the last window, in arrival order (a `FifoMap`: a ring
/// buffer with a small hash index). At a real broker's rates the live part is window ×
/// inbound rate messages (thousands), so the ring tail being written, the front being
/// expired and the index all stay in cache; a fixed table sized for the cap would put
/// every insert, lookup and expiry on a different cold cache line.
///
/// A full table gives up its oldest message (settled if it already left the window,
/// else counted `evicted`). Expiry pops from the front while the front is past the
/// window, so it costs what expires. That is exact while messages arrive in time order;
/// after one older than the previous (`in_order` false) `expire` instead settles every
/// message past the window wherever it sits and sorts the rest by time, so results
/// never depend on arrival order.
pub struct Fanout {
    table: FifoMap<NonZeroU64, Inbound>,
    window_ns: u64,
    /// Every message was inserted no earlier than the one before it (since the last
    /// sort).
    in_order: bool,
    /// Time of the newest inserted message.
    last_ts: u64,
    pub sketch: Sketch,
    pub counters: FanoutCounters,
}

fn key(h: u64) -> NonZeroU64 {
    NonZeroU64::new(h | 1).unwrap_or(NonZeroU64::MIN)
}

impl Fanout {
    /// Room for `cap` messages.
    pub fn new(cap: usize, window_ms: u64) -> Fanout {
        Fanout {
            table: FifoMap::new(cap),
            window_ns: window_ms.saturating_mul(1_000_000),
            in_order: true,
            last_ts: 0,
            sketch: Sketch::new(),
            counters: FanoutCounters::default(),
        }
    }

    /// Starts fetching the index line a lookup of `h` reads first.
    #[inline]
    pub fn prefetch(&self, h: u64) {
        self.table.prefetch(&key(h));
    }

    /// Messages remembered.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn mem_bytes(&self) -> usize {
        self.table.mem_bytes() + self.sketch.mem_bytes()
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
        let k = key(h);
        if let Some(slot) = self.table.find(&k) {
            if dup {
                return;
            }
            // An identical newer message replaces the older one.
            self.counters.replaced += 1;
            let d = self.table.at_mut(slot).map_or(0, |e| e.deliveries);
            Self::settle(&mut self.counters, d);
            self.table.remove(&k);
        }
        let e = Inbound {
            ts_ns,
            group: group.map_or(0, |g| g.0.saturating_add(1)),
            deliveries: 0,
        };
        if let Some((_, old)) = self.table.insert_absent(k, e) {
            // Full: the oldest gives way; settled if it already left the window.
            if old.ts_ns.saturating_add(self.window_ns) <= ts_ns {
                Self::settle(&mut self.counters, old.deliveries);
            } else {
                self.counters.evicted += 1;
            }
        }
        self.counters.inbound += 1;
        if ts_ns < self.last_ts {
            self.in_order = false;
        }
        self.last_ts = self.last_ts.max(ts_ns);
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
        let hit = self.table.get_mut(&key(h)).and_then(|e| {
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

    /// A PUBLISH that takes no part in matching (see the module doc), inbound or
    /// `outbound`: counted as `inbound` and `outbound` would, without a lookup. A
    /// re-sent inbound copy (`dup`) is not a new message.
    pub fn untracked(&mut self, outbound: bool, dup: bool, retain: bool) {
        let c = &mut self.counters;
        match (outbound, dup, retain) {
            (false, true, _) => {}
            (false, false, _) => c.untracked += 1,
            (true, true, _) => c.skipped_dup += 1,
            (true, false, true) => c.skipped_retained += 1,
            (true, false, false) => c.unmatched += 1,
        }
    }

    /// Settles inbound messages older than the window (see the type's doc for how).
    pub fn expire(&mut self, now_ns: u64) {
        let window = self.window_ns;
        if !self.in_order {
            let c = &mut self.counters;
            self.table.retain(
                |_, e| e.ts_ns.saturating_add(window) > now_ns,
                |_, e| Self::settle(c, e.deliveries),
            );
            self.table.sort_by_key(|_, e| e.ts_ns);
            self.in_order = true;
            self.last_ts = self.table.iter().map(|(_, e)| e.ts_ns).max().unwrap_or(0);
            return;
        }
        let c = &mut self.counters;
        self.table.pop_front_while(
            |_, e| e.ts_ns.saturating_add(window) <= now_ns,
            |_, e| Self::settle(c, e.deliveries),
        );
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
