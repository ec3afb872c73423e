//! `PrometheusConfig`: where `/metrics` listens and how many label values it may emit.
//! Every label whose values come from the wire (topics, client ids) is capped here, so
//! the series count has a bound an operator can compute (see `docs/metrics.md`).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Clients an observation snapshot lists one by one (`observe::tracker` `TOP_CLIENTS`).
const TOP_CLIENTS: usize = 50;

/// Hard ceiling on `max_topic_series`: beyond this a scrape would carry hundreds of
/// thousands of series (each topic has up to ~70 with its histograms).
pub const MAX_TOPIC_SERIES_LIMIT: usize = 10_000;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrometheusConfig {
    /// Address of the HTTP listener serving `/metrics`, `/healthz` and `/readyz`.
    pub listen: SocketAddr,
    /// Topic groups exported with their own `topic` label: the busiest by messages (in +
    /// out); every other group is summed into `topic="__other__"`.
    pub max_topic_series: usize,
    /// Export `mqscope_topic_latency_seconds{exchange,topic}` (per-topic latency
    /// histograms; 19 series per topic and exchange).
    pub topic_latency: bool,
    /// Export per-client series (`client_id` label). Off by default: client ids are
    /// unbounded and often personal data.
    pub per_client_labels: bool,
    /// With `per_client_labels`: the most active clients exported (at most the 50 the
    /// observation snapshot lists).
    pub max_client_series: usize,
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        PrometheusConfig {
            // 9883: outside the ports the Prometheus wiki lists for common exporters.
            listen: SocketAddr::from(([0, 0, 0, 0], 9883)),
            max_topic_series: 50,
            topic_latency: true,
            per_client_labels: false,
            max_client_series: 20,
        }
    }
}

impl PrometheusConfig {
    /// Every problem with this configuration, as sentences; empty when valid.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if self.max_topic_series == 0 || self.max_topic_series > MAX_TOPIC_SERIES_LIMIT {
            errs.push(format!(
                "max_topic_series must be between 1 and {MAX_TOPIC_SERIES_LIMIT} (got {})",
                self.max_topic_series
            ));
        }
        if self.max_client_series > TOP_CLIENTS {
            errs.push(format!(
                "max_client_series must be at most {TOP_CLIENTS} (the clients a snapshot lists; got {})",
                self.max_client_series
            ));
        }
        if self.per_client_labels && self.max_client_series == 0 {
            errs.push("per_client_labels is on but max_client_series is 0".to_string());
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_json_roundtrips() {
        let c = PrometheusConfig::default();
        assert!(c.validate().is_empty());
        let text = serde_json::to_string(&c).unwrap();
        let back: PrometheusConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn rejects_bad_values_and_unknown_fields() {
        let c = PrometheusConfig {
            max_topic_series: 0,
            max_client_series: 51,
            ..Default::default()
        };
        assert_eq!(c.validate().len(), 2);
        let c = PrometheusConfig {
            per_client_labels: true,
            max_client_series: 0,
            ..Default::default()
        };
        assert_eq!(c.validate().len(), 1);
        assert!(serde_json::from_str::<PrometheusConfig>(r#"{"max_topics": 3}"#).is_err());
        let c: PrometheusConfig =
            serde_json::from_str(r#"{"listen": "127.0.0.1:1234", "max_topic_series": 7}"#).unwrap();
        assert_eq!(c.listen.port(), 1234);
        assert_eq!(c.max_topic_series, 7);
        assert!(!c.per_client_labels);
    }
}
