//! Frames in, MQTT packets out: the glue between `capture` (TCP byte streams) and
//! `mqtt` (packet decoding). Pure: no I/O, no clock; the caller passes each frame's
//! number and timestamp. Live capture and offline replay both drive a `Dissector`, so
//! replay is deterministic and what the tests see is what production runs.
//!
//! - `config`: which flows are MQTT (ports, TLS ports, content detection) and limits.
//! - `classify`: decides once per flow whether it is MQTT and which side is the broker.
//! - `stream`: cuts one direction's byte stream into MQTT packets (length first),
//!   resynchronises after gaps and midstream starts, skips oversized packets by length.
//! - `stats`: plain counters, turned into reports and metrics at the edges.
//! - `record`: what a decoded packet looks like to consumers (`MqttRecord`).

// Wire data reaches everything in this module: a panic here would take the sidecar down.
// Outside tests, unwrap/expect are refused by clippy; failures are typed errors or counts.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod classify;
pub mod config;
pub mod record;
pub mod stats;
mod stream;

use std::net::SocketAddr;

use crate::capture::link::{LinkType, parse_frame};
use crate::capture::{
    CloseReason, FlowInfo, FlowTable, Interest, Side, StreamEvent, StreamSink, TcpSegment,
};
use crate::mqtt::{Direction, Session};

pub use config::DissectConfig;
pub use record::{FlowMeta, MqttRecord};
pub use stats::DissectStats;

use classify::{Classification, Classifier};
use stream::DirStream;

/// Receives every MQTT control packet (or undecodable packet) in capture order.
pub trait RecordSink {
    fn record(&mut self, rec: &MqttRecord<'_>);

    /// A PUBLISH on `topic` is decoded and is the next thing `record` gets (after it is
    /// validated): a chance to start memory fetches that `record` will wait on. The
    /// observer hashes the topic and prefetches its index line here, so the fetch
    /// overlaps the validation instead of stalling the record.
    #[inline]
    fn publish_ahead(&mut self, _topic: &[u8]) {}

    /// An MQTT connection's TCP flow ended (FIN, RST, idle, evicted, end of input).
    /// `ts_ns` is the time of the frame that ended it, or of the expiry check.
    fn flow_closed(&mut self, _flow: &FlowMeta, _ts_ns: u64, _why: CloseReason) {}
}

impl<F: FnMut(&MqttRecord<'_>)> RecordSink for F {
    fn record(&mut self, rec: &MqttRecord<'_>) {
        self(rec)
    }
}

/// Per-flow state kept by the flow table on our behalf.
pub struct FlowState {
    classifier: Classifier,
    mqtt: Option<Box<MqttFlow>>,
}

/// State of a flow known to carry MQTT. Boxed: most flows on a busy interface are not MQTT
/// and should cost little.
struct MqttFlow {
    meta: FlowMeta,
    /// Which capture side (A/B) is the client.
    client_side: Side,
    session: Session,
    c2s: DirStream,
    s2c: DirStream,
}

/// Everything a `Dissector` mutates while the flow table calls back into it.
struct Ctx<'s, S: RecordSink> {
    cfg: &'s DissectConfig,
    stats: &'s mut DissectStats,
    sink: &'s mut S,
    frame: u64,
    ts_ns: u64,
}

/// The dissection pipeline for one capture (one or more files replayed in sequence, or a
/// live interface).
pub struct Dissector {
    cfg: DissectConfig,
    flows: FlowTable<FlowState>,
    stats: DissectStats,
    last_expiry_ns: u64,
}

/// How often idle flows are looked for, in capture time.
const EXPIRY_INTERVAL_NS: u64 = 1_000_000_000;

impl Dissector {
    pub fn new(cfg: DissectConfig) -> Self {
        let flows = FlowTable::new(cfg.flow_limits.clone());
        Dissector {
            cfg,
            flows,
            stats: DissectStats::default(),
            last_expiry_ns: 0,
        }
    }

    pub fn config(&self) -> &DissectConfig {
        &self.cfg
    }

    pub fn stats(&self) -> &DissectStats {
        &self.stats
    }

    pub fn capture_stats(&self) -> &crate::capture::CaptureStats {
        self.flows.stats()
    }

    /// Feed one captured frame. `frame` is its 1-based number in the file, `ts_ns` its
    /// capture time in nanoseconds since the epoch.
    pub fn on_frame<S: RecordSink>(
        &mut self,
        link: LinkType,
        frame: u64,
        ts_ns: u64,
        data: &[u8],
        sink: &mut S,
    ) {
        self.stats.frames += 1;
        self.stats.frame_bytes += data.len() as u64;
        if ts_ns >= self.last_expiry_ns.saturating_add(EXPIRY_INTERVAL_NS) {
            self.expire(ts_ns, sink);
        }
        let seg = match parse_frame(link, data) {
            Ok(seg) => seg,
            Err(why) => {
                self.stats.count_skip(why);
                return;
            }
        };
        self.on_segment(frame, ts_ns, &seg, sink);
    }

    /// Feed one TCP segment already parsed from a frame (`on_frame` does the parsing;
    /// fuzzing and tests use this to skip building frames).
    pub fn on_segment<S: RecordSink>(
        &mut self,
        frame: u64,
        ts_ns: u64,
        seg: &TcpSegment<'_>,
        sink: &mut S,
    ) {
        self.stats.tcp_segments += 1;
        let mut ctx = Ctx {
            cfg: &self.cfg,
            stats: &mut self.stats,
            sink,
            frame,
            ts_ns,
        };
        self.flows.on_segment(ts_ns / 1000, seg, &mut ctx);
    }

    /// Close flows idle for longer than the configured timeout, as of `now_ns`.
    pub fn expire<S: RecordSink>(&mut self, now_ns: u64, sink: &mut S) {
        self.last_expiry_ns = now_ns;
        let mut ctx = Ctx {
            cfg: &self.cfg,
            stats: &mut self.stats,
            sink,
            frame: 0,
            ts_ns: now_ns,
        };
        self.flows.expire_idle(now_ns / 1000, &mut ctx);
    }

    /// End of input: flush buffered data (declaring gaps for holes) and close every flow.
    /// `last_frame` is the number of the last frame read, used for packets completed by
    /// the flush.
    pub fn finish<S: RecordSink>(&mut self, last_frame: u64, last_ts_ns: u64, sink: &mut S) {
        let mut ctx = Ctx {
            cfg: &self.cfg,
            stats: &mut self.stats,
            sink,
            frame: last_frame,
            ts_ns: last_ts_ns,
        };
        self.flows.finish(&mut ctx);
    }
}

impl<S: RecordSink> StreamSink for Ctx<'_, S> {
    type State = FlowState;

    fn open(&mut self, flow: &FlowInfo) -> FlowState {
        FlowState {
            classifier: Classifier::new(self.cfg, flow),
            mqtt: None,
        }
    }

    fn data(
        &mut self,
        flow: &FlowInfo,
        st: &mut FlowState,
        from: Side,
        ev: StreamEvent<'_>,
    ) -> Interest {
        if st.mqtt.is_none() {
            match st.classifier.on_event(self.cfg, flow, from, &ev) {
                Classification::NotMqtt => {
                    self.stats.flows_not_mqtt += 1;
                    return Interest::Ignore;
                }
                Classification::Tls => {
                    self.stats.flows_tls += 1;
                    return Interest::Ignore;
                }
                Classification::Mqtt {
                    client_side,
                    by_content,
                    on_tls_port,
                } => {
                    self.stats.flows_mqtt += 1;
                    if by_content {
                        self.stats.flows_mqtt_by_content += 1;
                    }
                    if on_tls_port {
                        self.stats.flows_plaintext_on_tls_port += 1;
                    }
                    let (client, broker) = side_addrs(flow, client_side);
                    let midstream = flow.syn_from.is_none();
                    st.mqtt = Some(Box::new(MqttFlow {
                        meta: FlowMeta {
                            id: flow.id,
                            client,
                            broker,
                            from_start: !midstream,
                        },
                        client_side,
                        session: Session::new(self.cfg.session_limits),
                        c2s: DirStream::new(midstream),
                        s2c: DirStream::new(midstream),
                    }));
                }
            }
        }
        let Some(m) = st.mqtt.as_deref_mut() else {
            return Interest::Continue;
        };
        let dir = if from == m.client_side {
            Direction::C2S
        } else {
            Direction::S2C
        };
        if dir == Direction::C2S && matches!(ev, StreamEvent::Gap { .. }) && !m.c2s.emitted_any() {
            // The client's first bytes were lost (e.g. the kernel dropped the segment
            // with the CONNECT): the connection's start is no longer known to be seen.
            m.meta.from_start = false;
        }
        let (stream, meta, session) = match dir {
            Direction::C2S => (&mut m.c2s, &m.meta, &mut m.session),
            Direction::S2C => (&mut m.s2c, &m.meta, &mut m.session),
        };
        let mut out = stream::Out {
            cfg: self.cfg,
            stats: self.stats,
            sink: self.sink,
            frame: self.frame,
            ts_ns: self.ts_ns,
        };
        match ev {
            StreamEvent::Data(bytes) => stream.on_data(bytes, dir, meta, session, &mut out),
            StreamEvent::Gap { missing } => stream.on_gap(missing, &mut out),
        }
        Interest::Continue
    }

    fn close(&mut self, _flow: &FlowInfo, st: FlowState, why: CloseReason) {
        if let Some(m) = st.mqtt {
            self.sink.flow_closed(&m.meta, self.ts_ns, why);
            let pending = m.c2s.pending_bytes() + m.s2c.pending_bytes();
            if pending > 0 {
                self.stats.incomplete_at_close += 1;
                self.stats.incomplete_at_close_bytes += pending as u64;
            }
        }
    }
}

/// (client, broker) addresses given which capture side is the client.
fn side_addrs(flow: &FlowInfo, client_side: Side) -> (SocketAddr, SocketAddr) {
    match client_side {
        Side::A => (flow.a, flow.b),
        Side::B => (flow.b, flow.a),
    }
}
