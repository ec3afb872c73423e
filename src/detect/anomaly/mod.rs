//! Anomaly detection on the MQTT series: per topic group, per client, per exchange and
//! per broker metric, evaluated once per bucket (record time) from the observer's
//! totals, plus peer clustering of clients. Findings are [`RuleHit`]s with an
//! [`AnomalyDetail`] (series, baseline, observed, threshold) and go through the same
//! [`Alerts`] life cycle as the security rules: they fire once, stay active while the
//! condition holds, and resolve when the series is normal again.
//!
//! | file | job |
//! |---|---|
//! | `config` | `AnomalyConfig`: every knob, caps, validation |
//! | `track` | one series: `SeriesDetector` for rarity, a frozen baseline and gates for relevance, fire/clear state |
//! | `engine` | `AnomalyEngine`: the bucket loop, caps and eviction, counters |
//! | `topics` | rate, payload, fan-out latency, fan-out loss, silence, new topics |
//! | `clients` | client rate, silence, new clients, peer features |
//! | `peers` | k-means (linfa) peer groups and outliers |
//! | `broker` | per-exchange latency and unanswered requests, `$SYS` metrics |
//! | `known` | names seen before (stable hashes, capped) |
//! | `emit` | steps → hits |
//! | `persist` | versioned save and load of baselines |
//!
//! [`RuleHit`]: crate::detect::rules::RuleHit
//! [`AnomalyDetail`]: crate::detect::rules::hit::AnomalyDetail
//! [`Alerts`]: crate::detect::rules::hit::Alerts

mod broker;
mod clients;
pub mod config;
mod emit;
mod engine;
mod known;
pub mod peers;
mod persist;
mod topics;
pub mod track;

#[cfg(test)]
mod tests;

pub use config::AnomalyConfig;
pub use engine::{AnomalyCounters, AnomalyEngine, AnomalySnapshot, detector_config};
pub use persist::LoadReport;

/// Every anomaly rule name.
pub const RULES: [&str; 10] = [
    "anomaly_rate_spike",
    "anomaly_rate_drop",
    "anomaly_silence",
    "anomaly_payload_shift",
    "anomaly_latency_regression",
    "anomaly_fanout_loss",
    "anomaly_unanswered",
    "anomaly_new_topic",
    "anomaly_new_client",
    "anomaly_peer_outlier",
];
