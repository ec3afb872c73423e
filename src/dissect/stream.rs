//! One direction of an MQTT connection: cuts the reassembled byte stream into control
//! packets, length first.
//!
//! Fast path: when nothing is pending, packets are decoded straight out of the segment
//! payload (no copy). Only a packet that spans segments is copied into `buf`, and only
//! up to `max_packet_size`; larger packets are skipped by their length. After a gap or a
//! midstream start the stream is unsynchronised until a plausible fixed header is found.

use crate::mqtt::session::TopicResolution;
use crate::mqtt::{Direction, FixedHeader, Packet, PacketType, Session, parse_fixed_header};

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
    /// A packet (or an undecodable packet's header) was reported from this direction.
    emitted: bool,
    /// Packets after a resynchronisation that must decode before the boundary is
    /// trusted: a wrong guess shows as decode errors, and must not go on for the rest of
    /// the connection.
    unconfirmed: u8,
    /// Consecutive packets that failed to decode (misframing, even when confirmed).
    bad_run: u8,
}

/// Packets that must decode after a resynchronisation.
const RESYNC_CONFIRM: u8 = 3;
/// Consecutive undecodable packets taken as lost framing.
const MAX_BAD_RUN: u8 = 3;

impl DirStream {
    pub(super) fn new(midstream: bool) -> DirStream {
        DirStream {
            buf: Vec::new(),
            skip: 0,
            synced: !midstream,
            emitted: false,
            unconfirmed: 0,
            bad_run: 0,
        }
    }

    pub(super) fn emitted_any(&self) -> bool {
        self.emitted
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
                data = self.resync(data, session, dir, out);
                if !self.synced {
                    return;
                }
                continue;
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
                        self.emitted = true;
                        emit_oversized(h, dir, meta, session, out);
                        if total <= data.len() {
                            data = &data[total..];
                        } else {
                            self.skip = (total - data.len()) as u64;
                            return;
                        }
                    } else if total <= data.len() {
                        self.emitted = true;
                        let ok = emit(&data[..total], h, dir, meta, session, out);
                        self.after_packet(ok, out);
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
    fn start_pending<S: RecordSink>(
        &mut self,
        data: &[u8],
        h: Option<FixedHeader>,
        out: &mut Out<'_, S>,
    ) {
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
            self.emitted = true;
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
            self.emitted = true;
            let ok = emit(&buf, h, dir, meta, session, out);
            self.buf = buf;
            self.release(out);
            self.after_packet(ok, out);
        }
        data
    }

    /// Framing health after each decoded packet: right after a resynchronisation every
    /// packet must decode, and any run of undecodable packets means the boundary was
    /// wrong (a misframed stream decodes as garbage, not as valid packets). Either way,
    /// look for a boundary again instead of decoding garbage for the rest of the flow.
    fn after_packet<S: RecordSink>(&mut self, ok: bool, out: &mut Out<'_, S>) {
        if ok {
            self.unconfirmed = self.unconfirmed.saturating_sub(1);
            self.bad_run = 0;
            return;
        }
        self.bad_run = self.bad_run.saturating_add(1);
        if self.unconfirmed > 0 || self.bad_run >= MAX_BAD_RUN {
            self.synced = false;
            self.unconfirmed = 0;
            self.bad_run = 0;
            out.stats.resyncs_abandoned += 1;
        }
    }

    /// Drop the pending packet and give its bytes back to the global bound.
    fn release<S: RecordSink>(&mut self, out: &mut Out<'_, S>) {
        out.stats.pending_bytes = out
            .stats
            .pending_bytes
            .saturating_sub(self.buf.len() as u64);
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
        if !self.synced {
            // Still looking for a boundary: a stashed possible start is now meaningless.
            self.release(out);
            return;
        }
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

/// Where a packet boundary was found while unsynchronised.
enum Start {
    /// A plausible packet starts at this offset.
    At(usize),
    /// From this offset on, the bytes could start a packet but its fixed header is not
    /// complete yet: wait for more.
    NeedMore(usize),
    /// Nothing plausible in these bytes.
    Nothing,
}

/// Find the first plausible MQTT packet start in `data`.
///
/// Plausible: a known type with the flags the spec fixes for it, a remaining length
/// within bounds and above the type's minimum; if the whole packet is present it must
/// decode, and if bytes follow it they must start with a plausible header too. This is
/// what lets a capture that starts midstream, or resumes after lost segments, find its
/// footing without emitting garbage packets.
fn find_packet_start(data: &[u8], max: u32, session: &Session) -> Start {
    for off in 0..data.len() {
        let rest = &data[off..];
        if matches!(parse_fixed_header(rest), Ok(None)) && first_byte_plausible(rest[0]) {
            return Start::NeedMore(off);
        }
        if plausible_at(rest, max, session) {
            return Start::At(off);
        }
    }
    Start::Nothing
}

impl DirStream {
    /// Look for a packet boundary. A few trailing bytes that might begin a packet are
    /// kept in `buf` (at most a fixed header's worth) and judged with the next segment:
    /// a midstream capture often starts with a segment holding just the first byte.
    fn resync<'d, S: RecordSink>(
        &mut self,
        data: &'d [u8],
        session: &Session,
        _dir: Direction,
        out: &mut Out<'_, S>,
    ) -> &'d [u8] {
        out.stats.resyncs += u64::from(self.buf.is_empty());
        if !self.buf.is_empty() {
            // Judge each stashed offset with the new bytes appended (bounded copy).
            let stash = std::mem::take(&mut self.buf);
            out.stats.pending_bytes = out.stats.pending_bytes.saturating_sub(stash.len() as u64);
            let mut joined = stash.clone();
            joined.extend_from_slice(&data[..data.len().min(RESYNC_LOOKAHEAD)]);
            for off in 0..stash.len() {
                let rest = &joined[off..];
                let incomplete = matches!(parse_fixed_header(rest), Ok(None));
                if (incomplete && first_byte_plausible(rest[0]))
                    || plausible_at(rest, out.cfg.max_packet_size, session)
                {
                    out.stats.resync_skipped_bytes += off as u64;
                    self.synced = true;
                    self.unconfirmed = RESYNC_CONFIRM;
                    self.unconfirmed = RESYNC_CONFIRM;
                    // The packet starts inside the stash: it becomes the pending packet.
                    self.buf = stash;
                    self.buf.drain(..off);
                    out.stats.pending_bytes += self.buf.len() as u64;
                    return data;
                }
            }
            out.stats.resync_skipped_bytes += stash.len() as u64;
        }
        match find_packet_start(data, out.cfg.max_packet_size, session) {
            Start::At(off) => {
                out.stats.resync_skipped_bytes += off as u64;
                self.synced = true;
                self.unconfirmed = RESYNC_CONFIRM;
                &data[off..]
            }
            Start::NeedMore(off) => {
                out.stats.resync_skipped_bytes += off as u64;
                self.buf.extend_from_slice(&data[off..]);
                out.stats.pending_bytes += self.buf.len() as u64;
                &[]
            }
            Start::Nothing => {
                out.stats.resync_skipped_bytes += data.len() as u64;
                &[]
            }
        }
    }
}

/// Bytes of a new segment looked at when judging a stashed possible packet start.
const RESYNC_LOOKAHEAD: usize = 64 * 1024;

/// The first byte alone: a known type with the flags the spec fixes for it.
fn first_byte_plausible(b: u8) -> bool {
    let flags = b & 0x0f;
    match PacketType::from_nibble(b >> 4) {
        None => false,
        Some(PacketType::Publish) => (flags >> 1) & 3 != 3,
        Some(PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe) => flags == 2,
        Some(_) => flags == 0,
    }
}

fn plausible_at(data: &[u8], max: u32, session: &Session) -> bool {
    let Some(h) = plausible_header(data, max) else {
        return false;
    };
    let total = h.total_len();
    if total > data.len() || total > MAX_VERIFIED_BODY {
        // Cannot (or, for large packets, will not: resync must stay cheap on hostile
        // input) check the body; a plausible header is the best evidence. Segments
        // usually start on packet boundaries, so the first candidate is usually right.
        return true;
    }
    let body = &data[h.header_len as usize..total];
    // Without a CONNECT the level is itself a guess: any level that decodes will do.
    let decodes = |level| crate::mqtt::decode_body(&h, body, level).is_ok();
    let ok = match session.level() {
        Some(level) => decodes(level),
        None => decodes(session.effective_level()) || decodes(5) || decodes(4),
    };
    if !ok {
        return false;
    }
    let rest = &data[total..];
    rest.is_empty()
        || plausible_header(rest, max).is_some()
        || parse_fixed_header(rest).is_ok_and(|h| h.is_none())
}

/// Packets up to this size are decoded to confirm a resync candidate.
const MAX_VERIFIED_BODY: usize = 16 * 1024;

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
        PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe => {
            flags == 2 && rl >= 2
        }
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
) -> bool {
    out.stats.count_packet(h.type_nibble(), dir, bytes.len());
    let body = &bytes[h.header_len as usize..];
    let packet = session.decode(dir, &h, body);
    if let Ok(Packet::Publish(p)) = &packet
        && !p.topic.0.is_empty()
    {
        out.sink.publish_ahead(p.topic.0);
    }
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
                    TopicResolution::UnknownAlias(_) => {
                        violation = violation.or(Some("unknown_topic_alias"))
                    }
                    TopicResolution::AliasRejected(_) => {
                        violation = violation.or(Some("topic_alias_rejected"))
                    }
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
    let ok = rec.packet.is_ok();
    out.sink.record(&rec);
    ok
}

/// Report a packet skipped for its size: its header is all we look at.
fn emit_oversized<S: RecordSink>(
    h: FixedHeader,
    dir: Direction,
    meta: &FlowMeta,
    session: &Session,
    out: &mut Out<'_, S>,
) {
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
    crate::mqtt::validate::violations(h, p, level)
        .iter()
        .next()
        .map(|v| v.kind())
}
