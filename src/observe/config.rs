//! Limits and knobs of the observation core. Every table keyed by wire data has its cap
//! here; the defaults are sized for one broker pod's sidecar (tens of MB at most).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObserveConfig {
    /// Width of one statistics bucket; views of 1, 5 and 15 minutes are built from them.
    pub bucket_secs: u32,
    /// Operator-given topic templates (MQTT filters, e.g. `+/+/+/line/+/#`); a topic that
    /// matches one is grouped under it once exact topics are over their cap.
    pub topic_templates: Vec<String>,
    /// Replace identifier-like topic levels (numbers, UUIDs, hex, MACs) by `+` to form
    /// templates automatically.
    pub auto_template: bool,
    /// Topics tracked one by one; beyond this, topics fold into their template.
    pub max_exact_topics: usize,
    /// Templates tracked; beyond this, topics fold into `__other__`.
    pub max_templates: usize,
    /// Clients (by client id) tracked.
    pub max_clients: usize,
    /// Open MQTT connections tracked.
    pub max_connections: usize,
    /// Requests waiting for their answer (PUBLISH→PUBACK, SUBSCRIBE→SUBACK, ...), in total.
    pub max_pending_requests: usize,
    /// A request unanswered for this long is counted as unanswered and forgotten.
    pub unanswered_timeout_secs: f64,
    /// A PUBLISH into the broker is matched to copies leaving it within this window.
    pub fanout_window_ms: u64,
    /// Inbound PUBLISHes remembered for fan-out matching.
    pub max_fanout_pending: usize,
    /// Events waiting to be taken by consumers; further events are counted and dropped.
    pub max_events_queued: usize,
}

impl Default for ObserveConfig {
    fn default() -> Self {
        ObserveConfig {
            bucket_secs: 10,
            topic_templates: Vec::new(),
            auto_template: true,
            max_exact_topics: 10_000,
            max_templates: 1_000,
            // ~380 B per client, ~300 B per connection; pending requests and fan-out
            // messages sit in rings grown as needed up to the power of two at or above
            // 5/4 of their cap, ~120 B and ~40 B per ring slot (with the index): about
            // 52 MB at these caps, plus ~27 MB of topic statistics (group slots and
            // their time rings; sketch buckets grow with the spread of the values). A
            // sidecar's memory limit, not a broker's connection count, sets them; raise
            // them with the pod's limit.
            max_clients: 50_000,
            max_connections: 50_000,
            max_pending_requests: 50_000,
            unanswered_timeout_secs: 30.0,
            // Brokers deliver in milliseconds; 2 s leaves room for a slow broker while
            // keeping the table from saturating (it holds window × inbound rate messages).
            fanout_window_ms: 2_000,
            max_fanout_pending: 200_000,
            max_events_queued: 10_000,
        }
    }
}
