//! Deterministic synthetic MQTT captures, for benchmarks and for tests that need a
//! ground truth independent of the decoder.
//!
//! `write_capture` simulates hundreds of concurrent MQTT clients talking to one broker
//! on port 1883 (TCP handshakes, CONNECT/CONNACK, (UN)SUBSCRIBE, PUBLISH with QoS 0/1/2
//! and their ack exchanges in both directions, PINGs, MQTT 5 properties and topic
//! aliases, DISCONNECT and FIN teardown) and writes it as a classic pcap file. Every
//! MQTT packet is produced by the crate's own encoder and counted as it is written, so
//! `SynthSummary` is exact. The same `SynthConfig` always yields the same bytes.
//!
//! - `rng`: SplitMix64, the only source of randomness.
//! - `pcap_writer`: classic pcap file format.
//! - `frame`: Ethernet/IPv4/IPv6/TCP headers and checksums.
//! - `tcp`: per-direction sequence state and segmentation.
//! - `sched`: per-connection agendas and the global event clock.
//! - `conn`: connection state, actions, owed replies.
//! - `content`: ISA-95 topics and payload pools.
//! - `behave`: the MQTT conversation (what each side sends when).
//! - `traffic`: the simulation loop tying it together.
//! - `plant`: a second scenario, normal plant traffic with realistic timing and
//!   fan-out as the broker's capture sees it (`synth-capture --scenario plant`).

mod behave;
mod conn;
mod content;
pub mod fanout;
mod frame;
pub mod pcap_writer;
pub mod plant;
mod rng;
mod sched;
mod tcp;
mod traffic;

pub use pcap_writer::TsResolution;

/// Bumped whenever the same `SynthConfig` would produce different bytes, so cached
/// captures (e.g. the benchmark's) are regenerated.
pub const GENERATOR_VERSION: u32 = 2;
pub use rng::Rng;

use serde::{Deserialize, Serialize};
use std::io;
use std::path::Path;

/// What to generate. Shares are probabilities per connection (or per PUBLISH for
/// `large_share`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SynthConfig {
    /// Target MQTT packet count. Once reached no new traffic starts; connections then
    /// finish what is in flight and disconnect, so the real count is slightly higher
    /// (exact value in `SynthSummary::mqtt_packets`).
    pub packets: u64,
    /// Concurrent TCP connections (capped at `packets / 100` for small captures).
    pub connections: u32,
    /// Distinct devices (client ids / topic prefixes); devices reconnect over time.
    pub devices: u32,
    pub seed: u64,
    /// Share of MQTT 5 connections.
    pub v5_share: f64,
    /// Share of MQTT 3.1 ("MQIsdp", level 3) connections; the rest is 3.1.1.
    pub v31_share: f64,
    /// Share of MQTT 5 connections that use topic aliases.
    pub alias_share: f64,
    pub ipv6_share: f64,
    /// Connections over loopback (64 KB segments, zero MACs).
    pub loopback_share: f64,
    /// Connections with jumbo frames (MSS 8960).
    pub jumbo_share: f64,
    /// Largest PUBLISH payload in bytes (at most 65536).
    pub max_payload: usize,
    /// Share of PUBLISH packets with a large (4 KB..max_payload) payload.
    pub large_share: f64,
    /// Let TCP segment boundaries fall inside an MQTT fixed header, as real stacks do.
    /// Off by default because tshark (4.0) then mis-sizes the packet and loses sync for
    /// the rest of the stream, which would break the tshark cross-check; with it off,
    /// bodies are still split anywhere and only the 2..5 header bytes stay together.
    pub split_headers: bool,
    pub ts_resolution: TsResolution,
    /// Time of the first frame, Unix ns.
    pub start_unix_ns: u64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            packets: 100_000,
            connections: 400,
            devices: 2_000,
            seed: 0x6d71_7363_6f70_6531,
            v5_share: 0.4,
            v31_share: 0.05,
            alias_share: 0.5,
            ipv6_share: 0.15,
            loopback_share: 0.03,
            jumbo_share: 0.05,
            max_payload: 65_536,
            large_share: 0.003,
            split_headers: false,
            ts_resolution: TsResolution::Micros,
            start_unix_ns: 1_704_067_200_000_000_000, // 2024-01-01T00:00:00Z
        }
    }
}

/// Exact ground truth of a generated capture.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SynthSummary {
    pub frames: u64,
    pub file_bytes: u64,
    pub mqtt_packets: u64,
    /// MQTT packets per type; index = type nibble (1 = CONNECT .. 15 = AUTH), [0] unused.
    pub by_type: [u64; 16],
    /// Client to broker, same indexing.
    pub by_type_c2s: [u64; 16],
    /// Broker to client, same indexing.
    pub by_type_s2c: [u64; 16],
    /// MQTT bytes (whole packets, = TCP payload bytes) per direction.
    pub mqtt_bytes_c2s: u64,
    pub mqtt_bytes_s2c: u64,
    pub publish_by_qos: [u64; 3],
    /// PUBLISH packets with an empty topic that rely on an MQTT 5 topic alias.
    pub alias_only_publishes: u64,
    pub largest_payload: u64,
    /// MQTT fixed headers cut across two TCP segments (0 unless `split_headers`).
    pub straddled_headers: u64,
    pub connections: u64,
    /// Connections per protocol level; index 3, 4, 5 used.
    pub connections_by_level: [u64; 6],
    pub ipv6_connections: u64,
    pub loopback_connections: u64,
    pub jumbo_connections: u64,
    pub alias_connections: u64,
    pub last_ts_ns: u64,
}

impl SynthSummary {
    /// Packet counts by type name ("PUBLISH" -> n), types with zero count left out.
    pub fn by_type_name(&self) -> Vec<(&'static str, u64)> {
        crate::mqtt::PacketType::ALL
            .iter()
            .map(|t| (t.name(), self.by_type[*t as usize]))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// Generates the capture described by `cfg` into `path` (created or truncated).
pub fn write_capture(path: &Path, cfg: &SynthConfig) -> io::Result<SynthSummary> {
    let mut w = pcap_writer::PcapWriter::create(path, cfg.ts_resolution)?;
    let mut s = traffic::run(cfg, &mut w)?;
    s.frames = w.frames();
    s.file_bytes = w.bytes();
    w.finish()?;
    Ok(s)
}
