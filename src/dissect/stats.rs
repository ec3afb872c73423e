//! Plain counters of everything the dissector saw, skipped or dropped. Integers only:
//! turned into reports and metrics at the edges, never formatted on the hot path.

use crate::capture::link::SkipReason;
use crate::mqtt::{DecodeError, Direction};

/// A small counter table keyed by a static kind name. Kinds are few and rare (errors,
/// violations, skip reasons), so a linear scan beats hashing and keeps order stable.
#[derive(Clone, Debug, Default)]
pub struct KindCounts(Vec<(&'static str, u64)>);

impl KindCounts {
    pub fn add(&mut self, kind: &'static str, n: u64) {
        match self.0.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, c)) => *c += n,
            None => self.0.push((kind, n)),
        }
    }
    pub fn get(&self, kind: &str) -> u64 {
        self.0
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, c)| *c)
    }
    pub fn total(&self) -> u64 {
        self.0.iter().map(|(_, c)| c).sum()
    }
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.0.iter().copied()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Clone, Debug, Default)]
pub struct DissectStats {
    pub frames: u64,
    pub frame_bytes: u64,
    pub tcp_segments: u64,
    /// Frames not turned into a TCP segment, by reason (not_ip, ip_fragment, ...).
    pub frames_skipped: KindCounts,

    pub flows_mqtt: u64,
    pub flows_mqtt_by_content: u64,
    pub flows_tls: u64,
    /// Flows on a TLS port whose client opened with a plaintext CONNECT (decoded, and a
    /// security finding: credentials in clear where TLS was meant).
    pub flows_plaintext_on_tls_port: u64,
    pub flows_not_mqtt: u64,

    /// MQTT packets by fixed-header type nibble (0 = reserved) and direction (c2s, s2c),
    /// including undecodable ones whose length was known.
    pub packets: [[u64; 2]; 16],
    /// MQTT bytes (whole packets) by direction.
    pub mqtt_bytes: [u64; 2],
    pub decode_errors: KindCounts,
    pub violations: KindCounts,
    /// Oversized packets skipped by length (also in `decode_errors` as "oversized").
    pub oversized: u64,

    /// Stream gaps (lost segments) and the bytes they cover.
    pub gaps: u64,
    pub gap_bytes: u64,
    /// Packets of which a part fell into a gap (cannot be decoded; skipped by length).
    pub packets_lost_in_gap: u64,
    /// Times the stream had to find a packet boundary again (midstream start, gap).
    pub resyncs: u64,
    /// Bytes discarded while looking for a packet boundary.
    pub resync_skipped_bytes: u64,
    /// Boundaries given up because packets after them did not decode (a wrong resync
    /// guess, or a run of garbage): the stream looks for a boundary again.
    pub resyncs_abandoned: u64,
    /// Partial packets dropped because the total pending-buffer bound was reached.
    pub pending_overflow: u64,
    /// Bytes currently buffered for partial packets, over all flows.
    pub pending_bytes: u64,
    /// Flows that ended with a partial packet still buffered.
    pub incomplete_at_close: u64,
    pub incomplete_at_close_bytes: u64,
}

impl DissectStats {
    pub fn count_skip(&mut self, why: SkipReason) {
        self.frames_skipped.add(why.kind(), 1);
    }

    pub fn count_packet(&mut self, type_nibble: u8, dir: Direction, len: usize) {
        let d = dir_index(dir);
        self.packets[(type_nibble & 0x0f) as usize][d] += 1;
        self.mqtt_bytes[d] += len as u64;
    }

    pub fn count_error(&mut self, e: DecodeError) {
        self.decode_errors.add(e.kind(), 1);
    }

    /// All MQTT packets counted, both directions.
    pub fn total_packets(&self) -> u64 {
        self.packets.iter().map(|p| p[0] + p[1]).sum()
    }
}

pub fn dir_index(dir: Direction) -> usize {
    match dir {
        Direction::C2S => 0,
        Direction::S2C => 1,
    }
}
