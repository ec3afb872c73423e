//! The record handed to consumers for each MQTT control packet seen on the wire.

use std::net::SocketAddr;

use crate::mqtt::{DecodeError, Direction, FixedHeader, MqttStr, Packet, ProtocolLevel};

/// Identity of an MQTT connection, decided once per flow: who is the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowMeta {
    /// Monotonic flow number within this dissector.
    pub id: u64,
    pub client: SocketAddr,
    pub broker: SocketAddr,
    /// The TCP handshake was seen and no client bytes were lost before the first packet,
    /// so the first MQTT packet seen from the client is the connection's first (a
    /// non-CONNECT one is then a protocol violation).
    pub from_start: bool,
}

/// One MQTT control packet, or the fixed header of one that could not be decoded.
#[derive(Debug)]
pub struct MqttRecord<'a> {
    /// 1-based number of the frame that completed the packet.
    pub frame: u64,
    /// Capture time of that frame, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    pub flow: &'a FlowMeta,
    pub dir: Direction,
    /// Protocol level the packet was decoded with (learned from CONNECT, else guessed).
    pub level: ProtocolLevel,
    /// Whether `level` was learned from a CONNECT (false: guessed midstream).
    pub level_known: bool,
    pub header: FixedHeader,
    /// The decoded packet, or why it could not be decoded.
    pub packet: Result<Packet<'a>, DecodeError>,
    /// PUBLISH topic after topic-alias resolution (None: not a PUBLISH, or alias unknown).
    pub topic: Option<MqttStr<'a>>,
    /// First protocol violation found (e.g. "invalid_qos"), if any.
    pub violation: Option<&'static str>,
}

impl MqttRecord<'_> {
    /// The error kind for reports: a decode error first, else a protocol violation.
    pub fn error_kind(&self) -> Option<&'static str> {
        match &self.packet {
            Err(e) => Some(e.kind()),
            Ok(_) => self.violation,
        }
    }
}
