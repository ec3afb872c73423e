//! What the dissector treats as MQTT and how much it is willing to hold.

use crate::capture::FlowLimits;
use crate::mqtt::session::SessionLimits;

/// Defaults follow what brokers do: EMQX refuses packets over 1 MiB by default
/// (`mqtt.max_packet_size`), so a larger one on the wire is worth skipping and counting
/// rather than buffering.
pub const DEFAULT_MAX_PACKET_SIZE: u32 = 1024 * 1024;

#[derive(Clone, Debug)]
pub struct DissectConfig {
    /// Broker ports carrying plain MQTT (the side on one of these ports is the broker).
    pub ports: Vec<u16>,
    /// Broker ports carrying MQTT over TLS: flows are counted, not decoded.
    pub tls_ports: Vec<u16>,
    /// Also decode flows on any other port whose client opens with a valid CONNECT.
    pub detect_by_content: bool,
    /// Packets with a larger remaining length are skipped by their length and counted.
    pub max_packet_size: u32,
    /// Bytes of each PUBLISH payload kept in records (for evidence); 0 keeps none.
    pub payload_prefix: usize,
    /// Bound on bytes buffered for partial MQTT packets over all flows.
    pub max_pending_total: usize,
    pub flow_limits: FlowLimits,
    pub session_limits: SessionLimits,
}

impl Default for DissectConfig {
    fn default() -> Self {
        DissectConfig {
            ports: vec![1883],
            tls_ports: vec![8883],
            detect_by_content: true,
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            payload_prefix: 64,
            max_pending_total: 256 * 1024 * 1024,
            flow_limits: FlowLimits::default(),
            session_limits: SessionLimits::default(),
        }
    }
}
