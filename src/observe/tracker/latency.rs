//! Request/response matching: a bounded table of requests waiting for their answer, and
//! per-exchange latency statistics.
//!
//! Keys are (flow, stage, direction of the request, packet id): packet ids are per
//! connection and per direction (the broker numbers its own PUBLISHes), so QoS 1/2 in
//! both directions match independently. Latencies are exact nanosecond differences of
//! packet timestamps, converted to seconds once at the end.

use crate::mqtt::Direction;
use crate::observe::sketch::Sketch;
use crate::observe::types::{Exchange, GroupId};

use super::fifo::{FifoKey, FifoMap, mix_tag};

/// The step of an exchange a pending entry waits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    Connect,
    Qos1,
    /// QoS 2 PUBLISH waiting for PUBREC.
    Q2Rec,
    /// PUBREC waiting for PUBREL.
    Q2Rel,
    /// PUBREL waiting for PUBCOMP.
    Q2Comp,
    Subscribe,
    Unsubscribe,
    Ping,
}

impl Stage {
    /// Exchange whose latency this stage measures.
    pub fn exchange(self) -> Exchange {
        match self {
            Stage::Connect => Exchange::Connect,
            Stage::Qos1 => Exchange::PublishQos1,
            Stage::Q2Rec => Exchange::PubRec,
            Stage::Q2Rel => Exchange::PubRel,
            Stage::Q2Comp => Exchange::PubComp,
            Stage::Subscribe => Exchange::Subscribe,
            Stage::Unsubscribe => Exchange::Unsubscribe,
            Stage::Ping => Exchange::Ping,
        }
    }

    fn is_qos2(self) -> bool {
        matches!(self, Stage::Q2Rec | Stage::Q2Rel | Stage::Q2Comp)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendKey {
    pub flow: u64,
    pub stage: Stage,
    /// Direction the request travelled.
    pub dir: Direction,
    pub packet_id: u16,
}

impl PendKey {
    /// Stage, direction and packet id in one word.
    #[inline]
    fn low(&self) -> u64 {
        let dir = match self.dir {
            Direction::C2S => 0u64,
            Direction::S2C => 1,
        };
        ((self.stage as u64) << 17) | (dir << 16) | u64::from(self.packet_id)
    }
}

impl FifoKey for PendKey {
    #[inline]
    fn tag(&self, seed: u64) -> u32 {
        mix_tag(self.flow.rotate_left(24) ^ self.low(), seed)
    }
}

/// What a pending request remembers beyond its time.
#[derive(Debug)]
pub enum Extra {
    None,
    /// The topic of a PUBLISH, whole, to name it in a `PublishRefused` event, kept only
    /// when nothing else can name it later: its group is not the exact topic (beyond
    /// the exact-topic cap) and the connection may be MQTT 5 (3.x acks carry no reason
    /// code, so they never refuse). An exact group names its topic itself. At most
    /// `MAX_KEPT_TOPIC_BYTES` are kept (`true`: cut), so the pending table stays small
    /// however long the topics a client sends (up to 64 KB each on the wire).
    Topic(Box<[u8]>, bool),
    /// Raw filter list of a SUBSCRIBE / UNSUBSCRIBE (rare: allocation is fine), to name
    /// a refused filter by position and to track subscriptions held.
    Filters(Box<[u8]>),
}

#[derive(Debug)]
pub struct Pending {
    pub ts_ns: u64,
    /// Time of the QoS 2 PUBLISH that started the whole flow, when it was seen.
    pub publish_ts_ns: Option<u64>,
    pub group: Option<GroupId>,
    pub extra: Extra,
}

/// Per-exchange latency and outcome counters.
#[derive(Debug, Default)]
pub struct ExchangeStats {
    pub sketch: Sketch,
    /// Requests never answered: expired, or their connection closed first.
    pub unanswered: u64,
    /// Requests forgotten because the pending table was full.
    pub evicted: u64,
    /// Answers with no request waiting (request before the capture, or lost).
    pub unmatched: u64,
    /// Requests re-sent (dup=1, or a second PINGREQ) while the first was pending:
    /// the first send time is kept.
    pub retransmits: u64,
}

fn stat_in(stats: &mut [ExchangeStats; 10], e: Exchange) -> &mut ExchangeStats {
    // `Exchange::index` is below 10 by construction; the clamp keeps it panic-free.
    let i = e.index().min(stats.len() - 1);
    &mut stats[i]
}

/// One request never answered: its exchange's count, and the whole QoS 2 flow's.
fn unanswered_in(stats: &mut [ExchangeStats; 10], stage: Stage) {
    stat_in(stats, stage.exchange()).unanswered += 1;
    if stage.is_qos2() {
        stat_in(stats, Exchange::PublishQos2).unanswered += 1;
    }
}

pub struct Latency {
    pub pending: FifoMap<PendKey, Pending>,
    pub stats: [ExchangeStats; 10],
    timeout_ns: u64,
}

impl Latency {
    pub fn new(cap: usize, timeout_secs: f64) -> Latency {
        Latency {
            pending: FifoMap::new(cap),
            stats: Default::default(),
            // `as` saturates: a negative or NaN timeout becomes 0, a huge one u64::MAX.
            timeout_ns: (timeout_secs * 1e9) as u64,
        }
    }

    fn stat(&mut self, e: Exchange) -> &mut ExchangeStats {
        stat_in(&mut self.stats, e)
    }

    /// Remembers a request. `resend`: the request says it is a retransmission, so an
    /// entry already waiting keeps its (first) send time.
    pub fn start(&mut self, key: PendKey, p: Pending, resend: bool) {
        if self.pending.find(&key).is_some() {
            if resend {
                self.stat(key.stage.exchange()).retransmits += 1;
                return;
            }
            // Same id reused without an answer in between: the earlier request was
            // never answered (as far as the wire shows).
            self.pending.remove(&key);
            self.count_unanswered(key.stage);
        }
        if let Some((k, _)) = self.pending.insert_absent(key, p) {
            self.stat(k.stage.exchange()).evicted += 1;
            if k.stage.is_qos2() {
                self.stat(Exchange::PublishQos2).evicted += 1;
            }
        }
    }

    /// Takes the request `key` answers; counts an unmatched answer when none waits.
    pub fn answer(&mut self, key: PendKey) -> Option<Pending> {
        let p = self.pending.remove(&key);
        if p.is_none() {
            self.stat(key.stage.exchange()).unmatched += 1;
        }
        p
    }

    /// Records a latency sample `start → end` for `e`; returns it in seconds.
    pub fn record(&mut self, e: Exchange, start_ns: u64, end_ns: u64) -> Option<f64> {
        // A reply stamped before its request (clock step, capture reordering) is not a
        // latency: skip it rather than record a negative or wrapped value.
        let d = end_ns.checked_sub(start_ns)?;
        let secs = d as f64 / 1e9;
        self.stat(e).sketch.record(secs);
        Some(secs)
    }

    fn count_unanswered(&mut self, stage: Stage) {
        unanswered_in(&mut self.stats, stage);
    }

    /// Forgets requests older than the timeout, counting them unanswered. Entries are
    /// in arrival order, so this stops at the first young one (a slightly out-of-order
    /// timestamp only delays expiry of the entries behind it).
    pub fn expire(&mut self, now_ns: u64) {
        let (timeout, stats) = (self.timeout_ns, &mut self.stats);
        self.pending.pop_front_while(
            |_, p| p.ts_ns.saturating_add(timeout) <= now_ns,
            |k, _| unanswered_in(stats, k.stage),
        );
    }

    /// Drops the requests of closed flows, counting them unanswered.
    pub fn drop_flows(
        &mut self,
        closed: &std::collections::HashSet<u64, foldhash::fast::RandomState>,
    ) {
        let stats = &mut self.stats;
        self.pending.retain(
            |k, _| !closed.contains(&k.flow),
            |k, _| unanswered_in(stats, k.stage),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pid: u16) -> PendKey {
        PendKey {
            flow: 1,
            stage: Stage::Qos1,
            dir: Direction::C2S,
            packet_id: pid,
        }
    }

    fn p(ts: u64) -> Pending {
        Pending {
            ts_ns: ts,
            publish_ts_ns: Some(ts),
            group: None,
            extra: Extra::None,
        }
    }

    #[test]
    fn resend_keeps_first_time_and_reuse_counts_unanswered() {
        let mut l = Latency::new(10, 1.0);
        l.start(key(1), p(100), false);
        l.start(key(1), p(200), true);
        let got = l.answer(key(1)).unwrap();
        assert_eq!(got.ts_ns, 100);
        let q = &l.stats[Exchange::PublishQos1.index()];
        assert_eq!(q.retransmits, 1);
        l.start(key(2), p(300), false);
        l.start(key(2), p(400), false);
        assert_eq!(l.stats[1].unanswered, 1);
        assert_eq!(l.answer(key(2)).unwrap().ts_ns, 400);
        assert!(l.answer(key(2)).is_none());
        assert_eq!(l.stats[1].unmatched, 1);
    }

    #[test]
    fn expiry_and_cap() {
        let mut l = Latency::new(2, 1.0);
        l.start(key(1), p(0), false);
        l.start(key(2), p(10), false);
        l.start(key(3), p(20), false);
        assert_eq!(l.stats[1].evicted, 1);
        assert_eq!(l.pending.len(), 2);
        l.expire(1_000_000_009);
        assert_eq!(l.stats[1].unanswered, 0);
        l.expire(1_000_000_010);
        assert_eq!(l.stats[1].unanswered, 1);
        assert_eq!(l.pending.len(), 1);
        assert_eq!(l.record(Exchange::Ping, 5, 3), None);
        assert_eq!(l.record(Exchange::Ping, 1_000, 1_500_001_000), Some(1.5));
    }
}
