//! Flow table: maps segments to bidirectional TCP flows and drives one [`Reassembler`]
//! per direction, reporting ordered stream events to a [`StreamSink`].
//!
//! Bounded everywhere: at most `max_flows` flows (least recently active evicted), idle
//! flows expire, out-of-order buffers are capped per direction and in total.

use std::net::{IpAddr, SocketAddr};

use super::link::TcpSegment;
use super::lru::LruSlab;
use super::reassembly::Reassembler;
use super::stats::CaptureStats;

pub use super::event::{Interest, Side, StreamEvent};
pub use super::limits::FlowLimits;
pub use super::sink::{CloseReason, FlowInfo, StreamSink};

/// Snapshot of out-of-order buffer use, see [`FlowTable::buffer_usage`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BufferUsage {
    pub total_bytes: usize,
    pub max_direction_bytes: usize,
    pub max_direction_segments: usize,
}

/// Unordered pair of endpoints: both directions of a connection map to the same key.
/// Endpoints are packed into integers (IPv4 as v4-mapped IPv6) because hashing and
/// comparing `SocketAddr` (an enum with flow info and scope id for V6) costs several
/// times more on the per-segment path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FlowKey {
    lo: (u128, u16),
    hi: (u128, u16),
}

fn endpoint(a: &SocketAddr) -> (u128, u16) {
    let ip = match a.ip() {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    };
    (ip, a.port())
}

impl FlowKey {
    fn new(x: &SocketAddr, y: &SocketAddr) -> FlowKey {
        let (x, y) = (endpoint(x), endpoint(y));
        if x <= y {
            FlowKey { lo: x, hi: y }
        } else {
            FlowKey { lo: y, hi: x }
        }
    }
}

struct Flow<S> {
    key: FlowKey,
    info: FlowInfo,
    state: S,
    /// Indexed by `Side::index()`.
    dirs: [Reassembler; 2],
    fin_seen: [bool; 2],
    /// The sink said `Ignore`: no buffering or delivery, only FIN/RST tracking.
    ignored: bool,
}

/// All TCP flows of a capture.
pub struct FlowTable<S> {
    map: foldhash::HashMap<FlowKey, u32>,
    flows: LruSlab<Flow<S>>,
    limits: FlowLimits,
    stats: CaptureStats,
    next_id: u64,
}

impl<S> FlowTable<S> {
    pub fn new(limits: FlowLimits) -> Self {
        FlowTable {
            map: foldhash::HashMap::default(),
            flows: LruSlab::new(),
            limits,
            stats: CaptureStats::default(),
            next_id: 0,
        }
    }

    pub fn stats(&self) -> &CaptureStats {
        &self.stats
    }

    pub fn limits(&self) -> &FlowLimits {
        &self.limits
    }

    /// Flows currently open.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.len() == 0
    }

    /// Current out-of-order buffer use, walking every flow (O(flows): for tests, fuzzing
    /// and occasional reports, not per packet).
    pub fn buffer_usage(&self) -> BufferUsage {
        let mut u = BufferUsage::default();
        for f in self.flows.iter() {
            for d in &f.dirs {
                u.total_bytes += d.buffered_bytes();
                u.max_direction_bytes = u.max_direction_bytes.max(d.buffered_bytes());
                u.max_direction_segments = u.max_direction_segments.max(d.buffered_segments());
            }
        }
        u
    }

    /// Feeds one segment captured at `ts_us`.
    pub fn on_segment(
        &mut self,
        ts_us: u64,
        seg: &TcpSegment<'_>,
        sink: &mut impl StreamSink<State = S>,
    ) {
        self.stats.segments += 1;
        self.stats.segment_bytes += seg.payload.len() as u64;
        if seg.truncated {
            self.stats.truncated_segments += 1;
        }
        // Cheap when nothing is idle: one look at the least recently active flow.
        self.expire_idle(ts_us, sink);

        let key = FlowKey::new(&seg.src, &seg.dst);
        let mut idx = match self.map.get(&key) {
            Some(&i) => i,
            None => {
                // A stray ACK/FIN/RST (or a RST with diagnostic text) of a flow we do not
                // know, typically one already closed: opening a flow for it would only
                // produce an empty flow that lingers until idle.
                if (seg.seq_len() == 0 && !seg.syn) || seg.rst {
                    self.stats.segments_without_flow += 1;
                    return;
                }
                self.create(key, ts_us, seg, sink)
            }
        };
        if seg.syn && !seg.ack_flag && self.is_reused(idx, seg) {
            self.close(idx, CloseReason::Reused, sink);
            idx = self.create(key, ts_us, seg, sink);
        }
        self.flows.touch(idx);
        let Some(flow) = self.flows.get_mut(idx) else {
            return;
        };
        flow.info.last_frame_ts = ts_us;
        let side = if seg.src == flow.info.a {
            Side::A
        } else {
            Side::B
        };
        if seg.syn && !seg.ack_flag && flow.info.syn_from.is_none() {
            flow.info.syn_from = Some(side);
        }
        if seg.fin {
            flow.fin_seen[side.index()] = true;
        }
        if flow.ignored {
            self.stats.bytes_ignored += seg.payload.len() as u64;
        } else if feed(flow, side, seg, &mut self.stats, &self.limits, sink) == Interest::Ignore {
            flow.ignored = true;
            self.stats.flows_ignored += 1;
            for d in &mut flow.dirs {
                d.clear(&mut self.stats);
            }
        }
        let done = if flow.ignored {
            flow.fin_seen[0] && flow.fin_seen[1]
        } else {
            flow.dirs[0].is_done() && flow.dirs[1].is_done()
        };
        if seg.rst {
            self.close(idx, CloseReason::Rst, sink);
        } else if done {
            self.close(idx, CloseReason::Fin, sink);
        }
    }

    /// Closes flows that saw no segment for longer than `idle_timeout_us` before `now_us`.
    pub fn expire_idle(&mut self, now_us: u64, sink: &mut impl StreamSink<State = S>) {
        while let Some(idx) = self.flows.tail() {
            let Some(flow) = self.flows.get(idx) else {
                return;
            };
            if now_us.saturating_sub(flow.info.last_frame_ts) <= self.limits.idle_timeout_us {
                return;
            }
            self.close(idx, CloseReason::Idle, sink);
        }
    }

    /// End of capture: deliver everything buffered (gaps for holes) and close all flows.
    pub fn finish(&mut self, sink: &mut impl StreamSink<State = S>) {
        while let Some(idx) = self.flows.tail() {
            self.close(idx, CloseReason::Finish, sink);
        }
    }

    /// A SYN whose ISN does not match the direction's known start means the 4-tuple is
    /// being reused by a new connection (e.g. the old one's FIN/RST was not captured).
    fn is_reused(&self, idx: u32, seg: &TcpSegment<'_>) -> bool {
        let Some(flow) = self.flows.get(idx) else {
            return false;
        };
        let side = if seg.src == flow.info.a { 0 } else { 1 };
        let dir = &flow.dirs[side];
        dir.is_started() && dir.base_seq() != seg.seq.wrapping_add(1)
    }

    fn create(
        &mut self,
        key: FlowKey,
        ts_us: u64,
        seg: &TcpSegment<'_>,
        sink: &mut impl StreamSink<State = S>,
    ) -> u32 {
        if self.flows.len() >= self.limits.max_flows.max(1)
            && let Some(victim) = self.flows.tail()
        {
            self.close(victim, CloseReason::Evicted, sink);
        }
        let info = FlowInfo {
            id: self.next_id,
            a: seg.src,
            b: seg.dst,
            // Known before `open`, so the sink can tell client from server right away.
            syn_from: (seg.syn && !seg.ack_flag).then_some(Side::A),
            first_frame_ts: ts_us,
            last_frame_ts: ts_us,
        };
        self.next_id += 1;
        let state = sink.open(&info);
        let idx = self.flows.insert(Flow {
            key,
            info,
            state,
            dirs: [Reassembler::new(), Reassembler::new()],
            fin_seen: [false; 2],
            ignored: false,
        });
        self.map.insert(key, idx);
        self.stats.flows_opened += 1;
        self.stats.flows_peak = self.stats.flows_peak.max(self.flows.len() as u64);
        idx
    }

    fn close(&mut self, idx: u32, why: CloseReason, sink: &mut impl StreamSink<State = S>) {
        let Some(mut flow) = self.flows.remove(idx) else {
            return;
        };
        self.map.remove(&flow.key);
        if !flow.ignored {
            for side in [Side::A, Side::B] {
                let Flow {
                    info, state, dirs, ..
                } = &mut flow;
                let mut emit = |ev: StreamEvent<'_>| sink.data(info, state, side, ev);
                if dirs[side.index()].flush(&mut self.stats, &mut emit) == Interest::Ignore {
                    break;
                }
            }
        }
        for d in &mut flow.dirs {
            d.clear(&mut self.stats);
        }
        let counter = match why {
            CloseReason::Fin => &mut self.stats.flows_closed_fin,
            CloseReason::Rst => &mut self.stats.flows_closed_rst,
            CloseReason::Idle => &mut self.stats.flows_closed_idle,
            CloseReason::Evicted => &mut self.stats.flows_evicted,
            CloseReason::Reused => &mut self.stats.flows_closed_reused,
            CloseReason::Finish => &mut self.stats.flows_closed_finish,
        };
        *counter += 1;
        sink.close(&flow.info, flow.state, why);
    }
}

/// Runs one segment through the flow's reassemblers: the sender's payload/FIN, then the
/// ACK, which may declare the other direction's holes lost.
fn feed<S, K: StreamSink<State = S>>(
    flow: &mut Flow<S>,
    side: Side,
    seg: &TcpSegment<'_>,
    stats: &mut CaptureStats,
    limits: &FlowLimits,
    sink: &mut K,
) -> Interest {
    let Flow {
        info, state, dirs, ..
    } = flow;
    let [a, b] = dirs;
    let (mine, peer) = match side {
        Side::A => (a, b),
        Side::B => (b, a),
    };
    if seg.syn {
        mine.start_at_syn(seg.seq);
    }
    if !seg.rst {
        // A RST's payload is diagnostic text, not stream data.
        let seq = if seg.syn {
            seg.seq.wrapping_add(1)
        } else {
            seg.seq
        };
        let mut emit = |ev: StreamEvent<'_>| sink.data(info, state, side, ev);
        let r = mine.segment(
            seq,
            seg.payload,
            seg.missing,
            seg.fin,
            stats,
            limits,
            &mut emit,
        );
        if r == Interest::Ignore {
            return r;
        }
    }
    if seg.ack_flag {
        let other = side.other();
        let mut emit = |ev: StreamEvent<'_>| sink.data(info, state, other, ev);
        return peer.peer_ack(seg.ack, stats, &mut emit);
    }
    Interest::Continue
}
