//! Plain counters for everything the capture layer drops, trims, buffers or invents.
//!
//! They are plain `u64`s (no atomics): one `FlowTable` is owned by one thread, and the
//! replay summary reads them at the end. Every silent decision in `flow`/`reassembly`
//! increments one of these, so an operator can tell a clean capture from a lossy or
//! adversarial one.

/// Counters kept by [`crate::capture::flow::FlowTable`].
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CaptureStats {
    /// TCP segments handed to `on_segment`.
    pub segments: u64,
    /// Payload bytes carried by those segments (captured part only).
    pub segment_bytes: u64,
    /// Segments that carried no payload and no SYN and matched no flow (stray ACK/FIN/RST).
    pub segments_without_flow: u64,
    /// Segments whose payload was cut short by the capture's snaplen.
    pub truncated_segments: u64,

    /// Flows created.
    pub flows_opened: u64,
    /// Flows closed after a FIN in both directions.
    pub flows_closed_fin: u64,
    /// Flows closed by a RST.
    pub flows_closed_rst: u64,
    /// Flows closed because they were idle longer than `idle_timeout_us`.
    pub flows_closed_idle: u64,
    /// Flows evicted (least recently active first) because the table was full.
    pub flows_evicted: u64,
    /// Flows closed because a new SYN with a different initial sequence reused the 4-tuple.
    pub flows_closed_reused: u64,
    /// Flows still open at `finish` (end of capture).
    pub flows_closed_finish: u64,
    /// Flows whose sink returned `Interest::Ignore`.
    pub flows_ignored: u64,
    /// Highest number of flows open at the same time.
    pub flows_peak: u64,

    /// Bytes handed to the sink as `StreamEvent::Data`.
    pub bytes_delivered: u64,
    /// Payload bytes of flows the sink ignores (neither buffered nor delivered).
    pub bytes_ignored: u64,
    /// Segments whose payload had been fully delivered already (retransmissions).
    pub retransmitted_segments: u64,
    /// Payload bytes of those segments.
    pub retransmitted_bytes: u64,
    /// Segments that partly overlapped data already delivered or buffered (overlap trimmed).
    pub overlaps: u64,
    /// Overlaps whose bytes differ from the first copy: the first copy wins. A TCP stack
    /// never does this on its own, so it is an evasion / injection signal.
    pub overlaps_conflicting: u64,
    /// Segments that arrived ahead of a hole and were buffered.
    pub out_of_order_segments: u64,
    /// Segments (or parts) that lie before the first byte of the stream (midstream start,
    /// or a sequence number before the SYN's); dropped.
    pub segments_before_start: u64,
    /// Payload bytes of those segments that lay before the stream start.
    pub bytes_before_start: u64,
    /// Segments more than 1 GiB (the largest possible TCP window) ahead of the stream; dropped.
    pub segments_out_of_window: u64,

    /// `StreamEvent::Gap` events delivered, for any reason.
    pub gaps: u64,
    /// Bytes those gaps stand for.
    pub gap_bytes: u64,
    /// Gaps declared because the peer acknowledged bytes the capture never saw.
    pub gaps_by_ack: u64,
    /// Gaps forced because an out-of-order buffer limit was exceeded.
    pub gaps_by_limit: u64,
    /// Gaps declared when a flow closed with holes (FIN/RST/idle/eviction/finish).
    pub gaps_at_close: u64,
    /// Gaps standing for the cut-off tail of snaplen-truncated segments.
    pub gaps_truncated: u64,
    /// Out-of-order bytes currently buffered over all flows (a gauge, not a counter).
    pub ooo_bytes_buffered: u64,
    /// Highest value `ooo_bytes_buffered` reached.
    pub ooo_bytes_peak: u64,
}
