//! The contract between the flow table and its consumer (the MQTT glue).

use std::net::SocketAddr;

use super::event::{Interest, Side, StreamEvent};

/// What the consumer learns about a flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowInfo {
    /// Unique within one `FlowTable`, increasing in creation order.
    pub id: u64,
    /// Sender of the first segment the table saw for this flow.
    pub a: SocketAddr,
    pub b: SocketAddr,
    /// The side that sent a SYN without ACK (the client), when the handshake was seen.
    pub syn_from: Option<Side>,
    /// Timestamp (µs) of the flow's first segment.
    pub first_frame_ts: u64,
    /// Timestamp (µs) of the flow's most recent segment.
    pub last_frame_ts: u64,
}

impl FlowInfo {
    /// Address of the endpoint on `side`.
    pub fn addr(&self, side: Side) -> SocketAddr {
        match side {
            Side::A => self.a,
            Side::B => self.b,
        }
    }
}

/// Why a flow ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// FIN seen in both directions and everything before them delivered.
    Fin,
    Rst,
    /// No segment for `idle_timeout_us`.
    Idle,
    /// Pushed out because the table was full.
    Evicted,
    /// A new SYN with another initial sequence number reused the 4-tuple.
    Reused,
    /// End of capture.
    Finish,
}

impl CloseReason {
    pub fn kind(self) -> &'static str {
        match self {
            CloseReason::Fin => "fin",
            CloseReason::Rst => "rst",
            CloseReason::Idle => "idle",
            CloseReason::Evicted => "evicted",
            CloseReason::Reused => "reused",
            CloseReason::Finish => "finish",
        }
    }
}

/// The consumer of reassembled streams (the MQTT glue implements this).
pub trait StreamSink {
    /// Per-flow state the consumer keeps (e.g. two MQTT frame parsers).
    type State;
    /// A flow was created. Called once per flow, before any `data`.
    fn open(&mut self, flow: &FlowInfo) -> Self::State;
    /// Next event of the `from` side's byte stream.
    fn data(
        &mut self,
        flow: &FlowInfo,
        st: &mut Self::State,
        from: Side,
        ev: StreamEvent<'_>,
    ) -> Interest;
    /// The flow ended. Called exactly once per opened flow; no `data` follows.
    fn close(&mut self, flow: &FlowInfo, st: Self::State, why: CloseReason);
}
