//! One direction of an MQTT connection: cuts the reassembled byte stream into control
//! packets, length first.
//!
//! Fast path: when nothing is pending, packets are decoded straight out of the segment
//! payload (no copy). Only a packet that spans segments is copied into `buf`, and only
//! up to `max_packet_size`; larger packets are skipped by their length. After a gap or a
//! midstream start the stream is unsynchronised until a plausible fixed header is found.

use crate::mqtt::session::TopicResolution;
use crate::mqtt::{parse_fixed_header, Direction, FixedHeader, Packet, PacketType, Session};

use super::record::{FlowMeta, MqttRecord};
use super::{DissectConfig, DissectStats, RecordSink};

/// Borrowed output side for one stream event.
pub(super) struct Out<'s, S: RecordSink> {
    pub cfg: &'s DissectConfig,
    pub stats: &'s mut DissectStats,
    pub sink: &'s mut S,
    pub frame: u64,
    pub ts_ns: u64,
}

pub(super) struct DirStream {
    /// Bytes of a packet that spans segments, fixed header included.
    buf: Vec<u8>,
    /// Bytes still to skip: the rest of an oversized packet or of one cut by a gap.
    skip: u64,
    /// False at a midstream start and after a gap that left us between unknown packets.
    synced: bool,
}

impl DirStream {
    pub(super) fn new(midstream: bool) -> DirStream {
        DirStream { buf: Vec::new(), skip: 0, synced: !midstream }
    }

    pub(super) fn pending_bytes(&self) -> usize {
        self.buf.len()
    }

    pub(super) fn on_data<S: RecordSink>(
        &mut self,
        bytes: &[u8],
        dir: Direction,
        meta: &FlowMeta,
        session: &mut Session,
        out: &mut Out<'_, S>,
    ) {
        let mut data = bytes;
        loop {
            if data.is_empty() {
                return;
            }
            if self.skip > 0 {
                let n = self.skip.min(data.len() as u64);
                self.skip -= n;
                data = &data[n as usize..];
                continue;
            }
            if !self.synced {
                out.stats.resyncs += 1;
                match find_packet_start(data, out.cfg.max_packet_size, session, dir) {
                    Some(off) => {
                        out.stats.resync_skipped_bytes += off as u64;
                        data = &data[off..];
                        self.synced = true;
                    }
                    None => {
                        out.stats.resync_skipped_bytes += data.len() as u64;
                        return;
                    }
                }
            }
            if !self.buf.is_empty() {
                data = self.complete_pending(data, dir, meta, session, out);
                continue;
            }
            // Fast path: whole packets straight from the segment.
            match parse_fixed_header(data) {
                Ok(None) => {
                    self.start_pending(data, None, out);
                    return;
                }
                Err(e) => {
                    // Not a packet boundary after all: count, and look for the next one.
                    out.stats.count_error(e);
                    self.synced = false;
                    data = &data[1..];
                }
                Ok(Some(h)) => {
                    let total = h.total_len();
                    if h.remaining_length > out.cfg.max_packet_size {
                        emit_oversized(h, dir, meta, session, out);
                        if total <= data.len() {
                            data = &data[total..];
                        } else {
                            self.skip = (total - data.len()) as u64;
                            return;
                        }
                    } else if total <= data.len() {
                        emit(&data[..total], h, dir, meta, session, out);
                        data = &data[total..];
                    } else {
                        self.start_pending(data, Some(h), out);
                        return;
                    }
                }
            }
        }
    }

    /// Keep the start of a packet that continues in later segments, within the total bound.
    fn start_pending<S: RecordSink>(&mut self, data: &[u8], h: Option<FixedHeader>, out: &mut Out<'_, S>) {
        let want = h.map_or(5, |h| h.total_len());
        if out.stats.pending_bytes + want as u64 > out.cfg.max_pending_total as u64 {
            // Over the global bound: give the packet up, skip it by length if known.
            out.stats.pending_overflow += 1;
            match h {
                Some(h) => self.skip = (h.total_len() - data.len()) as u64,
                None => self.synced = false,
            }
            return;
        }
        self.buf.reserve_exact(want);
        self.buf.extend_from_slice(data);
        out.stats.pending_bytes += data.len() as u64;
    }

    /// Feed `data` into the pending packet; returns what is left after it.
    fn complete_pending<'d, S: RecordSink>(
        &mut self,
        mut data: &'d [u8],
        dir: Direction,
        meta: &FlowMeta,
        session: &mut Session,
        out: &mut Out<'_, S>,
    ) -> &'d [u8] {
        // The fixed header may itself be split: add bytes one at a time (at most 4).
        let h = loop {
            match parse_fixed_header(&self.buf) {
                Ok(Some(h)) => break h,
                Ok(None) => {
                    let Some((&b, rest)) = data.split_first() else {
                        return data;
                    };
                    self.buf.push(b);
                    out.stats.pending_bytes += 1;
                    data = rest;
                }
                Err(e) => {
                    out.stats.count_error(e);
                    self.release(out);
                    self.synced = false;
                    return data;
                }
            }
        };
        let total = h.total_len();
        if h.remaining_length > out.cfg.max_packet_size {
            emit_oversized(h, dir, meta, session, out);
            self.skip = (total - self.buf.len()) as u64;
            self.release(out);
            return data;
        }
        let take = (total - self.buf.len()).min(data.len());
        if out.stats.pending_bytes + take as u64 > out.cfg.max_pending_total as u64 {
            out.stats.pending_overflow += 1;
            self.skip = (total - self.buf.len()) as u64;
            self.release(out);
            return data;
        }
        self.buf.extend_from_slice(&data[..take]);
        out.stats.pending_bytes += take as u64;
        data = &data[take..];
        if self.buf.len() == total {
            let buf = std::mem::take(&mut self.buf);
            emit(&buf, h, dir, meta, session, out);
            self.buf = buf;
            self.release(out);
        }
        data
    }

    /// Drop the pending packet and give its bytes back to the global bound.
    fn release<S: RecordSink>(&mut self, out: &mut Out<'_, S>) {
        out.stats.pending_bytes = out.stats.pending_bytes.saturating_sub(self.buf.len() as u64);
        self.buf.clear();
        // Don't keep a large allocation alive for the rest of a long connection.
        if self.buf.capacity() > 64 * 1024 {
            self.buf = Vec::new();
        }
    }

    /// `missing` bytes of this direction were never captured.
    pub(super) fn on_gap<S: RecordSink>(&mut self, missing: u64, out: &mut Out<'_, S>) {
        out.stats.gaps += 1;
        out.stats.gap_bytes += missing;
        if self.skip > 0 {
            // The gap falls inside a packet we were skipping anyway.
            if missing <= self.skip {
                self.skip -= missing;
            } else {
                self.skip = 0;
                self.synced = false;
            }
            return;
        }
        if !self.buf.is_empty() {
            out.stats.packets_lost_in_gap += 1;
            // If the packet's length is known and the gap ends inside it, we know exactly
            // where the next packet starts and stay in sync.
            if let Ok(Some(h)) = parse_fixed_header(&self.buf) {
                let rest = (h.total_len() - self.buf.len()) as u64;
                if missing <= rest {
                    self.skip = rest - missing;
                    self.release(out);
                    return;
                }
            }
            self.release(out);
        }
        if self.synced {
            self.synced = false;
        }
    }
}

/// Find the offset of the first plausible MQTT packet in `data`.
///
/// Plausible: a known type with the flags the spec fixes for it, a remaining length
/// within bounds and above the type's minimum; if the whole packet is present it must
/// decode, and if bytes follow it they must start with a plausible header too. This is
/// what lets a capture that starts midstream, or resumes after lost segments, find its
/// footing without emitting garbage packets.
fn find_packet_start(data: &[u8], max: u32, session: &Session, dir: Direction) -> Option<usize> {
    (0..data.len()).find(|&off| plausible_at(&data[off..], max, session, dir))
}

fn plausible_at(data: &[u8], max: u32, session: &Session, dir: Direction) -> bool {
    let Some(h) = plausible_header(data, max) else {
        return false;
    };
    let total = h.total_len();
    if total > data.len() {
        // Cannot check the body yet; a plausible header at the very start of what we
        // have (segments usually start on packet boundaries) is the best evidence.
        return true;
    }
    let body = &data[h.header_len as usize..total];
    if crate::mqtt::decode_body(&h, body, session.effective_level()).is_err() {
        return false;
    }
    let _ = dir;
    let rest = &data[total..];
    rest.is_empty() || plausible_header(rest, max).is_some() || parse_fixed_header(rest).is_ok_and(|h| h.is_none())
}

fn plausible_header(data: &[u8], max: u32) -> Option<FixedHeader> {
    let h = parse_fixed_header(data).ok()??;
    if h.remaining_length > max {
        return None;
    }
    let t = h.packet_type()?;
    let flags = h.flags();
    let rl = h.remaining_length;
    let ok = match t {
        PacketType::Publish => (flags >> 1) & 3 != 3 && rl >= 2,
        PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe => flags == 2 && rl >= 2,
        PacketType::PingReq | PacketType::PingResp => flags == 0 && rl == 0,
        PacketType::Connect => flags == 0 && rl >= 10,
        PacketType::Disconnect | PacketType::Auth => flags == 0,
        _ => flags == 0 && rl >= 2,
    };
    ok.then_some(h)
}

/// Decode one complete packet (`bytes` = fixed header + body) and hand it to the sink.
fn emit<S: RecordSink>(
    bytes: &[u8],
    h: FixedHeader,
    dir: Direction,
    meta: &FlowMeta,
    session: &mut Session,
    out: &mut Out<'_, S>,
) {
    out.stats.count_packet(h.type_nibble(), dir, bytes.len());
    let body = &bytes[h.header_len as usize..];
    let packet = session.decode(dir, &h, body);
    let level = session.effective_level();
    let level_known = session.level().is_some();
    let mut violation = None;
    let mut topic = None;
    match &packet {
        Err(e) => out.stats.count_error(*e),
        Ok(p) => {
            violation = first_violation(&h, p, level);
            if let Packet::Publish(publish) = p {
                match session.resolve_topic(dir, publish) {
                    TopicResolution::AsIs => topic = Some(publish.topic),
                    TopicResolution::FromAlias(t) => topic = Some(t),
                    TopicResolution::UnknownAlias(_) => violation = violation.or(Some("unknown_topic_alias")),
                    TopicResolution::AliasRejected(_) => violation = violation.or(Some("topic_alias_rejected")),
                }
            }
            if let Some(v) = violation {
                out.stats.violations.add(v, 1);
            }
        }
    }
    let rec = MqttRecord {
        frame: out.frame,
        ts_ns: out.ts_ns,
        flow: meta,
        dir,
        level,
        level_known,
        header: h,
        packet,
        topic,
        violation,
    };
    out.sink.record(&rec);
}

/// Report a packet skipped for its size: its header is all we look at.
fn emit_oversized<S: RecordSink>(h: FixedHeader, dir: Direction, meta: &FlowMeta, session: &Session, out: &mut Out<'_, S>) {
    out.stats.count_packet(h.type_nibble(), dir, h.total_len());
    out.stats.oversized += 1;
    out.stats.count_error(crate::mqtt::DecodeError::Oversized);
    let rec = MqttRecord {
        frame: out.frame,
        ts_ns: out.ts_ns,
        flow: meta,
        dir,
        level: session.effective_level(),
        level_known: session.level().is_some(),
        header: h,
        packet: Err(crate::mqtt::DecodeError::Oversized),
        topic: None,
        violation: None,
    };
    out.sink.record(&rec);
}

fn first_violation(h: &FixedHeader, p: &Packet<'_>, level: u8) -> Option<&'static str> {
    crate::mqtt::validate::violations(h, p, level).iter().next().map(|v| v.kind())
}
