//! Owned, serialisable views of the topic statistics for reports and exporters.

use serde::Serialize;

use crate::observe::sketch::QuantileSummary;

/// A count over the lifetime and over the last 1, 5 and 15 minutes (bucket-granular:
/// see `window`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WindowCounts {
    pub total: u64,
    pub last_1m: u64,
    pub last_5m: u64,
    pub last_15m: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ArrivalSnapshot {
    /// Gaps between inbound (non-DUP) messages measured.
    pub gaps: u64,
    pub mean_s: Option<f64>,
    /// Population standard deviation of the gaps.
    pub jitter_s: Option<f64>,
    /// Learned period, when the gaps are steady (see `arrivals`).
    pub period_s: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LatencySnapshot {
    pub exchange: &'static str,
    pub count: u64,
    pub p50_s: Option<f64>,
    pub p90_s: Option<f64>,
    pub p99_s: Option<f64>,
    pub max_s: Option<f64>,
}

/// Statistics of one topic group. "in" is client → broker, "out" broker → subscribers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TopicSnapshot {
    pub name: String,
    /// `exact`, `template` or `other`.
    pub kind: &'static str,
    pub msgs_in: WindowCounts,
    pub msgs_out: WindowCounts,
    pub bytes_in: WindowCounts,
    pub bytes_out: WindowCounts,
    /// Payload sizes of inbound messages, bytes.
    pub payload_in: QuantileSummary,
    /// Messages by QoS 0, 1, 2.
    pub qos_in: [u64; 3],
    pub qos_out: [u64; 3],
    /// PUBLISHes with the invalid QoS 3.
    pub qos_invalid: u64,
    pub retained_in: u64,
    pub retained_out: u64,
    pub dup_in: u64,
    pub dup_out: u64,
    /// Distinct publishing clients (exact up to 8, then an estimate within ~6.5 %).
    pub publishers: u64,
    /// Distinct clients the broker delivered to (same estimate).
    pub subscribers: u64,
    pub first_seen_ns: Option<u64>,
    pub last_seen_ns: Option<u64>,
    pub interarrival: ArrivalSnapshot,
    /// Per exchange with samples: `publish_qos1`, `publish_qos2`, `fanout`.
    pub latency: Vec<LatencySnapshot>,
    /// Exact topics evicted and folded into this group.
    pub folded_topics: u64,
}

/// Sizes and eviction counters of the topic tables.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TopicCounters {
    pub exact_groups: u64,
    pub template_groups: u64,
    pub other_groups: u64,
    /// New exact groups created.
    pub exact_admitted: u64,
    /// `group_of` calls answered with a template because the topic had no exact group
    /// and could not get one (cap reached and nothing idle, or name too long).
    pub routed_to_template: u64,
    /// `group_of` calls answered with `__other__` (no template applied, or template cap).
    pub routed_to_other: u64,
    /// Topics longer than the stored-name limit (not eligible for an exact group).
    pub too_long: u64,
    /// Idle exact topics evicted to make room, by where their statistics went.
    pub exact_evicted: u64,
    pub exact_folded_into_template: u64,
    pub exact_folded_into_other: u64,
    /// New template groups created.
    pub template_admitted: u64,
    /// Idle templates evicted to make room (statistics folded into `__other__`).
    pub template_evicted: u64,
    /// Calls with a `GroupId` that no longer names a live group (ignored).
    pub stale_ids: u64,
    /// Estimated heap and inline bytes of all topic state.
    pub mem_bytes: u64,
}
