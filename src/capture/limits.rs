//! Memory and table bounds. Everything keyed by wire data is capped by one of these.

/// Bounds for a [`crate::capture::flow::FlowTable`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowLimits {
    /// Flows tracked at once; the least recently active one is evicted to make room.
    pub max_flows: usize,
    /// A flow with no segment for this long is closed by `expire_idle` (or by the next
    /// `on_segment` whose timestamp is that far past it).
    pub idle_timeout_us: u64,
    /// Out-of-order bytes buffered for one direction before a gap is forced.
    pub max_ooo_bytes_per_direction: usize,
    /// Out-of-order bytes buffered over all flows before a gap is forced.
    pub max_ooo_bytes_total: usize,
    /// Out-of-order pieces buffered for one direction (bounds per-piece overhead when an
    /// attacker sends many one-byte segments).
    pub max_ooo_segments_per_direction: usize,
}

impl Default for FlowLimits {
    fn default() -> Self {
        FlowLimits {
            max_flows: 100_000,
            idle_timeout_us: 300 * 1_000_000,
            max_ooo_bytes_per_direction: 1 << 20,
            max_ooo_bytes_total: 64 << 20,
            max_ooo_segments_per_direction: 2048,
        }
    }
}
