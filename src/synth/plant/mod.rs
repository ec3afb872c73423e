//! `synth-capture --scenario plant`: normal plant traffic as the broker's own capture
//! (the sidecar's view) would record it, with realistic timing, deterministic by seed.
//!
//! The broker pod has just restarted (the sidecar starts with it) and kept its retained
//! messages. Consumers reconnect within a second and subscribe: a historian per site
//! (`acme/site-NN/#`, MQTT 5, QoS 1), a SCADA server per area (`.../area-N/#`, 3.1.1,
//! QoS 0, sends a set-point command every few minutes), the Azure Event Hubs bridge
//! (energy, production counts at QoS 2, machine states) and an operations dashboard
//! (every `status`, which brings the retained ones at once). Devices reconnect over the
//! first minute with CONNECT (credentials, a retained will, MQTT 5 session properties),
//! subscribe to their command topic, publish a retained birth message, then report on
//! their timers: per kind of device a few metrics at 1, 5, 10, 15, 30 or 60 s, JSON
//! values that drift slowly, QoS 0/1/2 by what the value is for. Each device's clock
//! drifts a little and each cycle is a few ms late (tens of ms over cellular, now and
//! then much later). Idle clients PINGREQ at their keepalive. Now and then a device's
//! network blips: its socket closes without DISCONNECT, the broker publishes its will
//! (or not, if an MQTT 5 will delay outlasts the gap) and it is back a few seconds
//! later from a new port (a new carrier address over cellular).
//!
//! The broker (EMQX defaults): acknowledges within tens to hundreds of µs, routes each
//! message to its subscribers one after another (own packet id per hop, QoS lowered
//! to the grant, retain cleared on live deliveries, MQTT 5 subscription identifiers),
//! keeps at most 32 unacknowledged deliveries per client and queues the rest.
//!
//! TCP as Linux does it: handshake with options, MSS segmentation, initial window of
//! 10 segments then ACK-clocked, ACKs piggybacked on replies or sent by the 40 ms
//! delayed-ACK timer, FIN teardown. Times are capture times at the broker: a client's
//! answer to the broker appears one round trip (LAN/VPN 6–25 ms, cellular 60–180 ms,
//! in-cluster consumers < 0.5 ms) after what it answers.
//!
//! - `topology`: devices, metrics, consumers, who receives which topic.
//! - `payload`: JSON samples of drifting signals.
//! - `link`: one TCP connection in capture time.
//! - `conn`: MQTT connection state and the event type.
//! - `engine`: the event loop, connection life cycle, ACK scheduling, tally.
//! - `client`, `broker`: the MQTT behaviour of each side.

mod broker;
mod client;
mod conn;
mod engine;
mod link;
mod payload;
mod topology;

use serde::{Deserialize, Serialize};
use std::io;
use std::path::Path;

use super::pcap_writer::{PcapWriter, TsResolution};

/// Bumped whenever the same `PlantConfig` would produce different bytes.
pub const PLANT_GENERATOR_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlantConfig {
    /// Length of the capture in seconds.
    pub duration_s: u64,
    pub devices: u32,
    /// Sites (each with 3 areas, a historian and a SCADA server per area).
    pub sites: u32,
    pub seed: u64,
    /// Share of devices speaking MQTT 5 (the rest 3.1.1).
    pub v5_share: f64,
    /// Share of devices on cellular links (long RTT, new address per connection).
    pub cellular_share: f64,
    /// Network blips per device and hour (cellular devices four times as many).
    pub reconnects_per_hour: f64,
    /// Share of blips where the old connection stays half-open at the broker until
    /// the device's next CONNECT takes its session over. 0 by default: see the report
    /// of issue #6 (mqscope's `client_takeover` rule fires on every one).
    pub half_open_share: f64,
    /// Time of the capture start, Unix ns.
    pub start_unix_ns: u64,
    pub ts_resolution: TsResolution,
}

impl Default for PlantConfig {
    fn default() -> Self {
        PlantConfig {
            duration_s: 1800,
            devices: 200,
            sites: 2,
            seed: 0x706c_616e_7431,
            v5_share: 0.4,
            cellular_share: 0.15,
            reconnects_per_hour: 0.03,
            half_open_share: 0.0,
            start_unix_ns: 1_704_096_000_000_000_000, // 2024-01-01T08:00:00Z
            ts_resolution: TsResolution::Micros,
        }
    }
}

/// Exact ground truth of a generated plant capture.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlantSummary {
    pub frames: u64,
    pub file_bytes: u64,
    pub mqtt_packets: u64,
    /// MQTT packets per type; index = type nibble (1 = CONNECT .. 15 = AUTH).
    pub by_type: [u64; 16],
    pub by_type_c2s: [u64; 16],
    pub by_type_s2c: [u64; 16],
    pub publish_by_qos: [u64; 3],
    /// TCP connections (first connections and reconnects).
    pub connections: u64,
    /// Distinct client ids (devices + consumers).
    pub clients: u64,
    pub devices: u64,
    pub consumers: u64,
    /// Distinct topic names in PUBLISH packets.
    pub topics: u64,
    pub client_publishes: u64,
    pub broker_publishes: u64,
    /// Telemetry PUBLISHes by devices (birth messages not counted).
    pub device_publishes: u64,
    /// Deliveries written by the broker (live and retained).
    pub forwarded: u64,
    pub retained_deliveries: u64,
    /// Deliveries not made because the subscriber was offline.
    pub forwards_dropped: u64,
    pub reconnects: u64,
    pub takeovers: u64,
    pub wills: u64,
    pub commands: u64,
    /// Samples a device took while disconnected (not published).
    pub samples_lost: u64,
    pub first_ts_ns: u64,
    pub last_ts_ns: u64,
}

/// Generates the plant capture described by `cfg` into `path` (created or truncated).
pub fn write_plant_capture(path: &Path, cfg: &PlantConfig) -> io::Result<PlantSummary> {
    let mut w = PcapWriter::create(path, cfg.ts_resolution)?;
    let mut s = engine::run(cfg, &mut w)?;
    s.frames = w.frames();
    s.file_bytes = w.bytes();
    w.finish()?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generate(cfg: &PlantConfig) -> (Vec<u8>, PlantSummary) {
        let mut w = PcapWriter::new(Vec::new(), cfg.ts_resolution).unwrap();
        let s = engine::run(cfg, &mut w).unwrap();
        (w.finish().unwrap(), s)
    }

    fn small() -> PlantConfig {
        PlantConfig {
            duration_s: 120,
            devices: 30,
            reconnects_per_hour: 20.0,
            ..PlantConfig::default()
        }
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let (a, sa) = generate(&small());
        let (b, sb) = generate(&small());
        assert!(a == b && sa == sb);
        let (c, _) = generate(&PlantConfig { seed: 2, ..small() });
        assert_ne!(a, c);
    }

    /// Every exchange the protocol starts is completed, once: the MQTT spec's pairs
    /// (CONNECT/CONNACK, SUBSCRIBE/SUBACK, PINGREQ/PINGRESP, QoS 1 and 2 flows).
    #[test]
    fn every_exchange_is_answered_exactly_once() {
        let (_, s) = generate(&small());
        let t = &s.by_type;
        assert!(s.reconnects > 0 && s.wills > 0, "{s:?}");
        assert_eq!(t[1], s.connections);
        assert_eq!(t[1], t[2]);
        assert_eq!(t[8], t[9]);
        assert_eq!(t[8], s.connections);
        assert_eq!(t[12], t[13]);
        assert!(t[12] > 0);
        assert_eq!(s.publish_by_qos[1], t[4]);
        assert_eq!(s.publish_by_qos[2], t[5]);
        assert_eq!(t[5], t[6]);
        assert_eq!(t[6], t[7]);
        assert!(s.publish_by_qos.iter().all(|&n| n > 0));
        assert_eq!(t[3], s.client_publishes + s.broker_publishes);
        assert_eq!(s.broker_publishes, s.forwarded);
        // Nothing but these types: no UNSUBSCRIBE, DISCONNECT (blips close without
        // one), AUTH.
        assert_eq!(t[10] + t[11] + t[14] + t[15], 0);
        // Clients only send CONNECT/SUBSCRIBE/PINGREQ, brokers only their answers.
        assert_eq!(s.by_type_s2c[1] + s.by_type_s2c[8] + s.by_type_s2c[12], 0);
        assert_eq!(s.by_type_c2s[2] + s.by_type_c2s[9] + s.by_type_c2s[13], 0);
    }

    #[test]
    fn half_open_blips_end_in_takeovers() {
        let (_, s) = generate(&PlantConfig {
            half_open_share: 1.0,
            ..small()
        });
        assert!(s.reconnects > 0);
        assert_eq!(s.takeovers, s.reconnects);
        assert_eq!(s.wills, 0, "no FIN, so no will: {s:?}");
    }
}
