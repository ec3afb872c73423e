//! Statistics of one topic group, updated per PUBLISH and per latency sample.

use super::arrivals::Arrivals;
use super::distinct::Distinct;
use super::snapshot::{ArrivalSnapshot, LatencySnapshot, TopicSnapshot, WindowCounts};
use crate::mqtt::Direction;
use crate::observe::sketch::Sketch;
use crate::observe::window::{BucketRing, SPAN_SECS};
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

fn latency_slot(ex: Exchange) -> Option<usize> {
    LATENCY_EXCHANGES.iter().position(|&e| e == ex)
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

/// Field order is fixed (`repr(C)`): the fields an inbound PUBLISH updates come first
/// and together, so one PUBLISH touches a few adjacent cache lines of its group.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct GroupStats {
    ring: BucketRing<4>,
    /// First and last PUBLISH time; `NO_TIME` in `first_ns` until the first one.
    first_ns: u64,
    last_ns: u64,
    /// `[dir][qos]`; QoS 3 (invalid on the wire) is counted in `qos_invalid`.
    qos: [[u64; 3]; 2],
    payload_in: Sketch,
    publishers: Distinct,
    arrivals: Arrivals,
    subscribers: Distinct,
    qos_invalid: u64,
    retained: [u64; 2],
    dup: [u64; 2],
    latency: Option<Box<[Sketch; 3]>>,
    /// Exact topics whose statistics were folded into this group.
    folded: u64,
}

/// `first_ns` of a group that has seen no PUBLISH.
const NO_TIME: u64 = u64::MAX;

impl GroupStats {
    pub fn new(bucket_secs: u32) -> GroupStats {
        GroupStats {
            ring: BucketRing::new(bucket_secs, SPAN_SECS),
            payload_in: Sketch::with_max_bins(GROUP_SKETCH_BINS),
            qos: [[0; 3]; 2],
            qos_invalid: 0,
            retained: [0; 2],
            dup: [0; 2],
            publishers: Distinct::default(),
            subscribers: Distinct::default(),
            first_ns: NO_TIME,
            last_ns: 0,
            arrivals: Arrivals::default(),
            latency: None,
            folded: 0,
        }
    }

    #[inline]
    pub fn on_publish(&mut self, p: &PublishInfo) {
        let d = dir_idx(p.dir);
        let (msgs, bytes) = if d == 0 {
            (MSGS_IN, BYTES_IN)
        } else {
            (MSGS_OUT, BYTES_OUT)
        };
        self.ring
            .add_pair(p.ts_ns, msgs, 1, bytes, p.payload_len as u64);
        match self
            .qos
            .get_mut(d)
            .and_then(|q| q.get_mut(usize::from(p.qos)))
        {
            Some(c) => *c += 1,
            None => self.qos_invalid += 1,
        }
        if p.retain {
            self.retained[d] += 1;
        }
        if p.dup {
            self.dup[d] += 1;
        }
        if d == 0 {
            self.payload_in.record(p.payload_len as f64);
            self.publishers.add(p.client_key);
            if !p.dup {
                self.arrivals.on_arrival(p.ts_ns);
            }
        } else {
            self.subscribers.add(p.client_key);
        }
        self.first_ns = self.first_ns.min(p.ts_ns);
        self.last_ns = self.last_ns.max(p.ts_ns);
    }

    pub fn on_latency(&mut self, ex: Exchange, seconds: f64) {
        let Some(i) = latency_slot(ex) else { return };
        let sketches = self.latency.get_or_insert_with(|| {
            Box::new(std::array::from_fn(|_| {
                Sketch::with_max_bins(GROUP_SKETCH_BINS)
            }))
        });
        if let Some(s) = sketches.get_mut(i) {
            s.record(seconds);
        }
    }

    /// Payload sizes of inbound messages, bytes.
    pub fn payload_sketch(&self) -> &Sketch {
        &self.payload_in
    }

    /// Per-group latency of `ex` (`publish_qos1`, `publish_qos2`, `fanout`), once sampled.
    pub fn latency_sketch(&self, ex: Exchange) -> Option<&Sketch> {
        let i = latency_slot(ex)?;
        self.latency.as_ref().and_then(|l| l.get(i))
    }

    /// Adds the lifetime statistics of `other` (an evicted exact topic) to this group.
    /// Window counts are not moved: a topic is evicted only after being idle longer than
    /// the ring, so its buckets are empty; its totals are. Inter-arrival state describes
    /// one stream and is not mixed in.
    pub fn fold(&mut self, other: &GroupStats) {
        for lane in [MSGS_IN, MSGS_OUT, BYTES_IN, BYTES_OUT] {
            self.ring.add_total(lane, other.ring.total(lane));
        }
        self.payload_in.merge(&other.payload_in);
        for d in 0..2 {
            for q in 0..3 {
                self.qos[d][q] += other.qos[d][q];
            }
            self.retained[d] += other.retained[d];
            self.dup[d] += other.dup[d];
        }
        self.qos_invalid += other.qos_invalid;
        self.publishers.merge(&other.publishers);
        self.subscribers.merge(&other.subscribers);
        self.first_ns = self.first_ns.min(other.first_ns);
        self.last_ns = self.last_ns.max(other.last_ns);
        if let Some(o) = &other.latency {
            let mine = self.latency.get_or_insert_with(|| {
                Box::new(std::array::from_fn(|_| {
                    Sketch::with_max_bins(GROUP_SKETCH_BINS)
                }))
            });
            for (m, s) in mine.iter_mut().zip(o.iter()) {
                m.merge(s);
            }
        }
        self.folded += 1 + other.folded;
    }

    pub fn mem_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.ring.mem_bytes() - std::mem::size_of_val(&self.ring)
            + self.payload_in.mem_bytes()
            - std::mem::size_of::<Sketch>()
            + self.publishers.heap_bytes()
            + self.subscribers.heap_bytes()
            + self
                .latency
                .as_ref()
                .map_or(0, |l| l.iter().map(Sketch::mem_bytes).sum())
    }

    fn window(&self, views: &[[u64; 3]; 4], lane: usize) -> WindowCounts {
        let [last_1m, last_5m, last_15m] = views.get(lane).copied().unwrap_or_default();
        WindowCounts {
            total: self.ring.total(lane),
            last_1m,
            last_5m,
            last_15m,
        }
    }

    pub fn snapshot(&self, name: &str, kind: GroupKind, now_ns: u64) -> TopicSnapshot {
        let latency = match &self.latency {
            None => Vec::new(),
            Some(l) => LATENCY_EXCHANGES
                .iter()
                .zip(l.iter())
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
                .collect(),
        };
        let views = self.ring.sums_last(now_ns, [60, 300, 900]);
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
            qos_in: self.qos[0],
            qos_out: self.qos[1],
            qos_invalid: self.qos_invalid,
            retained_in: self.retained[0],
            retained_out: self.retained[1],
            dup_in: self.dup[0],
            dup_out: self.dup[1],
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
