//! Statistics of one topic group, updated per PUBLISH and per latency sample.

use super::arrivals::Arrivals;
use super::distinct::Distinct;
use super::snapshot::{ArrivalSnapshot, LatencySnapshot, TopicSnapshot, WindowCounts};
use crate::mqtt::Direction;
use crate::observe::sketch::Sketch;
use crate::observe::window::{RingHead, RingStore, SPAN_SECS};
use crate::observe::{Exchange, GroupKind};

/// Ring lanes.
const MSGS_IN: usize = 0;
const MSGS_OUT: usize = 1;
const BYTES_IN: usize = 2;
const BYTES_OUT: usize = 3;

/// Buckets per group payload/latency sketch: 512 buckets span a factor 2^(512/39) ≈
/// 9000 at full precision (2 KB worst case); a wider spread only coarsens the low tail.
pub const GROUP_SKETCH_BINS: usize = 512;

/// The exchanges with per-group latency.
const LATENCY_EXCHANGES: [Exchange; 3] = [
    Exchange::PublishQos1,
    Exchange::PublishQos2,
    Exchange::Fanout,
];

/// Position of `ex` in `LATENCY_EXCHANGES` (a match: this runs per latency sample).
#[inline]
/// The sketch of `ex` in a group's latency, for the exchanges a group keeps: the
/// whole deliveries. The legs of a QoS 2 flow and the non-PUBLISH exchanges are kept
/// per exchange only.
pub(super) fn latency_slot(ex: Exchange) -> Option<usize> {
    match ex {
        Exchange::PublishQos1 => Some(0),
        Exchange::PublishQos2 => Some(1),
        Exchange::Fanout => Some(2),
        _ => None,
    }
}

fn dir_idx(dir: Direction) -> usize {
    match dir {
        Direction::C2S => 0,
        Direction::S2C => 1,
    }
}

/// One PUBLISH as the group sees it.
#[derive(Clone, Copy, Debug)]
pub struct PublishInfo {
    pub dir: Direction,
    pub client_key: u64,
    pub qos: u8,
    pub retain: bool,
    pub dup: bool,
    pub payload_len: usize,
    pub ts_ns: u64,
}

/// Counters of a group not yet added to its lifetime `Totals`: 32-bit, so a PUBLISH
/// updates them on the group's second cache line. They move to the totals when the
/// ring's bucket changes (every `bucket_secs` of an active group) or when one is full.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
struct Deltas {
    /// `[dir][qos]`.
    qos: [[u32; 3]; 2],
    retained: [u32; 2],
    dup: [u32; 2],
    invalid: u32,
}

/// Lifetime counters (plus the `Deltas` not yet moved here).
#[derive(Clone, Copy, Debug, Default)]
struct Totals {
    qos: [[u64; 3]; 2],
    retained: [u64; 2],
    dup: [u64; 2],
    invalid: u64,
}

/// `Distinct` is fed only when the client differs from the last one added (the usual
/// topic has one publisher, sending again and again): `KEY_PUB` / `KEY_SUB` in `keys`
/// say whether `pub_key` / `sub_key` hold such a client.
const KEY_PUB: u8 = 1;
const KEY_SUB: u8 = 2;

/// Field order is fixed (`repr(C)`) so that a PUBLISH touches few, adjacent cache
/// lines. In a topic slot (a 16-byte header, then this, 64-byte aligned):
/// - line 0: the ring's newest bucket, first and last time (every PUBLISH);
/// - line 1: last clients, counter deltas (every PUBLISH);
/// - lines 2-3: inter-arrival state, the payload sketch's counters and bucket pointer
///   (inbound PUBLISHes);
/// - the rest (ring storage and totals, lifetime counters, distinct-client sets) is
///   touched once per bucket or when a new client shows up, except the per-group
///   latency sketches (a latency sample touches the slot's first line and its sketch,
///   at a fixed offset, so both are fetched at once).
///
/// `layout_keeps_publish_lines_together` (in `topics::tests_layout`) checks the offsets.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct GroupStats {
    head: RingHead<4>,
    /// First and last PUBLISH time; `NO_TIME` in `first_ns` until the first one.
    first_ns: u64,
    last_ns: u64,
    pub_key: u64,
    sub_key: u64,
    d: Deltas,
    keys: u8,
    arrivals: Arrivals,
    payload_in: Sketch,
    ring: RingStore<4>,
    t: Totals,
    publishers: Distinct,
    subscribers: Distinct,
    /// Per-group latency of `LATENCY_EXCHANGES`, inline (no pointer to follow: a
    /// sample's sketch is at a fixed offset from the slot, fetched alongside it); the
    /// buckets are allocated with the first sample.
    latency: [Sketch; 3],
    /// Exact topics whose statistics were folded into this group.
    folded: u64,
}

/// `GroupStats::brief`: lifetime message totals, last PUBLISH time and the learned
/// period; each field equals its namesake in `TopicSnapshot`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupBrief {
    pub msgs_in: u64,
    pub msgs_out: u64,
    pub last_seen_ns: Option<u64>,
    /// Inter-arrival gaps seen (`interarrival.gaps`).
    pub gaps: u64,
    /// Learned period (`interarrival.period_s`).
    pub period_s: Option<f64>,
    pub folded_topics: u64,
}

/// `first_ns` of a group that has seen no PUBLISH.
const NO_TIME: u64 = u64::MAX;

impl GroupStats {
    pub fn new(bucket_secs: u32) -> GroupStats {
        GroupStats::with_ring(RingStore::new(bucket_secs, SPAN_SECS))
    }

    /// Statistics of no group: nothing allocated (a free topic slot holds one).
    pub(super) fn empty() -> GroupStats {
        GroupStats::with_ring(RingStore::empty())
    }

    fn with_ring((head, ring): (RingHead<4>, RingStore<4>)) -> GroupStats {
        GroupStats {
            head,
            first_ns: NO_TIME,
            last_ns: 0,
            pub_key: 0,
            sub_key: 0,
            d: Deltas::default(),
            keys: 0,
            arrivals: Arrivals::default(),
            payload_in: Sketch::with_max_bins(GROUP_SKETCH_BINS),
            ring,
            t: Totals::default(),
            publishers: Distinct::default(),
            subscribers: Distinct::default(),
            latency: std::array::from_fn(|_| Sketch::with_max_bins(GROUP_SKETCH_BINS)),
            folded: 0,
        }
    }

    /// Moves the deltas to the totals.
    #[cold]
    fn flush(&mut self) {
        let (t, d) = (&mut self.t, std::mem::take(&mut self.d));
        for (tq, dq) in t.qos.iter_mut().zip(d.qos) {
            for (x, y) in tq.iter_mut().zip(dq) {
                *x += u64::from(y);
            }
        }
        for i in 0..2 {
            t.retained[i] += u64::from(d.retained[i]);
            t.dup[i] += u64::from(d.dup[i]);
        }
        t.invalid += u64::from(d.invalid);
    }

    /// Ring update off the fast path (another bucket, or a full head counter).
    #[cold]
    fn ring_slow(&mut self, ts_ns: u64, lane_a: usize, a: u64, lane_b: usize, b: u64) {
        let x = self.ring.add(&mut self.head, ts_ns, lane_a, a);
        let y = self.ring.add(&mut self.head, ts_ns, lane_b, b);
        if x || y {
            self.flush();
        }
    }

    /// Adds one to a delta counter, moving the deltas to the totals first if it is full.
    #[inline]
    fn bump(&mut self, f: impl Fn(&mut Deltas) -> &mut u32) {
        if *f(&mut self.d) == u32::MAX {
            self.flush();
        }
        let c = f(&mut self.d);
        *c += 1;
    }

    #[inline]
    pub fn on_publish(&mut self, p: &PublishInfo) {
        let d = dir_idx(p.dir);
        let (msgs, bytes) = if d == 0 {
            (MSGS_IN, BYTES_IN)
        } else {
            (MSGS_OUT, BYTES_OUT)
        };
        let len = p.payload_len as u64;
        if !self.head.try_add_pair(p.ts_ns, msgs, 1, bytes, len) {
            self.ring_slow(p.ts_ns, msgs, 1, bytes, len);
        }
        let q = usize::from(p.qos);
        if q < 3 {
            self.bump(|x| &mut x.qos[d & 1][q]);
        } else {
            self.bump(|x| &mut x.invalid);
        }
        if p.retain {
            self.bump(|x| &mut x.retained[d & 1]);
        }
        if p.dup {
            self.bump(|x| &mut x.dup[d & 1]);
        }
        if d == 0 {
            self.payload_in.record(p.payload_len as f64);
            if self.keys & KEY_PUB == 0 || self.pub_key != p.client_key {
                self.publishers.add(p.client_key);
                self.pub_key = p.client_key;
                self.keys |= KEY_PUB;
            }
            if !p.dup {
                self.arrivals.on_arrival(p.ts_ns);
            }
        } else if self.keys & KEY_SUB == 0 || self.sub_key != p.client_key {
            self.subscribers.add(p.client_key);
            self.sub_key = p.client_key;
            self.keys |= KEY_SUB;
        }
        self.first_ns = self.first_ns.min(p.ts_ns);
        self.last_ns = self.last_ns.max(p.ts_ns);
    }

    /// Addresses of the lines `on_publish` touches beyond the first (for prefetching).
    #[inline]
    pub(super) fn hot_lines(&self) -> [*const u8; 3] {
        [
            (&self.d as *const Deltas).cast(),
            (&self.arrivals as *const Arrivals).cast(),
            (&self.payload_in as *const Sketch)
                .cast::<u8>()
                .wrapping_add(48),
        ]
    }

    /// End of the ring head, first and last time (layout test).
    #[cfg(test)]
    pub(super) fn offset_head_end() -> usize {
        std::mem::offset_of!(GroupStats, last_ns) + 8
    }

    /// Start of the client keys and end of the deltas (layout test).
    #[cfg(test)]
    pub(super) fn offset_deltas() -> (usize, usize) {
        (
            std::mem::offset_of!(GroupStats, pub_key),
            std::mem::offset_of!(GroupStats, keys) + 1,
        )
    }

    /// Start of the arrival state and of the payload sketch (layout test).
    #[cfg(test)]
    pub(super) fn offset_arrivals_sketch() -> (usize, usize) {
        (
            std::mem::offset_of!(GroupStats, arrivals),
            std::mem::offset_of!(GroupStats, payload_in),
        )
    }

    /// Address of the payload-sketch bucket an inbound PUBLISH of `len` bytes updates.
    #[inline]
    pub(super) fn payload_bin_line(&self, len: usize) -> Option<*const u8> {
        self.payload_in.bin_addr(len as f64)
    }

    fn qos_total(&self, d: usize, q: usize) -> u64 {
        self.t.qos[d][q] + u64::from(self.d.qos[d][q])
    }

    fn qos_totals(&self, d: usize) -> [u64; 3] {
        [0, 1, 2].map(|q| self.qos_total(d, q))
    }

    fn retained_total(&self, d: usize) -> u64 {
        self.t.retained[d] + u64::from(self.d.retained[d])
    }

    fn dup_total(&self, d: usize) -> u64 {
        self.t.dup[d] + u64::from(self.d.dup[d])
    }

    fn invalid_total(&self) -> u64 {
        self.t.invalid + u64::from(self.d.invalid)
    }

    pub fn on_latency(&mut self, ex: Exchange, seconds: f64) {
        let Some(i) = latency_slot(ex) else { return };
        if let Some(s) = self.latency.get_mut(i) {
            s.record(seconds);
        }
    }

    /// Address of the sketch an `ex` sample updates (for prefetching).
    #[inline]
    pub(super) fn latency_line(&self, ex: Exchange) -> Option<*const u8> {
        let i = latency_slot(ex)?;
        self.latency.get(i).map(|s| (s as *const Sketch).cast())
    }

    /// Address of the latency-sketch bucket an `ex` sample of `seconds` updates.
    #[inline]
    pub(super) fn latency_bin_line(&self, ex: Exchange, seconds: f64) -> Option<*const u8> {
        let i = latency_slot(ex)?;
        self.latency.get(i)?.bin_addr(seconds)
    }

    /// Whether any per-group latency was ever recorded (or folded in).
    fn has_latency(&self) -> bool {
        self.latency
            .iter()
            .any(|s| s.count() > 0 || s.rejected() > 0)
    }

    /// Payload sizes of inbound messages, bytes.
    pub fn payload_sketch(&self) -> &Sketch {
        &self.payload_in
    }

    /// Per-group latency of `ex` (`publish_qos1`, `publish_qos2`, `fanout`), once sampled.
    pub fn latency_sketch(&self, ex: Exchange) -> Option<&Sketch> {
        let i = latency_slot(ex)?;
        if !self.has_latency() {
            return None;
        }
        self.latency.get(i)
    }

    /// Adds the lifetime statistics of `other` (an evicted exact topic) to this group.
    /// Window counts are not moved: a topic is evicted only after being idle longer than
    /// the ring, so its buckets are empty; its totals are. Inter-arrival state describes
    /// one stream and is not mixed in.
    pub fn fold(&mut self, other: &GroupStats) {
        for lane in [MSGS_IN, MSGS_OUT, BYTES_IN, BYTES_OUT] {
            self.ring
                .add_total(lane, other.ring.total(&other.head, lane));
        }
        self.payload_in.merge(&other.payload_in);
        for d in 0..2 {
            for q in 0..3 {
                self.t.qos[d][q] += other.qos_total(d, q);
            }
            self.t.retained[d] += other.retained_total(d);
            self.t.dup[d] += other.dup_total(d);
        }
        self.t.invalid += other.invalid_total();
        self.publishers.merge(&other.publishers);
        self.subscribers.merge(&other.subscribers);
        self.first_ns = self.first_ns.min(other.first_ns);
        self.last_ns = self.last_ns.max(other.last_ns);
        for (m, s) in self.latency.iter_mut().zip(other.latency.iter()) {
            m.merge(s);
        }
        self.folded += 1 + other.folded;
    }

    pub fn mem_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.ring.heap_bytes() + self.payload_in.mem_bytes()
            - std::mem::size_of::<Sketch>()
            + self.publishers.heap_bytes()
            + self.subscribers.heap_bytes()
            + self
                .latency
                .iter()
                .map(|s| s.mem_bytes() - std::mem::size_of::<Sketch>())
                .sum::<usize>()
    }

    fn window(&self, views: &[[u64; 3]; 4], lane: usize) -> WindowCounts {
        let [last_1m, last_5m, last_15m] = views.get(lane).copied().unwrap_or_default();
        WindowCounts {
            total: self.ring.total(&self.head, lane),
            last_1m,
            last_5m,
            last_15m,
        }
    }

    /// The few figures a reader polling every group each bucket needs (the anomaly
    /// engine), read straight off the state: `snapshot` also computes quantiles, the
    /// 1/5/15 minute views and the distinct-client estimates and copies the name,
    /// about 40 % of the anomaly engine's CPU when every group was snapshotted.
    pub fn brief(&self) -> GroupBrief {
        GroupBrief {
            msgs_in: self.ring.total(&self.head, MSGS_IN),
            msgs_out: self.ring.total(&self.head, MSGS_OUT),
            last_seen_ns: (self.first_ns != NO_TIME).then_some(self.last_ns),
            gaps: self.arrivals.gaps(),
            period_s: self.arrivals.period_s(),
            folded_topics: self.folded,
        }
    }

    pub fn snapshot(&self, name: &str, kind: GroupKind, now_ns: u64) -> TopicSnapshot {
        let latency = LATENCY_EXCHANGES
            .iter()
            .zip(self.latency.iter())
            .filter(|(_, s)| s.count() > 0)
            .map(|(ex, s)| {
                let [p50_s, p90_s, p99_s] = s.quantiles([0.5, 0.9, 0.99]);
                LatencySnapshot {
                    exchange: ex.name(),
                    count: s.count(),
                    p50_s,
                    p90_s,
                    p99_s,
                    max_s: s.max(),
                }
            })
            .collect();
        let views = self.ring.sums_last(&self.head, now_ns, [60, 300, 900]);
        TopicSnapshot {
            name: name.to_owned(),
            kind: match kind {
                GroupKind::Exact => "exact",
                GroupKind::Template => "template",
                GroupKind::Other => "other",
            },
            msgs_in: self.window(&views, MSGS_IN),
            msgs_out: self.window(&views, MSGS_OUT),
            bytes_in: self.window(&views, BYTES_IN),
            bytes_out: self.window(&views, BYTES_OUT),
            payload_in: self.payload_in.summary(),
            qos_in: self.qos_totals(0),
            qos_out: self.qos_totals(1),
            qos_invalid: self.invalid_total(),
            retained_in: self.retained_total(0),
            retained_out: self.retained_total(1),
            dup_in: self.dup_total(0),
            dup_out: self.dup_total(1),
            publishers: self.publishers.estimate(),
            subscribers: self.subscribers.estimate(),
            first_seen_ns: (self.first_ns != NO_TIME).then_some(self.first_ns),
            last_seen_ns: (self.first_ns != NO_TIME).then_some(self.last_ns),
            interarrival: ArrivalSnapshot {
                gaps: self.arrivals.gaps(),
                mean_s: self.arrivals.mean_s(),
                jitter_s: self.arrivals.jitter_s(),
                period_s: self.arrivals.period_s(),
            },
            latency,
            folded_topics: self.folded,
        }
    }
}
